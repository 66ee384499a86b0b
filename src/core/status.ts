// Builds the status document from what was observed and the problems found. Pure.

import type { DeclaredFile } from "./model.js";
import type { ObservedScope } from "./observation.js";
import type { Problem } from "./problems.js";
import type {
  FailedCheck,
  FamilyResult,
  HostRecipient,
  ScopeSummary,
  SecretStatus,
  StatusDocument,
} from "./report.js";

export function buildStatus(
  observed: readonly ObservedScope[],
  problems: readonly Problem[],
  recipients: readonly HostRecipient[],
  families: readonly FamilyResult[],
  /** The last document's entries: an entry that is the same again is that object (the agent keeps them). */
  previous: readonly SecretStatus[] = [],
): StatusDocument {
  // A family that failed found nothing, which is not the same as finding nothing wrong.
  const incomplete: FailedCheck[] = families
    .filter((f) => !f.ok)
    .map((f) => ({ check: f.family, error: f.error ?? "unknown error" }));
  const critical = problems.filter((p) => p.severity === "critical");
  // A critical problem about the scope's generation (subject = symlinkPath) makes every file in it not ok.
  const brokenScopes = new Set(
    critical
      .filter((p) =>
        observed.some((o) => o.declared.scope === p.scope && o.declared.symlinkPath === p.subject),
      )
      .map((p) => p.scope),
  );
  const bySubject = new Map<string, Problem[]>();
  for (const p of critical) {
    const key = `${p.scope}\u0000${p.subject}`;
    bySubject.set(key, [...(bySubject.get(key) ?? []), p]);
  }
  const scopes: ScopeSummary[] = observed.map((o) => ({
    scope: o.declared.scope,
    manifest: o.declared.manifestPath,
    symlinkPath: o.declared.symlinkPath,
    mountPoint: o.declared.mountPoint,
    generation: o.generation?.number ?? null,
    secrets: o.declared.secrets.length,
    templates: o.declared.templates.length,
  }));
  const secrets: SecretStatus[] = [];
  let same = true;
  for (const o of observed) {
    const scope = o.declared.scope;
    const scopeBroken = brokenScopes.has(scope);
    for (const list of [o.declared.secrets, o.declared.templates])
      for (const d of list) {
        // The key string is only built when there is a critical problem to look up.
        const ok =
          !scopeBroken &&
          (bySubject.size === 0 || !isNamedBy(bySubject.get(`${scope}\u0000${d.name}`), d, o));
        const was = previous[secrets.length];
        const reuse =
          was !== undefined &&
          was.ok === ok &&
          was.name === d.name &&
          was.kind === d.kind &&
          was.path === d.path &&
          was.scope === scope;
        same &&= reuse;
        secrets.push(reuse ? was : { scope, kind: d.kind, name: d.name, path: d.path, ok });
      }
  }
  return {
    healthy: critical.length === 0 && incomplete.length === 0,
    incomplete,
    scopes,
    problems: [...problems],
    secrets: same && secrets.length === previous.length ? (previous as SecretStatus[]) : secrets,
    recipients: [...recipients],
  };
}

/**
 * Whether one of the problems naming this file's name is about this file. A secret and a template may
 * share a name (separate namespaces in sops-nix): then the problem's path tells them apart.
 */
function isNamedBy(problems: readonly Problem[] | undefined, d: DeclaredFile, o: ObservedScope): boolean {
  if (problems === undefined) return false;
  const other = d.kind === "secret" ? o.declared.templates : o.declared.secrets;
  if (!other.some((x) => x.name === d.name)) return true;
  const generationPath = o.files.find((f) => f.declared === d)?.generationPath;
  return problems.some(
    (p) => p.path === d.path || p.path === generationPath || (d.kind === "secret" && p.path === d.sopsFile),
  );
}
