// Basic auth against exporter-toolkit's bcrypt hashes, built so that login attempts can neither stall scrapes
// nor tell which users exist:
// - a credential that was right once is answered from memory (a keyed hash of user, password and stored hash),
//   so an authorised scraper never waits for a compare, however many wrong attempts are queued;
// - compares run in a worker thread, one at a time, queued fairly per client address (bcrypt-pool.ts);
// - an unknown user costs one compare at the configured cost, like a wrong password;
// - each client address has a budget of failed attempts; over it, attempts are refused without a compare.

import { createHmac, randomBytes } from "node:crypto";
import { ComparePool } from "./bcrypt-pool.js";

export type AuthVerdict =
  | { readonly kind: "allowed"; readonly via: "open" | "cache" }
  /** `ahead`: at most how many compares were to run before this one when it was queued. */
  | { readonly kind: "allowed"; readonly via: "compare"; readonly ahead: number }
  | { readonly kind: "denied" }
  /** Too many failed attempts from this address, or too many compares waiting: try again later. */
  | { readonly kind: "throttled"; readonly retryAfterSeconds: number };

export interface BasicAuthOptions {
  /** Failed attempts an address may make at once… */
  readonly failureBurst?: number;
  /** …and one more per this many seconds. */
  readonly failureIntervalSeconds?: number;
  readonly now?: () => number;
}

/** What the authenticator has done so far; tests count these instead of timing anything. */
export interface AuthCounts {
  readonly compares: number;
  readonly cacheHits: number;
  readonly throttled: number;
  /** For each compare, at most how many compares were to run before it. */
  readonly aheadOfCompares: readonly number[];
  /** Threads compares ran on: never the main thread. */
  readonly compareThreads: readonly number[];
  /** Compares waiting or running now. */
  readonly pending: number;
  /** Worker threads started for compares: 0 until a request needs a compare. */
  readonly workersStarted: number;
}

/** Addresses tracked for failed attempts before full buckets are forgotten. */
const MAX_TRACKED_ADDRESSES = 4096;
/** Remembered right credentials; far more than the users of any web config. */
const MAX_CACHED = 1024;

export class BasicAuth {
  private users: ReadonlyMap<string, string>;
  private dummy: string;
  // A fresh key per process: the cache's entries are useless to anyone who reads the agent's memory later.
  private readonly key = randomBytes(32);
  private readonly good = new Set<string>();
  private readonly failures = new Map<string, { tokens: number; at: number }>();
  private readonly pool = new ComparePool();
  private readonly burst: number;
  private readonly interval: number;
  private readonly now: () => number;
  private cacheHits = 0;
  private throttled = 0;
  private readonly ahead: number[] = [];

  constructor(users: ReadonlyMap<string, string>, opts: BasicAuthOptions = {}) {
    this.users = users;
    this.dummy = dummyHash(users);
    this.burst = opts.failureBurst ?? 5;
    this.interval = opts.failureIntervalSeconds ?? 1;
    this.now = opts.now ?? (() => Date.now() / 1000);
  }

  get enabled(): boolean {
    return this.users.size > 0;
  }

  get counts(): AuthCounts {
    return {
      compares: this.pool.completed,
      cacheHits: this.cacheHits,
      throttled: this.throttled,
      aheadOfCompares: [...this.ahead],
      compareThreads: [...this.pool.threads],
      pending: this.pool.pending,
      workersStarted: this.pool.workersStarted,
    };
  }

  /**
   * New users from a reloaded web config. Remembered credentials stay valid only where the stored hash is
   * unchanged: the cache key covers the hash.
   */
  setUsers(users: ReadonlyMap<string, string>): void {
    this.users = users;
    this.dummy = dummyHash(users);
  }

  /** Checks an `Authorization` header value from a client at `address`. */
  async check(header: string | undefined, address: string): Promise<AuthVerdict> {
    if (!this.enabled) return { kind: "allowed", via: "open" };
    const creds = parseBasic(header);
    if (creds === null) return { kind: "denied" };
    const stored = this.users.get(creds.user);
    const hash = stored ?? this.dummy;
    const cacheKey = createHmac("sha256", this.key)
      .update(`${creds.user}\0${creds.password}\0${hash}`)
      .digest("base64");
    if (stored !== undefined && this.good.has(cacheKey)) {
      this.cacheHits++;
      return { kind: "allowed", via: "cache" };
    }
    // The failure is charged before the compare, so concurrent attempts cannot all slip past the budget.
    const client = clientKey(address);
    if (!this.takeFailure(client)) return this.throttle(this.interval);
    // bcryptjs knows $2a$/$2b$; $2y$ (htpasswd) is the same algorithm under another name.
    const outcome = await this.pool.compare(client, creds.password, hash.replace(/^\$2[xy]\$/, "$2b$"));
    if (outcome.kind === "queue_full") return this.throttle(1);
    if (this.ahead.length < 10_000) this.ahead.push(outcome.ahead);
    if (!outcome.ok || stored === undefined) return { kind: "denied" };
    this.refundFailure(client);
    if (this.good.size >= MAX_CACHED) this.good.clear();
    this.good.add(cacheKey);
    return { kind: "allowed", via: "compare", ahead: outcome.ahead };
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  private throttle(retryAfterSeconds: number): AuthVerdict {
    this.throttled++;
    return { kind: "throttled", retryAfterSeconds: Math.max(1, Math.ceil(retryAfterSeconds)) };
  }

  private takeFailure(client: string): boolean {
    const now = this.now();
    const b = this.failures.get(client) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + (now - b.at) / this.interval);
    b.at = now;
    if (!this.failures.has(client)) {
      if (this.failures.size >= MAX_TRACKED_ADDRESSES) this.forgetIdle(now);
      this.failures.set(client, b);
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private refundFailure(client: string): void {
    const b = this.failures.get(client);
    if (b !== undefined) b.tokens = Math.min(this.burst, b.tokens + 1);
  }

  private forgetIdle(now: number): void {
    for (const [client, b] of this.failures)
      if (b.tokens + (now - b.at) / this.interval >= this.burst) this.failures.delete(client);
    // Still full: every address is mid-attack; forgetting them all is no worse than tracking none.
    if (this.failures.size >= MAX_TRACKED_ADDRESSES) this.failures.clear();
  }
}

/**
 * What an unknown user's password is compared against: a hash of the highest cost configured, so a wrong
 * user name costs what a wrong password costs. Its salt and checksum are fixed and match no password.
 */
export function dummyHash(users: ReadonlyMap<string, string>): string {
  let cost = 10;
  let first = true;
  for (const h of users.values()) {
    const c = Number(h.slice(4, 6));
    if (first || c > cost) cost = c;
    first = false;
  }
  return `$2b$${String(cost).padStart(2, "0")}$${"sopsagentdummysaltxxu".padEnd(53, "A")}`;
}

/** The rate-limited unit: an IPv4 address, or an IPv6 /64 (one host usually holds a whole /64). */
export function clientKey(address: string): string {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (v4?.[1] !== undefined) return v4[1];
  if (!address.includes(":")) return address;
  const [head = "", tail = ""] = address.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === "" ? [] : tail.split(":");
  const groups = address.includes("::")
    ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, "").toLowerCase())
    .join(":")}::/64`;
}

function parseBasic(header: string | undefined): { user: string; password: string } | null {
  if (header === undefined) return null;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (m === null || m[1] === undefined) return null;
  const decoded = Buffer.from(m[1], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
