// What the agent tells journald between two published checks: a deploy (what changed in the declaration,
// from the manifests — never by value, and not by inode or mtime, which every activation renews) and each
// problem once when it appears and once when it clears. The events are pure data; `logEvents` writes them.

import { changeSummary, type DeclarationChange, diffDeclarations } from "../core/declaration-diff.js";
import type { DeclaredScope, ScopeName } from "../core/model.js";
import type { Problem, Severity } from "../core/problems.js";
import type { CheckRun } from "../core/report.js";
import type { Logger } from "./logger.js";

/** What the agent kept of a scope from the previous published check. */
export interface ScopeBefore {
  readonly generation: number | null;
  readonly declared: DeclaredScope;
}

export interface GenerationSwitchEvent {
  readonly event: "generation_switch";
  readonly scope: ScopeName;
  readonly generation: number;
  readonly previous: number | null;
  /** Sorted: secrets before templates, by name. Names, fields and kinds only. */
  readonly changes: readonly DeclarationChange[];
  readonly healthy: boolean;
  /** The problem codes of the scope right after the switch. */
  readonly problems: readonly string[];
}

export interface ProblemEvent {
  readonly event: "problem_appeared" | "problem_cleared";
  readonly code: Problem["code"];
  readonly severity: Severity;
  readonly scope: Problem["scope"];
  readonly subject: string;
}

/** Scopes whose generation number changed since the previous check, with what their declaration changed. */
export function generationSwitches(
  before: ReadonlyMap<ScopeName, ScopeBefore>,
  next: CheckRun,
): GenerationSwitchEvent[] {
  const events: GenerationSwitchEvent[] = [];
  for (const scope of next.observed) {
    const name = scope.declared.scope;
    const generation = scope.generation?.number ?? null;
    const old = before.get(name);
    const previous = old?.generation ?? null;
    if (generation === null || generation === previous) continue;
    const problems = next.document.problems.filter((p) => p.scope === name);
    events.push({
      event: "generation_switch",
      scope: name,
      generation,
      previous,
      changes: diffDeclarations(old?.declared ?? null, scope.declared),
      healthy: !problems.some((p) => p.severity === "critical"),
      problems: [...new Set(problems.map((p) => p.code))].sort(),
    });
  }
  return events;
}

/**
 * Problems that appeared and cleared between two checks, by (scope, subject, code). `before` is null for the
 * first check: every problem found then is new to the log.
 */
export function problemEvents(before: readonly Problem[] | null, after: readonly Problem[]): ProblemEvent[] {
  const key = (p: Problem) => `${p.scope}\u0000${p.subject}\u0000${p.code}`;
  const old = new Map((before ?? []).map((p) => [key(p), p] as const));
  const now = new Map(after.map((p) => [key(p), p] as const));
  const events: ProblemEvent[] = [];
  for (const [k, p] of now) if (!old.has(k)) events.push(problemEvent("problem_appeared", p));
  for (const [k, p] of old) if (!now.has(k)) events.push(problemEvent("problem_cleared", p));
  return events;
}

function problemEvent(event: ProblemEvent["event"], p: Problem): ProblemEvent {
  return { event, code: p.code, severity: p.severity, scope: p.scope, subject: p.subject };
}

/**
 * Lines per check at most for problem events: a broken generation can make 10,000 problems appear at once;
 * the log says how many more there were instead of flooding journald.
 */
export const MAX_PROBLEM_LINES = 100;
/** Changes named in a switch's message; all of them are in its `changes` field. */
const MAX_CHANGES_IN_MESSAGE = 10;

export function logEvents(
  log: Logger,
  switches: readonly GenerationSwitchEvent[],
  problems: readonly ProblemEvent[],
): void {
  for (const e of switches) log.info(e, switchMessage(e));
  for (const e of problems.slice(0, MAX_PROBLEM_LINES)) {
    const appeared = e.event === "problem_appeared";
    const line = `problem ${appeared ? "appeared" : "cleared"}: ${e.code} ${e.scope} ${e.subject}`;
    if (appeared && e.severity !== "info") log.warn(e, line);
    else log.info(e, line);
  }
  if (problems.length > MAX_PROBLEM_LINES) {
    const more = problems.length - MAX_PROBLEM_LINES;
    log.warn({ event: "problem_events_dropped", count: more }, `and ${more} more problem events not logged`);
  }
}

/** `system switched to generation 4 (from 3): secret api-token added; secret db re-keyed (sopsFileHash)` */
export function switchMessage(e: GenerationSwitchEvent): string {
  const head = `${e.scope} switched to generation ${e.generation}${e.previous === null ? "" : ` (from ${e.previous})`}`;
  if (e.changes.length === 0) return `${head}: no declared change`;
  const named = e.changes
    .slice(0, MAX_CHANGES_IN_MESSAGE)
    .map((c) => `${c.kind} ${c.name} ${changeSummary(c)}`);
  const more = e.changes.length - named.length;
  return `${head}: ${named.join("; ")}${more > 0 ? `; and ${more} more` : ""}`;
}
