// Small helpers shared by the check families.

import type { PathFacts, Resolution } from "../core/facts.js";
import type { ScopeName } from "../core/model.js";
import type { Problem, ProblemCode, Severity } from "../core/problems.js";

export function problem(
  code: ProblemCode,
  severity: Severity,
  scope: ScopeName | "host",
  subject: string,
  path: string,
  message: string,
): Problem {
  return { code, severity, scope, subject, path, message };
}

export function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, "0")}`;
}

export function describeFacts(facts: PathFacts): string {
  switch (facts.state) {
    case "absent":
      return "absent";
    case "inaccessible":
      return `not readable (${facts.errno})`;
    case "present":
      return facts.type === "symlink" ? `a symlink to ${facts.linkTarget ?? "?"}` : `a ${facts.type}`;
  }
}

export function resolves(resolution: Resolution): boolean {
  return resolution.state === "resolved";
}
