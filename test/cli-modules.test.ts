// Each command loads only what it needs (issue 11.2): counted from the modules the built program
// resolves, recorded by a loader hook — no timing.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
function loaded(args: string[]): { own: string[]; packages: string[] } {
  const log = path.join(logDir, `${args.join("_").replace(/[^a-z-]/g, "")}-${Math.random()}.log`);
  try {
    execFileSync(process.execPath, ["--import", HOOK, CLI, ...args], {
      env: { PATH: process.env.PATH ?? "", HOME: "/nonexistent", SOPS_AGENT_MODULE_LOG: log },
      stdio: "ignore",
    });
  } catch {
    // status exits 1 on a broken host: the modules are what counts here.
  }
  const urls = fs
    .readFileSync(log, "utf8")
    .split("\n")
    .filter((u) => u.startsWith("file://"));
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
  return { own, packages };
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

  it("status loads none of the daemon's packages, and no agent module but its config", () => {
    const host = healthyHost();
    const { own, packages } = loaded(["status", "--root", host.root]);
    for (const p of DAEMON_PACKAGES) expect(packages).not.toContain(p);
    // The sops files sops wrote take the fast path and there is no config file: the yaml package
    // (~20 ms of loading) is not needed.
    expect(packages).not.toContain("yaml");
    expect(own.filter((f) => f.startsWith("agent/"))).toEqual(["agent/config.js", "agent/strict-yaml.js"]);
    // It did check the host: the check modules are there.
    expect(own).toContain("host/check-host.js");
    expect(own).toContain("cli/format.js");
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
