// `sops-agent status` asking the running agent over its local socket (src/agent/status-socket.ts). Loads
// nothing of the checking code, so an answered `status` costs little more than Node's start-up. Anything
// unexpected (no socket, a socket others can write to, no answer in time, a malformed or oversized
// answer, an agent looking at another root) is a reason to check here instead, never an error.

import * as fs from "node:fs";
import * as net from "node:net";
import type { AgentAnswer } from "../agent/status-socket.js";

export type AskResult =
  | { readonly kind: "answered"; readonly answer: AgentAnswer }
  /** No agent socket there: the usual case on a host without the agent. */
  | { readonly kind: "no-agent" }
  | { readonly kind: "failed"; readonly reason: string };

/** A status document at 10,000 secrets is ~3 MB; far above that is not an agent talking. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;
const TIMEOUT_MS = 2000;

export interface AskOptions {
  /** The root and manifests the caller would check: the agent's must be the same. */
  readonly root: string;
  readonly manifests: readonly string[] | null;
  readonly timeoutMs?: number;
}

export async function askAgent(socketPath: string, opts: AskOptions): Promise<AskResult> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch {
    return { kind: "no-agent" };
  }
  if (!st.isSocket()) return { kind: "failed", reason: `${socketPath} is not a socket` };
  // A socket anyone may write to could be anyone's: only one the agent's user (or root) controls is asked.
  if ((st.mode & 0o002) !== 0) return { kind: "failed", reason: `${socketPath} is writable by every user` };
  let text: string;
  try {
    text = await readAll(socketPath, opts.timeoutMs ?? TIMEOUT_MS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // A socket file without a listener: the agent stopped without removing it.
    if (code === "ECONNREFUSED" || code === "ENOENT") return { kind: "no-agent" };
    return { kind: "failed", reason: err instanceof Error ? err.message : "unknown error" };
  }
  if (text === "") return { kind: "failed", reason: "the agent has not finished its first check" };
  const answer = parseAnswer(text);
  if (answer === null) return { kind: "failed", reason: "the agent's answer is not a status document" };
  if (answer.agent.root !== opts.root)
    return { kind: "failed", reason: `the agent checks root ${answer.agent.root}, not ${opts.root}` };
  if (JSON.stringify(answer.agent.manifests) !== JSON.stringify(opts.manifests))
    return { kind: "failed", reason: "the agent checks other manifests" };
  return { kind: "answered", answer };
}

function readAll(socketPath: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const socket = net.createConnection({ path: socketPath });
    const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_ANSWER_BYTES) socket.destroy(new Error("the answer is too large"));
      else chunks.push(c);
    });
    socket.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on("end", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks, size).toString("utf8"));
    });
  });
}

/** The answer when it has the shape the agent sends, else null. Only what `status` relies on is checked. */
export function parseAnswer(text: string): AgentAnswer | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObject(v) || !isObject(v.agent) || !isObject(v.document)) return null;
  const { agent, document } = v;
  const manifests = agent.manifests;
  if (
    typeof agent.pid !== "number" ||
    typeof agent.version !== "string" ||
    typeof agent.root !== "string" ||
    typeof agent.checkedAt !== "number" ||
    !(manifests === null || (Array.isArray(manifests) && manifests.every((m) => typeof m === "string"))) ||
    typeof document.healthy !== "boolean" ||
    !Array.isArray(document.scopes) ||
    !Array.isArray(document.problems) ||
    !Array.isArray(document.secrets) ||
    !Array.isArray(document.recipients)
  )
    return null;
  return v as unknown as AgentAnswer;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
