// Secrets in use: services still running with a secret from before it changed, a sops-nix activation that
// failed (sops-nix #217: a failed setupSecrets snippet is not even in `systemctl --failed`), and what a
// generation left behind. Pure: unit states are observations like file facts.

import type { DeclaredFile, DeclaredScope } from "../core/model.js";
import type { ObservedScope } from "../core/observation.js";
import type { Problem } from "../core/problems.js";
import {
  type ActivationEvidence,
  type Consumer,
  declarationFingerprint,
  fileKey,
  type ScopeUsage,
  type UsageObservation,
  unitKey,
} from "../core/usage.js";
import { problem } from "./common.js";
import type { CheckFamily } from "./family.js";
import { checkFileHashes } from "./preflight.js";

/**
 * How much older than the switch the newest generation may be before the activation counts as failed. The
 * activation writes the secrets first and points /run/current-system at the new system last; two minutes
 * covers every snippet that runs in between.
 */
export const CLASSIC_ACTIVATION_SLACK_SECONDS = 120;
/** A consumer started this little before the generation was written started with it, not before it. */
const START_SLACK_SECONDS = 2;

export const usageFamily: CheckFamily = {
  name: "usage",
  run: (input) => {
    const problems: Problem[] = [];
    const usage = input.usage;
    if (usage === undefined) return problems;
    for (const observed of input.scopes) {
      const scopeUsage = usage.scopes.get(observed.declared.scope);
      if (scopeUsage === undefined) continue;
      for (const p of checkActivation(observed, scopeUsage)) problems.push(p);
      for (const p of checkConsumers(observed.declared, scopeUsage, usage)) problems.push(p);
      for (const p of checkHousekeeping(observed, scopeUsage)) problems.push(p);
    }
    return problems;
  },
};

/** Whether the last activation of the scope succeeded; null when nothing tells. */
export function activationSucceeded(evidence: ActivationEvidence | null): boolean | null {
  if (evidence === null) return null;
  switch (evidence.kind) {
    case "unit":
      return !(evidence.state.activeState === "failed" || !["", "success"].includes(evidence.state.result));
    case "launchd":
      return evidence.lastExitCode === 0;
    case "classic":
      return evidence.switchedSeconds - evidence.generationSeconds <= CLASSIC_ACTIVATION_SLACK_SECONDS;
  }
}

export function checkActivation(observed: ObservedScope, usage: ScopeUsage): Problem[] {
  const evidence = usage.activation;
  if (evidence === null || activationSucceeded(evidence) !== false) return [];
  const scope = observed.declared;
  const fail = (subject: string, message: string) =>
    problem("activation_failed", "critical", scope.scope, subject, scope.symlinkPath, message);
  const stale = "the secrets in place are from an earlier activation, or missing";
  switch (evidence.kind) {
    case "unit": {
      const s = evidence.state;
      const journal =
        evidence.manager === "system"
          ? `journalctl -b -u ${evidence.unit}`
          : `journalctl --user -b -u ${evidence.unit} (as ${evidence.manager.slice(5)})`;
      const status = s.mainStatus === null || s.mainStatus === 0 ? "" : `, exit status ${s.mainStatus}`;
      const last =
        evidence.lastLog === null ? "" : ` Its last log line: ${JSON.stringify(evidence.lastLog)}.`;
      return [
        fail(
          evidence.unit,
          `${evidence.unit} failed at the last activation (result ${s.result || s.activeState}${status}): ${stale}.${last} Read ${journal}, fix the cause (often a key or a recipient) and switch again.`,
        ),
      ];
    }
    case "launchd":
      return [
        fail(
          evidence.label,
          `launchd job ${evidence.label} last exited with status ${evidence.lastExitCode}: ${stale}. Read its log (${scope.user === null ? "/Library/Logs/sops-nix" : `~${scope.user.name}/Library/Logs/SopsNix`}), fix the cause and switch again.`,
        ),
      ];
    case "classic": {
      const switched = new Date(evidence.switchedSeconds * 1000).toISOString();
      const written = new Date(evidence.generationSeconds * 1000).toISOString();
      return [
        fail(
          "setupSecrets",
          `/run/current-system was switched at ${switched}, but the newest secrets generation was written at ${written}: every run of setupSecrets writes a new generation, so it failed at the last activation and ${stale}. Its error is in the output of that switch (nixos-rebuild, colmena apply) or, at boot, in journalctl -b; switch again and read the setupSecrets lines.`,
        ),
      ];
    }
  }
}

export type Change = "added" | "rekeyed" | "sops-file";

function changeOf(f: DeclaredFile, usage: ScopeUsage): Change | null {
  const previous = usage.previous;
  if (previous === null) return null;
  const before = previous.fingerprints.get(fileKey(f));
  if (before === undefined) return "added";
  const now = declarationFingerprint(f);
  if (now.strong !== before.strong) return "rekeyed";
  if (now.file !== before.file) return "sops-file";
  return null;
}

/**
 * A unit that reads a file whose declaration changed in the current generation and that is still running
 * since before that generation was written holds the old content. sops-install-secrets restarts a file's
 * restartUnits itself when the written content differs or the file is new (handleModifications,
 * main.go:943-1000), so a restartUnits unit older than an added or re-keyed secret missed that restart:
 * critical. A change of the sops file alone may leave the value as it was (`sops updatekeys`, an edit of
 * another key), and units found only through their unit files are restarted by nobody: warning.
 * reloadUnits are never judged: systemd keeps no time of the last reload.
 */
export function checkConsumers(scope: DeclaredScope, usage: ScopeUsage, all: UsageObservation): Problem[] {
  return findStaleConsumers(scope, usage, all).map(staleConsumer);
}

/** A unit still running with what a file held before the current generation. */
export interface StaleConsumer {
  readonly scope: DeclaredScope;
  readonly file: DeclaredFile;
  readonly consumer: Consumer;
  readonly change: Change;
  readonly critical: boolean;
  readonly installedSeconds: number;
}

export function findStaleConsumers(
  scope: DeclaredScope,
  usage: ScopeUsage,
  all: UsageObservation,
): StaleConsumer[] {
  const installed = usage.installedSeconds;
  if (installed === null || usage.previous === null || !all.live) return [];
  const stale: StaleConsumer[] = [];
  for (const list of [scope.secrets, scope.templates] as const) {
    for (const f of list) {
      const change = changeOf(f, usage);
      if (change === null) continue;
      for (const consumer of consumersOf(scope, f, usage)) {
        if (consumer.via.kind === "reloadUnits") continue;
        const state = all.units.get(unitKey(consumer.manager, consumer.unit));
        if (state === undefined || !["active", "reloading"].includes(state.activeState)) continue;
        if (state.activeEnterSeconds === null || state.activeEnterSeconds >= installed - START_SLACK_SECONDS)
          continue;
        const critical = consumer.via.kind === "restartUnits" && change !== "sops-file";
        stale.push({ scope, file: f, consumer, change, critical, installedSeconds: installed });
      }
    }
  }
  return stale;
}

/** Declared restartUnits/reloadUnits first, then units found through their unit files; each unit once. */
function consumersOf(scope: DeclaredScope, f: DeclaredFile, usage: ScopeUsage): Consumer[] {
  const manager = scope.user === null ? "system" : (`user:${scope.user.name}` as const);
  const out: Consumer[] = [];
  const seen = new Set<string>();
  const add = (c: Consumer) => {
    if (seen.has(c.unit)) return;
    seen.add(c.unit);
    out.push(c);
  };
  for (const unit of f.restartUnits) add({ manager, unit, via: { kind: "restartUnits" } });
  for (const unit of f.reloadUnits) add({ manager, unit, via: { kind: "reloadUnits" } });
  for (const c of usage.discovered.get(fileKey(f)) ?? []) add(c);
  return out;
}

function staleConsumer({
  scope,
  file: f,
  consumer,
  change,
  critical,
  installedSeconds: installed,
}: StaleConsumer): Problem {
  const what =
    change === "added"
      ? "was added"
      : change === "rekeyed"
        ? f.kind === "secret"
          ? "changed key or format"
          : "changed its source"
        : "comes from a changed sops file (its value may be unchanged, e.g. after `sops updatekeys`)";
  const how =
    consumer.via.kind === "unit-file"
      ? `${consumer.via.file} reads it; add ${consumer.unit} to the ${f.kind}'s restartUnits so switches restart it`
      : `it is in the ${f.kind}'s restartUnits, but the switch did not restart it`;
  const restart =
    consumer.manager === "system"
      ? `systemctl restart ${consumer.unit}`
      : `systemctl --user restart ${consumer.unit} (as ${consumer.manager.slice(5)})`;
  return problem(
    "consumer_stale",
    critical ? "critical" : "warning",
    scope.scope,
    f.name,
    f.path,
    `${consumer.unit} has been running since before generation written at ${new Date(installed * 1000).toISOString()}, in which the ${f.kind} ${f.name} ${what}: it still holds the old content. Run ${restart}; ${how}.`,
  );
}

/** Plaintext left behind, and declarations that no longer match the store. */
export function checkHousekeeping(observed: ObservedScope, usage: ScopeUsage): Problem[] {
  const scope = observed.declared;
  const problems: Problem[] = [];
  const current = observed.generation?.number ?? null;
  if (current !== null) {
    for (const n of usage.generations) {
      // pruneGenerations (main.go:792-833) removes every n with current - keepGenerations >= n; a dry
      // activation writes generation current+1 without switching to it (main.go:1448-1467).
      const pruned = scope.keepGenerations > 0 && current - scope.keepGenerations >= n;
      const dry = n > current;
      if (!pruned && !dry) continue;
      const dir = `${scope.mountPoint}/${n}`;
      const why = dry
        ? "a dry activation (nixos-rebuild dry-activate) wrote it without switching to it"
        : `sops-install-secrets keeps ${scope.keepGenerations} generation${scope.keepGenerations === 1 ? "" : "s"} and prunes the rest when it succeeds`;
      problems.push(
        problem(
          "old_generation",
          "warning",
          scope.scope,
          dir,
          dir,
          `${dir} still holds decrypted secrets of generation ${n} while ${current} is current: ${why}. Remove it (rm -r ${dir}) or switch again.`,
        ),
      );
    }
  }
  if (scope.gnupgHome !== undefined && usage.gnupgHome !== null && usage.gnupgHome.state === "absent") {
    problems.push(
      problem(
        "gnupg_home_missing",
        "warning",
        scope.scope,
        scope.gnupgHome,
        scope.gnupgHome,
        `sops.gnupg.home ${scope.gnupgHome} does not exist: sops-install-secrets points GNUPGHOME at it (main.go:1392), so a sops file only a PGP key can open will not decrypt at the next activation. Restore the keyring or change sops.gnupg.home.`,
      ),
    );
  }
  for (const t of scope.templates) {
    const facts = usage.templateSources.get(t.name);
    if (facts === undefined || t.source.kind !== "file") continue;
    if (facts.state === "present" && facts.type !== "directory") continue;
    if (facts.state === "inaccessible") continue;
    problems.push(
      problem(
        "template_source_missing",
        "critical",
        scope.scope,
        t.name,
        t.source.path,
        `The template ${t.name} is rendered from ${t.source.path}, which ${facts.state === "absent" ? "does not exist" : "is a directory"}: sops-install-secrets reads it before decrypting anything and aborts the whole activation (main.go:700-711). Restore the file or declare the template's content.`,
      ),
    );
  }
  for (const p of checkFileHashes(scope, usage.sopsFileHashes)) problems.push(p);
  return problems;
}
