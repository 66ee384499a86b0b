// `preflight`: would a built generation's secrets install on this host? The imperative shell: it finds the
// generation's manifests with discovery's rules, reads what the checks need (sops files, keys, fstab, the
// new users) and hands it to the same pure checks `status` uses, plus the preflight-only ones.
// Synchronous and never throwing for anything it reads.

import * as os from "node:os";
import * as path from "node:path";
import { checkKeys } from "../checks/keys.js";
import {
  type AccountsSource,
  type Activation,
  checkBootKeys,
  checkFileHashes,
  checkNewOwners,
  checkTemplatePlaceholders,
  type KeyBootFacts,
  type TemplateText,
} from "../checks/preflight.js";
import { scopeReadiness } from "../checks/scope-readiness.js";
import { checkSecret } from "../checks/sops.js";
import { bootAvailability, type FstabEntry, parseFstab } from "../core/boot-mounts.js";
import { type DeclarationChange, diffDeclarations } from "../core/declaration-diff.js";
import {
  type AccountsSpec,
  accountsAfter,
  parseAccountsJson,
  parseDeclarativeNames,
  parseSysusers,
} from "../core/generation-accounts.js";
import type { Accounts, DeclaredScope, ScopeName } from "../core/model.js";
import type { ObservedScope } from "../core/observation.js";
import { compareProblems, type Problem } from "../core/problems.js";
import type { HostRecipient } from "../core/report.js";
import { templateOrigins } from "../core/template-origins.js";
import { viewFor } from "../sops/model.js";
import { SopsFileCache } from "../sops/reader.js";
import { readAccounts } from "./accounts.js";
import {
  type BuiltGeneration,
  type DiscoveryEnv,
  discoverGenerationManifests,
  discoverManifests,
  explicitManifestRefs,
  generationKind,
  type ManifestRef,
  manifestReader,
} from "./discovery.js";
import { hashOf } from "./file-hash.js";
import { loadScopes } from "./load-scopes.js";
import { RootFs } from "./rootfs.js";

const MAX_TEXT_BYTES = 4 << 20;

export interface PreflightOptions {
  readonly root: string;
  /** SYSTEM as given (a toplevel, `./result`, a profile link, a home-manager generation); null with manifests. */
  readonly system: string | null;
  readonly manifests: readonly string[] | null;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
}

export interface PreflightScope {
  readonly scope: ScopeName;
  readonly manifest: string;
  /** The entry point the manifest was found in. */
  readonly via: string;
  readonly secrets: number;
  readonly templates: number;
  /** What the switch changes in this scope's declaration; null when no running manifest was found to compare. */
  readonly changes: readonly DeclarationChange[] | null;
  /** The running generation's manifest of this scope, when there is one. */
  readonly runningManifest: string | null;
}

export interface PreflightReport {
  readonly host: string;
  readonly generation: BuiltGeneration | null;
  /** Where the owner and group names were resolved (the new generation's definition, or the current accounts). */
  readonly accounts: string;
  readonly scopes: readonly PreflightScope[];
  /** Scopes the running system has and the new generation drops: every secret of theirs is removed. */
  readonly droppedScopes: readonly PreflightScope[];
  readonly problems: readonly Problem[];
  /** No critical problem: the switch would not leave secrets broken. */
  readonly safe: boolean;
}

export type PreflightOutcome =
  | { readonly ok: true; readonly report: PreflightReport }
  | { readonly ok: false; readonly usage: string };

export function preflight(opts: PreflightOptions): PreflightOutcome {
  const fs = new RootFs(opts.root);
  const current = readAccounts(fs);
  const env: DiscoveryEnv = {
    uid: process.getuid?.() ?? 0,
    xdgRuntimeDir: opts.env.XDG_RUNTIME_DIR,
    darwinUserTempDir: () => null,
  };
  let generation: BuiltGeneration | null = null;
  let refs: ManifestRef[];
  if (opts.system !== null) {
    const located = locateGeneration(fs, opts.system, opts.cwd);
    if (!located.ok) return located;
    generation = located.generation;
    refs = discoverGenerationManifests(fs, generation, current, env);
  } else {
    const platform = process.platform === "darwin" ? "darwin" : "linux";
    refs = explicitManifestRefs(fs, [...(opts.manifests ?? [])], current, env, platform);
  }
  const loaded = refs.length === 0 ? { scopes: [], problems: [] } : loadScopes(fs, refs);
  const source = accountsSource(fs, generation, current);
  const sops = new SopsFileCache().observe(fs, loaded.scopes);
  const fstab = readFstab(fs, generation);

  const problems: Problem[] = [...loaded.problems];
  for (const scope of loaded.scopes) {
    const ref = refs.find((r) => r.path === scope.manifestPath && r.scope === scope.scope);
    const ready = scopeReadiness(scope, sops);
    for (const secret of scope.secrets) {
      const view = viewFor(sops.files.get(secret.sopsFile), secret.format);
      problems.push(...checkSecret(scope, secret, view, ready));
    }
    problems.push(...checkKeys(keysOnly(fs, scope), ready));
    problems.push(...checkBootKeys(scope, activationOf(scope, ref), keyBootFacts(fs, scope, fstab)));
    if (!scope.userMode && scope.scope !== "for-users") problems.push(...checkNewOwners(scope, source));
    problems.push(...checkFileHashes(scope, fileHashes(fs, scope)));
    problems.push(...checkTemplatePlaceholders(scope, templateTexts(fs, ref, scope)));
  }

  const running = runningScopes(fs, current, env);
  const scopes = loaded.scopes.map((scope): PreflightScope => {
    const before = running.get(scope.scope) ?? null;
    return {
      scope: scope.scope,
      manifest: scope.manifestPath,
      via: refs.find((r) => r.path === scope.manifestPath)?.via ?? "--manifest",
      secrets: scope.secrets.length,
      templates: scope.templates.length,
      changes: before === null ? null : diffDeclarations(before, scope),
      runningManifest: before?.manifestPath ?? null,
    };
  });
  const kept = new Set(loaded.scopes.map((s) => s.scope));
  const droppedScopes =
    generation === null
      ? []
      : [...running.values()]
          .filter((s) => !kept.has(s.scope) && sameFamily(s, generation))
          .map(
            (before): PreflightScope => ({
              scope: before.scope,
              manifest: before.manifestPath,
              via: "(running system)",
              secrets: 0,
              templates: 0,
              changes: diffDeclarations(before, null),
              runningManifest: before.manifestPath,
            }),
          );
  const host = hostName(fs);
  const sorted = byFile(problems, host, sops.identities).sort(compareProblems);
  return {
    ok: true,
    report: {
      host,
      generation,
      accounts: source.description,
      scopes,
      droppedScopes,
      problems: sorted,
      safe: !sorted.some((p) => p.severity === "critical"),
    },
  };
}

/**
 * One host_not_recipient per scope and sops file instead of one per secret: the fix is per file, and the
 * message says it as the deploy needs it (which host, which recipient, which command).
 */
function byFile(
  problems: readonly Problem[],
  host: string,
  identities: ReadonlyMap<ScopeName, readonly HostRecipient[]>,
): Problem[] {
  const out: Problem[] = [];
  const grouped = new Map<string, { first: Problem; secrets: string[] }>();
  for (const p of problems) {
    if (p.code !== "host_not_recipient") {
      out.push(p);
      continue;
    }
    const key = `${p.scope}\0${p.path}`;
    const group = grouped.get(key);
    if (group === undefined) grouped.set(key, { first: p, secrets: [p.subject] });
    else group.secrets.push(p.subject);
  }
  for (const { first, secrets } of grouped.values()) {
    const scope = first.scope as ScopeName;
    const recipient =
      identities.get(scope)?.[0]?.recipient ?? "the host's age recipient (`sops-agent recipient`)";
    out.push({
      ...first,
      subject: first.path,
      message: `host ${host} is not a recipient of ${displayName(first.path)} (${first.path}), which secret${secrets.length === 1 ? "" : "s"} ${secrets.sort().join(", ")} of scope ${scope} need${secrets.length === 1 ? "s" : ""}: activation would fail with "0 successful groups required, got 0". Add ${recipient} to the file's creation rule in .sops.yaml and run \`sops updatekeys\` on it, then rebuild.`,
    });
  }
  return out;
}

/** `/nix/store/<hash>-x.yaml` reads as `x.yaml`, the name the file has in the repository. */
function displayName(storePath: string): string {
  return path.posix.basename(storePath).replace(/^[0-9a-z]{32}-/, "");
}

// ---------------------------------------------------------------------------------------------------------
// The generation

type Located =
  | { readonly ok: true; readonly generation: BuiltGeneration }
  | { readonly ok: false; readonly usage: string };

/**
 * SYSTEM is a host path: absolute paths are read inside `--root`. A relative one (`./result`) is taken from
 * the working directory; under `--root DIR` it must be a link (as `nix build` leaves it), whose absolute
 * target is then read inside the root.
 */
function locateGeneration(fs: RootFs, given: string, cwd: string): Located {
  let hostPath = given;
  if (!path.posix.isAbsolute(given)) {
    const real = path.resolve(cwd, given);
    if (fs.root === "/") hostPath = real;
    else {
      const link = new RootFs("/").lstat(real);
      if (
        link.state !== "present" ||
        link.type !== "symlink" ||
        link.linkTarget === undefined ||
        !link.linkTarget.startsWith("/")
      ) {
        return {
          ok: false,
          usage: `${given}: under --root, give SYSTEM as an absolute path inside the root (or a link to one)`,
        };
      }
      hostPath = link.linkTarget;
    }
  }
  const resolved = fs.resolve(hostPath);
  if (resolved.state !== "resolved")
    return {
      ok: false,
      usage: `${given}: no such generation (${resolved.state === "inaccessible" ? resolved.errno : "absent"})`,
    };
  if (resolved.facts.type !== "directory")
    return { ok: false, usage: `${given}: not a directory, so not a built generation` };
  const kind = generationKind(fs, resolved.path);
  if (kind === null) {
    return {
      ok: false,
      usage: `${given}: not a NixOS or nix-darwin toplevel or a home-manager generation (no activate, nixos-version, darwin-version or hm-version in it)`,
    };
  }
  return { ok: true, generation: { path: resolved.path, kind } };
}

/** The running system's scopes, to compare with; for a home-manager generation only the user's own scope matters. */
function runningScopes(fs: RootFs, accounts: Accounts, env: DiscoveryEnv): Map<ScopeName, DeclaredScope> {
  const { scopes } = loadScopes(fs, discoverManifests(fs, accounts, env));
  return new Map(scopes.map((s) => [s.scope, s]));
}

/** A system generation replaces the system scopes; a home-manager generation only its user's scope. */
function sameFamily(scope: DeclaredScope, generation: BuiltGeneration): boolean {
  return generation.kind === "home-manager" ? scope.userMode : !scope.userMode;
}

function activationOf(scope: DeclaredScope, ref: ManifestRef | undefined): Activation {
  if (scope.userMode || scope.platform === "darwin" || ref === undefined) return "late";
  if (ref.via.endsWith(".service")) return "systemd-unit";
  // The activate script (and a --manifest, whose activation is unknown: the stricter rule).
  return "activation-script";
}

function keysOnly(fs: RootFs, scope: DeclaredScope): ObservedScope {
  return {
    declared: scope,
    session: "not-applicable",
    link: { state: "absent" },
    generation: null,
    mountFsType: null,
    files: [],
    keys: scope.keys.map((key) => ({ key, facts: fs.lstat(key.path), resolution: fs.resolve(key.path) })),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Keys at boot

/** Paths home-manager owns: its generations, its home-files, its profiles. */
const HOME_MANAGER_PATH =
  /-home-manager-files(\/|$)|-home-manager-generation(\/|$)|-hm_[^/]*$|\/home-manager(\/|-[0-9]+-link|$)/;
const MAX_HOPS = 40;

function keyBootFacts(fs: RootFs, scope: DeclaredScope, fstab: readonly FstabEntry[] | null): KeyBootFacts[] {
  return scope.keys.map((key) => {
    const resolved = fs.resolve(key.path);
    const realPath = resolved.state === "resolved" ? resolved.path : key.path;
    return {
      key,
      presentNow: resolved.state === "resolved" && resolved.facts.type === "file",
      realPath,
      homeManagerLink: homeManagerHop(fs, key.path),
      availability: fstab === null ? null : bootAvailability(realPath, fstab),
    };
  });
}

/** The first target in the key's chain of links that belongs to home-manager, if any. */
function homeManagerHop(fs: RootFs, start: string): string | null {
  let current = start;
  for (let hop = 0; hop < MAX_HOPS; hop++) {
    const facts = fs.lstat(current);
    if (facts.state !== "present" || facts.type !== "symlink" || facts.linkTarget === undefined) return null;
    const target = path.posix.resolve(path.posix.dirname(current), facts.linkTarget);
    if (HOME_MANAGER_PATH.test(target)) return target;
    current = target;
  }
  return null;
}

/** The new generation's fstab for a NixOS toplevel, else the host's; null on hosts without one (macOS). */
function readFstab(fs: RootFs, generation: BuiltGeneration | null): FstabEntry[] | null {
  if (generation !== null && generation.kind !== "nixos") return null;
  const candidates =
    generation === null ? ["/etc/fstab"] : [path.posix.join(generation.path, "etc/fstab"), "/etc/fstab"];
  for (const file of candidates) {
    const text = fs.readText(file);
    if (typeof text === "string") return parseFstab(text);
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// Accounts of the new generation

const USERS_GROUPS_JSON = /\/nix\/store\/[0-9a-z]{32}-users-groups\.json/;
const USERBORN_JSON = /\/nix\/store\/[0-9a-z]{32}-userborn\.json/;

function accountsSource(fs: RootFs, generation: BuiltGeneration | null, current: Accounts): AccountsSource {
  const fallback = (why: string): AccountsSource => ({
    accounts: current,
    description: `the current /etc/passwd and /etc/group (${why})`,
    fromGeneration: false,
  });
  if (generation === null) return fallback("no generation given, only manifests");
  if (generation.kind === "home-manager") return fallback("a home-manager generation defines no accounts");
  if (generation.kind === "nix-darwin") return darwinAccounts(fs, current);
  const spec = findAccountsSpec(fs, generation.path);
  if (spec === null)
    return fallback("the new generation's users-groups.json, userborn.json or sysusers.d were not found");
  const previously = {
    users: parseDeclarativeNames(textOrNull(fs, "/var/lib/nixos/declarative-users")),
    groups: parseDeclarativeNames(textOrNull(fs, "/var/lib/nixos/declarative-groups")),
  };
  return {
    accounts: accountsAfter(spec, current, previously),
    description: `the new generation's users (${spec.file})`,
    fromGeneration: true,
  };
}

function findAccountsSpec(fs: RootFs, top: string): AccountsSpec | null {
  const activate = textOrNull(fs, path.posix.join(top, "activate"));
  const usersGroups = activate === null ? undefined : USERS_GROUPS_JSON.exec(activate)?.[0];
  if (usersGroups !== undefined) {
    const declared = parseAccountsJson(textOrNull(fs, usersGroups) ?? "");
    if (declared !== null) return { kind: "users-groups", file: usersGroups, declared };
  }
  const unit = textOrNull(fs, path.posix.join(top, "etc/systemd/system/userborn.service"));
  const userborn = unit === null ? undefined : USERBORN_JSON.exec(unit)?.[0];
  if (userborn !== undefined) {
    const declared = parseAccountsJson(textOrNull(fs, userborn) ?? "");
    if (declared !== null) return { kind: "userborn", file: userborn, declared };
  }
  const sysusersDir = path.posix.join(top, "etc/sysusers.d");
  const confs = fs
    .readdir(sysusersDir)
    .filter((n) => n.endsWith(".conf"))
    .sort();
  if (confs.length > 0) {
    const users: string[] = [];
    const groups: string[] = [];
    for (const name of confs) {
      const declared = parseSysusers(textOrNull(fs, path.posix.join(sysusersDir, name)) ?? "");
      users.push(...declared.users);
      groups.push(...declared.groups);
    }
    return { kind: "sysusers", file: sysusersDir, declared: { users, groups, mutableUsers: true } };
  }
  return null;
}

/** macOS keeps regular users in its directory service: a home under /Users stands in for one (as discovery does). */
function darwinAccounts(fs: RootFs, current: Accounts): AccountsSource {
  const users = new Map(current.users);
  for (const name of fs.readdir("/Users")) {
    const facts = fs.lstat(`/Users/${name}`);
    if (facts.state === "present" && facts.type === "directory" && !users.has(name)) {
      users.set(name, { name, id: facts.uid, gid: facts.gid, home: `/Users/${name}` });
    }
  }
  return {
    accounts: { users, groups: current.groups },
    description:
      "the current accounts (/etc/passwd, /etc/group and the homes in /Users; nix-darwin's new users are not read)",
    fromGeneration: false,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Files

function fileHashes(fs: RootFs, scope: DeclaredScope): Map<string, string | null> {
  const out = new Map<string, string | null>();
  for (const s of scope.secrets) {
    if (s.sopsFileHash === "" || out.has(s.sopsFile)) continue;
    out.set(s.sopsFile, hashOf(fs, s.sopsFile));
  }
  return out;
}

function templateTexts(fs: RootFs, ref: ManifestRef | undefined, scope: DeclaredScope): TemplateText[] {
  if (scope.templates.length === 0 || ref === undefined) return [];
  const manifest = manifestReader(fs, ref).readText(ref.path, 16 << 20);
  if (typeof manifest !== "string") return [];
  const paths = new Map(scope.templates.map((t) => [t.name, t.path]));
  return templateOrigins(manifest).map((origin) => ({
    name: origin.name,
    path: paths.get(origin.name) ?? origin.name,
    text: origin.content ?? (origin.file === null ? "" : textOrNull(fs, origin.file, MAX_TEXT_BYTES)),
  }));
}

function textOrNull(fs: RootFs, hostPath: string, max = 1 << 20): string | null {
  const text = fs.readText(hostPath, max);
  return typeof text === "string" ? text : null;
}

function hostName(fs: RootFs): string {
  const text = textOrNull(fs, "/etc/hostname")?.trim();
  if (text !== undefined && text !== "") return text;
  return fs.root === "/" ? os.hostname() : "(unknown host)";
}
