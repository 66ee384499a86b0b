// Observes the disk for each declared scope: one lstat per secret, plus the few reads the checks need.
// The only secret content ever read is a rendered template, scanned for an unrendered placeholder in
// memory and dropped.

import * as path from "node:path";
import type { PathStep } from "../core/access.js";
import { userHomes } from "../core/accounts.js";
import type { PathFacts, PresentFacts } from "../core/facts.js";
import type { Accounts, DeclaredFile, DeclaredScope } from "../core/model.js";
import type {
  FileObservation,
  GenerationObservation,
  HostObservation,
  KeyObservation,
  ObservedScope,
  OversizedInput,
  SessionState,
  StrayKeyLink,
} from "../core/observation.js";
import { PlaceholderScanner } from "../core/placeholder.js";
import { absoluteLinkTarget, relativeInGeneration } from "../core/placement.js";
import { oversizedAccounts } from "./accounts.js";
import type { RootFs } from "./rootfs.js";

const ABSENT: PathFacts = { state: "absent" };
const REFUSED_NAME: PathFacts = { state: "inaccessible", errno: "EINVAL" };

function isSymlink(facts: PathFacts): boolean {
  return facts.state === "present" && facts.type === "symlink";
}

/** A relative name of plain components: no `..`, no leading `/`, no empty component. */
function isContainedName(name: string): boolean {
  return (
    name !== "" && !name.startsWith("/") && name.split("/").every((c) => c !== "" && c !== "." && c !== "..")
  );
}
/**
 * Rendered templates are scanned in chunks of this size (memory stays bounded whatever their size), up to
 * MAX_TEMPLATE_SCAN; a larger one is reported as too large, never passed as clean.
 */
const TEMPLATE_CHUNK = 1 << 20;
export const MAX_TEMPLATE_SCAN = 64 << 20;

/**
 * `previous`: the same scope as the agent's last check observed it. Files in the same generation directory
 * whose facts did not change keep their observation objects, and an unchanged scope its files array: a
 * check that finds nothing new allocates nothing that outlives it.
 */
export function observeScope(
  fs: RootFs,
  scope: DeclaredScope,
  previous: ObservedScope | null = null,
): ObservedScope {
  const session = sessionOf(fs, scope);
  const keys = scope.keys.map(
    (key): KeyObservation => ({ key, facts: fs.lstat(key.path), resolution: fs.resolve(key.path) }),
  );
  const link = fs.lstat(scope.symlinkPath);
  if (session === "inactive" || session === "unknown") {
    return { declared: scope, session, link, generation: null, mountFsType: null, files: [], keys };
  }
  const generation = generationOf(fs, scope, link);
  const generationDirs = generationDirOf(fs, { generation });
  const before = comparable(previous, scope, generationDirs);
  // null while every file is the one observed before: then that array is kept.
  let files: FileObservation[] | null = before === null ? [] : null;
  let i = 0;
  const oversized: OversizedInput[] = [];
  const search = new SearchPaths(fs);
  const add = (file: FileObservation) => {
    if (files === null) {
      if (file === before?.[i]) {
        i++;
        return;
      }
      files = (before ?? []).slice(0, i);
    }
    files.push(file);
    i++;
  };
  for (const declared of scope.secrets)
    add(observeFile(fs, scope, declared, generationDirs, oversized, search, before?.[i]));
  for (const declared of scope.templates)
    add(observeFile(fs, scope, declared, generationDirs, oversized, search, before?.[i]));
  return finishScope(fs, scope, session, link, generation, files ?? before ?? [], keys, oversized);
}

/** The previous files, one per declaration in order, when they were observed in the same generation directory. */
function comparable(
  previous: ObservedScope | null,
  scope: DeclaredScope,
  dir: { readonly host: string } | null,
): readonly FileObservation[] | null {
  if (previous === null || dir === null) return null;
  const d = previous.declared;
  if (d.secrets !== scope.secrets || d.templates !== scope.templates) return null;
  if (previous.files.length !== scope.secrets.length + scope.templates.length) return null;
  const r = previous.generation?.resolution;
  return r?.state === "resolved" && r.path === dir.host ? previous.files : null;
}

function finishScope(
  fs: RootFs,
  scope: DeclaredScope,
  session: SessionState,
  link: PathFacts,
  generation: GenerationObservation | null,
  files: readonly FileObservation[],
  keys: KeyObservation[],
  oversized: OversizedInput[],
): ObservedScope {
  const mountFsType = scope.userMode || scope.platform !== "linux" ? null : fs.fsType(scope.mountPoint);
  return oversized.length === 0
    ? { declared: scope, session, link, generation, mountFsType, files, keys }
    : { declared: scope, session, link, generation, mountFsType, files, keys, oversized };
}

/** The current generation's directory as a host path and a real path, null when there is none. */
export function generationDirOf(
  fs: RootFs,
  scope: Pick<ObservedScope, "generation">,
): { readonly host: string; readonly real: string } | null {
  const resolution = scope.generation?.resolution;
  if (resolution?.state !== "resolved" || resolution.facts.type !== "directory") return null;
  return { host: resolution.path, real: fs.real(resolution.path) };
}

/**
 * One declared file in the current generation (exported for the agent's re-check of changed files).
 * `before`: its observation by an earlier check in the same generation directory, returned as it is when
 * nothing about the file changed.
 */
export function observeFile(
  fs: RootFs,
  scope: DeclaredScope,
  declared: DeclaredFile,
  generationDir: { readonly host: string; readonly real: string } | null,
  oversized: OversizedInput[],
  search: SearchPaths,
  before?: FileObservation,
): FileObservation {
  const rel = relativeInGeneration(declared);
  const generationPath =
    generationDir === null ? null : (before?.generationPath ?? `${generationDir.host}/${rel}`);
  // A user writes her own scope's manifest: a name that climbs out of the generation (`../../root/x`) or
  // is absolute is refused, not looked up.
  const facts =
    generationDir === null
      ? ABSENT
      : scope.user !== null && !isContainedName(declared.name)
        ? REFUSED_NAME
        : fs.lstatUnder(generationDir.real, generationDir.host, rel, before?.facts);
  let unrenderedPlaceholder: boolean | null = null;
  let contentDenied: string | null = null;
  if (
    declared.kind === "template" &&
    generationPath !== null &&
    facts.state === "present" &&
    facts.type === "file"
  ) {
    // A user scope's template is read only when the user owns it (home-manager renders it as her).
    const scanned =
      scope.user !== null && facts.uid !== scope.user.uid
        ? null
        : scanTemplate(fs, generationPath, facts, scope.user?.uid);
    if (typeof scanned === "object" && scanned !== null) contentDenied = scanned.denied;
    else if (scanned !== "too-large") unrenderedPlaceholder = scanned;
    else {
      oversized.push({
        scope: scope.scope,
        subject: declared.name,
        path: generationPath,
        limitBytes: MAX_TEMPLATE_SCAN,
      });
    }
  }
  // Whether the declared path is the generation's own entry depends on the declarations only.
  const link = (
    before === undefined
      ? isUnderSymlinkPath(scope.symlinkPath, rel, declared.path)
      : before.link === null
  )
    ? null
    : observeLink(fs, declared.path, search);
  const searchPath =
    generationPath === null || facts.state !== "present"
      ? null
      : search.ofFile(generationPath, before?.searchPath ?? null);
  if (
    before !== undefined &&
    facts === before.facts &&
    generationPath === before.generationPath &&
    link === null &&
    before.link === null &&
    searchPath === before.searchPath &&
    unrenderedPlaceholder === before.unrenderedPlaceholder &&
    contentDenied === (before.contentDenied ?? null)
  )
    return before;
  return contentDenied === null
    ? { declared, generationPath, facts, unrenderedPlaceholder, searchPath, link }
    : { declared, generationPath, facts, unrenderedPlaceholder, searchPath, link, contentDenied };
}

function observeLink(fs: RootFs, declaredPath: string, search: SearchPaths): FileObservation["link"] {
  const facts = fs.lstat(declaredPath);
  const resolution = fs.resolve(declaredPath);
  const walked = resolution.state === "resolved" ? search.walk(declaredPath) : null;
  return { facts, resolution, searchPath: walked === null ? null : walked.dirs };
}

const MAX_SYMLINK_HOPS = 40;

/**
 * The directories a process searches on its way to a path, as the kernel walks it: every component's
 * directory, through symlinks, with their modes and owners (the checks decide who may pass). "/" itself is
 * left out: it is always searchable on a running host, and under --root it is the tree's own directory.
 * One RootFs lstat per distinct path per check: the generation's directories are shared by all its files.
 */
export class SearchPaths {
  private readonly facts = new Map<string, PathFacts>();
  private readonly dirs = new Map<string, readonly PathStep[] | null>();
  private readonly fs: RootFs;

  constructor(fs: RootFs) {
    this.fs = fs;
  }

  /**
   * The directories searched to open an entry of `dir`, `dir` itself last; null when not all were seen.
   * `before`: what an earlier check found for the same directory, kept when still the same.
   */
  ofDirectory(dir: string, before: readonly PathStep[] | null = null): readonly PathStep[] | null {
    const known = this.dirs.get(dir);
    if (known !== undefined) return known;
    const walked = this.walk(dir);
    const found =
      walked === null || walked.final.type !== "directory" ? null : [...walked.dirs, step(walked.final)];
    const steps = found !== null && before !== null && sameSteps(found, before) ? before : found;
    this.dirs.set(dir, steps);
    return steps;
  }

  /** ofDirectory of a file's directory; files come directory by directory, so the last one is tried first. */
  ofFile(file: string, before: readonly PathStep[] | null): readonly PathStep[] | null {
    const last = this.lastDir;
    if (
      last !== null &&
      file.length > last.length + 1 &&
      file.charCodeAt(last.length) === 0x2f &&
      file.startsWith(last) &&
      file.indexOf("/", last.length + 1) === -1
    )
      return this.lastSteps;
    const dir = file.slice(0, file.lastIndexOf("/"));
    const steps = this.ofDirectory(dir, before);
    this.lastDir = dir;
    this.lastSteps = steps;
    return steps;
  }

  private lastDir: string | null = null;
  private lastSteps: readonly PathStep[] | null = null;

  walk(
    hostPath: string,
  ): { readonly dirs: PathStep[]; readonly final: PresentFacts & { path: string } } | null {
    const pending = splitPath(hostPath);
    let current = "/";
    let currentFacts: (PresentFacts & { path: string }) | null = null;
    const dirs: PathStep[] = [];
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift() as string;
      if (part === "..") {
        current = path.posix.dirname(current);
        const up = current === "/" ? null : this.lstat(current);
        currentFacts = up !== null && up.state === "present" ? { ...up, path: current } : null;
        continue;
      }
      if (currentFacts !== null) dirs.push(step(currentFacts));
      const next = current === "/" ? `/${part}` : `${current}/${part}`;
      const seen = this.lstat(next);
      if (seen.state !== "present") return null;
      if (seen.type === "symlink" && seen.linkTarget !== undefined) {
        if (++hops > MAX_SYMLINK_HOPS) return null;
        pending.unshift(...splitPath(seen.linkTarget));
        if (seen.linkTarget.startsWith("/")) {
          current = "/";
          currentFacts = null;
        }
        continue;
      }
      if (pending.length > 0 && seen.type !== "directory") return null;
      current = next;
      currentFacts = { ...seen, path: next };
    }
    return currentFacts === null ? null : { dirs, final: currentFacts };
  }

  private lstat(hostPath: string): PathFacts {
    const known = this.facts.get(hostPath);
    if (known !== undefined) return known;
    const facts = this.fs.lstat(hostPath);
    this.facts.set(hostPath, facts);
    return facts;
  }
}

function sameSteps(a: readonly PathStep[], b: readonly PathStep[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as PathStep;
    const y = b[i] as PathStep;
    if (x.path !== y.path || x.mode !== y.mode || x.uid !== y.uid || x.gid !== y.gid) return false;
  }
  return true;
}

function step(f: PresentFacts & { readonly path: string }): PathStep {
  return { path: f.path, mode: f.mode, uid: f.uid, gid: f.gid };
}

function splitPath(p: string): string[] {
  return p.split("/").filter((s) => s !== "" && s !== ".");
}

/** Whether a rendered template holds a placeholder; null when it cannot be read. */
function scanTemplate(
  fs: RootFs,
  generationPath: string,
  facts: PresentFacts,
  ownerUid: number | undefined,
): boolean | null | "too-large" | { readonly denied: string } {
  const scanner = new PlaceholderScanner();
  const read = fs.readChunks(
    generationPath,
    TEMPLATE_CHUNK,
    MAX_TEMPLATE_SCAN,
    (chunk, n) => scanner.push(chunk, n),
    ownerUid === undefined ? { seen: facts } : { seen: facts, ownerUid },
  );
  if (read === "too-large") return scanner.found ? true : "too-large";
  if (read === "done") return scanner.found;
  // A template the agent may not read is not known to be healthy: the checks report it unreadable.
  return read.error === "EACCES" || read.error === "EPERM" ? { denied: read.error } : null;
}

/** Whether a declared path is `<symlinkPath>/<rel>`, with the cheap string test first (it runs per secret). */
function isUnderSymlinkPath(symlinkPath: string, rel: string, declaredPath: string): boolean {
  if (declaredPath === `${symlinkPath}/${rel}`) return true;
  return path.posix.normalize(declaredPath) === path.posix.join(symlinkPath, rel);
}

/**
 * `%r` is expanded only in user mode (sops-install-secrets main.go:1331-1351): a user scope whose paths use
 * it depends on the session's runtime directory. Hard-coded paths are checked like any others; only when
 * they lie in the user's runtime directory does its absence mean "not logged in".
 */
function sessionOf(fs: RootFs, scope: DeclaredScope): SessionState {
  if (scope.user === null) return "not-applicable";
  const runtimeDir = scope.runtimeDir;
  if (runtimeDir === null) return scope.usesRuntimeDir ? "unknown" : "not-applicable";
  if (!scope.usesRuntimeDir && !isUnder(scope.mountPoint, runtimeDir)) return "not-applicable";
  const dir = fs.resolve(runtimeDir);
  return dir.state === "resolved" && dir.facts.type === "directory" ? "active" : "inactive";
}

function isUnder(p: string, dir: string): boolean {
  const d = path.posix.normalize(dir);
  return path.posix.normalize(p).startsWith(d.endsWith("/") ? d : `${d}/`);
}

function generationOf(fs: RootFs, scope: DeclaredScope, link: PathFacts): GenerationObservation | null {
  if (link.state !== "present" || link.type !== "symlink" || link.linkTarget === undefined) return null;
  const raw = link.linkTarget;
  const target = absoluteLinkTarget(scope.symlinkPath, raw);
  const base = path.posix.basename(target);
  const insideMount = path.posix.dirname(target) === path.posix.normalize(scope.mountPoint);
  return {
    target,
    number: insideMount && /^[0-9]+$/.test(base) ? Number(base) : null,
    insideMount,
    resolution: fs.resolve(target),
  };
}

/** `id_infrastructure` links in the places the first user's setup puts them. */
export function observeHost(
  fs: RootFs,
  accounts: Accounts,
  /** The view with a home's owner's access: a link in her home is followed only as far as she could. */
  viewOfHome: (home: string) => RootFs = () => fs,
): HostObservation {
  const candidates = new Map<string, string | null>([["/root/id_infrastructure", null]]);
  for (const home of userHomes(accounts))
    candidates.set(path.posix.join(home, ".ssh/id_infrastructure"), home);
  const strayKeyLinks: StrayKeyLink[] = [];
  for (const candidate of [...candidates.keys()].sort()) {
    // Most homes have no such link: only an existing one is looked at again with the owner's access.
    if (!isSymlink(fs.lstat(candidate))) continue;
    const home = candidates.get(candidate) ?? null;
    const view = home === null ? fs : viewOfHome(home);
    const facts = view.lstat(candidate);
    if (facts.state === "present" && facts.type === "symlink") {
      strayKeyLinks.push({ path: candidate, facts, resolution: view.resolve(candidate) });
    }
  }
  const oversized = oversizedAccounts(accounts);
  return oversized.length === 0 ? { accounts, strayKeyLinks } : { accounts, strayKeyLinks, oversized };
}
