#!/usr/bin/env node
// No V8 flags: nixpkgs' wrapper runs `node dist/cli.js` and drops any, so the program is measured and
// tuned on Node's defaults (BENCHMARKS.md).
// The only place that touches process.exit: every command returns its exit code.
//
// Commands are imported when they run: `--version` and `--help` load nothing else, and `status` never
// loads the daemon's modules (pino, prom-client, chokidar, node-cron).

import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { isParseArgsError } from "./cli/args.js";
import { EXIT } from "./cli/exit.js";
import { type CliIo, processIo, UsageError } from "./cli/io.js";
import { VERSION, versionText } from "./version.js";

export const HELP = `sops-agent ${VERSION} — watches the health of decrypted sops-nix secrets

Usage:
  sops-agent status [--root DIR] [--config FILE] [--manifest PATH]... [--json] [--wait DURATION] [--verbose]
  sops-agent run [--config FILE] [--root DIR] [--web.listen-address HOST:PORT] [--manifest PATH]...
  sops-agent recipient [--root DIR] [FILE...]
  sops-agent preflight [--root DIR] [--json] (SYSTEM | --manifest PATH...)
  sops-agent --help | --version

Commands:
  status      check every declared secret once and report
  run         the long-running agent: watches, re-checks, serves Prometheus metrics
  recipient   print the age recipient of ssh-ed25519 keys or age identity files (or of this host)
  preflight   before a switch: would a built generation's secrets install here? exit 0 safe, 1 broken

Exit status (every command):
  0   healthy / done
  1   status: something critical on the host; preflight: the generation would break;
      recipient: no age recipient; run: failed at run time
  2   usage error: a bad flag or value, a --manifest that is absent or not JSON
  69  run: the listen address cannot be bound
  70  internal error (a bug: please report it)
  78  run: the config or web config file is invalid

Run 'sops-agent COMMAND --help' for a command's options.
`;

type Command = (args: string[], io: CliIo) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  status: async () => (await import("./cli/status.js")).statusCommand,
  run: async () => (await import("./cli/run.js")).runCommand,
  recipient: async () => (await import("./cli/recipient.js")).recipientCommand,
  preflight: async () => (await import("./cli/preflight.js")).preflightCommand,
};

export async function main(argv: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "--help" || command === "-h" || command === "help") {
    io.stdout(HELP);
    return EXIT.ok;
  }
  if (command === undefined) {
    io.stderr(`sops-agent: a command is needed; see 'sops-agent --help'\n`);
    return EXIT.usage;
  }
  if (command === "--version" || command === "-V" || command === "version") {
    io.stdout(versionText());
    return EXIT.ok;
  }
  const load = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (load === undefined) {
    io.stderr(`sops-agent: unknown command "${command}"; see 'sops-agent --help'\n`);
    return EXIT.usage;
  }
  try {
    return await (await load())(rest, io);
  } catch (err) {
    if (err instanceof UsageError || isParseArgsError(err)) {
      io.stderr(`sops-agent ${command}: ${err.message}; see 'sops-agent ${command} --help'\n`);
      return EXIT.usage;
    }
    io.stderr(`sops-agent ${command}: internal error: ${err instanceof Error ? err.message : "unknown"}\n`);
    return EXIT.internal;
  }
}

/** True when this file is the program being run, also through npm's bin symlink. */
function isEntryPoint(): boolean {
  const argv1 = process.argv[1];
  if (argv1 === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(argv1)).href;
  } catch {
    return false;
  }
}

/**
 * Resolves once everything written to the stream has been handed to the OS. To a pipe, Node writes
 * asynchronously: exiting right after `write` cuts the output at the pipe's buffer (64 KiB).
 * A reader that went away (EPIPE: `status | head -1`) is not an error of ours.
 */
function drained(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    stream.on("error", () => resolve());
    stream.write("", () => resolve());
  });
}

if (isEntryPoint()) {
  // A reader that stops reading (`| head`) must not turn into an uncaught EPIPE: the output is then moot.
  for (const stream of [process.stdout, process.stderr]) stream.on("error", () => {});
  const code = await main(process.argv.slice(2), processIo());
  process.exitCode = code;
  await Promise.all([drained(process.stdout), drained(process.stderr)]);
  // Nothing of a finished command may keep the process alive (a stray timer or handle).
  process.exit(code);
}
