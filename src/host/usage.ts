// Observes what the "secrets in use" checks judge: the units that read each declared file (unit files under
// the root; their states from the live service manager only), how the last activation of each scope went,
// the generations left in each mount point, and the few files the declarations name besides the secrets.

import * as path from "node:path";
import type { PathFacts } from "../core/facts.js";
import type { FormerDeclaration } from "../core/history.js";
import type { DeclaredScope, ScopeName } from "../core/model.js";
import type { ObservedScope } from "../core/observation.js";
import { relativeInGeneration } from "../core/placement.js";
import {
  type ActivationEvidence,
  type Consumer,
  fileKey,
  type Manager,
  type PreviousDeclaration,
  type ScopeUsage,
  type UnitState,
  type UsageObservation,
  unitKey,
} from "../core/usage.js";
import { manifestPathsIn } from "./discovery.js";
import { hashOf } from "./file-hash.js";
import type { ScopeView } from "./history.js";
import { fingerprintsOf, readFormerScope } from "./history.js";
import type { RootFs } from "./rootfs.js";
import type { ServiceManager } from "./service-manager.js";
import { UnitFileCache, unitPathsIn } from "./unit-files.js";

const MAX_SOPS_BYTES = 16 << 20;
const ACTIVATE = "/run/current-system/activate";
const CURRENT_SYSTEM = "/run/current-system";
const MAX_ACTIVATE_BYTES = 1 << 20;
const SYSTEM_UNIT_DIRS = ["/etc/systemd/system"];
const USER_UNIT_DIRS = [".config/systemd/user"];
const SYSTEM_USER_UNIT_DIR = "/etc/systemd/user";

/** Kept across checks by the agent: unit files, previous declarations and sops file digests are read once. */
export class UsageCache {
  readonly unitFiles = new UnitFileCache();
  private previous = new Map<string, PreviousDeclaration | null>();
  private digests = new Map<string, string | null>();

  /** @internal */
  previousOf(
    key: string,
    read: () => PreviousDeclaration | null,
    used: Map<string, PreviousDeclaration | null>,
  ) {
    const hit = this.previous.has(key) ? (this.previous.get(key) ?? null) : read();
    used.set(key, hit);
    return hit;
  }

  /** @internal */
  digestOf(key: string, read: () => string | null, used: Map<string, string | null>): string | null {
    const hit = this.digests.has(key) ? (this.digests.get(key) ?? null) : read();
    used.set(key, hit);
    return hit;
  }

  private activate: { readonly key: string; readonly manifests: ReadonlySet<string> } | null = null;

  /** @internal The manifests the current system's activate script names, read again only when it changes. */
  activated(fs: RootFs): ReadonlySet<string> {
    const r = fs.resolve(ACTIVATE);
    if (r.state !== "resolved" || r.facts.type !== "file") return new Set();
    const key = `${fs.root}\0${r.path}\0${r.facts.size}\0${r.facts.mtimeMs}\0${r.facts.ino}`;
    if (this.activate?.key !== key) this.activate = { key, manifests: readActivated(fs, r.path) };
    return this.activate.manifests;
  }

  /** @internal */
  keep(previous: Map<string, PreviousDeclaration | null>, digests: Map<string, string | null>): void {
    this.previous = previous;
    this.digests = digests;
  }
}

export interface UsageOptions {
  /** How each scope's account sees the file system: a user's scope is observed with her access. */
  readonly viewOf?: ScopeView;
  readonly cache: UsageCache;
  /** The live host's service manager; null under --root, where only relations are known. */
  readonly services: ServiceManager | null;
}

export function observeUsage(
  fs: RootFs,
  observed: readonly ObservedScope[],
  former: readonly FormerDeclaration[],
  opts: UsageOptions,
): UsageObservation {
  const usedPrevious = new Map<string, PreviousDeclaration | null>();
  const usedDigests = new Map<string, string | null>();
  const activated = opts.cache.activated(fs);
  const switchedSeconds = symlinkSeconds(fs, CURRENT_SYSTEM);
  const wanted = new Map<Manager, Set<string>>();
  const want = (manager: Manager, unit: string) => {
    const set = wanted.get(manager) ?? new Set<string>();
    set.add(unit);
    wanted.set(manager, set);
  };
  const partial = new Map<
    ScopeName,
    Omit<ScopeUsage, "activation"> & { readonly pending: PendingActivation }
  >();
  for (const o of observed) {
    const scope = o.declared;
    const sfs = opts.viewOf?.(scope) ?? fs;
    const manager: Manager = scope.user === null ? "system" : `user:${scope.user.name}`;
    const discovered = discoverConsumers(sfs, scope, manager, opts.cache);
    for (const list of discovered.values()) for (const c of list) want(c.manager, c.unit);
    for (const f of [...scope.secrets, ...scope.templates]) for (const u of f.restartUnits) want(manager, u);
    const pending = pendingActivation(fs, o, activated, switchedSeconds);
    if (pending?.kind === "unit") want(pending.manager, pending.unit);
    partial.set(scope.scope, {
      discovered,
      previous: previousOf(fs, scope, former, opts.cache, usedPrevious),
      installedSeconds: installedSeconds(o),
      generations: generationsOf(sfs, scope),
      gnupgHome:
        scope.gnupgHome === undefined || !mayLook(fs, scope, scope.gnupgHome)
          ? null
          : fs.lstat(scope.gnupgHome),
      templateSources: templateSources(sfs, scope),
      sopsFileHashes: sopsFileHashes(sfs, scope, opts.cache, usedDigests),
      pending,
    });
  }
  opts.cache.keep(usedPrevious, usedDigests);
  const units = new Map<string, UnitState>();
  if (opts.services !== null) {
    for (const [manager, names] of wanted) {
      for (const state of opts.services.unitStates(manager, [...names].sort()).values())
        units.set(unitKey(manager, state.unit), state);
    }
  }
  const scopes = new Map<ScopeName, ScopeUsage>();
  for (const [name, { pending, ...rest }] of partial)
    scopes.set(name, { ...rest, activation: settle(pending, units, opts.services) });
  return { scopes, units, live: opts.services !== null };
}

// ---------------------------------------------------------------------------------------------------------
// Activation

type PendingActivation =
  | { readonly kind: "unit"; readonly manager: Manager; readonly unit: string }
  | { readonly kind: "launchd"; readonly target: string; readonly label: string }
  | Extract<ActivationEvidence, { kind: "classic" }>
  | null;

/** Where the outcome of a scope's last activation can be read (modules/sops/default.nix, home-manager/sops.nix). */
function pendingActivation(
  fs: RootFs,
  o: ObservedScope,
  activated: ReadonlySet<string>,
  switchedSeconds: number | null,
): PendingActivation {
  const scope = o.declared;
  if (scope.user !== null) {
    if (scope.platform === "darwin")
      return {
        kind: "launchd",
        target: `gui/${scope.user.uid}/org.nix-community.home.sops-nix`,
        label: "org.nix-community.home.sops-nix",
      };
    return { kind: "unit", manager: `user:${scope.user.name}`, unit: "sops-nix.service" };
  }
  const forUsers = scope.scope === "for-users";
  if (scope.platform === "darwin") {
    const label = `org.nixos.sops-install-secrets${forUsers ? "-for-users" : ""}`;
    return { kind: "launchd", target: `system/${label}`, label };
  }
  const unit = `sops-install-secrets${forUsers ? "-for-users" : ""}.service`;
  const unitFile = fs.resolve(`/etc/systemd/system/${unit}`);
  if (unitFile.state === "resolved") return { kind: "unit", manager: "system", unit };
  // Classic activation: the activate script runs sops-install-secrets on this very manifest.
  const generation = o.generation?.resolution;
  if (!activated.has(scope.manifestPath) || switchedSeconds === null) return null;
  if (generation?.state !== "resolved") return null;
  return { kind: "classic", switchedSeconds, generationSeconds: generation.facts.mtimeMs / 1000 };
}

function settle(
  pending: PendingActivation,
  units: ReadonlyMap<string, UnitState>,
  services: ServiceManager | null,
): ActivationEvidence | null {
  if (pending === null) return null;
  switch (pending.kind) {
    case "classic":
      return pending;
    case "unit": {
      const state = units.get(unitKey(pending.manager, pending.unit));
      if (state === undefined || state.loadState === "not-found") return null;
      const failed = state.activeState === "failed" || !["", "success"].includes(state.result);
      const lastLog =
        failed && services !== null ? services.lastLogLine(pending.manager, pending.unit) : null;
      return { kind: "unit", manager: pending.manager, unit: pending.unit, state, lastLog };
    }
    case "launchd": {
      const code = services?.launchdExitCode(pending.target) ?? null;
      return code === null ? null : { kind: "launchd", label: pending.label, lastExitCode: code };
    }
  }
}

/** The manifests /run/current-system/activate hands to sops-install-secrets (classic activation). */
function readActivated(fs: RootFs, resolvedPath: string): ReadonlySet<string> {
  const text = fs.readText(resolvedPath, MAX_ACTIVATE_BYTES);
  return typeof text === "string" ? new Set(manifestPathsIn(text)) : new Set();
}

/** The mtime of a symlink itself: when it was last pointed somewhere (`ln -sfn` makes a new link). */
function symlinkSeconds(fs: RootFs, hostPath: string): number | null {
  const facts = fs.lstat(hostPath);
  return facts.state === "present" && facts.type === "symlink" ? facts.mtimeMs / 1000 : null;
}

// ---------------------------------------------------------------------------------------------------------
// Consumers

function discoverConsumers(
  fs: RootFs,
  scope: DeclaredScope,
  manager: Manager,
  cache: UsageCache,
): Map<string, Consumer[]> {
  const dirs =
    scope.user === null
      ? SYSTEM_UNIT_DIRS
      : [...USER_UNIT_DIRS.map((d) => path.posix.join(scope.user?.home ?? "/", d)), SYSTEM_USER_UNIT_DIR];
  const byPath = new Map<string, Consumer[]>();
  for (const u of unitPathsIn(fs, dirs, cache.unitFiles)) {
    for (const p of u.paths) {
      const list = byPath.get(p) ?? [];
      list.push({ manager, unit: u.unit, via: { kind: "unit-file", file: u.file } });
      byPath.set(p, list);
    }
  }
  const out = new Map<string, Consumer[]>();
  if (byPath.size === 0) return out;
  for (const f of [...scope.secrets, ...scope.templates]) {
    const found = [
      ...(byPath.get(f.path) ?? []),
      ...(byPath.get(path.posix.join(scope.symlinkPath, relativeInGeneration(f))) ?? []),
    ];
    if (found.length > 0) out.set(fileKey(f), found);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Previous declaration, generations, housekeeping

/** The newest earlier declaration of the scope, reduced to fingerprints. */
function previousOf(
  fs: RootFs,
  scope: DeclaredScope,
  former: readonly FormerDeclaration[],
  cache: UsageCache,
  used: Map<string, PreviousDeclaration | null>,
): PreviousDeclaration | null {
  const newest = former.find((f) => f.scope === scope.scope);
  if (newest === undefined) return null;
  if (newest.fingerprints !== undefined)
    return { generation: newest.generation, fingerprints: newest.fingerprints };
  return cache.previousOf(
    `${scope.scope}\0${newest.manifestPath}`,
    () => {
      const parsed = readFormerScope(fs, scope, newest.manifestPath);
      return parsed === null ? null : { generation: newest.generation, fingerprints: fingerprintsOf(parsed) };
    },
    used,
  );
}

function installedSeconds(o: ObservedScope): number | null {
  const r = o.generation?.resolution;
  return r?.state === "resolved" && r.facts.type === "directory" ? r.facts.mtimeMs / 1000 : null;
}

function generationsOf(fs: RootFs, scope: DeclaredScope): number[] {
  const mount = fs.resolve(scope.mountPoint);
  if (mount.state !== "resolved" || mount.facts.type !== "directory") return [];
  // A user scope's mount point is the user's: list it only when it is hers.
  if (scope.user !== null && mount.facts.uid !== scope.user.uid) return [];
  return fs
    .readdir(scope.mountPoint)
    .filter((n) => /^[0-9]{1,9}$/.test(n))
    .map(Number)
    .sort((a, b) => a - b);
}

/** A user scope names paths of its own choosing: look only inside the user's home and runtime directory. */
function mayLook(_fs: RootFs, scope: DeclaredScope, p: string): boolean {
  if (scope.user === null) return true;
  const inside = (dir: string | null) => dir !== null && (p === dir || p.startsWith(`${dir}/`));
  return inside(scope.user.home) || inside(scope.runtimeDir);
}

function templateSources(fs: RootFs, scope: DeclaredScope): Map<string, PathFacts> {
  const out = new Map<string, PathFacts>();
  for (const t of scope.templates) {
    if (t.source.kind !== "file" || t.source.path.startsWith("/nix/store/")) continue;
    if (!mayLook(fs, scope, t.source.path)) continue;
    const r = fs.resolve(t.source.path);
    out.set(
      t.name,
      r.state === "resolved"
        ? { state: "present", ...r.facts }
        : r.state === "inaccessible"
          ? { state: "inaccessible", errno: r.errno }
          : { state: "absent" },
    );
  }
  return out;
}

/** sha256 (hex) of each sops file a declaration carries a hash for, as `builtins.hashFile "sha256"` gives it. */
function sopsFileHashes(
  fs: RootFs,
  scope: DeclaredScope,
  cache: UsageCache,
  used: Map<string, string | null>,
): Map<string, string | null> {
  const out = new Map<string, string | null>();
  for (const s of scope.secrets) {
    if (s.sopsFileHash === "" || out.has(s.sopsFile)) continue;
    const r = fs.resolve(s.sopsFile);
    if (r.state !== "resolved" || r.facts.type !== "file" || r.facts.size > MAX_SOPS_BYTES) {
      out.set(s.sopsFile, null);
      continue;
    }
    const f = r.facts;
    const key = `${fs.as?.uid ?? "agent"}\0${r.path}\0${f.size}\0${f.mtimeMs}\0${f.ino}`;
    out.set(
      s.sopsFile,
      cache.digestOf(key, () => hashOf(fs, r.path), used),
    );
  }
  return out;
}
