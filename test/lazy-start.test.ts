// What the agent starts only on demand (issue 11, resident memory): the bcrypt worker thread — a whole V8
// isolate — exists only once a request needs a compare, and still authenticates then. Counted (threads of
// the real process, workers started), never timed.

import * as fs from "node:fs";
import * as path from "node:path";
import bcrypt from "bcryptjs";
import { pino } from "pino";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { AgentServer, type HttpSource } from "../src/agent/http.js";
import { parseWebConfig } from "../src/agent/web-config.js";
import { ensureBuilt, type RunningAgent, startAgent, waitFor } from "./helpers/agent.js";
import { cleanupRoots, healthyHost, tempRoot } from "./helpers/host.js";

const HASH = bcrypt.hashSync("pw", 4);
const basic = (user: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`,
});

const servers: AgentServer[] = [];
const agents: RunningAgent[] = [];
afterEach(async () => {
  await Promise.all([...servers.splice(0).map((s) => s.close()), ...agents.splice(0).map((a) => a.stop())]);
});
afterAll(cleanupRoots);

const source: HttpSource = {
  ready: () => true,
  metrics: async () => "sops_healthy 1\n",
  metricsContentType: "text/plain; version=0.0.4; charset=utf-8",
  status: () => null,
  version: "9.9.9",
};

/** The threads of a process, from /proc (Linux). */
function threads(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/task`).length;
}

describe("the bcrypt worker starts on demand", () => {
  it("starts none for a server without basic auth, however many requests it answers", async () => {
    const server = new AgentServer({ source, logger: pino({ level: "silent" }) });
    servers.push(server);
    const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: basic("prom", "pw") });
      expect(res.status).toBe(200);
      await res.text();
    }
    expect(server.authCounts).toMatchObject({ compares: 0, workersStarted: 0 });
  });

  it("starts one only when a request with credentials needs a compare, and authenticates through it", async () => {
    const server = new AgentServer({
      source,
      logger: pino({ level: "silent" }),
      webConfig: parseWebConfig(`basic_auth_users:\n  prom: "${HASH}"\n`, "/w.yml"),
    });
    servers.push(server);
    const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
    const url = `http://127.0.0.1:${port}/metrics`;
    // No credentials: refused without a compare, so without a worker.
    expect((await fetch(url)).status).toBe(401);
    expect(server.authCounts).toMatchObject({ compares: 0, workersStarted: 0 });
    const ok = await fetch(url, { headers: basic("prom", "pw") });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe("sops_healthy 1\n");
    expect((await fetch(url, { headers: basic("prom", "wrong") })).status).toBe(401);
    // Both compares ran on the one worker the first one started.
    expect(server.authCounts).toMatchObject({ compares: 2, workersStarted: 1 });
  });

  it.skipIf(process.platform !== "linux")(
    "adds no thread to the running agent until a basic-auth request arrives, then one",
    async () => {
      const dir = tempRoot("sops-agent-lazy-");
      const web = path.join(dir, "web.yml");
      fs.writeFileSync(web, `basic_auth_users:\n  prom: "${HASH}"\n`);
      const host = healthyHost();
      ensureBuilt();
      const agent = await startAgent(host.root, ["--web.config.file", web, "--log-level", "debug"]);
      agents.push(agent);
      // /readyz asks for credentials too (asking would start the worker): the log says when a check is out.
      await waitFor(
        "the first check",
        async () => agent.logs.some((l) => l.event === "check"),
        (published) => published,
      );
      const pid = agent.child.pid as number;
      const metrics = `${agent.base}/metrics`;
      expect((await fetch(metrics)).status).toBe(401);
      const before = threads(pid);
      // A refused request costs no compare: still no worker.
      expect((await fetch(metrics)).status).toBe(401);
      expect(threads(pid)).toBe(before);
      const ok = await fetch(metrics, { headers: basic("prom", "pw") });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain("sops_healthy");
      expect(threads(pid)).toBe(before + 1);
    },
  );
});
