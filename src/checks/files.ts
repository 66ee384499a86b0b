// Per-file checks: every declared secret and template in the generation the link points to.

import { activationLog } from "../core/activation-log.js";
import {
  type Accounts,
  type DeclaredFile,
  type Principal,
  principalText,
  type ScopeName,
} from "../core/model.js";
import type { FileObservation, ObservedScope } from "../core/observation.js";
import type { Problem } from "../core/problems.js";
import { describeFacts, octal, problem } from "./common.js";
import type { CheckFamily } from "./family.js";

export const filesFamily: CheckFamily = {
  name: "files",
  run: (input) => input.scopes.flatMap((s) => checkFiles(s, input.host.accounts)),
};

export function checkFiles(observed: ObservedScope, accounts: Accounts): Problem[] {
  const problems: Problem[] = [];
  const scopeName = observed.declared.scope;
  for (const file of observed.files) {
    // Declared names only matter when they are unknown; skip the call for the usual numeric ids.
    if (file.declared.owner.kind === "name" || file.declared.group.kind === "name") {
      for (const p of checkOwnership(file, accounts, observed)) problems.push(p);
    }
    if (file.generationPath === null) continue;
    const d = file.declared;
    const at = (
      code: Parameters<typeof problem>[0],
      message: string,
      severity: "critical" | "warning" = "critical",
    ) => problem(code, severity, scopeName, d.name, file.generationPath ?? d.path, message);
    const f = file.facts;
    const gen = observed.generation?.number ?? "?";
    if (f.state === "absent") {
      problems.push(
        at(
          "missing",
          `The ${d.kind} ${d.name} is absent from generation ${gen}. The last activation failed or was interrupted: check its log (${activationLog(observed.declared)}) and run the switch again.`,
        ),
      );
      continue;
    }
    if (f.state === "inaccessible") {
      problems.push(
        at(
          "unreadable",
          observed.declared.user !== null
            ? `${file.generationPath} is out of reach for ${observed.declared.user.name} (${f.errno}): the agent looks at a user's scope with that user's access only.`
            : `The agent may not look at ${file.generationPath} (${f.errno}); run it as root or with CAP_DAC_READ_SEARCH.`,
          "warning",
        ),
      );
      continue;
    }
    if (f.type !== "file") {
      problems.push(
        at(
          "not_regular_file",
          `${file.generationPath} is ${describeFacts(f)}, not a regular file. Re-run the activation.`,
        ),
      );
      continue;
    }
    if (!modeMatches(d, f.mode)) {
      problems.push(at("wrong_mode", wrongModeMessage(d, f.mode)));
    }
    const owner = expectedId(d.owner, accounts, "users");
    if (owner !== null && owner !== f.uid) {
      problems.push(
        at(
          "wrong_owner",
          `Owner is uid ${f.uid}, declared ${principalText(d.owner)} (uid ${owner}). Run the switch again; if it persists, check for a chown after activation.`,
        ),
      );
    }
    const group = expectedId(d.group, accounts, "groups");
    if (group !== null && group !== f.gid) {
      problems.push(
        at(
          "wrong_group",
          `Group is gid ${f.gid}, declared ${principalText(d.group)} (gid ${group}). Run the switch again; if it persists, check for a chgrp after activation.`,
        ),
      );
    }
  }
  return problems;
}

/**
 * sops-install-secrets writes secrets under the process umask without a chmod, so only group/other
 * write bits may be missing; templates are chmod'ed to the exact mode.
 */
export function modeMatches(declared: DeclaredFile, actual: number): boolean {
  if (declared.kind === "template") return actual === declared.mode;
  const clearedByUmask = declared.mode & ~actual;
  return (actual & ~declared.mode) === 0 && (clearedByUmask & ~0o022) === 0;
}

/**
 * Secrets are os.WriteFile'd under the process umask (main.go:466, 567-573): a mode that only lacks group
 * or other bits of the declared one is what a umask stricter than 022 leaves, not a later chmod; say so.
 * Templates get an exact fchmod (main.go:1290): any difference is a change after activation.
 */
function wrongModeMessage(d: DeclaredFile, actual: number): string {
  const lacking = d.mode & ~actual;
  if (d.kind === "secret" && (actual & ~d.mode) === 0 && (lacking & ~0o077) === 0) {
    return `Mode is ${octal(actual)}, declared ${d.modeText}: the umask sops-install-secrets ran under cleared ${octal(lacking)} (secrets are written through the umask, main.go:466), not a change after activation. Run the activation with umask 022 (a leaked umask: nixpkgs#260958, sops-nix#415), then switch again.`;
  }
  return `Mode is ${octal(actual)}, declared ${d.modeText}${d.kind === "secret" ? " (umask may clear group/other write bits only)" : ""}. Something changed it after activation: run the switch again, and find what chmods it.`;
}

/**
 * macOS keeps regular accounts in Directory Services, which sops-install-secrets' lookup sees: a name
 * missing from /etc/passwd there is no sign of an abort. Mode and presence are still checked.
 */
function unverifiable(scope: ScopeName, d: DeclaredFile, what: "owner" | "group", name: string): Problem {
  return problem(
    "owner_unverifiable",
    "warning",
    scope,
    d.name,
    d.path,
    `The declared ${what} "${name}" is not in /etc/${what === "owner" ? "passwd" : "group"}, and macOS keeps accounts in Directory Services, which cannot be asked from here (--root, or not on the macOS host itself): the file's ${what} is not checked. Run sops-agent on the Mac to verify it.`,
  );
}

/** The numeric id a principal stands for on this host, or null when the name is unknown. */
export function expectedId(p: Principal, accounts: Accounts, table: "users" | "groups"): number | null {
  if (p.kind === "id") return p.id;
  const entry = table === "users" ? accounts.users.get(p.name) : accounts.groups.get(p.name);
  return entry?.id ?? null;
}

function checkOwnership(file: FileObservation, accounts: Accounts, observed: ObservedScope): Problem[] {
  const d = file.declared;
  const problems: Problem[] = [];
  const scope = observed.declared.scope;
  // A database read only in part (input_too_large) cannot tell that a name is missing.
  if (d.owner.kind === "name" && accounts.unverifiable?.users.has(d.owner.name) === true) {
    problems.push(unverifiable(scope, d, "owner", d.owner.name));
  } else if (
    d.owner.kind === "name" &&
    accounts.partial?.users !== true &&
    !accounts.users.has(d.owner.name)
  ) {
    problems.push(
      problem(
        "unknown_owner",
        "critical",
        scope,
        d.name,
        d.path,
        `The declared owner "${d.owner.name}" is not in /etc/passwd: sops-install-secrets aborts and installs no secret at all. Create the user (users.users.${d.owner.name}) or fix the owner.`,
      ),
    );
  }
  if (d.group.kind === "name" && accounts.unverifiable?.groups.has(d.group.name) === true) {
    problems.push(unverifiable(scope, d, "group", d.group.name));
  } else if (
    d.group.kind === "name" &&
    accounts.partial?.groups !== true &&
    !accounts.groups.has(d.group.name)
  ) {
    problems.push(
      problem(
        "unknown_group",
        "critical",
        scope,
        d.name,
        d.path,
        `The declared group "${d.group.name}" is not in /etc/group: sops-install-secrets aborts and installs no secret at all. Create the group (users.groups.${d.group.name}) or fix the group.`,
      ),
    );
  }
  return problems;
}
