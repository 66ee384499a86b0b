// Benchmarks of the running agent (issue 3): change-to-metric latency, /metrics time at 1,000 and 10,000
// secrets, resident memory over a bare Node process, idle CPU while watching. Each figure comes from the
// real agent (`node dist/cli.js run`) on a host laid out like sops-nix leaves one.

import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { HostLayout } from "../example/layout.js";
import { layoutLargeHost } from "./core.js";

const CLI = fileURLToPath(new URL("../cli.js", import.meta.url));
const UNIT = fileURLToPath(new URL("../../deploy/systemd/sops-agent.service", import.meta.url));
const CLOCK_TICKS = 100;
/** Idle time before resident memory is read: the agent has checked, been scraped, and settled. */
const SETTLE_MS = 2_000;
/**
 * A longer idle, read once more: V8's memory reducer (a timer V8 starts after a full GC, acting once the
 * allocation rate has been low over several of its 8 s ticks: 20–30 s after the scrapes when measured)
 * gives back the young generation the first check grew; no flag or forced GC is involved.
 */
const LONG_IDLE_MS = 60_000;

/**
 * How users start the agent: the `sops-agent` bin, whose shebang carries the node flags, run by the kernel
 * as `<interpreter> "<rest of the line>" dist/cli.js …`, with the environment the systemd unit sets.
 */
interface Launch {
  readonly interpreter: string;
  readonly shebangArg: string | null;
  readonly env: Readonly<Record<string, string>>;
}

function launch(): Launch {
  const first = fs.readFileSync(CLI, "utf8").split("\n", 1)[0] ?? "";
  const m = /^#!\s*(\S+)(?:\s+(.*\S))?\s*$/.exec(first);
  if (m?.[1] === undefined) throw new Error(`${CLI} has no shebang`);
  const env: Record<string, string> = {};
  for (const line of fs.readFileSync(UNIT, "utf8").split("\n")) {
    const e = /^Environment=([A-Za-z_][A-Za-z0-9_]*)=(\S*)$/.exec(line);
    if (e?.[1] !== undefined) env[e[1]] = e[2] ?? "";
  }
  return { interpreter: m[1], shebangArg: m[2] ?? null, env };
}

const LAUNCH = launch();

/** How the agent was started, for the benchmark's output. */
function launchDescription(): string {
  const shebang = `\`#!${LAUNCH.interpreter}${LAUNCH.shebangArg === null ? "" : ` ${LAUNCH.shebangArg}`}\``;
  const env = Object.entries(LAUNCH.env).map(([k, v]) => `\`${k}=${v}\``);
  return env.length === 0 ? shebang : `${shebang} with ${env.join(", ")}`;
}

interface Spawned {
  readonly child: ChildProcess;
  readonly base: string;
}

function tempRoot(): string {
  const base = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
  return fs.mkdtempSync(path.join(base, "sops-agent-bench-"));
}

/** A host as sops-nix lays it out (issue 11): 100 directories, 100 sops files of ~14 KiB, an age key. */
function host(secrets: number): HostLayout {
  return layoutLargeHost(tempRoot(), secrets);
}

async function startAgent(root: string, unitEnv: Readonly<Record<string, string>>): Promise<Spawned> {
  const args = [CLI, "run", "--root", root, "--listen", "127.0.0.1:0", "--log-level", "info"];
  const child = spawn(LAUNCH.interpreter, LAUNCH.shebangArg === null ? args : [LAUNCH.shebangArg, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
    // The node that runs the bench is the one `env` finds.
    env: {
      ...process.env,
      ...unitEnv,
      PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ""}`,
    },
  });
  const base = await new Promise<string>((resolve, reject) => {
    let buf = "";
    child.on("exit", (code) => reject(new Error(`agent exited with ${code}`)));
    child.stdout?.on("data", (d: Buffer) => {
      buf += d.toString();
      const m = /"event":"listening","address":"([^"]+)"/.exec(buf);
      if (m?.[1] !== undefined) resolve(`http://${m[1]}`);
    });
  });
  child.stdout?.resume();
  for (;;) {
    if ((await fetch(`${base}/readyz`)).status === 200) break;
    await sleep(20);
  }
  return { child, base };
}

async function stopAgent(a: Spawned): Promise<void> {
  await new Promise<void>((resolve) => {
    if (a.child.exitCode !== null) return resolve();
    a.child.once("exit", () => resolve());
    a.child.kill("SIGTERM");
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
}

/**
 * One /metrics request read to its last byte, as a scraper reads it: raw bytes, not decoded into a
 * JavaScript string (fetch's text() spends ~15 ms of the bench's own CPU on 3 MB, which is not the agent's).
 */
function scrape(base: string, gzip = false): Promise<{ readonly ms: number; readonly body: Buffer }> {
  const t = performance.now();
  return new Promise((resolve, reject) => {
    http
      .get(
        `${base}/metrics`,
        { agent: KEEP_ALIVE, headers: gzip ? { "Accept-Encoding": "gzip" } : {} },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ ms: performance.now() - t, body: Buffer.concat(chunks) }));
          res.on("error", reject);
        },
      )
      .on("error", reject);
  });
}

const KEEP_ALIVE = new http.Agent({ keepAlive: true, maxSockets: 1 });

async function scrapeMs(base: string, times: number, gzip = false): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < times; i++) out.push((await scrape(base, gzip)).ms);
  return out;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? Number.NaN);
}

function cpuTicks(pid: number): number {
  // Fields after the command name: utime is the 14th field, stime the 15th.
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/** A secret's mode flipped `changes` times; each time, how long until /metrics shows it. */
async function latency(a: Spawned, h: HostLayout, changes: number): Promise<number[]> {
  const file = h.real("/run/secrets.d/1/svc3/secret-3");
  const series = Buffer.from('sops_problem{scope="system",subject="svc3/secret-3",code="wrong_mode"');
  const out: number[] = [];
  for (let i = 0; i < changes; i++) {
    const breaking = i % 2 === 0;
    const t = performance.now();
    fs.chmodSync(file, breaking ? 0o444 : 0o400);
    for (;;) {
      const has = (await scrape(a.base)).body.includes(series);
      if (has === breaking) break;
      if (performance.now() - t > 10_000) throw new Error("the change never reached /metrics");
      await sleep(1);
    }
    out.push(performance.now() - t);
    await sleep(100);
  }
  return out;
}

/** The /metrics body as sent when the scraper accepts gzip (fetch would decompress it). */
function gzipBytes(base: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(`${base}/metrics`, { headers: { "Accept-Encoding": "gzip" } }, (res) => {
        let n = 0;
        res.on("data", (c: Buffer) => {
          n += c.length;
        });
        res.on("end", () => resolve(res.headers["content-encoding"] === "gzip" ? n : Number.NaN));
      })
      .on("error", reject);
  });
}

async function bareNodeRss(): Promise<number> {
  // A plain `node`: no flags, not the unit's environment; everything the agent adds is counted.
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], {
    stdio: "ignore",
  });
  await sleep(SETTLE_MS);
  const rss = child.pid === undefined ? Number.NaN : rssKiB(child.pid);
  child.kill("SIGTERM");
  return rss;
}

/** Resident memory of an agent on a 10-secret host: what the agent costs before its secrets do. */
async function fixedCostRss(): Promise<number> {
  const h = host(10);
  const a = await startAgent(h.root, LAUNCH.env);
  try {
    await scrapeMs(a.base, 23);
    await sleep(SETTLE_MS);
    if (a.child.pid === undefined) throw new Error("no agent pid");
    return rssKiB(a.child.pid);
  } finally {
    await stopAgent(a);
    fs.rmSync(h.root, { recursive: true, force: true });
  }
}

export async function benchAgent(): Promise<string> {
  const rows: string[] = [];
  const bare = await bareNodeRss();
  const rss: Record<string, number> = {};
  rss["at 10 secrets (the fixed cost), as the unit starts it"] = await fixedCostRss();
  let longIdle = Number.NaN;
  for (const [label, env] of [
    ["as the unit starts it", LAUNCH.env],
    ["without the unit's MALLOC_* settings", {}],
  ] as const) {
    const h = host(10_000);
    const a = await startAgent(h.root, env);
    try {
      await scrapeMs(a.base, 3);
      if (Object.keys(env).length > 0) {
        const t = await scrapeMs(a.base, 20);
        const tz = await scrapeMs(a.base, 20, true);
        const size = (await scrape(a.base)).body.length;
        const gz = await gzipBytes(a.base);
        rows.push(
          `| /metrics at 10,000 secrets, read to the last byte | median ${quantile(t, 0.5).toFixed(1)} ms, p95 ${quantile(t, 0.95).toFixed(1)} ms; gzip median ${quantile(tz, 0.5).toFixed(1)} ms; ${(size / 1e6).toFixed(2)} MB, gzip ${(gz / 1024).toFixed(0)} KiB | ~4 ms, 3.2 MB or better; gzip ≤ 250 KB |`,
        );
      } else await scrapeMs(a.base, 20);
      if (a.child.pid === undefined) throw new Error("no agent pid");
      await sleep(SETTLE_MS);
      rss[label] = rssKiB(a.child.pid);
      if (Object.keys(env).length > 0) {
        await sleep(LONG_IDLE_MS - SETTLE_MS);
        longIdle = rssKiB(a.child.pid);
        const t0 = cpuTicks(a.child.pid);
        await sleep(5_000);
        const idle = ((cpuTicks(a.child.pid) - t0) / CLOCK_TICKS / 5) * 100;
        const lat = await latency(a, h, 30);
        rows.push(
          `| change-to-metric latency at 10,000 secrets (a mode flipped, 30 changes) | median ${quantile(lat, 0.5).toFixed(1)} ms, p95 ${quantile(lat, 0.95).toFixed(1)} ms | median ≤ 100 ms |`,
          `| idle CPU while watching (10,000 secrets, 5 s) | ${idle.toFixed(2)} % of a core | no polling loop |`,
        );
      }
    } finally {
      await stopAgent(a);
      fs.rmSync(h.root, { recursive: true, force: true });
    }
  }
  const over = (kib: number) =>
    `${((kib - bare) / 1024).toFixed(1)} MiB (agent ${(kib / 1024).toFixed(1)}, bare ${(bare / 1024).toFixed(1)})`;
  for (const [label, kib] of Object.entries(rss))
    rows.push(
      label.startsWith("at 10 secrets")
        ? `| resident memory over bare Node ${label} (after check, 23 scrapes, ${SETTLE_MS / 1000} s idle) | ${over(kib)} | — |`
        : `| resident memory over bare Node at 10,000 secrets, ${label} (after check, 23 scrapes, ${SETTLE_MS / 1000} s idle) | ${over(kib)} | ≤ 40 MiB |`,
    );
  rows.push(
    `| resident memory over bare Node at 10,000 secrets, as the unit starts it, after ${LONG_IDLE_MS / 1000} s idle | ${over(longIdle)} | ≤ 40 MiB |`,
  );
  return [
    `The agent is started as installed: ${launchDescription()} (deploy/systemd/sops-agent.service); bare Node is a plain \`node\`.`,
    "",
    "| agent | result | goal |",
    "|---|---|---|",
    ...rows,
  ].join("\n");
}
