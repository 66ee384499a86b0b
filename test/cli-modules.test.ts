// Each command loads only what it needs (issue 11.2): counted from the modules the built program
// resolves, recorded by a loader hook — no timing.

import { execFile, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answerBytes } from "../src/agent/status-socket.js";
import { CLI, ensureBuilt } from "./helpers/agent.js";
import { cleanupRoots, healthyHost, tempRoot } from "./helpers/host.js";

const HOOK = fileURLToPath(new URL("./helpers/record-modules.mjs", import.meta.url));
const DIST = path.dirname(CLI);
const DAEMON_PACKAGES = ["pino", "pino-pretty", "prom-client", "chokidar", "node-cron"];

let logDir: string;

beforeAll(() => {
  ensureBuilt();
  logDir = tempRoot("sops-agent-modules-");
});
afterAll(cleanupRoots);

/** The program's own modules (relative to dist) and the npm packages it resolved, for one command. */
function loaded(args: string[]): { own: string[]; packages: string[]; builtins: string[] } {
  const log = logFile(args);
  try {
    execFileSync(process.execPath, ["--import", HOOK, CLI, ...args], { env: envFor(log), stdio: "ignore" });
  } catch {
    // status exits 1 on a broken host: the modules are what counts here.
  }
  return modulesIn(log);
}

/** As `loaded`, leaving this process' event loop free (to answer as the agent's socket). */
async function loadedAsync(
  args: string[],
): Promise<{ own: string[]; packages: string[]; builtins: string[]; stderr: string }> {
  const log = logFile(args);
  const { stderr } = await promisify(execFile)(process.execPath, ["--import", HOOK, CLI, ...args], {
    env: envFor(log),
  });
  return { ...modulesIn(log), stderr };
}

function logFile(args: string[]): string {
  return path.join(logDir, `${args.join("_").replace(/[^a-z-]/g, "")}-${Math.random()}.log`);
}

function envFor(log: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? "", HOME: "/nonexistent", SOPS_AGENT_MODULE_LOG: log };
}

function modulesIn(log: string): { own: string[]; packages: string[]; builtins: string[] } {
  const lines = fs.readFileSync(log, "utf8").split("\n");
  const urls = lines.filter((u) => u.startsWith("file://"));
  const builtins = lines.filter((l) => l.startsWith("builtin:")).map((l) => l.slice("builtin:".length));
  const files = [...new Set(urls.map((u) => fileURLToPath(u)))];
  const own = files
    .filter((f) => f.startsWith(`${DIST}/`))
    .map((f) => path.relative(DIST, f))
    .sort();
  const packages = [
    ...new Set(
      files.flatMap((f) => {
        const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f);
        return m?.[1] === undefined ? [] : [m[1]];
      }),
    ),
  ].sort();
  return { own, packages, builtins };
}

describe("modules loaded per command", () => {
  it.each([["--version"], ["--help"]])("%s loads nothing beyond the entry point", (flag) => {
    const { own, packages } = loaded([flag]);
    expect(packages).toEqual([]);
    expect(own).toEqual([
      "cli.js",
      "cli/args.js",
      "cli/exit.js",
      "cli/io.js",
      "core/duration.js",
      "version.js",
    ]);
  });

  it("status loads none of the daemon's packages, and no agent module without a config file", () => {
    const host = healthyHost();
    const { own, packages } = loaded(["status", "--root", host.root]);
    for (const p of DAEMON_PACKAGES) expect(packages).not.toContain(p);
    // The sops files sops wrote take the fast path and there is no config file: the yaml package
    // (~20 ms of loading) is not needed.
    expect(packages).not.toContain("yaml");
    expect(own.filter((f) => f.startsWith("agent/"))).toEqual([]);
    // It did check the host: the check modules are there.
    expect(own).toContain("host/check-host.js");
    expect(own).toContain("cli/format.js");
    // Nor preflight's modules: the usage check needs only the file hash (host/file-hash.js).
    expect(own).toContain("host/file-hash.js");
    for (const m of ["host/preflight.js", "core/declaration-diff.js", "core/boot-mounts.js"])
      expect(own).not.toContain(m);
  });

  it("status under --root runs no command, so it does not load node:child_process", () => {
    const host = healthyHost();
    const { own, builtins } = loaded(["status", "--root", host.root]);
    expect(own).toContain("host/check-host.js");
    // The recorder sees builtins: the check reads files, so node:fs is there.
    expect(builtins).toContain("fs");
    expect(builtins).not.toContain("child_process");
    expect(builtins).not.toContain("net");
  });

  it("status answered by the agent loads nothing of the checking code", async () => {
    const host = healthyHost();
    const socket = path.join(logDir, "status.sock");
    const answer = answerBytes({
      agent: { pid: 1, version: "0", root: host.root, manifests: null, checkedAt: Date.now() / 1000 },
      document: { healthy: true, incomplete: [], scopes: [], problems: [], secrets: [], recipients: [] },
    });
    const server = net.createServer((c) => {
      c.on("error", () => {});
      c.end(answer);
    });
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    try {
      const { own, packages, stderr } = await loadedAsync([
        "status",
        "--root",
        host.root,
        "--status-socket",
        socket,
      ]);
      expect(stderr).toContain("answered by the running agent");
      expect(packages).toEqual([]);
      expect(own.filter((f) => !f.startsWith("cli") && !f.startsWith("core/"))).toEqual(["version.js"]);
      expect(own).not.toContain("core/manifest.js");
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("status --help stops before the check modules", () => {
    const { own, packages } = loaded(["status", "--help"]);
    expect(packages).toEqual([]);
    expect(own).not.toContain("host/check-host.js");
  });

  it("run loads the daemon's packages (the recorder sees them)", () => {
    const { packages } = loaded(["run", "--check-config", "--root", tempRoot()]);
    expect(packages).toContain("node-cron");
  });
});
