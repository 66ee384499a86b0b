// Basic auth under attack: compares counted, never timed (their speed is in `npm run bench`, hardening).

import { threadId } from "node:worker_threads";
import bcrypt from "bcryptjs";
import { afterEach, describe, expect, it } from "vitest";
import { type AuthVerdict, BasicAuth, clientKey, dummyHash } from "../src/agent/basic-auth.js";
import { parseWebConfig } from "../src/agent/web-config.js";

// htpasswd's $2y$ prefix, as exporter-toolkit's own sample has it, is accepted as it is.
const ALICE = bcrypt.hashSync("s3cret", 5).replace(/^\$2b\$/, "$2y$");
const BOB = bcrypt.hashSync("hunter2", 5);
const header = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}`;

const auths: BasicAuth[] = [];
afterEach(async () => {
  await Promise.all(auths.splice(0).map((a) => a.close()));
});
function make(users: [string, string][] = [["alice", ALICE]]): BasicAuth {
  const auth = new BasicAuth(new Map(users));
  auths.push(auth);
  return auth;
}

describe("BasicAuth", () => {
  it("compares a right password once, then answers it from memory", async () => {
    const auth = make();
    expect(await auth.check(header("alice", "s3cret"), "10.0.0.1")).toMatchObject({ via: "compare" });
    for (let i = 0; i < 100; i++)
      expect(await auth.check(header("alice", "s3cret"), "10.0.0.1")).toEqual({
        kind: "allowed",
        via: "cache",
      });
    expect(auth.counts).toMatchObject({ compares: 1, cacheHits: 100 });
  });

  it("runs every compare in a worker thread, never on the event loop's", async () => {
    const auth = make();
    await auth.check(header("alice", "s3cret"), "10.0.0.1");
    await auth.check(header("alice", "nope"), "10.0.0.1");
    expect(auth.counts.compares).toBe(2);
    expect(auth.counts.compareThreads.length).toBeGreaterThan(0);
    expect(auth.counts.compareThreads).not.toContain(threadId);
  });

  it.each([
    ["wrong password", header("alice", "nope"), 1],
    ["unknown user", header("mallory", "s3cret"), 1],
    ["no header", undefined, 0],
    ["bearer", "Bearer abc", 0],
    ["no colon", `Basic ${Buffer.from("alice").toString("base64")}`, 0],
  ])("rejects %s with %i compare(s)", async (_n, h, compares) => {
    const auth = make();
    expect(await auth.check(h, "10.0.0.1")).toEqual({ kind: "denied" });
    expect(auth.counts.compares).toBe(compares);
  });

  it("costs an unknown user what a known one costs: one compare at the highest configured cost", async () => {
    const users = new Map([
      ["alice", ALICE],
      ["bob", bcrypt.hashSync("x", 7)],
    ]);
    const dummy = dummyHash(users);
    expect(dummy.slice(0, 7)).toBe("$2b$07$");
    // A hash the web config itself would accept, and one no password matches.
    expect(() => parseWebConfig(`basic_auth_users:\n  x: "${dummy}"\n`, "/w.yml")).not.toThrow();
    expect(bcrypt.compareSync("", dummy)).toBe(false);
    expect(dummyHash(new Map([["a", bcrypt.hashSync("x", 4)]])).slice(0, 7)).toBe("$2b$04$");
  });

  it("lets everyone in when no user is configured, without a compare", async () => {
    const auth = make([]);
    expect(await auth.check(undefined, "10.0.0.1")).toEqual({ kind: "allowed", via: "open" });
    expect(auth.counts.compares).toBe(0);
  });

  it("limits failed attempts per client address: 30 at once cost 5 compares, the rest are throttled", async () => {
    const auth = make();
    const verdicts = await Promise.all(
      Array.from({ length: 30 }, (_, i) => auth.check(header("alice", `guess${i}`), "10.0.0.66")),
    );
    expect(verdicts.filter((v) => v.kind === "denied")).toHaveLength(5);
    expect(verdicts.filter((v) => v.kind === "throttled")).toHaveLength(25);
    expect(auth.counts).toMatchObject({ compares: 5, throttled: 25 });
    // Another address has its own budget; the same /64 shares one.
    expect(await auth.check(header("alice", "s3cret"), "10.0.0.1")).toMatchObject({ via: "compare" });
    const v6 = [];
    for (let i = 1; i <= 6; i++) v6.push(await auth.check(header("alice", "nope"), `2001:db8::${i}`));
    expect(v6.map((v) => v.kind)).toEqual(["denied", "denied", "denied", "denied", "denied", "throttled"]);
  });

  it("answers an authorised scrape while 30 bad passwords are queued, not behind them", async () => {
    const auth = make([
      ["alice", ALICE],
      ["bob", BOB],
    ]);
    // Prometheus' credential has been right once (the first scrape after start).
    await auth.check(header("alice", "s3cret"), "10.0.0.1");
    const before = auth.counts;
    const attack = Array.from({ length: 30 }, (_, i) =>
      auth.check(header(i % 2 === 0 ? "alice" : "mallory", `guess${i}`), "10.0.0.66"),
    );
    // The attack is in the worker's queue right now (one running, four waiting) …
    expect(auth.counts.pending).toBe(5);
    // … and the scrape is answered from memory: no compare, no place in that queue.
    expect(await auth.check(header("alice", "s3cret"), "10.0.0.1")).toEqual({
      kind: "allowed",
      via: "cache",
    });
    expect(auth.counts.compares).toBe(before.compares);
    expect(auth.counts.pending).toBe(5);
    // A credential never seen before, from another address, waits for at most the running compare and one
    // turn of the attacker's queue — not for the attacker's backlog.
    const fresh: AuthVerdict = await auth.check(header("bob", "hunter2"), "10.0.0.2");
    expect(fresh).toMatchObject({ kind: "allowed", via: "compare" });
    expect(fresh.kind === "allowed" && fresh.via === "compare" ? fresh.ahead : -1).toBeLessThanOrEqual(2);
    const outcomes = await Promise.all(attack);
    expect(outcomes.filter((v) => v.kind === "denied")).toHaveLength(5);
    expect(outcomes.filter((v) => v.kind === "throttled")).toHaveLength(25);
  });

  it("keeps remembered credentials across a reload only while the stored hash is unchanged", async () => {
    const auth = make();
    await auth.check(header("alice", "s3cret"), "10.0.0.1");
    auth.setUsers(new Map([["alice", ALICE]]));
    expect(await auth.check(header("alice", "s3cret"), "10.0.0.1")).toMatchObject({ via: "cache" });
    auth.setUsers(new Map([["alice", bcrypt.hashSync("new", 4)]]));
    expect(await auth.check(header("alice", "s3cret"), "10.0.0.1")).toEqual({ kind: "denied" });
    expect(auth.counts.compares).toBe(2);
  });

  it.each([
    ["127.0.0.1", "127.0.0.1"],
    ["::ffff:10.1.2.3", "10.1.2.3"],
    ["2001:db8::1", "2001:db8:0:0::/64"],
    ["2001:0db8:0001:0002:3:4:5:6", "2001:db8:1:2::/64"],
    ["::1", "0:0:0:0::/64"],
  ])("limits %s as %s", (address, key) => expect(clientKey(address)).toBe(key));
});
