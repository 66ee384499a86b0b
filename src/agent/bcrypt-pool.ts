// bcrypt compares off the event loop: one worker thread runs them one at a time, so a flood of login attempts
// costs at most one core and never stalls a scrape, a watch event or a check on the main thread. Waiting
// compares are served round-robin by client address, so a client with many attempts in the queue delays
// another client's first compare by at most one compare each, never by its whole backlog.

import { createRequire } from "node:module";
import type * as WorkerThreads from "node:worker_threads";
import type { Worker } from "node:worker_threads";

// Plain CommonJS run with `eval`, so the same code works from dist/ and under the test runner (which cannot
// start a worker from a .ts file). bcryptjs' synchronous compare is fine here: this thread does nothing else.
const WORKER_SOURCE = `
const { parentPort, workerData, threadId } = require("node:worker_threads");
const bcrypt = require(workerData.bcryptjs);
parentPort.on("message", ({ id, password, hash }) => {
  let ok = false;
  try { ok = bcrypt.compareSync(password, hash); } catch { ok = false; }
  parentPort.postMessage({ id, ok, threadId });
});
`;

/** How long an idle worker is kept for the next login. */
const IDLE_MS = 60_000;

export type CompareOutcome =
  /** `ahead`: at most how many compares were to run before this one when it was queued. */
  | { readonly kind: "compared"; readonly ok: boolean; readonly ahead: number }
  /** The queue for this address, or the whole queue, is full: not compared. */
  | { readonly kind: "queue_full" };

export interface ComparePoolOptions {
  /** Waiting compares per client address. */
  readonly maxWaitingPerAddress?: number;
  /** Waiting compares in all. */
  readonly maxWaiting?: number;
}

interface Job {
  readonly id: number;
  readonly password: string;
  readonly hash: string;
  readonly ahead: number;
  readonly resolve: (o: CompareOutcome) => void;
}

export class ComparePool {
  /** Compares finished so far. */
  completed = 0;
  /** Threads the compares ran on (never the main thread's). */
  readonly threads = new Set<number>();
  /** Worker threads started so far: none until the first compare (an agent without basic auth never starts one). */
  workersStarted = 0;
  private worker: Worker | null = null;
  private running: Job | null = null;
  private nextId = 1;
  // Per address, its waiting jobs; Map order is the round-robin order (an address moves to the end after a turn).
  private readonly waiting = new Map<string, Job[]>();
  private waitingCount = 0;
  private readonly maxPerAddress: number;
  private readonly maxWaiting: number;
  private closed = false;
  private idle: NodeJS.Timeout | null = null;

  constructor(opts: ComparePoolOptions = {}) {
    this.maxPerAddress = opts.maxWaitingPerAddress ?? 4;
    this.maxWaiting = opts.maxWaiting ?? 64;
  }

  /** Compares waiting or running now. */
  get pending(): number {
    return this.waitingCount + (this.running === null ? 0 : 1);
  }

  compare(address: string, password: string, hash: string): Promise<CompareOutcome> {
    const queue = this.waiting.get(address) ?? [];
    if (this.closed || queue.length >= this.maxPerAddress || this.waitingCount >= this.maxWaiting)
      return Promise.resolve({ kind: "queue_full" });
    // Ahead of a new job: the running one, and one turn of every other address with jobs, up to this
    // address' own position in its queue (an address' n-th job waits for n turns of every other address).
    let ahead = this.running === null ? 0 : 1;
    for (const [other, jobs] of this.waiting)
      ahead += other === address ? jobs.length : Math.min(jobs.length, queue.length + 1);
    return new Promise((resolve) => {
      queue.push({ id: this.nextId++, password, hash, ahead, resolve });
      this.waitingCount++;
      if (!this.waiting.has(address)) this.waiting.set(address, queue);
      this.pump();
    });
  }

  /** Stops the worker; waiting compares come back as not compared. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.idle !== null) clearTimeout(this.idle);
    for (const jobs of this.waiting.values()) for (const j of jobs) j.resolve({ kind: "queue_full" });
    this.waiting.clear();
    this.waitingCount = 0;
    const w = this.worker;
    this.worker = null;
    if (w !== null) await w.terminate();
    this.running?.resolve({ kind: "queue_full" });
    this.running = null;
  }

  private pump(): void {
    if (this.running !== null || this.closed) return;
    const first = this.waiting.entries().next();
    if (first.done === true) return;
    const [address, jobs] = first.value;
    const job = jobs.shift();
    this.waiting.delete(address);
    if (jobs.length > 0) this.waiting.set(address, jobs);
    if (job === undefined) return;
    this.waitingCount--;
    this.running = job;
    if (this.idle !== null) clearTimeout(this.idle);
    this.idle = null;
    const worker = this.ensureWorker();
    worker.ref();
    worker.postMessage({ id: job.id, password: job.password, hash: job.hash });
  }

  // A worker holds its own V8 heap (~10 MB resident): let it go when no one has logged in for a while.
  private idleLater(worker: Worker): void {
    worker.unref();
    this.idle = setTimeout(() => {
      this.idle = null;
      if (this.worker !== worker || this.pending > 0) return;
      this.worker = null;
      void worker.terminate();
    }, IDLE_MS);
    this.idle.unref();
  }

  private ensureWorker(): Worker {
    if (this.worker !== null) return this.worker;
    // node:worker_threads only with the first compare: an agent without basic auth never loads it (issue 11).
    const require = createRequire(import.meta.url);
    const { Worker, threadId } = require("node:worker_threads") as typeof WorkerThreads;
    const bcryptjs = require.resolve("bcryptjs");
    this.workersStarted++;
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { bcryptjs } });
    worker.on("message", (m: { id: number; ok: boolean; threadId: number }) => {
      const job = this.running;
      if (job === null || job.id !== m.id) return;
      this.running = null;
      this.completed++;
      if (m.threadId !== threadId) this.threads.add(m.threadId);
      job.resolve({ kind: "compared", ok: m.ok, ahead: job.ahead });
      this.pump();
      if (this.pending === 0) this.idleLater(worker);
    });
    // A worker that died fails its compare closed; the next compare starts a new one.
    const lost = () => {
      if (this.worker !== worker) return;
      this.worker = null;
      const job = this.running;
      this.running = null;
      job?.resolve({ kind: "compared", ok: false, ahead: job.ahead });
      this.pump();
    };
    worker.on("error", lost);
    worker.on("exit", lost);
    worker.unref();
    this.worker = worker;
    return worker;
  }
}
