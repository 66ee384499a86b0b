// The agent's local status socket: `sops-agent status` on the same host reads the last published check
// from here instead of checking 10,000 secrets itself. A Unix socket only (no network), created 0600 (or
// 0660 for one group), answering every connection with the same bytes and reading nothing from it: a
// client cannot send the agent anything to parse.
//
// The answer is two lines of JSON: who answered and the summary the human report needs (a few hundred
// bytes on a healthy host), then the whole status document (~1.6 MB at 10,000 secrets). `status` reads the
// first line and hangs up unless it prints --json: parsing the document took most of an answered run.

import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import type { StatusDocument } from "../core/report.js";
import { type StatusSummary, summarize } from "../core/status-summary.js";

export { defaultStatusSocket } from "../core/status-socket-path.js";

/** What the socket sends: who answered, for which host view, and the status document of the last check. */
export interface AgentAnswer {
  readonly agent: {
    readonly pid: number;
    readonly version: string;
    /** The agent's --root: a client checking another root must not take this answer. */
    readonly root: string;
    /** The agent's --manifest paths, null when it discovers them. */
    readonly manifests: readonly string[] | null;
    /** Unix seconds when the published check finished. */
    readonly checkedAt: number;
  };
  readonly document: StatusDocument;
}

/** The first line of the answer: the agent and the summary of its document. */
export interface AgentSummaryLine {
  readonly agent: AgentAnswer["agent"];
  readonly summary: StatusSummary;
}

/** The bytes an answer is sent as: the summary line, then the document line. */
export function answerBytes(answer: AgentAnswer): Buffer {
  const head: AgentSummaryLine = { agent: answer.agent, summary: summarize(answer.document) };
  return Buffer.from(`${JSON.stringify(head)}\n${JSON.stringify(answer.document)}\n`, "utf8");
}

export interface StatusSocketOptions {
  readonly path: string;
  /** A group that may read the status as well (mode 0660); null for owner and root only (0600). */
  readonly group: number | null;
}

export class StatusSocketServer {
  private readonly server: net.Server;
  private readonly opts: StatusSocketOptions;
  private payload: Buffer | null = null;
  private answer: (() => AgentAnswer | null) | null = null;

  constructor(opts: StatusSocketOptions) {
    this.opts = opts;
    this.server = net.createServer({ allowHalfOpen: false }, (socket) => this.serve(socket));
  }

  /** Binds the socket; replaces a stale socket file left by an agent that died, never any other file. */
  listen(): Promise<void> {
    const file = this.opts.path;
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o750 });
    try {
      if (fs.lstatSync(file).isSocket()) fs.unlinkSync(file);
    } catch {
      // absent: nothing to replace
    }
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      // The socket file is created by bind with the process umask: 0177 leaves it 0600 from its first
      // moment, so no other user can connect between bind and the chmod below.
      const old = process.umask(0o177);
      try {
        this.server.listen(file, () => {
          this.server.off("error", reject);
          try {
            if (this.opts.group !== null) {
              fs.chownSync(file, -1, this.opts.group);
              fs.chmodSync(file, 0o660);
            }
            resolve();
          } catch (err) {
            reject(err);
          }
        });
      } finally {
        process.umask(old);
      }
    });
  }

  /** The answer of the next connections; called on every publish, serialised on the first request after it. */
  publish(answer: () => AgentAnswer | null): void {
    this.answer = answer;
    this.payload = null;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      try {
        fs.unlinkSync(this.opts.path);
      } catch {
        // already gone
      }
    });
  }

  private serve(socket: net.Socket): void {
    socket.on("error", () => socket.destroy());
    // Nothing is read: the client only listens.
    socket.on("data", () => {});
    if (this.payload === null) {
      const answer = this.answer?.() ?? null;
      if (answer === null) {
        socket.end();
        return;
      }
      this.payload = answerBytes(answer);
    }
    socket.end(this.payload);
  }
}
