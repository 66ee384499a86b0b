// Hostile clients and inputs (issue 9), timed here because tests only count: an authorised scrape's latency
// while wrong passwords pour in, and how long the sops parser takes to refuse the inputs its tests feed it.

import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import bcrypt from "bcryptjs";
import { pino } from "pino";
import { AgentServer } from "../agent/http.js";
import { statusBody } from "../agent/status-body.js";
import { parseWebConfig } from "../agent/web-config.js";
import type { StatusDocument } from "../core/report.js";
import { MAX_INPUT_BYTES, parseSopsFile } from "../sops/parse.js";

const SCRAPES = 20;
const ATTACKERS = 30;

export async function benchHardening(): Promise<string> {
  return [await benchAuth(), await benchStatus(), benchRefusals()].join("\n");
}

/** 50 concurrent /status requests of a ~40 MB document: peak resident memory over the idle server. */
async function benchStatus(): Promise<string> {
  const secrets = Array.from({ length: 220_000 }, (_, i) => ({
    scope: "system" as const,
    kind: "secret" as const,
    name: `service-${i % 100}/secret-number-${i}`,
    path: `/run/secrets/service-${i % 100}/secret-number-${i}`,
    ok: true,
  }));
  const doc: StatusDocument = {
    healthy: true,
    incomplete: [],
    scopes: [],
    problems: [],
    secrets,
    recipients: [],
  };
  const shared = await peakDuringStatus(doc, "agent");
  // The Buffer the agent made during the measurement.
  const size = statusBody(doc).length;
  const perRequest = await peakDuringStatus(doc, "per-request");
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  return [
    "## /status under 50 concurrent requests (issue 9.10)",
    "",
    `A ${mib(size)} status document (220,000 secrets), 50 requests at once, bodies read and dropped by the client`,
    "in the same process. Peak resident memory over the idle server:",
    "",
    "| server | peak RSS over idle |",
    "| :----- | -----------------: |",
    `| the agent (serialised once, one shared Buffer) | ${mib(shared)} |`,
    `| serialised per request (before) | ${mib(perRequest)} |`,
    "",
  ].join("\n");
}

async function peakDuringStatus(doc: StatusDocument, mode: "agent" | "per-request"): Promise<number> {
  (globalThis as { gc?: () => void }).gc?.();
  const server = mode === "agent" ? await agentStatusServer(doc) : await perRequestStatusServer(doc);
  const idle = process.memoryUsage.rss();
  let peak = idle;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  const one = () =>
    new Promise<void>((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port: server.port, path: "/status", agent: false }, (res) => {
          res.resume();
          res.on("end", () => resolve());
        })
        .on("error", reject);
    });
  await Promise.all(Array.from({ length: 50 }, one));
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage.rss());
  await server.close();
  return peak - idle;
}

interface Listening {
  readonly port: number;
  close(): Promise<void>;
}

async function agentStatusServer(doc: StatusDocument): Promise<Listening> {
  const server = new AgentServer({
    logger: pino({ level: "silent" }),
    source: {
      ready: () => true,
      metrics: async () => "",
      metricsContentType: "text/plain",
      status: () => doc,
      version: "bench",
    },
  });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  return { port, close: () => server.close() };
}

/** What /status did before: a fresh JSON string per request. */
async function perRequestStatusServer(doc: StatusDocument): Promise<Listening> {
  const server = http.createServer((_req, res) => {
    const body = `${JSON.stringify(doc, null, 2)}\n`;
    res.setHeader("Content-Length", Buffer.byteLength(body));
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as AddressInfo;
  return { port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

async function benchAuth(): Promise<string> {
  const cost = 10;
  const hash = bcrypt.hashSync("pw", cost);
  const server = new AgentServer({
    logger: pino({ level: "silent" }),
    webConfig: parseWebConfig(`basic_auth_users:\n  prom: "${hash}"\n`, "/bench.yml"),
    source: {
      ready: () => true,
      metrics: async () => "sops_healthy 1\n",
      metricsContentType: "text/plain; version=0.0.4; charset=utf-8",
      status: () => null,
      version: "bench",
    },
  });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  const get = (password: string, from: string) =>
    new Promise<number>((resolve, reject) => {
      const t = performance.now();
      http
        .get(
          {
            host: "127.0.0.1",
            port,
            path: "/metrics",
            localAddress: from,
            agent: false,
            headers: { authorization: `Basic ${Buffer.from(`prom:${password}`).toString("base64")}` },
          },
          (res) => {
            res.resume();
            res.on("end", () => resolve(performance.now() - t));
          },
        )
        .on("error", reject);
    });
  const first = await get("pw", "127.0.0.1");
  const quiet: number[] = [];
  for (let i = 0; i < SCRAPES; i++) quiet.push(await get("pw", "127.0.0.1"));
  // Each attacker from its own loopback address, so the per-address budget lets every one reach a compare.
  const started = performance.now();
  const attack = Promise.all(
    Array.from({ length: ATTACKERS }, (_, i) => get(`guess${i}`, `127.0.1.${i + 1}`)),
  ).then(() => performance.now() - started);
  const loud: number[] = [];
  for (let i = 0; i < SCRAPES; i++) loud.push(await get("pw", "127.0.0.1"));
  const attackMs = await attack;
  const counts = server.authCounts;
  await server.close();
  // The same attack as it was before the worker: bcryptjs' async compares interleaved on the event loop.
  const before: number[] = [];
  const onLoop = Promise.all(Array.from({ length: ATTACKERS }, (_, i) => bcrypt.compare(`guess${i}`, hash)));
  const plain = new AgentServer({
    logger: pino({ level: "silent" }),
    source: {
      ready: () => true,
      metrics: async () => "sops_healthy 1\n",
      metricsContentType: "text/plain; version=0.0.4; charset=utf-8",
      status: () => null,
      version: "bench",
    },
  });
  const plainPort = (await plain.listen({ host: "127.0.0.1", port: 0 })).port;
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    await fetch(`http://127.0.0.1:${plainPort}/metrics`).then((r) => r.text());
    before.push(performance.now() - t);
  }
  await onLoop;
  await plain.close();
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  return [
    `## Basic auth under attack (issue 9.6)`,
    "",
    `bcrypt cost ${cost}. ${ATTACKERS} wrong passwords at once from ${ATTACKERS} addresses, while Prometheus' (already verified)`,
    `credential scrapes ${SCRAPES} times in a row; the server runs in this process.`,
    "",
    "| what | median | max |",
    "| :--- | -----: | --: |",
    `| first scrape (one compare in the worker) | ${ms(first)} | |`,
    `| authorised scrape, quiet | ${ms(quantile(quiet, 0.5))} | ${ms(Math.max(...quiet))} |`,
    `| authorised scrape, during the attack | ${ms(quantile(loud, 0.5))} | ${ms(Math.max(...loud))} |`,
    `| the attack, all ${ATTACKERS} answered | ${ms(attackMs)} | |`,
    `| a scrape during the same attack on the event loop (before) | ${ms(quantile(before, 0.5))} | ${ms(Math.max(...before))} |`,
    "",
    `Compares: ${counts.compares}, answered from memory: ${counts.cacheHits}, throttled: ${counts.throttled}.`,
    "",
  ].join("\n");
}

function benchRefusals(): string {
  const cases: [string, string, "yaml" | "json"][] = [
    ["over the size limit", "#".repeat(MAX_INPUT_BYTES + 1), "yaml"],
    ["200,000 tiny tokens", "a: b\n".repeat(200_000), "yaml"],
    ["flow nesting 100,000 deep", "[".repeat(100_000), "yaml"],
    ["JSON nesting 5,000 deep", `${'{"a":'.repeat(5000)}1${"}".repeat(5000)}`, "json"],
    ["block sequence nesting 50,000 deep", `a:\n  ${"- ".repeat(50_000)}x\n`, "yaml"],
  ];
  const rows = cases.map(([name, text, format]) => {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const r = parseSopsFile(text, format);
      times.push(performance.now() - t);
      if (r.ok) throw new Error(`bench: ${name} was accepted`);
    }
    return `| ${name} | ${quantile(times, 0.5).toFixed(1)} ms |`;
  });
  return [
    "## Hostile sops files refused (issue 9.3)",
    "",
    "What test/sops-parse.test.ts feeds the parser, timed (median of 5):",
    "",
    "| input | refused in |",
    "| :---- | ---------: |",
    ...rows,
    "",
  ].join("\n");
}

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
}
