// The agent over time: deploy events on a generation switch, SIGHUP reloads, a host where sops-nix has not
// run yet, and no secret value in any log line, metric or status document.

import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { generationSwitches, keepRun } from "../src/agent/agent.js";
import { layoutHost } from "../src/example/layout.js";
import { checkHost } from "../src/host/check-host.js";
import { ensureBuilt, type RunningAgent, startReadyAgent, waitFor } from "./helpers/agent.js";
import {
  cleanupRoots,
  healthyHost,
  healthySpec,
  installKeys,
  makeHost,
  PLANTED,
  TEST_AGE_KEYS,
  tempRoot,
} from "./helpers/host.js";

const agents: RunningAgent[] = [];

beforeAll(() => ensureBuilt(), 120_000);
afterEach(async () => {
  for (const a of agents.splice(0)) if (a.child.exitCode === null) await a.stop();
  cleanupRoots();
});

async function start(root: string, extra: string[] = []): Promise<RunningAgent> {
  const agent = await startReadyAgent(root, extra);
  agents.push(agent);
  return agent;
}

/** On a time-out, show what the agent logged: watch events and checks say why nothing changed. */
const withLogs = (agent: RunningAgent) => (e: unknown) => {
  throw new Error(`${String(e).slice(0, 300)}\nagent logs: ${JSON.stringify(agent.logs)}`);
};

const sample = (text: string, series: string): number | undefined => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe("deploy events", () => {
  it("name the secrets added, removed and changed between two generations", () => {
    const root = tempRoot();
    const before = layoutHost(root, { system: { secrets: [{ name: "a" }, { name: "b" }] } });
    const prev = checkHost({ root, manifests: null, env: {} });
    // The next deploy: a new manifest content and generation 2, as sops-install-secrets writes them.
    const after = layoutHost(root, { system: { generation: 2, secrets: [{ name: "b" }, { name: "c" }] } });
    fs.rmSync(before.real("/run/secrets.d/1"), { recursive: true });
    const next = checkHost({ root: after.root, manifests: null, env: {} });
    const events = generationSwitches(keepRun(prev), next);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      event: "generation_switch",
      scope: "system",
      generation: 2,
      previous: 1,
      added: ["c"],
      removed: ["a"],
      changed: ["b"],
    });
  });

  it("are logged by the running agent with the check right after, and counted in the metrics", async () => {
    const host = healthyHost();
    const agent = await start(host.root, ["--log-level", "debug"]);
    host.switchGeneration("system");
    const event = await waitFor(
      "generation_switch event",
      async () => agent.logs.find((l) => l.event === "generation_switch" && l.scope === "system"),
      (e) => e !== undefined,
    ).catch(withLogs(agent));
    expect(event).toMatchObject({ generation: 2, previous: 1, added: [], removed: [], healthy: true });
    expect(event?.changed).toEqual(expect.arrayContaining(["db-password", "nginx/htpasswd", "api-token"]));
    const metrics = await waitFor(
      "generation metric",
      () => agent.metrics(),
      (m) => sample(m, 'sops_generation{scope="system"}') === 2,
    );
    expect(sample(metrics, 'sops_generation_switches_total{scope="system"}')).toBe(1);
    expect(sample(metrics, 'sops_healthy{scope="system"}')).toBe(1);
  });
});

describe("SIGHUP", () => {
  it("keeps the old config when the new one is bad, and takes a good one", async () => {
    const host = healthyHost();
    const config = path.join(host.root, "agent.yaml");
    fs.writeFileSync(config, "log_level: info\n");
    const agent = await start(host.root, ["--config", config]);
    fs.writeFileSync(config, "log_level: info\nlisn: 1.2.3.4:5\n");
    agent.child.kill("SIGHUP");
    const failed = await waitFor(
      "failed reload",
      () => agent.metrics(),
      (m) => sample(m, "sops_agent_config_last_reload_successful") === 0,
    );
    expect(failed).toContain("sops_secret_ok");
    const failure = agent.logs.find((l) => l.event === "config_reload_failed");
    expect(String(failure?.error)).toContain(`${config}:2: unknown key "lisn"`);
    expect((await fetch(`${agent.base}/readyz`)).status).toBe(200);
    fs.writeFileSync(config, "log_level: debug\n");
    agent.child.kill("SIGHUP");
    await waitFor(
      "good reload",
      () => agent.metrics(),
      (m) => sample(m, "sops_agent_config_last_reload_successful") === 1,
    );
    expect(agent.logs.some((l) => l.event === "config_reloaded")).toBe(true);
  });
});

describe("before sops-nix has run", () => {
  it("starts, reports the missing link, and picks the secrets up when they appear", async () => {
    const spec = healthySpec();
    const host = makeHost({
      ...spec,
      system: { ...spec.system, secrets: spec.system?.secrets ?? [], generation: 0 },
    });
    installKeys(host);
    const agent = await start(host.root);
    const first = await agent.metrics();
    expect(first).toMatch(
      /sops_problem\{scope="system",subject="\/run\/secrets",code="symlink_missing",severity="critical"\} 1/,
    );
    expect(sample(first, 'sops_healthy{scope="system"}')).toBe(0);
    const laid = host.scopes.get("system");
    if (laid === undefined) throw new Error("no system scope");
    host.layGeneration(laid, 1);
    const healed = await waitFor(
      "healthy system scope",
      () => agent.metrics(),
      (m) => sample(m, 'sops_healthy{scope="system"}') === 1,
    );
    expect(healed).not.toContain('code="symlink_missing"');
  });
});

describe("no secret value leaves the agent", () => {
  it("in logs, metrics or /status, even with a fault that touches one", async () => {
    const host = healthyHost();
    const agent = await start(host.root);
    fs.writeFileSync(
      host.real("/run/secrets.d/1/rendered/app.env"),
      `TOKEN=PLANTED-template-c0de\nX=<SOPS:${"0".repeat(64)}:PLACEHOLDER>\n`,
    );
    host.switchGeneration("user:alice");
    const metrics = await waitFor(
      "placeholder problem",
      () => agent.metrics(),
      (m) => m.includes('code="unrendered_placeholder"'),
    );
    const status = await (await fetch(`${agent.base}/status`)).text();
    expect(metrics).not.toMatch(PLANTED);
    expect(status).not.toMatch(PLANTED);
    expect(JSON.stringify(agent.logs)).not.toMatch(PLANTED);
    expect(agent.logs.length).toBeGreaterThan(2);
  });
});

describe("scopes that come and go", () => {
  it("follows a new home-manager user and a removed manifest", async () => {
    const spec = healthySpec();
    const host = makeHost(spec);
    installKeys(host);
    const agent = await start(host.root);
    expect(await agent.metrics()).not.toContain('scope="user:bob"');
    // bob is created and his home-manager generation activated: passwd, his unit and secrets appear.
    // His manifest names no key: sops reads his ~/.config/sops/age/keys.txt by itself.
    host.writeFile("/home/bob/.config/sops/age/keys.txt", TEST_AGE_KEYS, 0o600, 1001, 100);
    layoutHost(host.root, {
      ...spec,
      users: [...(spec.users ?? []), { name: "bob", uid: 1001, gid: 100, home: "/home/bob" }],
      homeManager: [
        ...(spec.homeManager ?? []),
        { user: "bob", scope: { secrets: [{ name: "bob-token" }] } },
      ],
    });
    await waitFor(
      "bob's scope",
      () => agent.metrics(),
      (m) => m.includes('sops_secret_ok{scope="user:bob",kind="secret",name="bob-token"} 1'),
    ).catch(withLogs(agent));
    fs.rmSync(host.real("/home/bob/.config/systemd/user/sops-nix.service"));
    const after = await waitFor(
      "bob's scope gone",
      () => agent.metrics(),
      (m) => !m.includes('scope="user:bob"'),
    ).catch(withLogs(agent));
    expect(after).toContain('sops_secret_ok{scope="user:alice"');
  });
});

describe("every line the running agent writes", () => {
  it("is pino JSON on stdout, the scheduler's included; nothing on stderr", async () => {
    const host = healthyHost();
    const config = path.join(host.root, "agent.yaml");
    // Every second, so a pause of the process makes node-cron see missed runs and say so.
    fs.writeFileSync(config, 'schedule: "* * * * * *"\n');
    const agent = await start(host.root, ["--config", config]);
    agent.child.kill("SIGSTOP");
    await new Promise((r) => setTimeout(r, 2500));
    agent.child.kill("SIGCONT");
    await waitFor(
      "the scheduler's warning",
      async () => `${agent.lines.join("\n")}${agent.stderr()}`,
      (out) => /missed execution/i.test(out),
    ).catch(withLogs(agent));
    await agent.stop();
    expect(agent.stderr()).toBe("");
    for (const line of agent.lines) expect(() => JSON.parse(line), line).not.toThrow();
    const scheduler = agent.logs.filter((l) => l.event === "scheduler");
    expect(scheduler.length).toBeGreaterThan(0);
    expect(scheduler[0]).toMatchObject({ level: "warn", name: "sops-agent" });
  });
});
