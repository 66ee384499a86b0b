// Decryption keys: what sops-install-secrets reads before it can decrypt anything. A key that is a
// home-manager symlink dangles at boot, when stage-1 setupSecrets runs (the id_infrastructure case).

import type { PathFacts, Resolution } from "../core/facts.js";
import type { DeclaredKey, ScopeName } from "../core/model.js";
import type { KeyObservation, ObservedScope, StrayKeyLink } from "../core/observation.js";
import type { Problem, Severity } from "../core/problems.js";
import type { KeySource } from "../sops/identities.js";
import { octal, problem, resolves } from "./common.js";
import type { CheckFamily } from "./family.js";
import { type ScopeReadiness, scopeReadiness, stillDecrypting, undecryptable } from "./scope-readiness.js";

export const keysFamily: CheckFamily = {
  name: "keys",
  run: (input) => {
    const named = new Set(input.scopes.flatMap((s) => s.declared.keys.map((k) => k.path)));
    return [
      ...input.scopes.flatMap((s) => checkKeys(s, scopeReadiness(s.declared, input.sops))),
      ...input.host.strayKeyLinks.filter((l) => !named.has(l.path)).flatMap(checkStrayLink),
    ];
  },
};

const ROLE_TEXT: Record<DeclaredKey["role"], string> = {
  "age-ssh": "sops.age.sshKeyPaths",
  "ssh-gpg": "sops.gnupg.sshKeyPaths",
  "age-key-file": "sops.age.keyFile",
  extra: "the agent's extra_key_paths",
};

export function checkKeys(observed: ObservedScope, ready: ScopeReadiness): Problem[] {
  const scope = observed.declared.scope;
  const impact = impactOf(ready);
  const declared = new Set(observed.keys.map((k) => k.key.path));
  return [
    ...observed.keys.flatMap((k) => checkKey(scope, k, impact)),
    ...ready.keyring.sources.flatMap((s) => checkSource(scope, s, impact, declared)),
  ];
}

/** What losing a key costs the scope, decided once from the readiness of its files. */
interface Impact {
  /** Files that cannot be decrypted with what is left. */
  readonly broken: readonly string[];
  /** "secrets.yaml with age1… (/path)" for the files that still decrypt. */
  readonly still: string;
  readonly aborts: boolean;
}

function impactOf(ready: ScopeReadiness): Impact {
  return {
    broken: undecryptable(ready),
    still: stillDecrypting(ready),
    aborts: ready.keyring.aborts !== null,
  };
}

/**
 * A missing, dangling or unusable key is critical exactly when some declared secret's sops file can no
 * longer be decrypted without it, and a warning otherwise. An ageKeyFile sops-install-secrets cannot read
 * aborts the whole activation (main.go:1426-1432, sops-nix 56b24064): always critical. A missing ssh key
 * is only a warning on its stderr (main.go:868-872), so it matters only through the files.
 */
function severityOf(key: DeclaredKey, impact: Impact): Severity {
  // A key the agent was told to watch is not one sops-nix reads: worth a warning, never critical.
  if (key.role === "extra") return "warning";
  if (key.role === "age-key-file") return "critical";
  return impact.broken.length > 0 || impact.aborts ? "critical" : "warning";
}

function consequence(key: DeclaredKey, severity: Severity, impact: Impact): string {
  if (key.role === "extra") return "";
  if (key.role === "age-key-file")
    return " sops-install-secrets aborts before decrypting anything: no secret of the scope is updated.";
  if (severity === "critical")
    return impact.broken.length > 0
      ? ` Without it, ${impact.broken.join(", ")} can no longer be decrypted.`
      : "";
  return stillText(impact);
}

function checkKey(scope: ScopeName, k: KeyObservation, impact: Impact): Problem[] {
  const { key } = k;
  const severity = severityOf(key, impact);
  return checkKeyPath(scope, key.path, k, {
    what: ROLE_TEXT[key.role],
    severity,
    cost: consequence(key, severity, impact),
    fix: `remove it from ${ROLE_TEXT[key.role]}`,
  });
}

/** What a key path's problems say and weigh: who names it, the cost of losing it, the way out. */
interface KeyPathContext {
  readonly what: string;
  readonly severity: Severity;
  readonly cost: string;
  readonly fix: string;
}

/**
 * The checks every key file gets, declared in the manifest or named by sops.environment: it must exist,
 * resolve when it is a link (a dangling link is an error to sops-install-secrets and to sops alike: both
 * open the path, following links), and be readable by its owner only.
 */
function checkKeyPath(
  scope: ScopeName,
  keyPath: string,
  seen: { readonly facts: PathFacts; readonly resolution: Resolution },
  ctx: KeyPathContext,
): Problem[] {
  const { facts, resolution } = seen;
  const at = (code: Parameters<typeof problem>[0], sev: Severity, message: string) =>
    problem(code, sev, scope, keyPath, keyPath, message);
  if (facts.state === "absent") {
    return [
      at(
        "key_missing",
        ctx.severity,
        `The decryption key ${keyPath} (${ctx.what}) does not exist: the next activation cannot decrypt with it.${ctx.cost} Restore the key or ${ctx.fix}.`,
      ),
    ];
  }
  if (facts.state === "inaccessible") {
    return [at("unreadable", "warning", `The agent may not look at ${keyPath} (${facts.errno}).`)];
  }
  const problems: Problem[] = [];
  if (facts.type === "symlink") {
    if (!resolves(resolution)) {
      return [
        at(
          "key_dangling",
          ctx.severity,
          `The decryption key ${keyPath} (${ctx.what}) is a symlink to ${facts.linkTarget ?? "?"}, which does not exist.${ctx.cost} If home-manager manages it, it is created too late for stage-1 setupSecrets: copy the key to a real file (or add a per-host recipient).`,
        ),
      ];
    }
    problems.push(
      at(
        "key_is_symlink",
        "warning",
        `The decryption key ${keyPath} is a symlink to ${facts.linkTarget ?? "?"}: at boot sops-nix runs before home-manager creates its links, so it may dangle then. Prefer a real file.`,
      ),
    );
  }
  const mode = resolution.state === "resolved" ? resolution.facts.mode : facts.mode;
  if ((mode & 0o044) !== 0) {
    problems.push(
      at(
        "key_insecure_mode",
        "warning",
        `The decryption key ${keyPath} has mode ${octal(mode)}: group or others can read it. chmod 0600 it.`,
      ),
    );
  }
  return problems;
}

const ORIGIN_TEXT: Record<KeySource["origin"], string> = {
  "sops.age.keyFile": "sops.age.keyFile",
  "sops.age.sshKeyPaths": "sops.age.sshKeyPaths",
  "sops.gnupg.sshKeyPaths": "sops.gnupg.sshKeyPaths",
  "sops default": "read by sops itself in the user's session",
  SOPS_AGE_KEY_FILE: "SOPS_AGE_KEY_FILE in sops.environment",
  SOPS_AGE_SSH_PRIVATE_KEY_FILE: "SOPS_AGE_SSH_PRIVATE_KEY_FILE in sops.environment",
  SOPS_AGE_KEY: "the value of SOPS_AGE_KEY in sops.environment",
  SOPS_AGE_KEY_CMD: "SOPS_AGE_KEY_CMD in sops.environment",
  SOPS_AGE_SSH_PRIVATE_KEY_CMD: "SOPS_AGE_SSH_PRIVATE_KEY_CMD in sops.environment",
};

const FROM_ENVIRONMENT: ReadonlySet<KeySource["origin"]> = new Set([
  "SOPS_AGE_KEY_FILE",
  "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
]);

/** Keys that are there but that sops cannot use: a line of an identity file, an unconvertible ssh key. */
function checkSource(
  scope: ScopeName,
  s: KeySource,
  impact: Impact,
  declared: ReadonlySet<string>,
): Problem[] {
  // A file sops-nix's environment names: the checks a declared key gets. sops opens it following links
  // and reports one it cannot open, then decrypts with the rest (keysource.go v3.12.2:330-339, :425-431):
  // losing it is critical exactly when a file no longer decrypts. A path the manifest declares as well is
  // reported once, as the declared key.
  if (s.file !== undefined && FROM_ENVIRONMENT.has(s.origin)) {
    if (declared.has(s.path)) return s.status.state === "invalid" ? unusable(scope, s, impact) : [];
    const severity: Severity = impact.broken.length > 0 ? "critical" : "warning";
    const found = checkKeyPath(scope, s.path, s.file, {
      what: ORIGIN_TEXT[s.origin],
      severity,
      cost:
        severity === "critical"
          ? ` Without it, ${impact.broken.join(", ")} can no longer be decrypted.`
          : stillText(impact),
      fix: "fix sops.environment",
    });
    return s.status.state === "invalid" ? [...found, ...unusable(scope, s, impact)] : found;
  }
  return unusable(scope, s, impact);
}

function stillText(impact: Impact): string {
  return impact.still === ""
    ? " No sops file of the scope needs it."
    : ` Every sops file of the scope still decrypts: ${impact.still}.`;
}

function unusable(scope: ScopeName, s: KeySource, impact: Impact): Problem[] {
  if (s.status.state !== "invalid") return [];
  const aborts = s.origin === "sops.age.keyFile" && s.status.line === null;
  const severity: Severity = aborts || impact.broken.length > 0 ? "critical" : "warning";
  const origin = ORIGIN_TEXT[s.origin];
  let what: string;
  if (s.status.line !== null) {
    const lost =
      s.drops.length > 0
        ? `, together with the identities converted from ${s.drops.join(", ")} (sops-nix writes them all into one key file)`
        : "";
    what = `Line ${s.status.line} of the age key file ${s.path} (${origin}) is not an identity sops can parse: ${s.status.reason}. sops parses a key file all or nothing, so it drops every identity in it${lost}. Only lines that are empty, start with \`#\` or hold one AGE-SECRET-KEY-1…/AGE-PLUGIN-… key at the start of the line are allowed.`;
  } else if (aborts) {
    what = `The age key file ${s.path} (${origin}) ${s.status.reason}: sops-install-secrets cannot read it and aborts before decrypting anything.`;
  } else {
    what = `The key ${s.path} (${origin}) cannot be used: ${s.status.reason}; ${s.origin === "sops.age.sshKeyPaths" ? "sops-install-secrets skips it with a warning" : "sops skips it"}.`;
  }
  const then = aborts
    ? ""
    : severity === "critical"
      ? impact.broken.length > 0
        ? ` Without it, ${impact.broken.join(", ")} can no longer be decrypted.`
        : ""
      : stillText(impact);
  return [problem("key_unparseable", severity, scope, s.path, s.path, `${what}${then}`)];
}

function checkStrayLink(link: StrayKeyLink): Problem[] {
  if (resolves(link.resolution)) return [];
  return [
    problem(
      "key_dangling",
      "warning",
      "host",
      link.path,
      link.path,
      `${link.path} is a symlink to ${link.facts.state === "present" ? (link.facts.linkTarget ?? "?") : "?"}, which does not exist. If a sops file is encrypted to this key, secrets decrypted at boot will fail: make it a real file.`,
    ),
  ];
}
