// Decryption keys: what sops-install-secrets reads before it can decrypt anything. A key that is a
// home-manager symlink dangles at boot, when stage-1 setupSecrets runs (the id_infrastructure case).

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
  return [
    ...observed.keys.flatMap((k) => checkKey(scope, k, impact)),
    ...ready.keyring.sources.flatMap((s) => checkSource(scope, s, impact)),
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
  return impact.still === ""
    ? " No sops file of the scope needs it."
    : ` Every sops file of the scope still decrypts: ${impact.still}.`;
}

function checkKey(scope: ScopeName, k: KeyObservation, impact: Impact): Problem[] {
  const { key, facts } = k;
  const severity = severityOf(key, impact);
  const then = consequence(key, severity, impact);
  const at = (code: Parameters<typeof problem>[0], sev: Severity, message: string) =>
    problem(code, sev, scope, key.path, key.path, message);
  if (facts.state === "absent") {
    return [
      at(
        "key_missing",
        severity,
        `The decryption key ${key.path} (${ROLE_TEXT[key.role]}) does not exist: the next activation cannot decrypt with it.${then} Restore the key or remove it from ${ROLE_TEXT[key.role]}.`,
      ),
    ];
  }
  if (facts.state === "inaccessible") {
    return [at("unreadable", "warning", `The agent may not look at ${key.path} (${facts.errno}).`)];
  }
  const problems: Problem[] = [];
  if (facts.type === "symlink") {
    if (!resolves(k.resolution)) {
      return [
        at(
          "key_dangling",
          severity,
          `The decryption key ${key.path} is a symlink to ${facts.linkTarget ?? "?"}, which does not exist.${then} If home-manager manages it, it is created too late for stage-1 setupSecrets: copy the key to a real file (or add a per-host recipient).`,
        ),
      ];
    }
    problems.push(
      at(
        "key_is_symlink",
        "warning",
        `The decryption key ${key.path} is a symlink to ${facts.linkTarget ?? "?"}: at boot sops-nix runs before home-manager creates its links, so it may dangle then. Prefer a real file.`,
      ),
    );
  }
  const mode = k.resolution.state === "resolved" ? k.resolution.facts.mode : facts.mode;
  if ((mode & 0o044) !== 0) {
    problems.push(
      at(
        "key_insecure_mode",
        "warning",
        `The decryption key ${key.path} has mode ${octal(mode)}: group or others can read it. chmod 0600 it.`,
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
};

const FROM_ENVIRONMENT: ReadonlySet<KeySource["origin"]> = new Set([
  "SOPS_AGE_KEY_FILE",
  "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
]);

/** Keys that are there but that sops cannot use: a line of an identity file, an unconvertible ssh key. */
function checkSource(scope: ScopeName, s: KeySource, impact: Impact): Problem[] {
  if (s.status.state === "absent" && FROM_ENVIRONMENT.has(s.origin)) {
    // sops reports the file it cannot open and decrypts with the rest (age/keysource.go:331-339, :424-429).
    const severity: Severity = impact.broken.length > 0 ? "critical" : "warning";
    const then =
      severity === "critical"
        ? ` Without it, ${impact.broken.join(", ")} can no longer be decrypted.`
        : impact.still === ""
          ? " No sops file of the scope needs it."
          : ` Every sops file of the scope still decrypts: ${impact.still}.`;
    return [
      problem(
        "key_missing",
        severity,
        scope,
        s.path,
        s.path,
        `The decryption key ${s.path} (${ORIGIN_TEXT[s.origin]}) does not exist: sops cannot open it.${then} Restore the key or fix sops.environment.`,
      ),
    ];
  }
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
      : impact.still === ""
        ? " No sops file of the scope needs it."
        : ` Every sops file of the scope still decrypts: ${impact.still}.`;
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
