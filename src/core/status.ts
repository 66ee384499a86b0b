// Builds the status document from what was observed and the problems found. Pure.

import type { ObservedScope } from "./observation.js";
import type { Problem } from "./problems.js";
import type { HostRecipient, ScopeSummary, SecretStatus, StatusDocument } from "./report.js";

export function buildStatus(
  observed: readonly ObservedScope[],
  problems: readonly Problem[],
  recipients: readonly HostRecipient[],
): StatusDocument {
  const critical = problems.filter((p) => p.severity === "critical");
  // A critical problem about the scope's generation (subject = symlinkPath) makes every file in it not ok.
  const brokenScopes = new Set(
    critical
      .filter((p) =>
        observed.some((o) => o.declared.scope === p.scope && o.declared.symlinkPath === p.subject),
      )
      .map((p) => p.scope),
  );
  const badFiles = new Set(critical.map((p) => `${p.scope}\u0000${p.subject}`));
  const scopes: ScopeSummary[] = observed.map((o) => ({
    scope: o.declared.scope,
    manifest: o.declared.manifestPath,
    symlinkPath: o.declared.symlinkPath,
    mountPoint: o.declared.mountPoint,
    generation: o.generation?.number ?? null,
    secrets: o.declared.secrets.length,
    templates: o.declared.templates.length,
  }));
  const secrets: SecretStatus[] = observed.flatMap((o) =>
    [...o.declared.secrets, ...o.declared.templates].map((d) => ({
      scope: o.declared.scope,
      kind: d.kind,
      name: d.name,
      path: d.path,
      // The key string is only built when there is a critical problem to look up.
      ok:
        !brokenScopes.has(o.declared.scope) &&
        (badFiles.size === 0 || !badFiles.has(`${o.declared.scope}\u0000${d.name}`)),
    })),
  );
  return {
    healthy: critical.length === 0,
    scopes,
    problems: [...problems],
    secrets,
    recipients: [...recipients],
  };
}
