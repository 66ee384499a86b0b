// One full check of a host: discover, parse, observe, check. The imperative shell around the pure core;
// synchronous and never throwing for anything it reads, so the agent and `status` share it.

import { performance } from "node:perf_hooks";
import { runFamilies } from "../checks/engine.js";
import { CHECK_FAMILIES } from "../checks/registry.js";
import { sopsFamily } from "../checks/sops.js";
import { activationSucceeded, findStaleConsumers } from "../checks/usage.js";
import { supplementaryGroups, userHomes } from "../core/accounts.js";
import { NO_ORPHAN_OBSERVATION, type OrphanObservation } from "../core/history.js";
import type { Accounts, DeclaredScope, PasswdEntry } from "../core/model.js";
import type { FileObservation, HostObservation, ObservedScope } from "../core/observation.js";
import { compareProblems, type Problem } from "../core/problems.js";
import type {
  ActivationSummary,
  CheckRun,
  FamilyResult,
  HostRecipient,
  SecretStatus,
  StaleConsumerSummary,
} from "../core/report.js";
import { partialViewOf } from "../core/report.js";
import { buildStatus } from "../core/status.js";
import type { UsageObservation } from "../core/usage.js";
import type { SopsObservation } from "../sops/model.js";
import { SopsFileCache, sopsFileSummaries } from "../sops/reader.js";
import { readAccounts, withDarwinAccounts } from "./accounts.js";
import { childProcess } from "./child-process.js";
import { type DirectoryService, liveDirectoryService } from "./directory-service.js";
import { discoverManifests, explicitManifestRefs } from "./discovery.js";
import {
  type DeclarationMemory,
  type HistoryCache,
  observeOrphans,
  readFormerDeclarations,
  type ScopeView,
} from "./history.js";
import { loadScopes, type ManifestCache } from "./load-scopes.js";
import { generationDirOf, observeFile, observeHost, observeScope, SearchPaths } from "./observe.js";
import { RootFs } from "./rootfs.js";
import { type ServiceManager, SystemServiceManager } from "./service-manager.js";
import { observeUsage, UsageCache } from "./usage.js";

export interface CheckHostOptions {
  readonly root: string;
  /** `--manifest` paths; null means discover them. */
  readonly manifests: readonly string[] | null;
  readonly env: NodeJS.ProcessEnv;
  /** Reused across runs so sops files are parsed once per content change. */
  readonly sopsCache?: SopsFileCache;
  /** Reused across runs so manifests are parsed once per content change. */
  readonly manifestCache?: ManifestCache;
  /** Finding no manifest is info, not critical (`--allow-no-manifests`, `allow_no_manifests: true`). */
  readonly allowNoManifests?: boolean;
  /** Extra key files to check, from the agent's config. */
  readonly extraKeyPaths?: readonly string[];
  /** Reused across runs so earlier generations' manifests are read once. */
  readonly historyCache?: HistoryCache;
  /** The agent's memory of what was declared before each switch it saw. */
  readonly memory?: DeclarationMemory;
  /** Reused across runs so unit files and earlier declarations are read once. */
  readonly usageCache?: UsageCache;
  /**
   * Where unit and job states come from. Default: the host's systemd or launchd on the live host (root `/`),
   * none under --root, where an image's units are not running. Tests inject a recorded one.
   */
  readonly services?: ServiceManager | null;
  /**
   * The agent's last check of the same root: what did not change is taken over from it as the same objects
   * (observations, status entries), so a check that finds nothing new leaves next to nothing to collect.
   */
  readonly previous?: CheckState | null;
}

export function checkHost(opts: CheckHostOptions): CheckRun {
  return checkHostKeeping(opts).run;
}

/**
 * What a full check read besides its run, so that a change the watcher names exactly can be checked
 * again without reading everything else (recheckFiles). Holds one observation per file: the agent keeps
 * it between checks, `status` does not.
 */
export interface CheckState {
  readonly root: string;
  readonly loadedProblems: readonly Problem[];
  readonly observed: readonly ObservedScope[];
  readonly host: HostObservation;
  readonly sops: SopsObservation;
  readonly orphans: OrphanObservation;
  readonly usage: UsageObservation;
  /** Families that failed before the engine ran (sops-read, history-read, usage-read): kept as they were. */
  readonly readFailures: readonly FamilyResult[];
  /** The per-account readers the scopes were observed with (a user's scope with her access). */
  readonly viewOf: (s: DeclaredScope) => RootFs;
  readonly run: CheckRun;
}

export function checkHostKeeping(opts: CheckHostOptions): { run: CheckRun; state: CheckState } {
  const startedAt = Date.now() / 1000;
  const started = performance.now();
  const fs = new RootFs(opts.root);
  const accounts = readAccounts(fs);
  const env = {
    uid: process.getuid?.() ?? 0,
    xdgRuntimeDir: opts.env.XDG_RUNTIME_DIR,
    darwinUserTempDir: () => darwinUserTempDir(fs),
  };
  const platform = process.platform === "darwin" ? "darwin" : "linux";
  const refs =
    opts.manifests === null
      ? discoverManifests(fs, accounts, env)
      : explicitManifestRefs(fs, [...opts.manifests], accounts, env, platform);
  const loaded = loadScopes(fs, refs, opts.manifestCache, opts.allowNoManifests ?? false);
  const scopes = withExtraKeys(loaded.scopes, opts.extraKeyPaths ?? []);
  const viewOf = accountViews(fs, accounts);
  const before = new Map(
    (opts.previous?.root === opts.root ? opts.previous.observed : []).map((o) => [o.declared.scope, o]),
  );
  const observed = scopes.map((s) => observeScope(viewOf.scope(s), s, before.get(s.scope) ?? null));
  const host = observeHost(fs, withDarwinAccounts(accounts, scopes, darwinDirectory(fs)), viewOf.home);
  // The observations beyond the declared files run isolated, like the check families: one that throws is
  // reported as a failed family (the run is then incomplete) and the others still run.
  const leftovers = isolated("history-read", NO_ORPHAN_OBSERVATION, () =>
    observeLeftovers(fs, opts, scopes, observed, viewOf.scope),
  );
  const usage = isolated("usage-read", NO_USAGE, () =>
    observeUsage(fs, observed, leftovers.value.former, {
      cache: opts.usageCache ?? new UsageCache(),
      services: opts.services === undefined ? liveServiceManager(fs) : opts.services,
      viewOf: viewOf.scope,
    }),
  );
  const cache = opts.sopsCache ?? new SopsFileCache();
  const sops = isolated("sops-read", NO_SOPS, () => cache.observe(fs, scopes, viewOf.scope));
  const readFailures: FamilyResult[] = [];
  for (const read of [sops, leftovers, usage]) if (read.failed !== null) readFailures.push(read.failed);
  const input = {
    loadedProblems: loaded.problems,
    observed,
    host,
    sops: sops.value,
    orphans: leftovers.value,
    usage: usage.value,
    readFailures,
    viewOf: viewOf.scope,
  };
  const run = evaluate(input, {
    sopsFiles: sopsFileSummaries(scopes, sops.value),
    homes: userHomes(accounts),
    startedAt,
    started,
    uid: env.uid,
    previous: opts.previous?.root === opts.root ? opts.previous.run.document.secrets : [],
  });
  return { run, state: { root: opts.root, ...input, run } };
}
/** The pure part of a check: the families over what was read, and the status document. */
function evaluate(
  input: Omit<CheckState, "root" | "run">,
  rest: Pick<CheckRun, "sopsFiles" | "homes" | "startedAt"> & {
    readonly started: number;
    readonly uid: number;
    /** The last document's status entries, reused where unchanged. */
    readonly previous?: readonly SecretStatus[];
  },
): CheckRun {
  const engine = runFamilies([...CHECK_FAMILIES, sopsFamily], {
    scopes: input.observed,
    host: input.host,
    sops: input.sops,
    orphans: input.orphans,
    usage: input.usage,
  });
  const problems: Problem[] = [...input.loadedProblems, ...engine.problems].sort(compareProblems);
  const recipients: HostRecipient[] = [...input.sops.identities.values()].flat();
  const families = [...engine.families, ...input.readFailures];
  const document = buildStatus(input.observed, problems, recipients, families, rest.previous);
  const partialView = partialViewOf(problems, rest.uid);
  return {
    document: partialView === undefined ? document : { ...document, partialView },
    families,
    observed: input.observed,
    sopsFiles: rest.sopsFiles,
    homes: rest.homes,
    ...usageSummaries(input.observed, input.usage),
    startedAt: rest.startedAt,
    durationSeconds: (performance.now() - rest.started) / 1000,
  };
}

/**
 * Checks again after a change to some secret or template files of the current generations, and nothing
 * else: those files are observed again (one lstat each, with the scope's own access), everything else read
 * by the last full check is reused, and every family runs as in a full check. `changed` holds real paths,
 * as the watcher reports them. Null when a path is not such a file: the caller then runs a full check.
 */
export function recheckFiles(
  state: CheckState,
  changed: ReadonlySet<string>,
): { run: CheckRun; state: CheckState; reobserved: number } | null {
  const startedAt = Date.now() / 1000;
  const started = performance.now();
  const where = locateFiles(new RootFs(state.root), state.observed, changed);
  if (where === null) return null;
  const observed = state.observed.map((scope, i) => {
    const indices = where.get(i);
    if (indices === undefined) return scope;
    const fs = state.viewOf(scope.declared);
    const files = [...scope.files];
    const generationDir = generationDirOf(fs, scope);
    const again = new Set(indices.map((j) => files[j]?.generationPath));
    // Templates too large to scan: the re-observed files' entries are found again or not at all.
    const oversized = (scope.oversized ?? []).filter((o) => !again.has(o.path));
    const search = new SearchPaths(fs);
    for (const j of indices) {
      const old = files[j] as FileObservation;
      files[j] = observeFile(fs, scope.declared, old.declared, generationDir, oversized, search, old);
    }
    const { oversized: _, ...rest } = scope;
    return oversized.length === 0 ? { ...rest, files } : { ...rest, files, oversized };
  });
  const input = { ...state, observed };
  const run = evaluate(input, {
    ...state.run,
    startedAt,
    started,
    uid: process.getuid?.() ?? 0,
    previous: state.run.document.secrets,
  });
  return { run, state: { ...input, run }, reobserved: changed.size };
}

/** scope index → indices of its files at the changed real paths; null when a path is no observed file. */
function locateFiles(
  fs: RootFs,
  observed: readonly ObservedScope[],
  changed: ReadonlySet<string>,
): Map<number, number[]> | null {
  const out = new Map<number, number[]>();
  const wanted = new Set(changed);
  const found = (i: number, j: number) => {
    const list = out.get(i) ?? [];
    list.push(j);
    out.set(i, list);
  };
  // A file's real path is the root and its generation path: compared in place, no string per file (a
  // change at 10,000 secrets). A match is confirmed the exact way, for a path with `..` or `//` in it.
  const root = fs.root === "/" ? "" : fs.root;
  observed.forEach((scope, i) => {
    scope.files.forEach((f, j) => {
      const p = f.generationPath;
      if (p === null || wanted.size === 0) return;
      for (const c of wanted) {
        if (c.length !== root.length + p.length || !c.endsWith(p) || !c.startsWith(root)) continue;
        if (realOf(fs, p) !== c) continue;
        wanted.delete(c);
        found(i, j);
        return;
      }
    });
  });
  if (wanted.size === 0) return out;
  // What is left may still be a file whose path the root's own normalisation spells differently.
  observed.forEach((scope, i) => {
    scope.files.forEach((f, j) => {
      if (f.generationPath !== null && wanted.delete(realOf(fs, f.generationPath))) found(i, j);
    });
  });
  return wanted.size === 0 ? out : null;
}

/** The real path the watcher reports for a file: its directory's real path and its name. */
function realOf(fs: RootFs, generationPath: string): string {
  const slash = generationPath.lastIndexOf("/");
  return `${fs.real(generationPath.slice(0, slash))}${generationPath.slice(slash)}`;
}

/**
 * Earlier declarations (the agent's memory, and the profile generations unless `--manifest` names the
 * manifests) and what is left of them. Reading them never fails the check: a failure is reported as a family.
 */
function observeLeftovers(
  fs: RootFs,
  opts: CheckHostOptions,
  scopes: readonly DeclaredScope[],
  observed: Parameters<typeof observeOrphans>[1],
  viewOf: ScopeView,
): OrphanObservation {
  opts.memory?.update(scopes);
  const former =
    opts.manifests === null
      ? readFormerDeclarations(fs, scopes, opts.historyCache, opts.memory, viewOf)
      : (opts.memory?.entries() ?? []);
  return observeOrphans(fs, observed, former, viewOf, opts.historyCache);
}

/** Runs one observation; a throw gives the fallback and a failed family result named `family`. */
function isolated<T>(
  family: string,
  fallback: T,
  observe: () => T,
): { readonly value: T; readonly failed: FamilyResult | null } {
  const started = performance.now();
  try {
    return { value: observe(), failed: null };
  } catch (err) {
    return {
      value: fallback,
      failed: {
        family,
        ok: false,
        durationSeconds: (performance.now() - started) / 1000,
        error: err instanceof Error ? err.message : "unknown error",
      },
    };
  }
}

/**
 * Readers with one account's access. A user's home-manager scope (its unit, manifest and links are hers
 * to write) is observed with her access, as is a link in her home: the agent must not report on files
 * she could not see herself (issue 9.5). System scopes and root's own keep the agent's access.
 */
function accountViews(
  fs: RootFs,
  accounts: Accounts,
): { scope: (s: DeclaredScope) => RootFs; home: (home: string) => RootFs } {
  const views = new Map<number, RootFs>();
  let members: ReadonlyMap<string, readonly number[]> | null = null;
  const view = (user: { readonly name: string; readonly uid: number; readonly gid: number }): RootFs => {
    if (user.uid === 0) return fs;
    let v = views.get(user.uid);
    if (v === undefined) {
      members ??= supplementaryGroups(accounts);
      const gids = [user.gid, ...(members.get(user.name) ?? []).filter((g) => g !== user.gid)];
      v = new RootFs(fs.root, { uid: user.uid, gids });
      views.set(user.uid, v);
    }
    return v;
  };
  const homeOwners = new Map<string, PasswdEntry>();
  for (const entry of accounts.users.values())
    if (!homeOwners.has(entry.home)) homeOwners.set(entry.home, entry);
  return {
    scope: (s) => (s.user === null ? fs : view(s.user)),
    home: (home) => {
      const owner = homeOwners.get(home);
      return owner === undefined ? fs : view({ name: owner.name, uid: owner.id, gid: owner.gid });
    },
  };
}

/** Extra key paths from the agent's config are checked with the system scope, at warning severity. */
function withExtraKeys(scopes: DeclaredScope[], extra: readonly string[]): DeclaredScope[] {
  if (extra.length === 0) return scopes;
  return scopes.map((s) =>
    s.scope !== "system"
      ? s
      : {
          ...s,
          keys: [
            ...s.keys,
            ...extra
              .filter((p) => !s.keys.some((k) => k.path === p))
              .map((path) => ({ path, role: "extra" as const })),
          ],
        },
  );
}

const NO_USAGE: UsageObservation = { scopes: new Map(), units: new Map(), live: false };
const NO_SOPS: SopsObservation = { files: new Map(), identities: new Map(), keyrings: new Map() };

/** What the usage metrics show: each scope's activation outcome and the stale consumers by unit. */
function usageSummaries(
  observed: readonly ObservedScope[],
  usage: UsageObservation,
): Pick<CheckRun, "activations" | "staleConsumers"> {
  const activations: ActivationSummary[] = [];
  const staleConsumers: StaleConsumerSummary[] = [];
  for (const o of observed) {
    const u = usage.scopes.get(o.declared.scope);
    if (u === undefined) continue;
    const succeeded = activationSucceeded(u.activation);
    if (succeeded !== null) activations.push({ scope: o.declared.scope, succeeded });
    for (const s of findStaleConsumers(o.declared, u, usage))
      staleConsumers.push({ scope: o.declared.scope, name: s.file.name, unit: s.consumer.unit });
  }
  return { activations, staleConsumers };
}

/** The running host's service manager; none under --root or where systemd does not run. */
function liveServiceManager(fs: RootFs): ServiceManager | null {
  if (fs.root !== "/") return null;
  if (process.platform === "darwin") return new SystemServiceManager();
  const booted = fs.lstat("/run/systemd/system");
  return booted.state === "present" && booted.type === "directory" ? new SystemServiceManager() : null;
}

/** Directory Services, asked only on the Mac itself: under --root or on another OS it is not the host's. */
function darwinDirectory(fs: RootFs): DirectoryService | null {
  return process.platform === "darwin" && fs.root === "/" ? liveDirectoryService() : null;
}

/** macOS' per-user temporary directory, which sops-nix uses for `%r`; only knowable on the live host. */
function darwinUserTempDir(fs: RootFs): string | null {
  if (process.platform !== "darwin" || fs.root !== "/") return null;
  try {
    return (
      childProcess()
        .execFileSync("getconf", ["DARWIN_USER_TEMP_DIR"], { encoding: "utf8", timeout: 2000 })
        .trim()
        .replace(/\/$/, "") || null
    );
  } catch {
    return null;
  }
}
