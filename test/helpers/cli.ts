// Runs the CLI in-process with captured output, the way a user's terminal or a pipe would see it.

import type { CliIo } from "../../src/cli/io.js";
import { main } from "../../src/cli.js";

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runCli(
  args: string[],
  opts: { isTTY?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    stdout: (s) => {
      stdout += s;
    },
    stderr: (s) => {
      stderr += s;
    },
    env: opts.env ?? {},
    cwd: process.cwd(),
    isTTY: opts.isTTY ?? false,
  };
  const code = await main(args, io);
  return { code, stdout, stderr };
}
