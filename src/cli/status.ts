// `sops-agent status`: one check (or re-checks until healthy with --wait), a report and an exit code.
// The modules that check the host are imported after the flags are read: a usage error or `--help`
// costs nothing more.

import { existsSync } from "node:fs";
import * as path from "node:path";
import type { ConfigLayer } from "../agent/config.js";
import { defaultConfigPath } from "../core/config-path.js";
import type { CheckRun, StatusDocument } from "../core/report.js";
import { defaultStatusSocket } from "../core/status-socket-path.js";
import { type AgentReply, askAgent } from "./agent-socket.js";
import { durationFlag, parseFlags } from "./args.js";
import { EXIT } from "./exit.js";
import { type CliIo, UsageError } from "./io.js";
import { rootDirProblem } from "./root-dir.js";

export const STATUS_HELP = `Usage: sops-agent status [options]

Checks every secret and template the host's sops-nix manifests declare, once, and reports: problems
first, each with how to fix it.

Options:
  --root DIR          read the host as if DIR were / (a mounted image, a test tree)
  --config FILE       the agent's config (extra_key_paths, root, manifests), so status checks what the
                      agent checks (default: the agent's default config when it exists and --root is not given)
  --manifest PATH     check this manifest instead of discovering them (repeatable)
  --json              print one JSON document (the agent's /status) instead of the report
  --wait DURATION     re-check every second until healthy or DURATION (30s, 1m30s) has passed
  -v, --verbose       also show each scope's manifest and link
  --allow-no-manifests  finding no sops-nix manifest is info, not critical (a host without sops-nix)
  --fresh             check here even when the running agent could answer
  --status-socket PATH  ask the agent listening there (default /run/sops-agent/status.sock)
  -h, --help          show this help

Exit status:
  0   nothing critical
  1   something critical on the host
  2   usage error: a bad flag or value, a --manifest that is absent or not JSON, an invalid --config
  70  internal error
`;

export async function statusCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseFlags({
    args,
    options: {
      root: { type: "string" },
      config: { type: "string" },
      manifest: { type: "string", multiple: true },
      json: { type: "boolean", default: false },
      wait: { type: "string" },
      verbose: { type: "boolean", short: "v", default: false },
      fresh: { type: "boolean", default: false },
      "status-socket": { type: "string" },
      "allow-no-manifests": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    io.stdout(STATUS_HELP);
    return EXIT.ok;
  }
  const waitMs = values.wait === undefined ? 0 : durationFlag("--wait", values.wait);
  const settings = await statusSettings(values, io);
  // Nothing checked is not healthy: a root that is not a directory would find no manifest at all.
  const rootProblem = rootDirProblem(settings.root);
  if (rootProblem !== null) throw new UsageError(`--root: ${rootProblem}`);
  const answered = await fromAgent(values, settings, io);
  if (answered !== null) {
    if (answered.document !== null) await report(answered.document, values, io);
    else {
      const { formatSummary, styleFor } = await import("./format.js");
      io.stdout(formatSummary(answered.summary, styleFor(io.isTTY, io.env), { verbose: values.verbose }));
    }
    return answered.summary.healthy ? EXIT.ok : EXIT.critical;
  }

  const [{ checkHost }, { ManifestCache }, { SopsFileCache }] = await Promise.all([
    import("../host/check-host.js"),
    import("../host/load-scopes.js"),
    import("../sops/reader.js"),
  ]);
  const options = {
    ...settings,
    env: io.env,
    sopsCache: new SopsFileCache(),
    manifestCache: new ManifestCache(),
  };
  let run: CheckRun = checkHost(options);
  if (values.manifest !== undefined) await refuseBadManifests(run, values.manifest, settings.root, io.cwd);
  if (!run.document.healthy && waitMs > 0)
    run = await waitUntilHealthy(run, waitMs, () => checkHost(options), io);

  await report(run.document, values, io);
  return run.document.healthy ? EXIT.ok : EXIT.critical;
}

async function report(
  document: StatusDocument,
  values: { json: boolean; verbose: boolean },
  io: CliIo,
): Promise<void> {
  if (values.json) io.stdout(`${JSON.stringify(document, null, 2)}\n`);
  else {
    const { formatStatus, styleFor } = await import("./format.js");
    io.stdout(formatStatus(document, styleFor(io.isTTY, io.env), { verbose: values.verbose }));
  }
}

/**
 * The running agent's last check, when it can stand for a check here: not with --fresh, --wait (which
 * re-checks) or --manifest, nor --root unless --status-socket names the agent to ask; and only from an agent
 * checking the same root and manifests. Says on stderr when it answered, or why it could not.
 */
async function fromAgent(
  values: {
    root?: string;
    manifest?: string[];
    wait?: string;
    fresh?: boolean;
    json?: boolean;
    "status-socket"?: string;
  },
  settings: StatusSettings,
  io: CliIo,
): Promise<AgentReply | null> {
  const named = values["status-socket"];
  if (values.fresh === true || values.wait !== undefined || values.manifest !== undefined) return null;
  if (values.root !== undefined && named === undefined) return null;
  const socket = named ?? defaultStatusSocket({}, process.getuid?.() ?? 0) ?? defaultStatusSocket(io.env, 1);
  if (socket === null || socket === "") return null;
  // The human report needs only the summary line; --json prints the whole document.
  const asked = await askAgent(socket, {
    root: settings.root,
    manifests: settings.manifests,
    document: values.json === true,
  });
  if (asked.kind === "no-agent") return null;
  if (asked.kind === "failed") {
    io.stderr(`sops-agent status: did not use the agent at ${socket} (${asked.reason}); checked here\n`);
    return null;
  }
  const { agent } = asked.answer;
  const age = Math.max(0, Math.round(Date.now() / 1000 - agent.checkedAt));
  io.stderr(
    `sops-agent status: answered by the running agent (pid ${agent.pid}, checked ${age}s ago); --fresh checks here\n`,
  );
  return asked.answer;
}

interface StatusSettings {
  readonly root: string;
  readonly manifests: readonly string[] | null;
  readonly extraKeyPaths: readonly string[];
  readonly allowNoManifests: boolean;
}

/**
 * What to check, as the agent would: flags, then the agent's config file, then the defaults. The config
 * file is `--config`, else the agent's default path when it exists — but not with `--root`: an offline
 * image is not the host the local agent's config describes.
 */
async function statusSettings(
  values: {
    root?: string | undefined;
    config?: string | undefined;
    manifest?: string[] | undefined;
    "allow-no-manifests"?: boolean | undefined;
  },
  io: CliIo,
): Promise<StatusSettings> {
  const file =
    values.config ??
    (values.root === undefined ? defaultConfigPath(io.env, process.getuid?.() ?? 0, existsSync) : null);
  let layer: ConfigLayer = {};
  if (file !== null) {
    // The config parser (and with it the yaml package) is loaded only for a file to read.
    const config = await import("../agent/config.js");
    try {
      // status schedules nothing: the cron expression is the daemon's to check (`run --check-config`).
      layer = config.loadConfigFile(path.resolve(io.cwd, file), { schedule: () => true });
    } catch (err) {
      if (err instanceof config.ConfigError) throw new UsageError(err.message);
      throw err;
    }
  }
  return {
    root: values.root ?? layer.root ?? "/",
    manifests: values.manifest ?? layer.manifests ?? null,
    extraKeyPaths: layer.extraKeyPaths ?? [],
    allowNoManifests: values["allow-no-manifests"] === true || layer.allowNoManifests === true,
  };
}

/**
 * A `--manifest` that is absent or not JSON is a mistake on the command line, not a problem of the host:
 * exit 2 with the file, line and column. Looked at only when the check found a manifest problem.
 */
async function refuseBadManifests(
  run: CheckRun,
  given: readonly string[],
  root: string,
  cwd: string,
): Promise<void> {
  const bad = run.document.problems.some(
    (p) => p.code === "manifest_missing" || p.code === "manifest_invalid",
  );
  if (!bad) return;
  const [{ RootFs }, { jsonSyntaxError }, { escapeTerminal }] = await Promise.all([
    import("../host/rootfs.js"),
    import("../core/json-syntax.js"),
    import("./terminal.js"),
  ]);
  for (const manifest of given) {
    // As discovery locates a --manifest: an absolute path is a host path under --root, a relative one is
    // relative to the working directory.
    const absolute = path.posix.isAbsolute(manifest);
    const fs = new RootFs(absolute ? root : "/");
    const text = fs.readText(absolute ? manifest : path.resolve(cwd, manifest), 64 << 20);
    const name = escapeTerminal(manifest);
    if (typeof text !== "string") {
      const why = text.error === "ENOENT" ? "no such file" : `cannot be read (${text.error})`;
      throw new UsageError(`--manifest ${name}: ${why}`);
    }
    const e = jsonSyntaxError(text);
    if (e !== null) throw new UsageError(`--manifest ${name}:${e.line}:${e.column}: not JSON: ${e.message}`);
  }
}

/**
 * Re-checks every second until healthy or the time is up. On a terminal one line says so and is updated in
 * place; in a pipe nothing is written until the final report.
 */
async function waitUntilHealthy(
  first: CheckRun,
  waitMs: number,
  check: () => CheckRun,
  io: CliIo,
): Promise<CheckRun> {
  const { formatDuration } = await import("../core/duration.js");
  const started = Date.now();
  const deadline = started + waitMs;
  let run = first;
  let shown = 0;
  const show = (text: string) => {
    if (!io.isTTY) return;
    // \r and spaces, not an erase sequence: also right on a dumb terminal.
    io.stdout(`\r${text.padEnd(shown)}`);
    shown = text.length;
  };
  while (!run.document.healthy && Date.now() < deadline) {
    const critical = run.document.problems.filter((p) => p.severity === "critical").length;
    show(
      `${critical} critical, re-checking… ${formatDuration(Date.now() - started)}/${formatDuration(waitMs)}`,
    );
    await sleep(Math.min(1000, Math.max(0, deadline - Date.now())));
    run = check();
  }
  if (shown > 0) io.stdout(`\r${" ".repeat(shown)}\r`);
  return run;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
