// The human view of a status document: by scope, problems first with their hint, in a table.

import type { Problem, Severity } from "../core/problems.js";
import type { ScopeSummary, StatusDocument } from "../core/report.js";

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

/** Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org). */
export function styleFor(isTTY: boolean, env: NodeJS.ProcessEnv): Style {
  return isTTY && (env.NO_COLOR === undefined || env.NO_COLOR === "") ? COLOUR : PLAIN;
}

export function formatStatus(doc: StatusDocument, style: Style): string {
  const out: string[] = [];
  const scopeNames = [
    ...new Set([...doc.scopes.map((s) => s.scope as string), ...doc.problems.map((p) => p.scope as string)]),
  ];
  for (const name of scopeNames) {
    const summary = doc.scopes.find((s) => s.scope === name);
    const problems = doc.problems.filter((p) => p.scope === name);
    out.push(scopeHeader(name, summary, problems, style));
    // Line by line: spreading a long table into push() throws RangeError (~50k problems).
    if (problems.length > 0) for (const line of problemTable(problems, style)) out.push(line);
    const secrets = doc.secrets.filter((s) => s.scope === name);
    if (secrets.length > 0) {
      const bad = secrets.filter((s) => !s.ok).length;
      out.push(
        `  ${bad === 0 ? style.ok(`all ${secrets.length} secrets and templates ok`) : style.severity("critical", `${bad} of ${secrets.length} secrets and templates not ok`)}`,
      );
    }
    const recipients = doc.recipients.filter((r) => r.scope === name);
    for (const r of recipients)
      out.push(`  ${style.dim("recipient")} ${r.recipient} ${style.dim(`(${r.source})`)}`);
    out.push("");
  }
  const counts = countBySeverity(doc.problems);
  for (const f of doc.incomplete)
    out.push(
      style.severity(
        "critical",
        `INCOMPLETE: the ${f.check} check failed (${f.error}); its problems are not listed`,
      ),
    );
  out.push(
    doc.healthy
      ? style.ok(`healthy: ${counts.warning} warning(s), ${counts.info} info`)
      : style.severity(
          "critical",
          `NOT healthy${doc.incomplete.length > 0 ? " (incomplete)" : ""}: ${counts.critical} critical, ${counts.warning} warning(s), ${counts.info} info`,
        ),
  );
  return `${out.join("\n")}\n`;
}

function scopeHeader(
  name: string,
  s: ScopeSummary | undefined,
  problems: readonly Problem[],
  style: Style,
): string {
  if (s === undefined) return style.bold(name);
  const generation = s.generation === null ? "no generation" : `generation ${s.generation}`;
  const mark = problems.some((p) => p.severity === "critical")
    ? style.severity("critical", "✗")
    : style.ok("✓");
  return `${mark} ${style.bold(name)}  ${s.symlinkPath} → ${generation}  ${style.dim(`${s.secrets} secrets, ${s.templates} templates · ${s.manifest}`)}`;
}

function problemTable(problems: readonly Problem[], style: Style): string[] {
  const rows = problems.map((p) => [p.severity, p.code, p.subject, p.path] as const);
  const widths = [0, 1, 2].map((i) =>
    rows.reduce((w, r) => Math.max(w, r[i]?.length ?? 0), ["SEVERITY", "CODE", "SUBJECT"][i]?.length ?? 0),
  );
  const pad = (s: string, i: number) => s.padEnd(widths[i] ?? 0);
  const lines = [`  ${style.dim(`${pad("SEVERITY", 0)}  ${pad("CODE", 1)}  ${pad("SUBJECT", 2)}  PATH`)}`];
  for (const [i, p] of problems.entries()) {
    const r = rows[i];
    if (r === undefined) continue;
    lines.push(`  ${style.severity(p.severity, pad(r[0], 0))}  ${pad(r[1], 1)}  ${pad(r[2], 2)}  ${r[3]}`);
    lines.push(`  ${" ".repeat((widths[0] ?? 0) + 2)}${style.dim(`↳ ${p.message}`)}`);
  }
  return lines;
}

function countBySeverity(problems: readonly Problem[]): Record<Severity, number> {
  const counts: Record<Severity, number> = { critical: 0, warning: 0, info: 0 };
  for (const p of problems) counts[p.severity]++;
  return counts;
}
