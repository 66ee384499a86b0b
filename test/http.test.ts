import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import { tmpdir } from "node:os";
import * as path from "node:path";
import bcrypt from "bcryptjs";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { AgentServer, acceptsGzip, type HttpSource } from "../src/agent/http.js";
import { statusSerialisations } from "../src/agent/status-body.js";
import { loadWebConfig, NO_WEB_CONFIG, parseWebConfig, type WebConfig } from "../src/agent/web-config.js";
import type { StatusDocument } from "../src/core/report.js";
import { requireTool } from "./helpers/tools.js";

const logger = pino({ level: "silent" });
const servers: AgentServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function source(): HttpSource & { doc: StatusDocument | null } {
  const s = {
    doc: null as StatusDocument | null,
    ready: () => s.doc !== null,
    metrics: async () => "sops_healthy 1\n",
    metricsContentType: "text/plain; version=0.0.4; charset=utf-8",
    status: () => s.doc,
    version: "9.9.9",
  };
  return s;
}

async function start(src: HttpSource, web: WebConfig = NO_WEB_CONFIG): Promise<string> {
  const server = new AgentServer({ source: src, logger, webConfig: web });
  servers.push(server);
  const addr = await server.listen({ host: "127.0.0.1", port: 0 });
  return `${web.tls === null ? "http" : "https"}://127.0.0.1:${addr.port}`;
}

describe("AgentServer", () => {
  it("serves the endpoints and refuses the rest", async () => {
    const src = source();
    const base = await start(src);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    const post = await fetch(`${base}/metrics`, { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    expect((await fetch(`${base}/status`)).status).toBe(503);
    src.doc = { healthy: true, incomplete: [], scopes: [], problems: [], secrets: [], recipients: [] };
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${base}/status`)).json()).toEqual(src.doc);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const metrics = await fetch(`${base}/metrics?x=1`);
    expect(metrics.headers.get("content-type")).toContain("text/plain");
    expect(await metrics.text()).toBe("sops_healthy 1\n");
    const head = await fetch(`${base}/metrics`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe("15");
    expect(await head.text()).toBe("");
    const landing = await (await fetch(`${base}/`)).text();
    expect(landing).toContain('<a href="/metrics">');
    expect(landing).toContain("9.9.9");
    // HTML, not Markdown: no backticks left for a browser to show.
    expect(landing).not.toContain("`");
    expect(landing).toContain("<code>sops-agent status --json</code>");
  });

  it("asks for basic auth and takes the right password only", async () => {
    const hash = bcrypt.hashSync("pw", 4);
    const web = parseWebConfig(
      `basic_auth_users:\n  prom: "${hash}"\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n`,
      "/w.yml",
    );
    const base = await start(source(), web);
    const auth = (u: string, p: string) => ({
      authorization: `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}`,
    });
    const none = await fetch(`${base}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/^Basic realm=/);
    expect((await fetch(`${base}/metrics`, { headers: auth("prom", "wrong") })).status).toBe(401);
    expect((await fetch(`${base}/metrics`, { headers: auth("eve", "pw") })).status).toBe(401);
    const ok = await fetch(`${base}/metrics`, { headers: auth("prom", "pw") });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("x-frame-options")).toBe("deny");
  });

  it("answers an authorised scrape while 30 bad passwords arrive at once, from memory", async () => {
    const hash = bcrypt.hashSync("pw", 8);
    const server = new AgentServer({
      source: source(),
      logger,
      webConfig: parseWebConfig(`basic_auth_users:\n  prom: "${hash}"\n`, "/w.yml"),
    });
    servers.push(server);
    const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
    // Any 127/8 address is this host: the attacker and Prometheus come from different addresses.
    const get = (user: string, password: string, from: string) =>
      new Promise<number>((resolve, reject) => {
        http
          .get(
            {
              host: "127.0.0.1",
              port,
              path: "/metrics",
              localAddress: from,
              agent: false,
              headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` },
            },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          )
          .on("error", reject);
      });
    expect(await get("prom", "pw", "127.0.0.1")).toBe(200);
    const attack = Promise.all(Array.from({ length: 30 }, (_, i) => get("prom", `guess${i}`, "127.0.0.66")));
    expect(await get("prom", "pw", "127.0.0.1")).toBe(200);
    const codes = await attack;
    expect(codes.filter((c) => c === 401)).toHaveLength(5);
    expect(codes.filter((c) => c === 429)).toHaveLength(25);
    // One compare for the first scrape, one per failed attempt in the budget, none for the second scrape.
    expect(server.authCounts).toMatchObject({ compares: 6, cacheHits: 1, throttled: 25 });
  });

  it("serialises /status once per published document, however many ask at once", async () => {
    const src = source();
    const base = await start(src);
    const first = { healthy: true, incomplete: [], scopes: [], problems: [], secrets: [], recipients: [] };
    src.doc = first;
    const before = statusSerialisations();
    const bodies = await Promise.all(
      Array.from({ length: 50 }, () => fetch(`${base}/status`).then((r) => r.text())),
    );
    expect(statusSerialisations() - before).toBe(1);
    expect(new Set(bodies).size).toBe(1);
    expect(JSON.parse(bodies[0] ?? "")).toEqual(first);
    // The next check publishes a new document: serialised once more, on the first request for it.
    src.doc = { ...first, healthy: false };
    await Promise.all([fetch(`${base}/status`), fetch(`${base}/status`, { method: "HEAD" })]);
    expect(statusSerialisations() - before).toBe(2);
    expect(await (await fetch(`${base}/status`)).json()).toMatchObject({ healthy: false });
    expect(statusSerialisations() - before).toBe(2);
  });

  it("rate-limits like exporter-toolkit", async () => {
    const web = parseWebConfig('rate_limit:\n  interval: "1m"\n  burst: 2\n', "/w.yml");
    const base = await start(source(), web);
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await fetch(`${base}/healthz`)).status);
    expect(codes).toEqual([200, 200, 429]);
  });

  it("serves TLS with a certificate from the web config", async (ctx) => {
    const openssl = requireTool(ctx, "openssl");
    const dir = mkdtempSync(path.join(tmpdir(), "tls-"));
    execFileSync(
      openssl,
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        `${dir}/server.key`,
        "-out",
        `${dir}/server.crt`,
      ],
      { stdio: "ignore" },
    );
    await import("node:fs").then((fs) =>
      fs.writeFileSync(
        `${dir}/web.yml`,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
      ),
    );
    const web = loadWebConfig(`${dir}/web.yml`);
    const base = await start(source(), web);
    const ca = (await import("node:fs")).readFileSync(`${dir}/server.crt`, "utf8");
    const get = (opts: https.RequestOptions) =>
      new Promise<number>((resolve, reject) => {
        https
          .get(`${base}/healthz`, opts, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          })
          .on("error", reject);
      });
    expect(await get({ ca })).toBe(200);
    await expect(get({})).rejects.toThrow(/self[- ]signed/);
    // Plain HTTP against the TLS port is not served: a clear 400, as Go exporters answer, not a dropped
    // connection.
    const plain = await fetch(`${base.replace("https:", "http:")}/healthz`);
    expect(plain.status).toBe(400);
    expect(await plain.text()).toBe("Client sent an HTTP request to an HTTPS server.\n");
    // The TLS port still serves TLS afterwards.
    expect(await get({ ca })).toBe(200);
  });
});

describe("acceptsGzip", () => {
  it.each([
    [undefined, false],
    ["", false],
    ["gzip", true],
    ["GZIP", true],
    ["deflate, gzip;q=1.0, *;q=0.5", true],
    ["x-gzip", true],
    ["identity", false],
    ["br, deflate", false],
    ["gzip;q=0", false],
    ["gzip; q=0.000", false],
    ["*", true],
    ["*;q=0", false],
    ["gzip;q=0, *", false],
    ["br, *;q=0.1", true],
  ])("%j → %s", (header, want) => {
    expect(acceptsGzip(header)).toBe(want);
  });
});
