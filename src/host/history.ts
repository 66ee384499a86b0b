// Reads what earlier generations declared, for the leftovers check: the NixOS and nix-darwin system profiles
// and the home-manager generations still on the host, each searched with discovery's rules, plus what the
// agent itself saw before a switch. Manifests are store paths and never change, so each is read once and
// only its `path` links are kept.

import * as path from "node:path";
import type { PathFacts } from "../core/facts.js";
import type { FormerDeclaration, FormerLink, OrphanObservation } from "../core/history.js";
import { parseManifest } from "../core/manifest.js";
import type { DeclaredScope, ScopeName } from "../core/model.js";
import type { ObservedScope } from "../core/observation.js";
import { relativeInGeneration } from "../core/placement.js";
import { declarationFingerprint, type Fingerprint, fileKey } from "../core/usage.js";
import { manifestsNamedBy } from "./discovery.js";
import type { RootFs } from "./rootfs.js";

/** Profile generations read per profile besides the current one: "the last few", as `nix-env --list-generations` shows them. */
const MAX_FORMER_GENERATIONS = 5;
const MAX_MANIFEST_BYTES = 16 << 20;
/** Names listed in one generation directory tree before giving up: far above any real host. */
const MAX_LISTED = 200_000;
const MAX_DEPTH = 16;

const SYSTEM_PROFILES = "/nix/var/nix/profiles";

/** Where a profile generation keeps the files that name its manifests (the discovery entry points, inside it). */
const SYSTEM_ENTRIES: readonly Entry[] = [
  // The activate script names hundreds of store paths: only direct manifest mentions count (as in discovery).
  { rel: "activate", followScripts: false },
  { rel: "etc/systemd/system/sops-install-secrets.service", followScripts: true },
  { rel: "etc/systemd/system/sops-install-secrets-for-users.service", followScripts: true },
  { rel: "Library/LaunchDaemons/org.nixos.sops-install-secrets.plist", followScripts: true },
  { rel: "Library/LaunchDaemons/org.nixos.sops-install-secrets-for-users.plist", followScripts: true },
];
// home-manager: user units are in the generation's home-files, launchd agents in its LaunchAgents folder
// (home-manager modules/launchd/default.nix: `ln -s "${agentsDrv}" $out/LaunchAgents`).
const HOME_MANAGER_ENTRIES: readonly Entry[] = [
  { rel: "home-files/.config/systemd/user/sops-nix.service", followScripts: true },
  { rel: "LaunchAgents/org.nix-community.home.sops-nix.plist", followScripts: true },
];

/** The file system as a scope's account sees it: the agent's own for system scopes, the user's for hers. */
export type ScopeView = (scope: DeclaredScope) => RootFs;

interface Entry {
  readonly rel: string;
  readonly followScripts: boolean;
}

interface ProfileGeneration {
  readonly link: string;
  readonly label: string;
  readonly entries: readonly Entry[];
  /** Which current scopes its manifests may belong to. */
  readonly owner: DeclaredScope | "system";
}

/**
 * Parsed leftovers data by store path: the manifests a generation names, and a manifest's links. Entries not
 * used by the last read are dropped, so it holds only what the host still has.
 */
export class HistoryCache {
  private manifestsOf = new Map<string, readonly string[]>();
  private linksOf = new Map<string, readonly FormerLink[] | null>();
  private listingsOf = new Map<string, Listing>();
  private reads = 0;
  private listed = 0;
  private readonly clock: () => number;

  /** `now`: the wall clock in ms (tests move it on to make a fresh generation look settled). */
  constructor(opts: { readonly now?: () => number } = {}) {
    this.clock = opts.now ?? Date.now;
  }

  /** Manifests parsed since the cache was created (tests and the bench). */
  get manifestReads(): number {
    return this.reads;
  }

  /** @internal */
  generation(
    key: string,
    read: () => readonly string[],
    used: Map<string, readonly string[]>,
  ): readonly string[] {
    const hit = this.manifestsOf.get(key) ?? read();
    used.set(key, hit);
    return hit;
  }

  /** @internal */
  links(
    key: string,
    read: () => readonly FormerLink[] | null,
    used: Map<string, readonly FormerLink[] | null>,
  ): readonly FormerLink[] | null {
    let hit = this.linksOf.get(key);
    if (hit === undefined && !this.linksOf.has(key)) {
      this.reads++;
      hit = read();
    }
    used.set(key, hit ?? null);
    return hit ?? null;
  }

  /** Directories of current generations read (readdir) since the cache was created (tests count them). */
  get directoryListings(): number {
    return this.listed;
  }

  /**
   * The undeclared regular files of a current generation: listed again only when one of the directories
   * walked last time looks different now (an entry added, removed or renamed moves its directory's mtime),
   * when the declarations changed, or when the last listing was too recent to trust (below).
   * @internal
   */
  generationFiles(fs: RootFs, dir: string, scope: DeclaredScope): readonly string[] | null {
    const key = `${scope.scope}\0${fs.as?.uid ?? ""}\0${dir}`;
    const known = this.listingsOf.get(key);
    const used = this.usedListings;
    if (
      known !== undefined &&
      known.dirs !== null &&
      known.secrets === scope.secrets &&
      known.templates === scope.templates &&
      known.dirs.every((d) => sameDirectory(d, fs))
    ) {
      used.set(key, known);
      return known.files;
    }
    const listing = listFiles(fs, dir, scope, this.clock(), () => this.listed++);
    used.set(key, listing);
    return listing.files;
  }

  private usedListings = new Map<string, Listing>();

  /** Drops the listings the last check did not use (a generation that is gone); called once per check. */
  keepListings(): void {
    this.listingsOf = this.usedListings;
    this.usedListings = new Map();
  }

  /** @internal */
  keep(manifests: Map<string, readonly string[]>, links: Map<string, readonly FormerLink[] | null>): void {
    this.manifestsOf = manifests;
    this.linksOf = links;
  }
}

/**
 * What the agent saw declared before each switch, so that a leftover is found even when the profile
 * generation that declared it was garbage-collected or never was a profile (`nixos-rebuild test`, colmena).
 */
export class DeclarationMemory {
  private readonly last = new Map<ScopeName, DeclaredScope>();
  private readonly former = new Map<ScopeName, FormerDeclaration[]>();

  /**
   * Records the current declarations; a scope whose manifest changed keeps its previous one as former. Only
   * the newest former keeps fingerprints: the current scope is held anyway (the manifest cache shares it).
   */
  update(scopes: readonly DeclaredScope[], now: Date = new Date()): void {
    for (const scope of scopes) {
      const before = this.last.get(scope.scope);
      if (before !== undefined && before.manifestPath !== scope.manifestPath) {
        const older: FormerDeclaration[] = (this.former.get(scope.scope) ?? []).map(
          ({ scope: s, generation, manifestPath, links }) => ({ scope: s, generation, manifestPath, links }),
        );
        older.unshift({
          scope: scope.scope,
          generation: `the generation the agent saw before the switch at ${now.toISOString()}`,
          manifestPath: before.manifestPath,
          links: linksOf(before),
          fingerprints: fingerprintsOf(before),
        });
        older.length = Math.min(older.length, MAX_FORMER_GENERATIONS);
        this.former.set(scope.scope, older);
      }
      this.last.set(scope.scope, scope);
    }
  }

  entries(): FormerDeclaration[] {
    return [...this.former.values()].flat();
  }
}

/** Each file's declaration fingerprint, by `kind:name`. */
export function fingerprintsOf(scope: DeclaredScope): Map<string, Fingerprint> {
  const map = new Map<string, Fingerprint>();
  for (const f of scope.secrets) map.set(fileKey(f), declarationFingerprint(f));
  for (const f of scope.templates) map.set(fileKey(f), declarationFingerprint(f));
  return map;
}

/** Earlier declarations of the current scopes, newest first: what the agent remembers, then the profiles. */
export function readFormerDeclarations(
  fs: RootFs,
  scopes: readonly DeclaredScope[],
  cache: HistoryCache = new HistoryCache(),
  memory?: DeclarationMemory,
  viewOf: ScopeView = () => fs,
): FormerDeclaration[] {
  const current = new Set(scopes.map((s) => s.manifestPath));
  const byScope = new Map(scopes.map((s) => [s.scope, s]));
  const out: FormerDeclaration[] = memory?.entries().filter((f) => !current.has(f.manifestPath)) ?? [];
  const seen = new Set(out.map((f) => `${f.scope}\0${f.manifestPath}`));
  const usedGenerations = new Map<string, readonly string[]>();
  const usedLinks = new Map<string, readonly FormerLink[] | null>();
  for (const generation of profileGenerations(fs, scopes, viewOf)) {
    // A home-manager profile is the user's to write: it is read with her access, never the agent's.
    const gfs = generation.owner === "system" ? fs : viewOf(generation.owner);
    const top = gfs.resolve(generation.link);
    if (top.state !== "resolved") continue;
    const manifests = cache.generation(
      `${top.path}\0${generation.entries.map((e) => e.rel).join(",")}`,
      () => generation.entries.flatMap((e) => manifestsNamedBy(gfs, `${top.path}/${e.rel}`, e.followScripts)),
      usedGenerations,
    );
    for (const manifestPath of manifests) {
      if (current.has(manifestPath)) continue;
      const scope =
        generation.owner === "system" ? byScope.get(systemScopeOf(manifestPath)) : generation.owner;
      if (scope === undefined || seen.has(`${scope.scope}\0${manifestPath}`)) continue;
      seen.add(`${scope.scope}\0${manifestPath}`);
      const links = cache.links(
        `${scope.scope}\0${manifestPath}`,
        () => readLinks(gfs, scope, manifestPath),
        usedLinks,
      );
      if (links !== null && links.length > 0)
        out.push({ scope: scope.scope, generation: generation.label, manifestPath, links });
    }
  }
  cache.keep(usedGenerations, usedLinks);
  return out;
}

/** The profile generations that may hold earlier declarations of the current scopes, newest first per profile. */
function profileGenerations(
  fs: RootFs,
  scopes: readonly DeclaredScope[],
  viewOf: ScopeView,
): ProfileGeneration[] {
  const out: ProfileGeneration[] = [];
  if (scopes.some((s) => s.user === null)) {
    for (const { link, number } of numberedLinks(fs, SYSTEM_PROFILES, "system"))
      out.push({
        link,
        label: `system generation ${number} (${link})`,
        entries: SYSTEM_ENTRIES,
        owner: "system",
      });
  }
  for (const scope of scopes) {
    if (scope.user === null) continue;
    // home-manager keeps its profile in the per-user profiles directory when that exists, else in the user's
    // state directory (home-manager modules/files.nix and its activation's genProfilePath).
    const dirs = [
      `${SYSTEM_PROFILES}/per-user/${scope.user.name}`,
      path.posix.join(scope.user.home, ".local/state/nix/profiles"),
    ];
    for (const dir of dirs)
      for (const { link, number } of numberedLinks(viewOf(scope), dir, "home-manager"))
        out.push({
          link,
          label: `home-manager generation ${number} (${link})`,
          entries: HOME_MANAGER_ENTRIES,
          owner: scope,
        });
  }
  return out;
}

/** `<dir>/<name>-N-link`, the newest few first. */
function numberedLinks(fs: RootFs, dir: string, name: string): { link: string; number: number }[] {
  const pattern = new RegExp(`^${name}-([0-9]{1,9})-link$`);
  const found: { link: string; number: number }[] = [];
  for (const entry of fs.readdir(dir)) {
    const m = pattern.exec(entry);
    if (m !== null) found.push({ link: `${dir}/${entry}`, number: Number(m[1]) });
  }
  return found.sort((a, b) => b.number - a.number).slice(0, MAX_FORMER_GENERATIONS + 1);
}

function systemScopeOf(manifestPath: string): ScopeName {
  return path.posix.basename(manifestPath).endsWith("-manifest-for-users.json") ? "for-users" : "system";
}

/** The links an earlier manifest declared, read with the current scope's context (`%r`, user); null if unreadable. */
function readLinks(fs: RootFs, scope: DeclaredScope, manifestPath: string): FormerLink[] | null {
  const former = readFormerScope(fs, scope, manifestPath);
  // The earlier generation linked into *its* symlinkPath; a changed symlinkPath is compared as declared then.
  return former === null ? null : linksOf(former);
}

/** An earlier manifest of a scope, parsed with the current scope's context (`%r`, user); null if unreadable. */
export function readFormerScope(
  fs: RootFs,
  scope: DeclaredScope,
  manifestPath: string,
): DeclaredScope | null {
  const text = fs.readText(manifestPath, MAX_MANIFEST_BYTES);
  if (typeof text !== "string") return null;
  const parsed = parseManifest(text, {
    manifestPath,
    scope: scope.scope,
    platform: scope.platform,
    user: scope.user,
    runtimeDir: scope.runtimeDir,
  });
  return parsed.ok ? parsed.scope : null;
}

/** The declared files of a scope that live outside its symlinkPath (the ones sops-install-secrets links). */
function linksOf(scope: DeclaredScope): FormerLink[] {
  const links: FormerLink[] = [];
  for (const f of [...scope.secrets, ...scope.templates]) {
    if (path.posix.normalize(f.path) === path.posix.join(scope.symlinkPath, relativeInGeneration(f)))
      continue;
    links.push({ kind: f.kind, name: f.name, path: f.path });
  }
  return links;
}

/**
 * lstat of every former link no current manifest declares, and the listing of each current generation. A
 * user scope's links and generation are the user's to create: only links and directories the user owns are
 * looked at, so a user cannot make the agent report on files she could not see herself.
 */
export function observeOrphans(
  fs: RootFs,
  observed: readonly ObservedScope[],
  former: readonly FormerDeclaration[],
  viewOf: ScopeView = () => fs,
  cache: HistoryCache = new HistoryCache(),
): OrphanObservation {
  const byScope = new Map(observed.map((o) => [o.declared.scope, o]));
  const linkFacts = new Map<string, ReturnType<RootFs["lstat"]>>();
  for (const declaration of former) {
    const scope = byScope.get(declaration.scope)?.declared;
    if (scope === undefined) continue;
    for (const link of declaration.links) {
      if (linkFacts.has(link.path)) continue;
      const facts = viewOf(scope).lstat(link.path);
      if (scope.user !== null && (facts.state !== "present" || facts.uid !== scope.user.uid)) continue;
      linkFacts.set(link.path, facts);
    }
  }
  const generationFiles = new Map<ScopeName, readonly string[]>();
  for (const o of observed) {
    const dir = o.generation?.resolution;
    if (dir?.state !== "resolved" || dir.facts.type !== "directory") continue;
    if (o.declared.user !== null && dir.facts.uid !== o.declared.user.uid) continue;
    const files = cache.generationFiles(viewOf(o.declared), dir.path, o.declared);
    if (files !== null) generationFiles.set(o.declared.scope, files);
  }
  cache.keepListings();
  return { former, linkFacts, generationFiles };
}

/**
 * A listing is trusted again only when every directory it walked last changed (ctime) this long before the
 * listing began. File systems stamp a change with a coarse clock (a jiffy; whole seconds on some): an
 * entry added in the same tick as the change seen before, but after the listing, would leave the stamps as
 * they were. A change after a listing that began this much later always moves them (the racy-git rule).
 * Generations are written once at activation, so a few seconds later their listing is reused.
 */
const SETTLED_MS = 2_000;

/** One generation tree's listing and what it was made from. */
interface Listing {
  readonly secrets: DeclaredScope["secrets"];
  readonly templates: DeclaredScope["templates"];
  /** Every directory read, with its lstat before the read; null when the listing must not be reused. */
  readonly dirs: readonly ListedDirectory[] | null;
  readonly files: readonly string[] | null;
}

interface ListedDirectory {
  readonly path: string;
  readonly facts: PathFacts;
  readonly ctimeMs: number;
}

/**
 * The directory is unchanged: same inode, entries (mtime), access (mode, owner) and no change at all since
 * (ctime: an mtime set back by hand still moves it).
 */
function sameDirectory(d: ListedDirectory, fs: RootFs): boolean {
  const stamp = { ctimeMs: Number.NaN };
  const a = d.facts;
  const b = fs.lstat(d.path, stamp);
  return (
    stamp.ctimeMs === d.ctimeMs &&
    a.state === "present" &&
    b.state === "present" &&
    b.type === "directory" &&
    a.ino === b.ino &&
    a.mtimeMs === b.mtimeMs &&
    a.mode === b.mode &&
    a.uid === b.uid &&
    a.gid === b.gid
  );
}

/**
 * Regular files under a generation directory, relative to it. Declared files are taken on the manifest's word
 * (the files family lstats them already); only undeclared names cost an lstat. Null when the tree is too big.
 */
function listFiles(fs: RootFs, dir: string, scope: DeclaredScope, now: number, onRead: () => void): Listing {
  const dirs: ListedDirectory[] = [];
  let reusable = true;
  // Declared names by their directory (relative, "" for the top): a listed name is looked up as it comes
  // from readdir, without a path string per entry (10,000 at 10,000 secrets).
  const declaredIn = new Map<string, Set<string>>();
  const declare = (rel: string) => {
    const slash = rel.lastIndexOf("/");
    // "/" for a name with a leading slash: no listed directory is called that, as no listed path was `/x`.
    const parent = slash === -1 ? "" : slash === 0 ? "/" : rel.slice(0, slash);
    const names = declaredIn.get(parent);
    if (names === undefined) declaredIn.set(parent, new Set([rel.slice(slash + 1)]));
    else names.add(rel.slice(slash + 1));
  };
  for (const f of scope.secrets) declare(relativeInGeneration(f));
  for (const f of scope.templates) declare(relativeInGeneration(f));
  const declaredDirs = new Set<string>();
  for (const parent of declaredIn.keys())
    for (let i = parent.indexOf("/"); i !== -1; i = parent.indexOf("/", i + 1))
      declaredDirs.add(parent.slice(0, i));
  for (const parent of declaredIn.keys()) if (parent !== "") declaredDirs.add(parent);
  const files: string[] = [];
  let listed = 0;
  const walk = (rel: string, depth: number): boolean => {
    const at = rel === "" ? dir : `${dir}/${rel}`;
    // Its lstat before its read: a change during the read moves the mtime past the one recorded.
    const stamp = { ctimeMs: Number.POSITIVE_INFINITY };
    const facts = fs.lstat(at, stamp);
    // A directory reached through a link (a declared one may be) is not vouched for by its own lstat.
    if (facts.state !== "present" || facts.type !== "directory" || stamp.ctimeMs > now - SETTLED_MS)
      reusable = false;
    dirs.push({ path: at, facts, ctimeMs: stamp.ctimeMs });
    onRead();
    const names = fs.readdir(at);
    listed += names.length;
    if (listed > MAX_LISTED) return false;
    const declaredHere = declaredIn.get(rel);
    for (const name of names) {
      if (declaredHere?.has(name) === true) continue;
      const child = rel === "" ? name : `${rel}/${name}`;
      const isDeclaredDir = declaredDirs.has(child);
      const facts = isDeclaredDir ? null : fs.lstat(`${dir}/${child}`);
      if (isDeclaredDir || (facts?.state === "present" && facts.type === "directory")) {
        if (depth >= MAX_DEPTH) continue;
        if (!walk(child, depth + 1)) return false;
      } else if (facts?.state === "present" && facts.type === "file") {
        files.push(child);
      }
    }
    return true;
  };
  const complete = walk("", 0);
  return {
    secrets: scope.secrets,
    templates: scope.templates,
    dirs: reusable ? dirs : null,
    files: complete ? files : null,
  };
}
