// `sops-agent status`: one check (or re-checks until healthy with --wait), a report and an exit code.

import { parseArgs } from "node:util";
import type { CheckRun } from "../core/report.js";
import { checkHost } from "../host/check-host.js";
import { ManifestCache } from "../host/load-scopes.js";
import { SopsFileCache } from "../sops/reader.js";
import { formatStatus, styleFor } from "./format.js";
import { type CliIo, UsageError } from "./io.js";

export const STATUS_HELP = `Usage: sops-agent status [--root DIR] [--manifest PATH]... [--json] [--wait DURATION]

Checks every secret and template the host's sops-nix manifests declare, once, and reports.

Options:
  --root DIR          read the host as if DIR were / (a mounted image, a test tree)
  --manifest PATH     check this manifest instead of discovering them (repeatable)
  --json              print one JSON document instead of the table
  --wait DURATION     re-check until healthy or DURATION (e.g. 30s, 2m) has passed
  -h, --help          show this help

Exit status: 0 when nothing is critical, 1 when anything is, 2 for a usage or configuration error.
`;

export async function statusCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      root: { type: "string" },
      manifest: { type: "string", multiple: true },
      json: { type: "boolean", default: false },
      wait: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    io.stdout(STATUS_HELP);
    return 0;
  }
  const waitMs = values.wait === undefined ? 0 : parseDuration(values.wait);
  const options = {
    root: values.root ?? "/",
    manifests: values.manifest ?? null,
    env: io.env,
    sopsCache: new SopsFileCache(),
    manifestCache: new ManifestCache(),
  };
  const deadline = Date.now() + waitMs;
  let run: CheckRun = checkHost(options);
  while (!run.document.healthy && Date.now() < deadline) {
    await sleep(Math.min(1000, Math.max(0, deadline - Date.now())));
    run = checkHost(options);
  }
  io.stdout(
    values.json
      ? `${JSON.stringify(run.document, null, 2)}\n`
      : formatStatus(run.document, styleFor(io.isTTY, io.env)),
  );
  return run.document.healthy ? 0 : 1;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `30s`, `2m`, `500ms`, `1h`, or a bare number of seconds. */
export function parseDuration(text: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (m === null) throw new UsageError(`--wait: "${text}" is not a duration (examples: 30s, 2m, 500ms)`);
  return Number(m[1]) * (UNITS[m[2] ?? "s"] ?? 1000);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
