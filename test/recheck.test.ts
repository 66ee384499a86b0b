// A change the watcher names exactly is checked by observing only the named files again (issue 11.5): the
// result must be the one a full check gives, on the pure function and in the running agent.

import * as fs from "node:fs";
import { pino } from "pino";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { Agent } from "../src/agent/agent.js";
import { mergeConfig } from "../src/agent/config.js";
import { checkHost, checkHostKeeping, recheckFiles } from "../src/host/check-host.js";
import { RootFs } from "../src/host/rootfs.js";
import { waitFor } from "./helpers/agent.js";
import { cleanupRoots, healthyHost } from "./helpers/host.js";

afterAll(() => cleanupRoots());

/** The real path the watcher reports for a host path (the root's own symlinks resolved). */
function realOf(root: string, hostPath: string): string {
  const fsr = new RootFs(root);
  const slash = hostPath.lastIndexOf("/");
  return `${fsr.real(hostPath.slice(0, slash))}${hostPath.slice(slash)}`;
}

const options = (root: string) => ({ root, manifests: null, env: {} });

describe("recheckFiles", () => {
  it("gives what a full check gives after a file's mode, presence and content change", () => {
    const host = healthyHost();
    let { state } = checkHostKeeping(options(host.root));
    const secret = "/run/secrets.d/1/db-password";
    const changes: [string, () => void][] = [
      ["mode", () => fs.chmodSync(host.real(secret), 0o444)],
      ["deleted", () => fs.rmSync(host.real(secret))],
      ["back", () => host.writeFile(secret, "new value", 0o400)],
    ];
    for (const [what, change] of changes) {
      change();
      const partial = recheckFiles(state, new Set([realOf(host.root, secret)]));
      expect(partial, what).not.toBeNull();
      if (partial === null) return;
      expect(partial.reobserved).toBe(1);
      expect(partial.run.document, what).toEqual(checkHost(options(host.root)).document);
      state = partial.state;
    }
    expect(state.run.document.problems.map((p) => p.code)).not.toContain("missing");
  });

  it("declines paths that are not observed files: a full check is needed", () => {
    const host = healthyHost();
    const { state } = checkHostKeeping(options(host.root));
    expect(recheckFiles(state, new Set([realOf(host.root, "/run/secrets.d/1/undeclared")]))).toBeNull();
    expect(recheckFiles(state, new Set([realOf(host.root, "/run/secrets")]))).toBeNull();
  });
});

describe("the agent", () => {
  let agent: Agent | null = null;
  afterEach(async () => {
    await agent?.stop();
    agent = null;
  });

  it("re-checks only the file the watcher named, and publishes what a full check would", async () => {
    const host = healthyHost();
    agent = new Agent({
      config: mergeConfig({}, { root: host.root, listen: { host: "127.0.0.1", port: 0 } }, null),
      logger: pino({ level: "silent" }),
      env: {},
      version: "test",
      processMetrics: false,
      statusSocket: null,
    });
    await agent.start();
    const a = agent;
    const secret = "/run/secrets.d/1/db-password";
    const before = a.rechecks;
    fs.chmodSync(host.real(secret), 0o444);
    await waitFor(
      "wrong_mode published",
      async () => a.state?.document.problems.map((p) => p.code) ?? [],
      (codes) => codes.includes("wrong_mode"),
    );
    expect(a.rechecks).toBeGreaterThan(before);
    expect(a.state?.document).toEqual(checkHost(options(host.root)).document);
    fs.chmodSync(host.real(secret), 0o400);
    await waitFor(
      "healthy again",
      async () => a.state?.document.healthy,
      (h) => h === true,
    );
    expect(a.state?.document).toEqual(checkHost(options(host.root)).document);
  });
});
