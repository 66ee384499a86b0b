// `sops-agent status` answered by a real running agent over its real Unix socket, the socket's permissions,
// and every way back to checking here: --fresh, no agent, a stale socket, a socket others could write to,
// an agent watching another root.

import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answerBytes } from "../src/agent/status-socket.js";
import { parseDocumentLine, parseSummaryLine } from "../src/cli/agent-socket.js";
import type { StatusDocument } from "../src/core/report.js";
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

  it("reads only the summary line for the report; --json needs the document line", async () => {
    // The real agent's summary line, then a document line that is not a document.
    const real = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      net
        .createConnection({ path: socket })
        .on("data", (c: Buffer) => chunks.push(c))
        .on("end", () => resolve(Buffer.concat(chunks)))
        .on("error", reject);
    });
    const head = real.subarray(0, real.indexOf(10) + 1);
    const fake = path.join(sockets, "summary-only.sock");
    const server = net.createServer((c) => {
      c.on("error", () => {});
      c.end(Buffer.concat([head, Buffer.from("not a document\n")]));
    });
    await new Promise<void>((resolve) => server.listen(fake, resolve));
    fs.chmodSync(fake, 0o600);
    try {
      const human = await runCli(["status", "--root", host.root, "--status-socket", fake]);
      expect(human.stderr).toMatch(ANSWERED);
      expect(human.stdout).toBe((await runCli(["status", "--root", host.root, "--fresh"])).stdout);
      const json = await runCli(["status", "--root", host.root, "--status-socket", fake, "--json"]);
      expect(json.stderr).toContain("is not a status document); checked here");
      expect(JSON.parse(json.stdout).healthy).toBe(true);
    } finally {
      await new Promise((resolve) => server.close(resolve));
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

describe("the answer's two lines", () => {
  const agentInfo = { pid: 1, version: "1", root: "/", manifests: null, checkedAt: 1 };
  const summary = { healthy: true, incomplete: [], scopes: [], problems: [], recipients: [], files: [] };
  const document = { healthy: true, incomplete: [], scopes: [], problems: [], secrets: [], recipients: [] };
  const good = { agent: agentInfo, summary };
  it.each([
    ["not JSON", "{"],
    ["no agent", JSON.stringify({ summary })],
    ["the old one-line answer", JSON.stringify({ agent: agentInfo, document })],
    ["a summary without file tallies", JSON.stringify({ ...good, summary: { ...summary, files: 1 } })],
    ["a bad root", JSON.stringify({ ...good, agent: { ...agentInfo, root: 1 } })],
    ["bad manifests", JSON.stringify({ ...good, agent: { ...agentInfo, manifests: [1] } })],
  ])("refuses %s as the summary line", (_what, text) => {
    expect(parseSummaryLine(text)).toBeNull();
  });
  it("takes the agent's shapes", () => {
    expect(parseSummaryLine(JSON.stringify(good))).toEqual(good);
    expect(parseDocumentLine(JSON.stringify(document))).toEqual(document);
    expect(parseDocumentLine(JSON.stringify({ ...document, secrets: 1 }))).toBeNull();
  });

  it("are the summary of the document, then the document", () => {
    const doc: StatusDocument = {
      healthy: false,
      incomplete: [],
      scopes: [],
      problems: [],
      recipients: [],
      secrets: [
        { scope: "system", kind: "secret", name: "a", path: "/run/secrets/a", ok: true },
        { scope: "system", kind: "template", name: "t", path: "/run/secrets/rendered/t", ok: false },
        { scope: "user:alice", kind: "secret", name: "b", path: "/run/user/1000/secrets/b", ok: false },
      ],
    };
    const [head, body, rest] = answerBytes({ agent: agentInfo, document: doc }).toString("utf8").split("\n");
    expect(rest).toBe("");
    expect(JSON.parse(body ?? "")).toEqual(doc);
    expect(parseSummaryLine(head ?? "")?.summary.files).toEqual([
      { scope: "system", secrets: 1, templates: 1, notOk: 1 },
      { scope: "user:alice", secrets: 1, templates: 0, notOk: 1 },
    ]);
  });
});
