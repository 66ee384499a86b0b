// Decryption keys: what sops-install-secrets reads before it can decrypt anything. A key that is a
// home-manager symlink dangles at boot, when stage-1 setupSecrets runs (the id_infrastructure case).

import type { DeclaredKey, ScopeName } from "../core/model.js";
import type { KeyObservation, ObservedScope, StrayKeyLink } from "../core/observation.js";
import type { Problem, Severity } from "../core/problems.js";
import { octal, problem, resolves } from "./common.js";
import type { CheckFamily } from "./family.js";

export const keysFamily: CheckFamily = {
  name: "keys",
  run: (input) => {
    const named = new Set(input.scopes.flatMap((s) => s.declared.keys.map((k) => k.path)));
    return [
      ...input.scopes.flatMap(checkKeys),
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

export function checkKeys(observed: ObservedScope): Problem[] {
  const scope = observed.declared.scope;
  const usable = observed.keys.filter((k) => k.key.role !== "extra" && resolves(k.resolution) && isFile(k));
  return observed.keys.flatMap((k) => checkKey(scope, k, usable.length));
}

function isFile(k: KeyObservation): boolean {
  return k.resolution.state === "resolved" && k.resolution.facts.type === "file";
}

/**
 * sops-install-secrets aborts when ageKeyFile cannot be read, but skips unreadable ssh keys; so a missing
 * ssh key is critical only when no key of the scope is left to decrypt with.
 */
function severityOf(key: DeclaredKey, usableKeys: number): Severity {
  // A key the agent was told to watch is not one sops-nix reads: worth a warning, never critical.
  if (key.role === "extra") return "warning";
  return key.role === "age-key-file" || usableKeys === 0 ? "critical" : "warning";
}

function checkKey(scope: ScopeName, k: KeyObservation, usableKeys: number): Problem[] {
  const { key, facts } = k;
  const severity = severityOf(key, usableKeys);
  const at = (code: Parameters<typeof problem>[0], sev: Severity, message: string) =>
    problem(code, sev, scope, key.path, key.path, message);
  if (facts.state === "absent") {
    return [
      at(
        "key_missing",
        severity,
        `The decryption key ${key.path} (${ROLE_TEXT[key.role]}) does not exist: the next activation cannot decrypt with it. Restore the key or remove it from ${ROLE_TEXT[key.role]}.`,
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
          `The decryption key ${key.path} is a symlink to ${facts.linkTarget ?? "?"}, which does not exist. If home-manager manages it, it is created too late for stage-1 setupSecrets: copy the key to a real file (or add a per-host recipient).`,
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
