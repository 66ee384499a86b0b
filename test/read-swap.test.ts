// Issue 9.1: no read can block or follow a swapped path. A user who owns a directory the agent reads from
// can swap a regular file for a FIFO or a symlink between the agent's lstat and its open: the agent opens
// with O_NOFOLLOW | O_NONBLOCK and checks the open descriptor (a regular file, the inode it looked at).

import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { RootFs } from "../src/host/rootfs.js";
import { CLI, ensureBuilt } from "./helpers/agent.js";
import { cleanupRoots, healthyHost, tempRoot } from "./helpers/host.js";

const unblockers: ReturnType<typeof spawn>[] = [];

afterEach(() => {
  RootFs.beforeOpen = undefined;
  for (const child of unblockers.splice(0)) child.kill("SIGKILL");
  cleanupRoots();
});

const TEMPLATE = "/run/secrets.d/1/rendered/app.env";

/** Swaps `real` for something else right before the agent's open, once. */
function swapBeforeOpen(real: string, swap: () => void): { readonly calls: () => number } {
  let calls = 0;
  RootFs.beforeOpen = (p) => {
    if (p !== real) return;
    if (calls++ === 0) swap();
  };
  return { calls: () => calls };
}

describe("a file swapped between lstat and open", () => {
  it("for a FIFO: the read fails at once instead of blocking in open(2)", () => {
    const root = tempRoot();
    fs.writeFileSync(`${root}/f`, "regular");
    const hook = swapBeforeOpen(`${root}/f`, () => {
      fs.rmSync(`${root}/f`);
      execFileSync("mkfifo", [`${root}/f`]);
      // Should the open block after all, a writer turns the hang into a failed assertion.
      unblockers.push(spawn("sh", ["-c", `sleep 5; echo unblocked > '${root}/f'`], { stdio: "ignore" }));
    });
    expect(new RootFs(root).readText("/f")).toEqual({ error: "EINVAL" });
    expect(hook.calls()).toBe(1);
  });

  it("for a symlink to a root-only file: the link is not followed", () => {
    const root = tempRoot();
    fs.writeFileSync(`${root}/secret`, "PLANTED-root-only-1a2b", { mode: 0o600 });
    fs.writeFileSync(`${root}/f`, "regular");
    const hook = swapBeforeOpen(`${root}/f`, () => {
      fs.rmSync(`${root}/f`);
      fs.symlinkSync(`${root}/secret`, `${root}/f`);
    });
    expect(new RootFs(root).readText("/f")).toEqual({ error: "ELOOP" });
    expect(hook.calls()).toBe(1);
  });

  it("for a parent directory swapped for a link: the open file is not the one looked at", () => {
    const root = tempRoot();
    fs.mkdirSync(`${root}/d`);
    fs.mkdirSync(`${root}/elsewhere`);
    fs.writeFileSync(`${root}/d/f`, "regular");
    fs.writeFileSync(`${root}/elsewhere/f`, "PLANTED-elsewhere-3c4d");
    const hook = swapBeforeOpen(`${root}/d/f`, () => {
      fs.renameSync(`${root}/d`, `${root}/d.old`);
      fs.symlinkSync(`${root}/elsewhere`, `${root}/d`);
    });
    expect(new RootFs(root).readText("/d/f")).toEqual({ error: "ESTALE" });
    expect(hook.calls()).toBe(1);
  });
});

describe("a FIFO raced in where a template was declared", () => {
  // The old reader lstat'ed, then opened: a FIFO renamed in between blocked open(2) for good. On the old
  // code this loop hung within ~1,200 checks (one run in three); the deterministic tests above pin the
  // mechanism, this one runs the real check against a real race, bounded.
  it("never hangs a check (400 checks against a template flipping between a file and a FIFO)", () => {
    ensureBuilt();
    const host = healthyHost();
    const real = host.real(TEMPLATE);
    fs.copyFileSync(real, `${real}.file`);
    execFileSync("mkfifo", [`${real}.fifo`]);
    // Hard links of both, renamed over the template in turn: it is never absent, only swapped.
    const flipper = spawn(
      process.execPath,
      [
        "-e",
        `const fs = require("node:fs");
         const x = process.argv[1];
         const spin = () => { const until = process.hrtime.bigint() + 50000n; while (process.hrtime.bigint() < until); };
         for (;;) {
           try { fs.linkSync(x + ".file", x + ".a"); fs.renameSync(x + ".a", x); } catch {}
           spin();
           try { fs.linkSync(x + ".fifo", x + ".b"); fs.renameSync(x + ".b", x); } catch {}
           spin();
         }`,
        real,
      ],
      { stdio: "ignore" },
    );
    try {
      const checkHost = new URL("../dist/host/check-host.js", `file://${CLI}`).href;
      const checker = spawnSync(
        process.execPath,
        [
          "--input-type=module",
          "-e",
          `const { checkHost } = await import(${JSON.stringify(checkHost)});
           let n = 0;
           for (; n < 400; n++) checkHost({ root: ${JSON.stringify(host.root)}, manifests: null, env: {} });
           console.log(n);`,
        ],
        { encoding: "utf8", timeout: 60_000 },
      );
      expect(checker.signal, "the checks hung in open(2) and were killed").toBe(null);
      expect(checker.stdout.trim()).toBe("400");
    } finally {
      flipper.kill("SIGKILL");
    }
  }, 90_000);
});
