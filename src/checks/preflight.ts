// The checks only a preflight makes: facts about a generation that is built but not yet activated. Pure
// functions over what src/host/preflight.ts read. Everything the running checks already decide (sops files,
// keys now, recipients) is decided by their own functions; these add what only matters before a switch.

import { createHash } from "node:crypto";
import type { BootAvailability } from "../core/boot-mounts.js";
import type { Accounts, DeclaredKey, DeclaredScope } from "../core/model.js";
import type { Problem, Severity } from "../core/problems.js";
import { problem } from "./common.js";

/** How the new generation runs sops-install-secrets for a scope, which decides what must exist at boot. */
export type Activation =
  /** A snippet of the activate script: runs in stage 2 before systemd mounts anything (setupSecrets). */
  | "activation-script"
  /**
   * sops-install-secrets(-for-users).service: RequiresMountsFor its keys, so systemd mounts them first
   * (sops-nix 56b2406 modules/sops/default.nix:470-491, modules/sops/secrets-for-users/default.nix:49-54).
   */
  | "systemd-unit"
  /** home-manager and nix-darwin scopes: run after the system is up; no boot rule applies. */
  | "late";

export interface KeyBootFacts {
  readonly key: DeclaredKey;
  /** Whether the key resolves to a file now. */
  readonly presentNow: boolean;
  /** Where the key's symlink chain ends (or the key itself), as a host path. */
  readonly realPath: string;
  /** A path in the key's symlink chain that belongs to a home-manager generation, if any. */
  readonly homeManagerLink: string | null;
  /** Null when the generation has no fstab (nix-darwin, home-manager). */
  readonly availability: BootAvailability | null;
}

/**
 * Keys that will not be there when sops-install-secrets runs after a reboot. Critical when the scope would
 * have no key left then (or the key is the ageKeyFile, whose absence aborts: main.go ~1426-1432, sops-nix
 * 56b24064), a warning when another key still decrypts.
 */
export function checkBootKeys(
  scope: DeclaredScope,
  activation: Activation,
  keys: readonly KeyBootFacts[],
): Problem[] {
  if (activation === "late") return [];
  const verdicts = keys
    .filter((k) => k.key.role !== "extra" && k.presentNow)
    .map((k) => ({ k, why: bootProblem(k, activation) }));
  const survivors = verdicts.filter((v) => v.why === null).length;
  const problems: Problem[] = [];
  for (const { k, why } of verdicts) {
    if (why === null) continue;
    const severity: Severity = k.key.role === "age-key-file" || survivors === 0 ? "critical" : "warning";
    const consequence =
      severity === "critical"
        ? "after the next reboot sops-install-secrets finds no key and installs no secret of this scope"
        : "after the next reboot this key is skipped; another key of the scope still decrypts";
    problems.push(
      problem(
        "key_unavailable_at_boot",
        severity,
        scope.scope,
        k.key.path,
        k.key.path,
        `The decryption key ${k.key.path} exists now but ${why}: ${consequence}.`,
      ),
    );
  }
  return problems;
}

function bootProblem(k: KeyBootFacts, activation: Activation): string | null {
  if (k.homeManagerLink !== null) {
    return `is a home-manager link (${k.homeManagerLink}), created only when home-manager activates, after sops-install-secrets ran at boot. Copy the key to a real file outside home-manager (or encrypt to the host's own recipient: \`sops-agent recipient\`)`;
  }
  const a = k.availability;
  if (a === null || a.kind === "stage1") return null;
  if (a.kind === "volatile") {
    return `lives on ${a.mount.mountPoint}, a ${a.mount.fsType} that is empty at every boot. Keep the key on a persistent file system mounted in stage 1 (for impermanence: point sops at the /persist copy and set fileSystems."/persist".neededForBoot = true; sops-nix#149)`;
  }
  if (activation === "systemd-unit") return null;
  return `lives on ${a.mount.mountPoint}, which is not mounted in stage 1 (no x-initrd.mount in the generation's fstab), so it is not there yet when the activation script runs setupSecrets (sops-nix#149). Set fileSystems."${a.mount.mountPoint}".neededForBoot = true, or move the key`;
}

/** Where the accounts the new generation will have come from, for the messages. */
export interface AccountsSource {
  readonly accounts: Accounts;
  /** e.g. "the new generation's users-groups.json (/nix/store/…)" or "the current /etc/passwd and /etc/group". */
  readonly description: string;
  /** False when the new generation's own definition could not be found and the current accounts stand in. */
  readonly fromGeneration: boolean;
}

/** sops-install-secrets looks every non-empty owner and group name up before it writes anything (main.go). */
export function checkNewOwners(scope: DeclaredScope, source: AccountsSource): Problem[] {
  const problems: Problem[] = [];
  for (const d of [...scope.secrets, ...scope.templates]) {
    if (d.owner.kind === "name" && !source.accounts.users.has(d.owner.name)) {
      problems.push(
        problem(
          "unknown_owner",
          "critical",
          scope.scope,
          d.name,
          d.path,
          `The declared owner "${d.owner.name}" of ${d.name} is not a user in ${source.description}: sops-install-secrets would abort and install no secret at all. Create the user (users.users.${d.owner.name}) or fix the owner.`,
        ),
      );
    }
    if (d.group.kind === "name" && !source.accounts.groups.has(d.group.name)) {
      problems.push(
        problem(
          "unknown_group",
          "critical",
          scope.scope,
          d.name,
          d.path,
          `The declared group "${d.group.name}" of ${d.name} is not a group in ${source.description}: sops-install-secrets would abort and install no secret at all. Create the group (users.groups.${d.group.name}) or fix the group.`,
        ),
      );
    }
  }
  return problems;
}

/** `sopsFileHash` is `builtins.hashFile "sha256"` of the sops file, lowercase hex (sops-nix modules/sops/default.nix:51-53). */
export function sha256Hex(content: Buffer | string): string {
  return createHash("sha256").update(content).digest("hex");
}

/**
 * `actual`: the sha256 of each sops file now, null when it cannot be read (the sops checks report that).
 * A mismatch means the file changed after the generation was evaluated (a sopsFile outside the store):
 * what gets decrypted is not what was built, and restartTriggers on sopsFileHash are stale.
 */
export function checkFileHashes(scope: DeclaredScope, actual: ReadonlyMap<string, string | null>): Problem[] {
  const problems: Problem[] = [];
  for (const s of scope.secrets) {
    // Empty when validateSopsFiles is off (default.nix:51-53): nothing to compare.
    if (s.sopsFileHash === "") continue;
    const now = actual.get(s.sopsFile) ?? null;
    if (now === null || now === s.sopsFileHash.toLowerCase()) continue;
    problems.push(
      problem(
        "sops_file_hash_mismatch",
        "warning",
        scope.scope,
        s.name,
        s.sopsFile,
        `${s.sopsFile} no longer matches the sopsFileHash the generation was built with (${s.sopsFileHash.slice(0, 12)}…, now ${now.slice(0, 12)}…): secret ${s.name} would be decrypted from a file that changed since the build. Rebuild the generation.`,
      ),
    );
  }
  return problems;
}

const PLACEHOLDER = /<SOPS:([0-9a-f]{64}):PLACEHOLDER>/g;

export interface TemplateText {
  readonly name: string;
  readonly path: string;
  /** null when the template's file cannot be read. */
  readonly text: string | null;
}

/**
 * sops-install-secrets substitutes the placeholder of every secret the same manifest declares (main.go:653-664,
 * 738-746); any other `<SOPS:…:PLACEHOLDER>` stays in the rendered file (sops-nix #583).
 */
export function checkTemplatePlaceholders(
  scope: DeclaredScope,
  templates: readonly TemplateText[],
): Problem[] {
  const declared = new Set(scope.secrets.map((s) => sha256Hex(s.name)));
  const problems: Problem[] = [];
  for (const t of templates) {
    if (t.text === null) continue;
    const unknown = new Set<string>();
    for (const m of t.text.matchAll(PLACEHOLDER)) if (!declared.has(m[1] ?? "")) unknown.add(m[1] ?? "");
    if (unknown.size === 0) continue;
    problems.push(
      problem(
        "unrendered_placeholder",
        "critical",
        scope.scope,
        t.name,
        t.path,
        `The template ${t.name} references ${unknown.size} placeholder(s) of secrets scope ${scope.scope} does not declare: they would stay in the rendered file as <SOPS:…:PLACEHOLDER>. Declare the secret in this scope's sops.secrets or fix the reference.`,
      ),
    );
  }
  return problems;
}
