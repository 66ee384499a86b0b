// Finds the sops-nix manifests of a host without any configuration, from the files that run
// sops-install-secrets (reference: shared/reference/sops-nix.md §3). Every read goes through RootFs.

import * as path from "node:path";
import { userById } from "../core/accounts.js";
import type { Accounts, Platform, ScopeEnvironment, ScopeName, ScopeUser } from "../core/model.js";
import { environmentFor } from "./entry-environment.js";
import { RootFs } from "./rootfs.js";

export interface DiscoveryEnv {
  /** The uid the agent runs as: its own home-manager scope gets the session's runtime directory. */
  readonly uid: number;
  readonly xdgRuntimeDir: string | undefined;
  /** `getconf DARWIN_USER_TEMP_DIR` of the agent's user; called only when a macOS user scope needs it. */
  readonly darwinUserTempDir: () => string | null;
}

export interface ManifestRef {
  readonly path: string;
  readonly scope: ScopeName;
  readonly platform: Platform;
  readonly user: ScopeUser | null;
  readonly runtimeDir: string | null;
  /** The entry point the manifest was found in, or `--manifest`. */
  readonly via: string;
  /** Set for a relative `--manifest` under `--root DIR`: `path` is a real path, read outside the root. */
  readonly outsideRoot?: true;
  /** The SOPS_AGE_* variables the entry point sets for sops-install-secrets (`sops.environment`). */
  readonly environment?: ScopeEnvironment;
}

const MANIFEST = /\/nix\/store\/[0-9a-z]{32}-manifest(-for-users)?\.json/g;
const STORE_PATH = /\/nix\/store\/[0-9a-z]{32}-[^\s"'<>;]+/g;
// Shell and plist syntax that can stick to the end of a store path in the texts searched.
const STORE_PATH_TRAILER = /[)`,&|}\]]+$/;
const MAX_SCRIPT_BYTES = 1 << 20;
const MAX_MANIFEST_BYTES = 16 << 20;
const MAX_SCRIPT_DEPTH = 2;
const MAX_SCRIPT_FILES = 20;

// The one set of rules for where a generation names its manifests. The running system is a generation
// too: its toplevel is /run/current-system, and /etc and /Library hold what its toplevel's etc/ and
// Library/ hold. So the rules are paths relative to a toplevel (or to a home directory for home-manager),
// and only the base differs between `status` (the running host) and `preflight` (a built generation).

/** Relative to a NixOS or nix-darwin toplevel, and to `/` on the running system. */
const SYSTEMD_UNITS = [
  "etc/systemd/system/sops-install-secrets.service",
  "etc/systemd/system/sops-install-secrets-for-users.service",
];
/** nix-darwin links `$out/Library/LaunchDaemons` into its toplevel (nix-darwin modules/system/default.nix:159, a1fa429e). */
const NIX_DARWIN_DAEMONS = [
  "Library/LaunchDaemons/org.nixos.sops-install-secrets.plist",
  "Library/LaunchDaemons/org.nixos.sops-install-secrets-for-users.plist",
];
/** Relative to a home directory, and to a home-manager generation's `home-files` (home-environment.nix:919, ec1a8fdf). */
const HM_SYSTEMD_UNIT = ".config/systemd/user/sops-nix.service";
const HM_LAUNCH_AGENT = "Library/LaunchAgents/org.nix-community.home.sops-nix.plist";

const RUNNING_TOPLEVEL = "/run/current-system";

/** A file that may name manifests, and who the manifests it names belong to. */
interface EntryPoint {
  readonly file: string;
  readonly platform: Platform;
  /**
   * Whether store paths it names are read when it names no manifest. Off for the activate script:
   * sops-nix writes the manifest path into it directly, and it names hundreds of unrelated store paths.
   */
  readonly followScripts: boolean;
  /** null: a system entry point, the scope follows the manifest's file name. */
  readonly owner: UserScope | null;
}

interface UserScope {
  readonly user: ScopeUser;
  /** Lazy, because asking macOS for the temp dir runs a program. */
  readonly runtimeDir: () => string | null;
}

/** All manifests the host's activation script, units and launchd plists name, one per scope, sorted by scope. */
export function discoverManifests(fs: RootFs, accounts: Accounts, env: DiscoveryEnv): ManifestRef[] {
  const entries: EntryPoint[] = [
    ...systemEntries(`${RUNNING_TOPLEVEL}/activate`, "/", activatePlatform(fs)),
    ...homeManagerEntries(fs, accounts, env),
  ];
  return firstPerScope(entries.flatMap((entry) => refsOf(fs, entry))).sort(byScope);
}

/**
 * A system generation's entry points: its activate script (classic activation; nix-darwin's postActivation),
 * the sops-install-secrets units (systemd activation with sysusers or userborn) and nix-darwin's daemons.
 * `base` holds the toplevel's `etc/` and `Library/`: `/` for the running system, the toplevel otherwise.
 */
function systemEntries(activate: string, base: string, activateAs: Platform): EntryPoint[] {
  return [
    { file: activate, platform: activateAs, followScripts: false, owner: null },
    ...SYSTEMD_UNITS.map((rel) => systemEntry(path.posix.join(base, rel), "linux")),
    ...NIX_DARWIN_DAEMONS.map((rel) => systemEntry(path.posix.join(base, rel), "darwin")),
  ];
}

function systemEntry(file: string, platform: Platform): EntryPoint {
  return { file, platform, followScripts: true, owner: null };
}

// nix-darwin puts the same sops-install-secrets call into /run/current-system/activate (postActivation),
// so the activate script alone does not tell the platform.
function activatePlatform(fs: RootFs): Platform {
  const systemVersion = fs.lstat("/System/Library/CoreServices/SystemVersion.plist");
  const daemons = fs.lstat("/Library/LaunchDaemons");
  const darwin =
    systemVersion.state === "present" || (daemons.state === "present" && daemons.type === "directory");
  return darwin ? "darwin" : "linux";
}

function refsOf(fs: RootFs, entry: EntryPoint): ManifestRef[] {
  const { manifests, text } = namedBy(fs, entry.file, entry.followScripts);
  if (manifests.length === 0) return [];
  const withEnv = (ref: ManifestRef): ManifestRef => {
    const environment = text === null ? null : environmentFor(entry.file, text, ref.path);
    return environment === null ? ref : { ...ref, environment };
  };
  const owner = entry.owner;
  if (owner === null) {
    return manifests.map((manifest) =>
      withEnv({
        path: manifest,
        scope: systemScopeOf(manifest),
        platform: entry.platform,
        user: null,
        runtimeDir: null,
        via: entry.file,
      }),
    );
  }
  const runtimeDir = owner.runtimeDir();
  return manifests.map((manifest) =>
    withEnv({
      path: manifest,
      scope: `user:${owner.user.name}`,
      platform: entry.platform,
      user: owner.user,
      runtimeDir,
      via: entry.file,
    }),
  );
}

function systemScopeOf(manifestPath: string): ScopeName {
  return path.posix.basename(manifestPath).endsWith("-manifest-for-users.json") ? "for-users" : "system";
}

/** Earlier sources win: a manifest path is listed once, and a scope has one manifest. */
function firstPerScope(refs: readonly ManifestRef[]): ManifestRef[] {
  const paths = new Set<string>();
  const scopes = new Set<string>();
  const kept: ManifestRef[] = [];
  for (const ref of refs) {
    if (paths.has(ref.path) || scopes.has(ref.scope)) continue;
    paths.add(ref.path);
    scopes.add(ref.scope);
    kept.push(ref);
  }
  return kept;
}

function byScope(a: ManifestRef, b: ManifestRef): number {
  return a.scope < b.scope ? -1 : a.scope > b.scope ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------------------
// Searching texts

/** Manifest paths an entry point names, directly or through the scripts it runs (breadth first, bounded). */
export function manifestsNamedBy(fs: RootFs, file: string, followScripts: boolean): string[] {
  return namedBy(fs, file, followScripts).manifests;
}

/** The manifests, and the entry point's own text (where `sops.environment` is written). */
function namedBy(
  fs: RootFs,
  file: string,
  followScripts: boolean,
): { readonly manifests: string[]; readonly text: string | null } {
  const text = readSmallFile(fs, file);
  if (text === null) return { manifests: [], text };
  const direct = manifestPathsIn(text);
  if (direct.length > 0 || !followScripts) return { manifests: direct, text };
  return { manifests: manifestsInScripts(fs, storePathsIn(text)), text };
}

function manifestsInScripts(fs: RootFs, start: readonly string[]): string[] {
  const read = new Set<string>();
  let frontier = start;
  for (let depth = 1; depth <= MAX_SCRIPT_DEPTH && frontier.length > 0; depth++) {
    const found: string[] = [];
    const next: string[] = [];
    for (const storePath of frontier) {
      if (read.has(storePath) || read.size >= MAX_SCRIPT_FILES) continue;
      read.add(storePath);
      const text = readSmallFile(fs, storePath);
      if (text === null) continue;
      // Appended one by one: spreading a long list into push() throws RangeError past ~125k items.
      for (const p of manifestPathsIn(text)) found.push(p);
      for (const p of storePathsIn(text)) next.push(p);
    }
    if (found.length > 0) return unique(found);
    frontier = next;
  }
  return [];
}

/** The text of a regular file of at most 1 MiB (binaries such as sops-install-secrets itself are skipped). */
function readSmallFile(fs: RootFs, hostPath: string): string | null {
  const resolved = fs.resolve(hostPath);
  if (resolved.state !== "resolved" || resolved.facts.type !== "file") return null;
  if (resolved.facts.size > MAX_SCRIPT_BYTES) return null;
  const text = fs.readRealText(resolved.path, MAX_SCRIPT_BYTES, { seen: resolved.facts });
  return typeof text === "string" ? decodeXmlEntities(text) : null;
}

// launchd plists are XML: `&quot;` or `&amp;&amp;` around a store path would otherwise stick to it.
function decodeXmlEntities(text: string): string {
  return text.replace(/&(quot|amp|apos|lt|gt);/g, (_, name: string) => XML_ENTITIES[name] ?? "");
}

const XML_ENTITIES: Record<string, string> = { quot: '"', amp: "&", apos: "'", lt: "<", gt: ">" };

export function manifestPathsIn(text: string): string[] {
  return unique(Array.from(text.matchAll(MANIFEST), (m) => m[0]));
}

function storePathsIn(text: string): string[] {
  return unique(Array.from(text.matchAll(STORE_PATH), (m) => m[0].replace(STORE_PATH_TRAILER, "")));
}

function unique(items: readonly string[]): string[] {
  return [...new Set(items)];
}

// ---------------------------------------------------------------------------------------------------------
// home-manager

function homeManagerEntries(fs: RootFs, accounts: Accounts, env: DiscoveryEnv): EntryPoint[] {
  const entries: EntryPoint[] = [];
  for (const user of passwdUsersWithHome(fs, accounts)) {
    entries.push(linuxHomeManagerEntry(user, env), darwinHomeManagerEntry(user, env));
  }
  for (const user of darwinUsersOutsidePasswd(fs, accounts)) entries.push(darwinHomeManagerEntry(user, env));
  return entries;
}

/** `files`: where the generation's home files are: the home itself when running, `GEN/home-files` when built. */
function linuxHomeManagerEntry(user: ScopeUser, env: DiscoveryEnv, files = user.home): EntryPoint {
  const runtimeDir =
    user.uid === env.uid && env.xdgRuntimeDir !== undefined ? env.xdgRuntimeDir : `/run/user/${user.uid}`;
  return {
    file: path.posix.join(files, HM_SYSTEMD_UNIT),
    platform: "linux",
    followScripts: true,
    owner: { user, runtimeDir: () => runtimeDir },
  };
}

function darwinHomeManagerEntry(user: ScopeUser, env: DiscoveryEnv, files = user.home): EntryPoint {
  // Another user's DARWIN_USER_TEMP_DIR cannot be asked for: the checks report it as unknown.
  const runtimeDir = user.uid === env.uid ? env.darwinUserTempDir : () => null;
  return {
    file: path.posix.join(files, HM_LAUNCH_AGENT),
    platform: "darwin",
    followScripts: true,
    owner: { user, runtimeDir },
  };
}

/** Passwd users whose home exists; when several share a home, the first one in passwd owns it. */
function passwdUsersWithHome(fs: RootFs, accounts: Accounts): ScopeUser[] {
  const homes = new Set<string>();
  const users: ScopeUser[] = [];
  for (const entry of accounts.users.values()) {
    if (!entry.home.startsWith("/") || homes.has(entry.home)) continue;
    const home = fs.resolve(entry.home);
    if (home.state !== "resolved" || home.facts.type !== "directory") continue;
    homes.add(entry.home);
    users.push({ name: entry.name, uid: entry.id, gid: entry.gid, home: entry.home });
  }
  return users;
}

/** macOS keeps most accounts in its directory service, not /etc/passwd: the owner of /Users/<name> stands in. */
function darwinUsersOutsidePasswd(fs: RootFs, accounts: Accounts): ScopeUser[] {
  const passwdHomes = new Set([...accounts.users.values()].map((entry) => path.posix.normalize(entry.home)));
  const users: ScopeUser[] = [];
  for (const name of fs.readdir("/Users")) {
    const home = `/Users/${name}`;
    if (passwdHomes.has(home)) continue;
    const facts = fs.lstat(home);
    if (facts.state !== "present" || facts.type !== "directory") continue;
    users.push({ name, uid: facts.uid, gid: facts.gid, home });
  }
  return users;
}

// ---------------------------------------------------------------------------------------------------------
// A built generation (preflight): the same rules, inside the generation instead of the running system

export type GenerationKind = "nixos" | "nix-darwin" | "home-manager";

export interface BuiltGeneration {
  /** The toplevel as a host path with every link resolved (`./result`, a profile link, `$1` of a check). */
  readonly path: string;
  readonly kind: GenerationKind;
}

/**
 * What a directory is, from the files each builder writes: home-manager's `hm-version`
 * (home-environment.nix:904, ec1a8fdf), nix-darwin's `darwin-version` (modules/system/default.nix:180,
 * a1fa429e), NixOS' `nixos-version` (nixos/modules/system/activation/top-level.nix). Null when none.
 */
export function generationKind(fs: RootFs, toplevel: string): GenerationKind | null {
  const has = (rel: string) => fs.resolve(path.posix.join(toplevel, rel)).state === "resolved";
  if (has("hm-version")) return "home-manager";
  if (has("darwin-version")) return "nix-darwin";
  if (has("nixos-version") || has("activate")) return "nixos";
  return null;
}

/**
 * The manifests a built generation will hand to sops-install-secrets, one per scope, sorted by scope. A
 * home-manager generation is activated by the user who runs `home-manager switch`: its scope is that user's.
 */
export function discoverGenerationManifests(
  fs: RootFs,
  generation: BuiltGeneration,
  accounts: Accounts,
  env: DiscoveryEnv,
): ManifestRef[] {
  const top = generation.path;
  const activate = path.posix.join(top, "activate");
  let entries: EntryPoint[];
  if (generation.kind === "home-manager") {
    const user = activatingUser(accounts, env);
    const files = path.posix.join(top, "home-files");
    const linux = linuxHomeManagerEntry(user, env, files);
    entries = [
      linux,
      darwinHomeManagerEntry(user, env, files),
      { file: activate, platform: "linux", followScripts: false, owner: linux.owner },
    ];
  } else {
    entries = systemEntries(activate, top, generation.kind === "nix-darwin" ? "darwin" : "linux");
  }
  return firstPerScope(entries.flatMap((entry) => refsOf(fs, entry))).sort(byScope);
}

function activatingUser(accounts: Accounts, env: DiscoveryEnv): ScopeUser {
  const entry = userById(accounts, env.uid);
  return entry === null
    ? { name: String(env.uid), uid: env.uid, gid: env.uid, home: "" }
    : { name: entry.name, uid: entry.id, gid: entry.gid, home: entry.home };
}

// ---------------------------------------------------------------------------------------------------------
// --manifest

/**
 * Refs for manifests named on the command line (they replace discovery). The scope is read from the
 * manifest itself; an unreadable manifest still gets a ref, so that loading reports it.
 *
 * An absolute PATH is a host path, read inside `--root`. A relative PATH is resolved against the working
 * directory; under `--root DIR` (DIR not `/`) it names a real file outside the root, such as a manifest
 * copied next to the host tree, and is read as is (`outsideRoot`).
 */
export function explicitManifestRefs(
  fs: RootFs,
  paths: readonly string[],
  accounts: Accounts,
  env: DiscoveryEnv,
  platform: Platform,
): ManifestRef[] {
  const seen = new Set<string>();
  const refs: ManifestRef[] = [];
  for (const given of paths) {
    const located = locateExplicit(fs, given);
    if (seen.has(located.path)) continue;
    seen.add(located.path);
    refs.push(explicitRef(manifestReader(fs, located), located, accounts, env, platform));
  }
  return refs;
}

interface Located {
  readonly path: string;
  readonly outsideRoot?: true;
}

function locateExplicit(fs: RootFs, given: string): Located {
  if (path.posix.isAbsolute(given)) return { path: path.posix.normalize(given) };
  const real = path.resolve(process.cwd(), given);
  return fs.root === "/" ? { path: real } : { path: real, outsideRoot: true };
}

/** The RootFs that reads a ref's manifest: the host's, or the real file system for `outsideRoot` refs. */
export function manifestReader(fs: RootFs, ref: { readonly outsideRoot?: true }): RootFs {
  return ref.outsideRoot === true ? new RootFs("/") : fs;
}

function explicitRef(
  reader: RootFs,
  located: Located,
  accounts: Accounts,
  env: DiscoveryEnv,
  platform: Platform,
): ManifestRef {
  const base = { ...located, platform, via: "--manifest" };
  const head = manifestHead(reader, located.path);
  if (head === null || !head.userMode) {
    const forUsers =
      head === null
        ? path.basename(located.path).includes("for-users")
        : head.symlinkPath.includes("secrets-for-users");
    return { ...base, scope: forUsers ? "for-users" : "system", user: null, runtimeDir: null };
  }
  const entry = userById(accounts, env.uid);
  const user: ScopeUser | null =
    entry === null ? null : { name: entry.name, uid: entry.id, gid: entry.gid, home: entry.home };
  return { ...base, scope: `user:${entry?.name ?? env.uid}`, user, runtimeDir: ownRuntimeDir(env, platform) };
}

function ownRuntimeDir(env: DiscoveryEnv, platform: Platform): string | null {
  if (platform === "darwin") return env.darwinUserTempDir();
  return env.xdgRuntimeDir ?? `/run/user/${env.uid}`;
}

interface ManifestHead {
  readonly userMode: boolean;
  readonly symlinkPath: string;
}

/**
 * Heads already read, by real path and (size, mtime, inode): the agent names the scope of each `--manifest`
 * on every check, and a manifest can be megabytes. Store paths never change, so this rarely misses.
 */
const heads = new Map<string, { readonly stamp: string; readonly head: ManifestHead | null }>();
const MAX_HEADS = 64;

/** Just the two fields that name a manifest's scope; null when it cannot be read as a JSON object. */
function manifestHead(reader: RootFs, manifestPath: string): ManifestHead | null {
  const resolved = reader.resolve(manifestPath);
  if (resolved.state !== "resolved") return readManifestHead(reader, manifestPath);
  const key = reader.real(resolved.path);
  const f = resolved.facts;
  const stamp = `${f.size}\0${f.mtimeMs}\0${f.ino}`;
  const known = heads.get(key);
  if (known?.stamp === stamp) return known.head;
  const head = readManifestHead(reader, manifestPath);
  if (heads.size >= MAX_HEADS) heads.clear();
  heads.set(key, { stamp, head });
  return head;
}

function readManifestHead(reader: RootFs, manifestPath: string): ManifestHead | null {
  const text = reader.readText(manifestPath, MAX_MANIFEST_BYTES);
  if (typeof text !== "string") return null;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) return null;
  const userMode = "userMode" in json && json.userMode === true;
  const symlinkPath = "symlinkPath" in json && typeof json.symlinkPath === "string" ? json.symlinkPath : "";
  return { userMode, symlinkPath };
}
