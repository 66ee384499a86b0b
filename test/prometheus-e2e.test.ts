// End to end with a real Prometheus: Debian's server on loopback, the project's alert rules, scraping the
// real agent (`node dist/cli.js run`) on a fixture host. Deleting a secret from the current generation
// must raise SopsSecretMissing through Prometheus' HTTP API.
//
// The rules' `for:` durations are meant for real deploys (minutes); the test's copy of the rules has them
// cut to 1s, so the alert goes pending within a scrape and an evaluation. Everything else is the file as
// shipped.

import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { layoutHost } from "../src/example/layout.js";
import { requireTool } from "./helpers/tools.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
// SOPS_AGENT_E2E_CLI runs another build of the agent (or a stand-in while debugging the Prometheus side).
const CLI = process.env.SOPS_AGENT_E2E_CLI ?? path.join(ROOT, "dist", "cli.js");
const RULES = path.join(ROOT, "deploy", "prometheus", "sops-agent.rules.yml");

const ALERT_DEADLINE_MS = 60_000;
const STARTUP_DEADLINE_MS = 30_000;

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  /** The tail of stdout and stderr, for the failure message. */
  output(): string;
}

const procs: Proc[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.all(procs.splice(0).map(stop));
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function start(name: string, cmd: string, args: readonly string[]): Proc {
  const child = spawn(cmd, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const keep = (chunk: Buffer) => {
    out = (out + chunk.toString("utf8")).slice(-8_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const proc: Proc = {
    name,
    child,
    output: () => `--- ${name} (exit ${child.exitCode ?? "running"}) ---\n${out}`,
  };
  procs.push(proc);
  return proc;
}

async function stop(proc: Proc): Promise<void> {
  const { child } = proc;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function tempDir(prefix: string): string {
  // tmpfs when there is one: the fixture's system scope then sits on a RAM file system, as on a host.
  const base = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
  const dir = fs.mkdtempSync(path.join(base, prefix));
  dirs.push(dir);
  return dir;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns a value, failing with `what` and the processes' output at the deadline. */
async function waitFor<T>(what: string, deadlineMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + deadlineMs;
  let lastError = "";
  while (Date.now() < until) {
    for (const p of procs)
      if (p.child.exitCode !== null)
        throw new Error(`${p.name} exited while waiting for ${what}\n${p.output()}`);
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    await sleep(250);
  }
  throw new Error(
    `timed out after ${deadlineMs} ms waiting for ${what} ${lastError}\n${procs.map((p) => p.output()).join("\n")}`,
  );
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

interface PromAlert {
  readonly labels: Record<string, string>;
  readonly state: "pending" | "firing" | "inactive";
}

describe("Prometheus end to end", () => {
  it("deleting a secret raises SopsSecretMissing in a real Prometheus", { timeout: 150_000 }, async (ctx) => {
    const prometheus = requireTool(ctx, "prometheus");
    if (!fs.existsSync(CLI)) {
      const message = "dist/cli.js is missing: run `npm run build` first (npm test does)";
      if (process.env.CI === "true") throw new Error(message);
      ctx.skip(message);
    }

    // The fixture host: one system scope, two secrets, laid out the way sops-install-secrets leaves them.
    const root = tempDir("sops-agent-e2e-host-");
    const host = layoutHost(root, {
      system: {
        secrets: [
          { name: "db-password", mode: "0400" },
          { name: "api-token", mode: "0440" },
        ],
      },
    });

    const agentPort = await freePort();
    const agent = start("sops-agent", process.execPath, [
      CLI,
      "run",
      "--root",
      root,
      "--listen",
      `127.0.0.1:${agentPort}`,
    ]);
    await waitFor("the agent's first full check (/readyz)", STARTUP_DEADLINE_MS, async () => {
      const res = await fetch(`http://127.0.0.1:${agentPort}/readyz`, { signal: AbortSignal.timeout(2_000) });
      return res.status === 200 ? true : undefined;
    });

    // Prometheus with the shipped rules, `for:` cut to 1s, scraping and evaluating every second.
    const work = tempDir("sops-agent-e2e-prometheus-");
    const rules = fs.readFileSync(RULES, "utf8").replace(/^(\s*for:\s*)\S+\s*$/gm, "$11s");
    expect(rules).toMatch(/for: 1s/);
    fs.writeFileSync(path.join(work, "sops-agent.rules.yml"), rules);
    fs.writeFileSync(
      path.join(work, "prometheus.yml"),
      [
        "global:",
        "  scrape_interval: 1s",
        "  scrape_timeout: 1s",
        "  evaluation_interval: 1s",
        "rule_files:",
        `  - ${path.join(work, "sops-agent.rules.yml")}`,
        "scrape_configs:",
        "  - job_name: sops-agent",
        "    static_configs:",
        `      - targets: ["127.0.0.1:${agentPort}"]`,
        "",
      ].join("\n"),
    );
    const promPort = await freePort();
    const api = `http://127.0.0.1:${promPort}`;
    start("prometheus", prometheus, [
      `--config.file=${path.join(work, "prometheus.yml")}`,
      `--storage.tsdb.path=${path.join(work, "data")}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      "--log.level=warn",
    ]);

    await waitFor("Prometheus to scrape the agent (target up)", STARTUP_DEADLINE_MS, async () => {
      const targets = await getJson<{
        data: { activeTargets: { health: string; labels: Record<string, string> }[] };
      }>(`${api}/api/v1/targets`);
      return targets.data.activeTargets.some((t) => t.health === "up" && t.labels.job === "sops-agent")
        ? true
        : undefined;
    });
    // A scrape has landed and the healthy scope is reported before anything is broken.
    await waitFor('sops_healthy{scope="system"} in Prometheus', STARTUP_DEADLINE_MS, async () => {
      const r = await getJson<{ data: { result: { value: [number, string] }[] } }>(
        `${api}/api/v1/query?query=${encodeURIComponent('sops_healthy{scope="system"}')}`,
      );
      return r.data.result.length > 0 ? true : undefined;
    });
    const missingAlerts = async () =>
      (await getJson<{ data: { alerts: PromAlert[] } }>(`${api}/api/v1/alerts`)).data.alerts.filter(
        (a) => a.labels.alertname === "SopsSecretMissing",
      );
    expect(await missingAlerts()).toEqual([]);

    // Break the host: the secret vanishes from the current generation.
    const generation = fs.readlinkSync(host.real("/run/secrets"));
    fs.rmSync(host.real(path.posix.join(generation, "db-password")));
    const deleted = Date.now();

    const alert = await waitFor(
      "SopsSecretMissing for db-password to go pending or firing",
      ALERT_DEADLINE_MS,
      async () =>
        (await missingAlerts()).find(
          (a) => a.labels.subject === "db-password" && (a.state === "pending" || a.state === "firing"),
        ),
    );
    expect(alert.labels).toMatchObject({
      alertname: "SopsSecretMissing",
      severity: "critical",
      scope: "system",
      subject: "db-password",
      code: "missing",
      job: "sops-agent",
    });
    // The other secret is fine, so it raises nothing.
    expect((await missingAlerts()).filter((a) => a.labels.subject === "api-token")).toEqual([]);
    await ctx.annotate(`alert ${alert.state} ${Date.now() - deleted} ms after the deletion`);
    expect(agent.child.exitCode).toBeNull();
  });
});
