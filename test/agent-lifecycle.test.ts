// The agent over time: deploy events on a generation switch, SIGHUP reloads, a host where sops-nix has not
// run yet, and no secret value in any log line, metric or status document.

import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { keepRun } from "../src/agent/agent.js";
import { generationSwitches, problemEvents, switchMessage } from "../src/agent/events.js";
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
  it("say what the declaration changed between two generations, never by inode or mtime", () => {
    const root = tempRoot();
    const before = layoutHost(root, {
      system: {
        secrets: [{ name: "a" }, { name: "b", sopsFile: "one" }, { name: "c", mode: "0400" }],
        templates: [{ name: "t", rendered: "x = 1\n" }],
      },
    });
    const prev = checkHost({ root, manifests: null, env: {} });
    // The next deploy: a new manifest and generation 2, every file written fresh, as sops-install-secrets does.
    const after = layoutHost(root, {
      system: {
        generation: 2,
        secrets: [{ name: "b", sopsFile: "two" }, { name: "c", mode: "0440" }, { name: "d" }],
        templates: [{ name: "t", rendered: "x = 2\n" }],
      },
    });
    fs.rmSync(before.real("/run/secrets.d/1"), { recursive: true });
    const next = checkHost({ root: after.root, manifests: null, env: {} });
    const events = generationSwitches(keepRun(prev).scopes, next);
    expect(events).toHaveLength(1);
    const event = events[0];
    expect(event).toMatchObject({ event: "generation_switch", scope: "system", generation: 2, previous: 1 });
    expect(event?.changes).toEqual([
      { change: "removed", kind: "secret", name: "a" },
      { change: "rekeyed", kind: "secret", name: "b", fields: ["sopsFile"] },
      { change: "access", kind: "secret", name: "c", fields: ["mode"] },
      { change: "added", kind: "secret", name: "d" },
    ]);
    expect(event === undefined ? "" : switchMessage(event)).toBe(
      "system switched to generation 2 (from 1): secret a removed; secret b re-keyed (sopsFile); secret c mode changed; secret d added",
    );
  });

  it("a problem appears once and clears once, by scope, subject and code", () => {
    const problem = {
      code: "missing",
      severity: "critical",
      scope: "system",
      subject: "db-password",
      path: "/run/secrets.d/1/db-password",
      message: "m",
    } as const;
    const other = { ...problem, subject: "api-token" };
    expect(problemEvents(null, [problem])).toEqual([
      {
        event: "problem_appeared",
        code: "missing",
        severity: "critical",
        scope: "system",
        subject: "db-password",
      },
    ]);
    // The same problem with another message (a new generation number in it) is not new.
    expect(
      problemEvents([problem], [{ ...problem, message: "n", path: "/run/secrets.d/2/db-password" }]),
    ).toEqual([]);
    expect(problemEvents([problem], [other])).toEqual([
      {
        event: "problem_appeared",
        code: "missing",
        severity: "critical",
        scope: "system",
        subject: "api-token",
      },
      {
        event: "problem_cleared",
        code: "missing",
        severity: "critical",
        scope: "system",
        subject: "db-password",
      },
    ]);
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
    // Every file was written fresh, but the declaration did not change: nothing to report.
    expect(event).toMatchObject({ generation: 2, previous: 1, changes: [], healthy: true });
    expect(event?.msg).toBe("system switched to generation 2 (from 1): no declared change");
    const metrics = await waitFor(
      "generation metric",
      () => agent.metrics(),
      (m) => sample(m, 'sops_generation{scope="system"}') === 2,
    );
    expect(sample(metrics, 'sops_generation_switches_total{scope="system"}')).toBe(1);
    expect(sample(metrics, 'sops_healthy{scope="system"}')).toBe(1);
  });
});

describe("problem events", () => {
  it("log one line when a problem appears and one when it clears", async () => {
    const host = healthyHost();
    const agent = await start(host.root);
    const file = host.real("/run/secrets.d/1/db-password");
    // Away from the generation (a file left inside it would be an orphan, a problem of its own).
    const away = path.join(host.root, "db-password.away");
    fs.renameSync(file, away);
    const appeared = await waitFor(
      "problem_appeared",
      async () => agent.logs.filter((l) => l.event === "problem_appeared"),
      (ls) => ls.length > 0,
    ).catch(withLogs(agent));
    fs.renameSync(away, file);
    const cleared = await waitFor(
      "problem_cleared",
      async () => agent.logs.filter((l) => l.event === "problem_cleared"),
      (ls) => ls.length > 0,
    ).catch(withLogs(agent));
    expect(appeared).toEqual([
      expect.objectContaining({
        level: "warn",
        code: "missing",
        scope: "system",
        subject: "db-password",
        msg: "problem appeared: missing system db-password",
      }),
    ]);
    expect(cleared).toEqual([
      expect.objectContaining({
        level: "info",
        code: "missing",
        scope: "system",
        subject: "db-password",
        msg: "problem cleared: missing system db-password",
      }),
    ]);
    // ISO-8601 time, as exporters write it.
    expect(appeared[0]?.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
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
