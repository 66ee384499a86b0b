// Leftovers of secrets that are no longer declared. sops-install-secrets links a secret's `path` to
// `<symlinkPath>/<name>` (symlinkSecretsAndTemplates, pkgs/sops-install-secrets/main.go:254-283, sops-nix
// 56b2406) and never removes that link when the secret is dropped (sops-nix #574, #605): it then dangles, or
// points at whatever a later secret of the same name holds. A generation holds only the secrets it declares
// and their `rendered/` templates (writeSecrets main.go:459, writeTemplates main.go:1456, into a directory
// created fresh by prepareSecretsDir main.go:404-436): any other file there was put by someone else.

import type { FormerDeclaration, OrphanObservation } from "../core/history.js";
import type { DeclaredScope } from "../core/model.js";
import type { ObservedScope } from "../core/observation.js";
import { absoluteLinkTarget, relativeInGeneration } from "../core/placement.js";
import type { Problem } from "../core/problems.js";
import { problem } from "./common.js";
import type { CheckFamily } from "./family.js";

export const orphansFamily: CheckFamily = {
  name: "orphans",
  run: (input) => {
    const problems: Problem[] = [];
    const orphans = input.orphans;
    if (orphans === undefined) return problems;
    for (const observed of input.scopes) {
      for (const p of orphanLinks(observed.declared, orphans)) problems.push(p);
      for (const p of orphanFiles(observed, orphans)) problems.push(p);
    }
    return problems;
  },
};

/** Former `path` links of a scope that nothing declares now and that still point into its secrets. */
export function orphanLinks(scope: DeclaredScope, orphans: OrphanObservation): Problem[] {
  // Most checks have no earlier declaration of this scope: no set of its 10,000 paths then.
  if (!orphans.former.some((f) => f.scope === scope.scope)) return [];
  const declaredNow = new Set<string>();
  for (const f of scope.secrets) declaredNow.add(f.path);
  for (const f of scope.templates) declaredNow.add(f.path);
  const reported = new Set<string>();
  const problems: Problem[] = [];
  for (const former of orphans.former) {
    if (former.scope !== scope.scope) continue;
    for (const link of former.links) {
      if (declaredNow.has(link.path) || reported.has(link.path)) continue;
      const facts = orphans.linkFacts.get(link.path);
      if (facts?.state !== "present" || facts.type !== "symlink" || facts.linkTarget === undefined) continue;
      const target = absoluteLinkTarget(link.path, facts.linkTarget);
      if (!isInside(target, scope.symlinkPath) && !isInside(target, scope.mountPoint)) continue;
      reported.add(link.path);
      problems.push(orphanLink(scope, former, link.kind, link.name, link.path, target));
    }
  }
  return problems;
}

function orphanLink(
  scope: DeclaredScope,
  former: FormerDeclaration,
  kind: "secret" | "template",
  name: string,
  linkPath: string,
  target: string,
): Problem {
  const sameName = (kind === "secret" ? scope.secrets : scope.templates).some((f) => f.name === name);
  const now = sameName
    ? `${target} now belongs to the ${kind} ${name} declared at another path`
    : `no ${kind} ${name} is declared any more`;
  return problem(
    "orphan_link",
    "warning",
    scope.scope,
    linkPath,
    linkPath,
    `${linkPath} is a leftover link to ${target}: the ${kind} ${name} was last declared at this path in ` +
      `${former.generation}, and ${now}. sops-install-secrets never removes such links. ` +
      `Remove it (rm ${linkPath}) or declare the ${kind} at this path again.`,
  );
}

/** Regular files in the current generation that the current manifest does not declare. */
export function orphanFiles(observed: ObservedScope, orphans: OrphanObservation): Problem[] {
  const files = orphans.generationFiles.get(observed.declared.scope);
  const generationDir =
    observed.generation?.resolution.state === "resolved" ? observed.generation.resolution.path : null;
  // The listing holds undeclared files only, so a clean generation builds no set of its declared names.
  if (files === undefined || files.length === 0 || generationDir === null) return [];
  const declared = new Set<string>();
  for (const f of observed.declared.secrets) declared.add(relativeInGeneration(f));
  for (const f of observed.declared.templates) declared.add(relativeInGeneration(f));
  const problems: Problem[] = [];
  for (const rel of files) {
    if (declared.has(rel)) continue;
    const where = `${generationDir}/${rel}`;
    problems.push(
      problem(
        "orphan_file",
        "info",
        observed.declared.scope,
        rel,
        where,
        `${where} is in the current generation but the manifest declares no secret or template there: ` +
          "sops-install-secrets writes only declared files into a fresh generation, so something else put it " +
          "there (a manual edit, or a tool writing into the secrets directory). Find out what wrote it; the " +
          "next switch drops it.",
      ),
    );
  }
  return problems;
}

function isInside(target: string, dir: string): boolean {
  const d = dir.endsWith("/") ? dir.slice(0, -1) : dir;
  return d !== "" && target.startsWith(`${d}/`);
}
