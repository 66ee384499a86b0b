#!/usr/bin/env node
// No V8 flags: nixpkgs' wrapper runs `node dist/cli.js` and drops any, so the program is measured and
// tuned on Node's defaults (BENCHMARKS.md).
// The only place that touches process.exit: every command returns its exit code.

import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { type CliIo, processIo, UsageError } from "./cli/io.js";
import { preflightCommand } from "./cli/preflight.js";
import { recipientCommand } from "./cli/recipient.js";
import { runCommand } from "./cli/run.js";
import { statusCommand } from "./cli/status.js";
import { VERSION } from "./version.js";

export const HELP = `sops-agent ${VERSION} — watches the health of decrypted sops-nix secrets

Usage:
  sops-agent status [--root DIR] [--manifest PATH]... [--json] [--wait DURATION]
  sops-agent run [--config FILE] [--root DIR] [--listen HOST:PORT] [--manifest PATH]...
  sops-agent recipient [--root DIR] [FILE...]
  sops-agent preflight [--root DIR] [--json] (SYSTEM | --manifest PATH...)
  sops-agent --help | --version

Commands:
  status      check every declared secret once; exit 0 healthy, 1 critical, 2 usage error
  run         the long-running agent: watches, re-checks, serves Prometheus metrics
  recipient   print the age recipient of ssh-ed25519 keys or age identity files (or of this host)
  preflight   before a switch: would a built generation's secrets install here? exit 0 safe, 1 broken

Run 'sops-agent COMMAND --help' for a command's options.
`;

const COMMANDS: Record<string, (args: string[], io: CliIo) => Promise<number>> = {
  status: statusCommand,
  run: runCommand,
  recipient: recipientCommand,
  preflight: preflightCommand,
};

export async function main(argv: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    io.stdout(HELP);
    return command === undefined ? 2 : 0;
  }
  if (command === "--version" || command === "-V") {
    io.stdout(`${VERSION}\n`);
    return 0;
  }
  const handler = COMMANDS[command];
  if (handler === undefined) {
    io.stderr(`sops-agent: unknown command "${command}"\n\n${HELP}`);
    return 2;
  }
  try {
    return await handler(rest, io);
  } catch (err) {
    // parseArgs reports bad flags with a code; UsageError is ours. Both are usage errors: exit 2.
    if (err instanceof UsageError || isParseArgsError(err)) {
      io.stderr(`sops-agent ${command}: ${(err as Error).message}\n`);
      return 2;
    }
    io.stderr(`sops-agent ${command}: internal error: ${err instanceof Error ? err.message : "unknown"}\n`);
    return 70;
  }
}

function isParseArgsError(err: unknown): boolean {
  return (
    err instanceof Error &&
    "code" in err &&
    typeof err.code === "string" &&
    err.code.startsWith("ERR_PARSE_ARGS")
  );
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

if (isEntryPoint()) {
  const code = await main(process.argv.slice(2), processIo());
  process.exitCode = code;
  // `run` keeps the event loop alive itself; every other command is done once it returns.
  if (process.argv[2] !== "run") process.exit(code);
}
