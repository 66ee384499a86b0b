// Starts the real agent (`node dist/cli.js run`) on a test host and scrapes it, for the end-to-end tests
// and the benchmark. The build is made once, only when dist/cli.js is missing.

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const PROJECT = fileURLToPath(new URL("../..", import.meta.url));
export const CLI = `${PROJECT}dist/cli.js`;

export function ensureBuilt(): void {
  if (!existsSync(CLI)) execFileSync("npm", ["run", "build"], { cwd: PROJECT, stdio: "inherit" });
}

export interface RunningAgent {
  readonly child: ChildProcess;
  readonly base: string;
  /** Every log line so far, parsed. */
  readonly logs: Record<string, unknown>[];
  /** Every stdout line so far as written, JSON or not. */
  readonly lines: string[];
  /** Everything written to stderr so far. */
  stderr(): string;
  metrics(): Promise<string>;
  /** Sends SIGTERM; resolves with the exit code once stdout is drained (so `logs` holds the last line). */
  stop(): Promise<{ code: number | null }>;
}

/** Spawns the agent on port 0 and waits until it says where it listens. */
export async function startAgent(
  root: string,
  extra: string[] = [],
  /** A command the agent runs under, such as `strace -f -o LOG`. */
  wrapper: readonly string[] = [],
): Promise<RunningAgent> {
  const argv = [process.execPath, CLI, "run", "--root", root, "--listen", "127.0.0.1:0", ...extra];
  const command = [...wrapper, ...argv];
  const child = spawn(command[0] as string, command.slice(1), {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, HOME: "/nonexistent" },
  });
  const logs: Record<string, unknown>[] = [];
  const lines: string[] = [];
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const base = await new Promise<string>((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error(`agent did not start: ${stderr}`)), 15_000);
    child.on("exit", (code) => reject(new Error(`agent exited with ${code}: ${stderr}`)));
    child.stdout?.on("data", (d: Buffer) => {
      buf += d.toString();
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf("\n");
        lines.push(line);
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          if (entry.event === "listening" && typeof entry.address === "string") {
            clearTimeout(timer);
            resolve(`http://${entry.address}`);
          }
        } catch {
          // not a JSON line
        }
      }
    });
  });
  return {
    child,
    base,
    logs,
    lines,
    stderr: () => stderr,
    metrics: async () => (await fetch(`${base}/metrics`)).text(),
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) resolve({ code: child.exitCode });
        // "close", not "exit": it comes after the stdio streams have ended.
        child.once("close", (code) => resolve({ code }));
        child.kill("SIGTERM");
      }),
  };
}

/** Polls until `pred` holds (or throws after `timeoutMs`). */
export async function waitFor<T>(
  what: string,
  f: () => Promise<T>,
  pred: (v: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < until) {
    last = await f();
    if (pred(last)) return last;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}; last: ${String(last).slice(0, 2000)}`);
}

/** Builds if needed, starts the agent and waits until /readyz says the first check is published and watched. */
export async function startReadyAgent(
  root: string,
  extra: string[] = [],
  wrapper: readonly string[] = [],
): Promise<RunningAgent> {
  ensureBuilt();
  const agent = await startAgent(root, extra, wrapper);
  await waitFor(
    "readiness",
    () => fetch(`${agent.base}/readyz`).then((r) => r.status),
    (s) => s === 200,
  );
  return agent;
}
