// `sops-agent status` asking the running agent over its local socket (src/agent/status-socket.ts). Loads
// nothing of the checking code, so an answered `status` costs little more than Node's start-up. Anything
// unexpected (no socket, a socket others can write to, no answer in time, a malformed or oversized
// answer, an agent looking at another root) is a reason to check here instead, never an error.

import * as fs from "node:fs";
import type { AgentAnswer, AgentSummaryLine } from "../agent/status-socket.js";
import type { StatusDocument } from "../core/report.js";
import type { StatusSummary } from "../core/status-summary.js";

export type AskResult =
  | { readonly kind: "answered"; readonly answer: AgentReply }
  /** No agent socket there: the usual case on a host without the agent. */
  | { readonly kind: "no-agent" }
  | { readonly kind: "failed"; readonly reason: string };

/** Who answered and the summary; the whole document only when it was asked for. */
export interface AgentReply {
  readonly agent: AgentAnswer["agent"];
  readonly summary: StatusSummary;
  readonly document: StatusDocument | null;
}

/** A status document at 10,000 secrets is ~1.6 MB; far above that is not an agent talking. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;
const TIMEOUT_MS = 2000;

export interface AskOptions {
  /** The root and manifests the caller would check: the agent's must be the same. */
  readonly root: string;
  readonly manifests: readonly string[] | null;
  /** Read the whole status document too (`--json`); else only the summary line is read. */
  readonly document: boolean;
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
    text = await readAnswer(socketPath, opts.timeoutMs ?? TIMEOUT_MS, opts.document);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // A socket file without a listener: the agent stopped without removing it.
    if (code === "ECONNREFUSED" || code === "ENOENT") return { kind: "no-agent" };
    return { kind: "failed", reason: err instanceof Error ? err.message : "unknown error" };
  }
  if (text === "") return { kind: "failed", reason: "the agent has not finished its first check" };
  const newline = text.indexOf("\n");
  const head = parseSummaryLine(newline === -1 ? text : text.slice(0, newline));
  if (head === null) return { kind: "failed", reason: "the agent's answer is not a status summary" };
  if (head.agent.root !== opts.root)
    return { kind: "failed", reason: `the agent checks root ${head.agent.root}, not ${opts.root}` };
  if (JSON.stringify(head.agent.manifests) !== JSON.stringify(opts.manifests))
    return { kind: "failed", reason: "the agent checks other manifests" };
  if (!opts.document) return { kind: "answered", answer: { ...head, document: null } };
  const document = newline === -1 ? null : parseDocumentLine(text.slice(newline + 1));
  if (document === null) return { kind: "failed", reason: "the agent's answer is not a status document" };
  return { kind: "answered", answer: { ...head, document } };
}

/**
 * The answer's text: all of it, or only its first line (the summary), hanging up as soon as that arrived
 * so the agent's ~1.6 MB document at 10,000 secrets is neither copied nor parsed.
 */
async function readAnswer(socketPath: string, timeoutMs: number, whole: boolean): Promise<string> {
  // Loaded only when there is a socket to ask: `status --fresh` and hosts without the agent never need it.
  const net = await import("node:net");
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const socket = net.createConnection({ path: socketPath });
    const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const finish = (end: number) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(Buffer.concat(chunks, size).toString("utf8", 0, end));
    };
    socket.on("data", (c: Buffer) => {
      if (done) return;
      const newline = whole ? -1 : c.indexOf(10);
      size += c.length;
      if (size > MAX_ANSWER_BYTES) {
        socket.destroy(new Error("the answer is too large"));
        return;
      }
      chunks.push(c);
      if (newline !== -1) {
        finish(size - c.length + newline);
        socket.destroy();
      }
    });
    socket.on("error", (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(err);
    });
    socket.on("end", () => finish(size));
  });
}

/** The first line when it has the shape the agent sends, else null. Only what `status` relies on is checked. */
export function parseSummaryLine(text: string): AgentSummaryLine | null {
  const v = parseJson(text);
  if (!isObject(v) || !isObject(v.agent) || !isObject(v.summary)) return null;
  const { agent, summary } = v;
  const manifests = agent.manifests;
  if (
    typeof agent.pid !== "number" ||
    typeof agent.version !== "string" ||
    typeof agent.root !== "string" ||
    typeof agent.checkedAt !== "number" ||
    !(manifests === null || (Array.isArray(manifests) && manifests.every((m) => typeof m === "string"))) ||
    typeof summary.healthy !== "boolean" ||
    !Array.isArray(summary.incomplete) ||
    !Array.isArray(summary.scopes) ||
    !Array.isArray(summary.problems) ||
    !Array.isArray(summary.recipients) ||
    !Array.isArray(summary.files)
  )
    return null;
  return v as unknown as AgentSummaryLine;
}

/** The second line when it has a status document's shape, else null. */
export function parseDocumentLine(text: string): StatusDocument | null {
  const v = parseJson(text);
  if (
    !isObject(v) ||
    typeof v.healthy !== "boolean" ||
    !Array.isArray(v.scopes) ||
    !Array.isArray(v.problems) ||
    !Array.isArray(v.secrets) ||
    !Array.isArray(v.recipients)
  )
    return null;
  return v as unknown as StatusDocument;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
