// `sops-agent status` answered by a real running agent over its real Unix socket, the socket's permissions,
// and every way back to checking here: --fresh, no agent, a stale socket, a socket others could write to,
// an agent watching another root.

import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAnswer } from "../src/cli/agent-socket.js";
import { type RunningAgent, startReadyAgent } from "./helpers/agent.js";
import { runCli } from "./helpers/cli.js";
import { cleanupRoots, healthyHost, tempRoot } from "./helpers/host.js";

const host = healthyHost();
const sockets = tempRoot("sops-agent-sock-");
const socket = path.join(sockets, "run", "status.sock");
let agent: RunningAgent;

beforeAll(async () => {
  agent = await startReadyAgent(host.root, ["--status-socket", socket]);
}, 120_000);

afterAll(async () => {
  if (agent.child.exitCode === null) await agent.stop();
  cleanupRoots();
});

const ANSWERED = /answered by the running agent \(pid (\d+), checked \d+s ago\)/;

describe("status asks the running agent", () => {
  it("listens on a socket only its user (and root) can use", () => {
    const st = fs.lstatSync(socket);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(process.getuid?.());
  });

  it("answers status with the agent's last check, and says so", async () => {
    const asked = await runCli(["status", "--root", host.root, "--status-socket", socket, "--json"]);
    expect(asked.code).toBe(0);
    expect(asked.stderr).toMatch(ANSWERED);
    expect(ANSWERED.exec(asked.stderr)?.[1]).toBe(String(agent.child.pid));
    const fresh = await runCli([
      "status",
      "--root",
      host.root,
      "--status-socket",
      socket,
      "--json",
      "--fresh",
    ]);
    expect(fresh.stderr).toBe("");
    expect(JSON.parse(asked.stdout)).toEqual(JSON.parse(fresh.stdout));
    // The human view too.
    const human = await runCli(["status", "--root", host.root, "--status-socket", socket]);
    expect(human.stderr).toMatch(ANSWERED);
    expect(human.stdout).toBe((await runCli(["status", "--root", host.root, "--fresh"])).stdout);
  });

  it("checks here under --root without a named socket, with --manifest and with --wait", async () => {
    for (const extra of [[], ["--wait", "1s"]]) {
      const r = await runCli(["status", "--root", host.root, ...extra]);
      expect(r.code).toBe(0);
      expect(r.stderr).toBe("");
    }
    const manifest = host.scopes.get("system")?.manifestPath ?? "";
    const r = await runCli([
      "status",
      "--root",
      host.root,
      "--status-socket",
      socket,
      "--manifest",
      manifest,
    ]);
    expect(r.stderr).toBe("");
  });

  it("does not take the answer of an agent watching another root", async () => {
    const other = healthyHost();
    const r = await runCli(["status", "--root", other.root, "--status-socket", socket, "--json"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`the agent checks root ${host.root}, not ${other.root}`);
    expect(r.stderr).toContain("checked here");
  });

  it("does not trust a socket every user could write to", async () => {
    fs.chmodSync(socket, 0o666);
    try {
      const r = await runCli(["status", "--root", host.root, "--status-socket", socket]);
      expect(r.stderr).toContain("is writable by every user");
      expect(r.stderr).not.toMatch(ANSWERED);
    } finally {
      fs.chmodSync(socket, 0o600);
    }
  });

  it("checks here when no agent listens: no socket, or one left by an agent that was killed", async () => {
    const none = await runCli([
      "status",
      "--root",
      host.root,
      "--status-socket",
      path.join(sockets, "nope.sock"),
    ]);
    expect(none.code).toBe(0);
    expect(none.stderr).toBe("");

    const killedSocket = path.join(sockets, "killed", "status.sock");
    const doomed = await startReadyAgent(host.root, ["--status-socket", killedSocket]);
    await new Promise((resolve) => {
      doomed.child.once("exit", resolve);
      doomed.child.kill("SIGKILL");
    });
    expect(fs.lstatSync(killedSocket).isSocket()).toBe(true);
    const stale = await runCli(["status", "--root", host.root, "--status-socket", killedSocket]);
    expect(stale.code).toBe(0);
    expect(stale.stderr).toBe("");
    // The next agent replaces the stale socket and answers.
    const next = await startReadyAgent(host.root, ["--status-socket", killedSocket]);
    try {
      const r = await runCli(["status", "--root", host.root, "--status-socket", killedSocket]);
      expect(ANSWERED.exec(r.stderr)?.[1]).toBe(String(next.child.pid));
    } finally {
      await next.stop();
    }
    expect(fs.existsSync(killedSocket)).toBe(false);
  });
});

describe("parseAnswer", () => {
  const good = {
    agent: { pid: 1, version: "1", root: "/", manifests: null, checkedAt: 1 },
    document: { healthy: true, scopes: [], problems: [], secrets: [], recipients: [] },
  };
  it.each([
    ["not JSON", "{"],
    ["no agent", JSON.stringify({ document: good.document })],
    ["a document without secrets", JSON.stringify({ ...good, document: { ...good.document, secrets: 1 } })],
    ["a bad root", JSON.stringify({ ...good, agent: { ...good.agent, root: 1 } })],
    ["bad manifests", JSON.stringify({ ...good, agent: { ...good.agent, manifests: [1] } })],
  ])("refuses %s", (_what, text) => {
    expect(parseAnswer(text)).toBeNull();
  });
  it("takes the agent's shape", () => {
    expect(parseAnswer(JSON.stringify(good))).toEqual(good);
  });
});
