// The human view of a status document, read in one glance: broken scopes first, in each the problems by
// severity with the fix in normal weight, one short header line per scope, the verdict last.
// Every text that comes from the host goes through escapeTerminal; the JSON view does not come here.

import type { Problem, Severity } from "../core/problems.js";
import type { HostRecipient, ScopeSummary, StatusDocument } from "../core/report.js";
import { type FileTally, type StatusSummary, summarize } from "../core/status-summary.js";
import { escapeTerminal as t } from "./terminal.js";

export interface Style {
  readonly bold: (s: string) => string;
  readonly dim: (s: string) => string;
  readonly severity: (sev: Severity, s: string) => string;
  readonly ok: (s: string) => string;
}

const ansi = (code: string) => (s: string) => `\u001b[${code}m${s}\u001b[0m`;
const SEVERITY_COLOUR: Record<Severity, (s: string) => string> = {
  critical: ansi("1;31"),
  warning: ansi("33"),
  info: ansi("36"),
};

export const COLOUR: Style = {
  bold: ansi("1"),
  dim: ansi("2"),
  severity: (sev, s) => SEVERITY_COLOUR[sev](s),
  ok: ansi("32"),
};

const identity = (s: string) => s;
export const PLAIN: Style = { bold: identity, dim: identity, severity: (_, s) => s, ok: identity };

/**
 * Colour on a terminal. FORCE_COLOR forces it on (or off with `0`/`false`) as Node itself reads it; else
 * NO_COLOR (https://no-color.org) and TERM=dumb turn it off.
 */
export function styleFor(isTTY: boolean, env: NodeJS.ProcessEnv): Style {
  const force = env.FORCE_COLOR;
  if (force !== undefined && force !== "") return force === "0" || force === "false" ? PLAIN : COLOUR;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return PLAIN;
  if (env.TERM === "dumb") return PLAIN;
  return isTTY ? COLOUR : PLAIN;
}

export interface FormatOptions {
  /** Also show each scope's manifest and link. */
  readonly verbose?: boolean;
}

const RANK: Record<Severity | "none", number> = { critical: 0, warning: 1, info: 2, none: 3 };

interface ScopeView {
  readonly name: string;
  readonly summary: ScopeSummary | undefined;
  readonly problems: readonly Problem[];
  readonly files: FileTally | undefined;
  readonly recipients: readonly HostRecipient[];
  readonly worst: Severity | "none";
}

export function formatStatus(doc: StatusDocument, style: Style, opts: FormatOptions = {}): string {
  return formatSummary(summarize(doc), style, opts);
}

/** The report from the summary alone: what the agent's status socket sends first. */
export function formatSummary(doc: StatusSummary, style: Style, opts: FormatOptions = {}): string {
  const out: string[] = [];
  const partial = doc.partialView;
  if (partial !== undefined)
    out.push(
      style.severity(
        "warning",
        `Partial view: as uid ${partial.uid} the agent may not look at everything (${partial.unreadable} unreadable below); run it as root (sudo sops-agent status) or with CAP_DAC_READ_SEARCH to see everything.`,
      ),
      "",
    );
  for (const view of scopeViews(doc)) {
    out.push(scopeHeader(view, style));
    if (opts.verbose === true && view.summary !== undefined) {
      const s = view.summary;
      out.push(
        `  manifest ${t(s.manifest)}`,
        `  link     ${t(s.symlinkPath)}, generations in ${t(s.mountPoint)}`,
      );
    }
    // Line by line: spreading a long list into push() throws RangeError (~50k problems).
    for (const line of problemLines(view.problems, style)) out.push(line);
    const files = filesLine(view, style);
    if (files !== null) out.push(`  ${files}`);
    for (const r of view.recipients)
      out.push(`  ${style.dim("recipient")} ${t(r.recipient)} ${style.dim(`from ${t(r.source)}`)}`);
    out.push("");
  }
  for (const f of doc.incomplete)
    out.push(
      style.severity(
        "critical",
        `INCOMPLETE: the ${t(f.check)} check failed (${t(f.error)}); its problems are not listed`,
      ),
    );
  out.push(verdict(doc, style));
  return `${out.join("\n")}\n`;
}

/** Scopes (and "host") ordered by their worst problem, broken first; equal ones keep the document's order. */
function scopeViews(doc: StatusSummary): ScopeView[] {
  const names = [
    ...new Set<string>([...doc.problems.map((p) => p.scope), ...doc.scopes.map((s) => s.scope)]),
  ];
  const byScope = <T extends { readonly scope: string }>(items: readonly T[]) => {
    const m = new Map<string, T[]>();
    for (const item of items) {
      const list = m.get(item.scope);
      if (list === undefined) m.set(item.scope, [item]);
      else list.push(item);
    }
    return m;
  };
  const problems = byScope(doc.problems);
  const files = new Map(doc.files.map((f) => [f.scope as string, f]));
  const recipients = byScope(doc.recipients);
  const views = names.map((name): ScopeView => {
    const ps = [...(problems.get(name) ?? [])].sort((a, b) => RANK[a.severity] - RANK[b.severity]);
    return {
      name,
      summary: doc.scopes.find((s) => s.scope === name),
      problems: ps,
      files: files.get(name),
      recipients: recipients.get(name) ?? [],
      worst: ps[0]?.severity ?? "none",
    };
  });
  return views.sort((a, b) => RANK[a.worst] - RANK[b.worst]);
}

/** `✗ system · generation 3 · 8 secrets, 1 template · 1 critical, 2 warnings` */
function scopeHeader(v: ScopeView, style: Style): string {
  const mark =
    v.worst === "critical"
      ? style.severity("critical", "✗")
      : v.worst === "warning"
        ? style.severity("warning", "!")
        : style.ok("✓");
  const parts = [`${mark} ${style.bold(t(v.name))}`];
  if (v.summary !== undefined) {
    const s = v.summary;
    parts.push(s.generation === null ? "no generation" : `generation ${s.generation}`);
    parts.push(filesPhrase(s.secrets, s.templates, ", "));
  }
  const counts = severityCounts(v.problems);
  if (counts !== "") parts.push(counts);
  return parts.join(" · ");
}

/**
 * One line per problem (severity, code, subject, and the path when it says more than the subject), then
 * its message — what is wrong and how to fix it — in normal weight.
 */
function problemLines(problems: readonly Problem[], style: Style): string[] {
  if (problems.length === 0) return [];
  const width = (f: (p: Problem) => string) => problems.reduce((w, p) => Math.max(w, f(p).length), 0);
  const sev = width((p) => p.severity);
  const code = width((p) => p.code);
  const lines: string[] = [];
  for (const p of problems) {
    const where = p.path === p.subject || p.path === "" ? t(p.subject) : `${t(p.subject)}  ${t(p.path)}`;
    lines.push(`  ${style.severity(p.severity, p.severity.padEnd(sev))}  ${p.code.padEnd(code)}  ${where}`);
    lines.push(`  ${" ".repeat(sev + 2)}${t(p.message)}`);
  }
  return lines;
}

/** How the declared files fare. "All ok" only when the scope has no problem at all. */
function filesLine(v: ScopeView, style: Style): string | null {
  const f = v.files;
  const total = f === undefined ? 0 : f.secrets + f.templates;
  if (f === undefined || total === 0) return null;
  const what = filesPhrase(f.secrets, f.templates, " and ");
  if (f.notOk > 0) {
    const of = f.templates > 0 ? `${total} secrets and templates` : what;
    return style.severity("critical", `${f.notOk} of ${of} not ok`);
  }
  if (v.problems.length === 0) return style.ok(total === 1 ? `${what} ok` : `all ${what} ok`);
  return `${what} in place; see the ${v.problems.length === 1 ? "problem" : "problems"} above`;
}

/** `4 secrets and 1 template`, `1 secret`: a zero count is left out unless both are zero. */
function filesPhrase(secrets: number, templates: number, and: string): string {
  if (templates === 0 && secrets > 0) return count(secrets, "secret");
  if (secrets === 0 && templates > 0) return count(templates, "template");
  return `${count(secrets, "secret")}${and}${count(templates, "template")}`;
}

function verdict(doc: StatusSummary, style: Style): string {
  const counts = severityCounts(doc.problems);
  if (!doc.healthy)
    return style.severity(
      "critical",
      `NOT healthy${doc.incomplete.length > 0 ? " (incomplete)" : ""}: ${counts === "" ? "no problem listed" : counts}`,
    );
  let secrets = 0;
  let templates = 0;
  for (const f of doc.files) {
    secrets += f.secrets;
    templates += f.templates;
  }
  const files = `${count(doc.scopes.length, "scope")}, ${filesPhrase(secrets, templates, " and ")}`;
  return style.ok(counts === "" ? `healthy: ${files}, no problems` : `healthy (${counts}): ${files}`);
}

/** `1 critical, 2 warnings, 1 info`, leaving out what is zero. */
function severityCounts(problems: readonly Problem[]): string {
  const n: Record<Severity, number> = { critical: 0, warning: 0, info: 0 };
  for (const p of problems) n[p.severity]++;
  const parts: string[] = [];
  if (n.critical > 0) parts.push(`${n.critical} critical`);
  if (n.warning > 0) parts.push(count(n.warning, "warning"));
  if (n.info > 0) parts.push(`${n.info} info`);
  return parts.join(", ");
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
