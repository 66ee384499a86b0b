// `npm run example` (issue 10.8): another port when the default is taken, says where its tree lives,
// and removes it on Ctrl-C.

import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { CLI, ensureBuilt, waitFor } from "./helpers/agent.js";
import { cleanupRoots, tempRoot } from "./helpers/host.js";

const EXAMPLE = path.join(path.dirname(CLI), "example", "main.js");
const DEFAULT_PORT = 29100;
const holder = net.createServer();

beforeAll(async () => {
  ensureBuilt();
  // Take the default port (or find it taken already): either way the example must move.
  await new Promise<void>((resolve) => {
    holder.once("error", () => resolve());
    holder.listen(DEFAULT_PORT, "127.0.0.1", () => resolve());
  });
});
afterAll(async () => {
  if (holder.listening) await new Promise((r) => holder.close(r));
  cleanupRoots();
});

it("runs on a free port when the default is taken, and removes its tree on Ctrl-C", async () => {
  const root = path.join(tempRoot("sops-agent-example-test-"), "host");
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "",
    HOME: "/nonexistent",
    SOPS_AGENT_EXAMPLE_ROOT: root,
  };
  const child = spawn(process.execPath, [EXAMPLE], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const url = await waitFor(
    "the example's scrape URL",
    async () => /curl (http:\/\/127\.0\.0\.1:(\d+))\/metrics/.exec(out),
    (m) => m !== null,
    20_000,
  );
  expect(out).toContain(`Port ${DEFAULT_PORT} is taken; the example uses 127.0.0.1:`);
  expect(url?.[2]).not.toBe(String(DEFAULT_PORT));
  expect(out).toContain(`Example host laid out in ${root}`);
  expect(fs.existsSync(path.join(root, "run/secrets.d/1"))).toBe(true);
  const metrics = await waitFor(
    "metrics",
    () =>
      fetch(`${url?.[1]}/metrics`)
        .then((r) => r.text())
        .catch(() => ""),
    (t) => t.includes("sops_healthy"),
  );
  expect(metrics).toContain('sops_healthy{scope="system"} 1');
  child.kill("SIGINT");
  expect(await exited).toBe(0);
  expect(fs.existsSync(root)).toBe(false);
  expect(out).toContain(`Removed the example host ${root}.`);
});
