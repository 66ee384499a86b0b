// Issue 9.7: event floods are coalesced. A user creating and deleting files in directories of hers that
// the agent watches (her systemd user directory, her home-manager generation) must not make it re-check
// or stop answering /metrics: it watches only the entries the checks read, and re-checks at most once per
// debounce interval whatever the number of events. Counted, never timed.

import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { SecretsWatcher } from "../src/agent/watcher.js";
import { startReadyAgent } from "./helpers/agent.js";
import { cleanupRoots, healthyHost, tempRoot } from "./helpers/host.js";

afterAll(() => cleanupRoots());

/** Creates and deletes `count` files named by `names` in each directory, as fast as it can. */
function flood(dirs: readonly string[], count: number, names: string): ReturnType<typeof spawn> {
  return spawn(
    process.execPath,
    [
      "-e",
      `const fs = require("node:fs");
       const [count, names, ...dirs] = process.argv.slice(1);
       for (let i = 0; i < Number(count); i++)
         for (const d of dirs) { const f = d + "/" + names.replace("%", String(i % 64)); fs.writeFileSync(f, "x"); fs.unlinkSync(f); }`,
      String(count),
      names,
      ...dirs,
    ],
    { stdio: "ignore" },
  );
}

function checksIn(metrics: string): number {
  return Number(/^sops_agent_check_duration_seconds_count (\d+)/m.exec(metrics)?.[1] ?? Number.NaN);
}

function eventsIn(metrics: string): number {
  return Number(/^sops_agent_watch_events_total (\d+)/m.exec(metrics)?.[1] ?? Number.NaN);
}

describe("a user flooding her watched directories", () => {
  it("makes no re-check, and /metrics answers all the while", async () => {
    const host = healthyHost();
    const agent = await startReadyAgent(host.root);
    try {
      const first = await agent.metrics();
      const before = checksIn(first);
      const eventsBefore = eventsIn(first);
      const child = flood(
        [host.real("/home/alice/.config/systemd/user"), host.real("/run/user/1000/secrets.d/1")],
        30_000,
        "junk%",
      );
      let running = true;
      const done = new Promise<void>((resolve) =>
        child.once("exit", () => {
          running = false;
          resolve();
        }),
      );
      let scrapes = 0;
      while (running) {
        const text = await agent.metrics();
        if (text.includes("sops_healthy")) scrapes++;
      }
      await done;
      // Let any pending debounce fire before counting.
      await new Promise((r) => setTimeout(r, 300));
      const last = await agent.metrics();
      const after = checksIn(last);
      expect(scrapes).toBeGreaterThanOrEqual(3);
      // Not one of the 60,000 creations and deletions names an entry a check reads.
      expect(eventsIn(last) - eventsBefore).toBe(0);
      // The cron safety net may fire once in the window; the flood itself triggers nothing.
      expect(after - before).toBeLessThanOrEqual(1);
    } finally {
      await agent.stop();
    }
  }, 60_000);
});

describe("SecretsWatcher under a flood of relevant events", () => {
  it("re-checks at most once per debounce interval", async () => {
    const root = tempRoot();
    fs.mkdirSync(`${root}/d`);
    let changes = 0;
    let events = 0;
    const w = new SecretsWatcher({
      logger: pino({ level: "silent" }),
      onChange: () => changes++,
      onEvent: () => events++,
      debounceMs: 100,
    });
    await w.retarget(new Map([[`${root}/d`, "all"]]));
    const started = Date.now();
    const child = flood([`${root}/d`], 20_000, "f%");
    await new Promise((resolve) => child.once("exit", resolve));
    const elapsed = Date.now() - started;
    await new Promise((r) => setTimeout(r, 250));
    await w.close();
    expect(events).toBeGreaterThan(1000);
    expect(changes).toBeGreaterThanOrEqual(1);
    expect(changes).toBeLessThanOrEqual(Math.ceil((elapsed + 250) / 100) + 1);
  }, 60_000);
});
