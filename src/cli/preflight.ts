// `sops-agent preflight`: before a switch, would the new generation's secrets install on this host?
// Exit 0 safe, 1 the switch would leave secrets broken, 2 usage. The report never holds a secret's value:
// only names, paths, codes and recipients (public keys).

import { parseArgs } from "node:util";
import { changeSummary, type DeclarationChange } from "../core/declaration-diff.js";
import type { Problem } from "../core/problems.js";
import { type PreflightReport, type PreflightScope, preflight } from "../host/preflight.js";
import type { CliIo } from "./io.js";
import { escapeTerminal } from "./terminal.js";

export const PREFLIGHT_HELP = `Usage: sops-agent preflight [--root DIR] [--json] (SYSTEM | --manifest PATH...)

Before a switch: predicts whether the secrets of a built generation would install on this host, and
prints what the switch changes in the declared secrets (never a value).

SYSTEM is a built NixOS or nix-darwin toplevel (./result, /nix/var/nix/profiles/system-42-link, a store
path) or a home-manager generation. Its manifests are found the way \`status\` finds the running ones,
but inside SYSTEM. Checked: the sops files and keys, that this host is a recipient, that the keys will
exist at boot, that owners and groups exist in the new generation's users, template placeholders.

Options:
  --root DIR            read the host as if DIR were / (an image, a test tree); SYSTEM is a path in it
  --manifest PATH       check these manifests instead of a generation (repeatable)
  --json                print one JSON document instead of the text report
  --override-hint TEXT  a line printed under a refusal, saying how to skip the check once (the modules set it)
  -h, --help            show this help

Exit status: 0 safe, 1 the switch would leave secrets broken (a critical problem), 2 usage error.
`;

export async function preflightCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      root: { type: "string" },
      manifest: { type: "string", multiple: true },
      json: { type: "boolean", default: false },
      "override-hint": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: true,
  });
  if (values.help) {
    io.stdout(PREFLIGHT_HELP);
    return 0;
  }
  const manifests = values.manifest ?? [];
  if (positionals.length > 1 || (positionals.length === 1) === manifests.length > 0) {
    io.stderr(
      `sops-agent preflight: give one SYSTEM or --manifest PATH..., not both and not neither\n\n${PREFLIGHT_HELP}`,
    );
    return 2;
  }
  const outcome = preflight({
    root: values.root ?? "/",
    system: positionals[0] ?? null,
    manifests: manifests.length > 0 ? manifests : null,
    env: io.env,
    cwd: io.cwd,
  });
  if (!outcome.ok) {
    io.stderr(`sops-agent preflight: ${escapeTerminal(outcome.usage)}\n`);
    return 2;
  }
  const report = outcome.report;
  io.stdout(
    values.json
      ? `${JSON.stringify(report, null, 2)}\n`
      : formatPreflight(report, values["override-hint"] ?? null),
  );
  return report.safe ? 0 : 1;
}

/** The text report: the verdict first, then per scope what changes, then each problem with its fix. */
export function formatPreflight(report: PreflightReport, overrideHint: string | null): string {
  const lines: string[] = [];
  const critical = report.problems.filter((p) => p.severity === "critical");
  const gen = report.generation;
  const what = gen === null ? "the given manifests" : `${gen.kind} generation ${gen.path}`;
  lines.push(
    report.safe
      ? `sops-agent preflight: host ${report.host}: the secrets of ${what} would install.`
      : `sops-agent preflight: host ${report.host}: REFUSED — switching to ${what} would leave secrets broken (${critical.length} critical problem${critical.length === 1 ? "" : "s"}).`,
  );
  if (report.scopes.length === 0 && report.droppedScopes.length === 0) {
    lines.push("  no sops-nix manifest in it: nothing to check.");
  }
  // Line by line: spreading a list of 125k+ changes into push() throws RangeError.
  for (const scope of report.scopes) for (const line of scopeLines(scope)) lines.push(line);
  for (const scope of report.droppedScopes) {
    lines.push(`  scope ${scope.scope}: dropped by the new generation (was ${scope.manifest})`);
    for (const line of changeLines(scope.changes ?? [])) lines.push(line);
  }
  lines.push(`  owners and groups resolved in ${report.accounts}`);
  if (report.problems.length > 0) {
    lines.push("", "What would break, and how to fix it:");
    for (const p of report.problems) lines.push(...problemLines(p));
  }
  if (!report.safe && overrideHint !== null) lines.push("", `To switch anyway, once: ${overrideHint}`);
  return `${lines.map(escapeTerminal).join("\n")}\n`;
}

function scopeLines(scope: PreflightScope): string[] {
  const counts = `${scope.secrets} secret${scope.secrets === 1 ? "" : "s"}, ${scope.templates} template${scope.templates === 1 ? "" : "s"}`;
  const head = `  scope ${scope.scope}: ${counts} (${scope.manifest})`;
  if (scope.changes === null) return [head, "    new scope: the running system has none to compare with"];
  if (scope.changes.length === 0) return [head, "    no change to the declared secrets"];
  return [head, ...changeLines(scope.changes)];
}

const SIGN: Record<DeclarationChange["change"], string> = {
  added: "+",
  removed: "-",
  moved: "~",
  rekeyed: "~",
  access: "~",
  "template-source": "~",
};

function changeLines(changes: readonly DeclarationChange[]): string[] {
  return changes.map((c) => `    ${SIGN[c.change]} ${c.kind} ${c.name}: ${changeSummary(c)}`);
}

function problemLines(p: Problem): string[] {
  return [`  ${p.severity.toUpperCase()} ${p.code} [${p.scope}] ${p.subject}`, `    ${p.message}`];
}
