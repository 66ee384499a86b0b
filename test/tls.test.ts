// TLS that tells the truth, with openssl-made certificates and a real TLS client: `--check-config` refuses a
// certificate and key that do not belong together (as the start would), and a SIGHUP that changes the
// client-certificate policy takes effect on the running agent.

import * as fs from "node:fs";
import * as https from "node:https";
import * as path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { EXIT } from "../src/cli/exit.js";
import { ensureBuilt, type RunningAgent, startAgent, waitFor } from "./helpers/agent.js";
import { runCli } from "./helpers/cli.js";
import { cleanupRoots, healthyHost, tempRoot } from "./helpers/host.js";
import { makeTlsMaterial, type TlsMaterial } from "./helpers/tls.js";
import { requireTool } from "./helpers/tools.js";

const agents: RunningAgent[] = [];
beforeAll(() => ensureBuilt(), 120_000);
afterEach(async () => {
  for (const a of agents.splice(0)) if (a.child.exitCode === null) await a.stop();
  cleanupRoots();
});

function webConfig(dir: string, lines: string[]): string {
  const file = path.join(dir, "web.yml");
  fs.writeFileSync(file, `tls_server_config:\n${lines.map((l) => `  ${l}\n`).join("")}`);
  return file;
}

describe("--check-config", () => {
  it("loads the certificate and key and refuses a pair that does not match", async (ctx) => {
    const dir = tempRoot("tls-");
    const tls = makeTlsMaterial(requireTool(ctx, "openssl"), dir);
    const bad = webConfig(dir, [`cert_file: ${tls.serverCert}`, `key_file: ${tls.otherKey}`]);
    const r = await runCli(["run", "--check-config", "--web.config.file", bad]);
    expect(r.code).toBe(EXIT.configInvalid);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(bad);
    expect(r.stderr).toContain(`${tls.serverCert} and ${tls.otherKey} do not match`);
  });

  it("names a certificate file that is not a certificate", async (ctx) => {
    const dir = tempRoot("tls-");
    const tls = makeTlsMaterial(requireTool(ctx, "openssl"), dir);
    // A key where the certificate belongs: readable, but no certificate.
    const bad = webConfig(dir, [`cert_file: ${tls.serverKey}`, `key_file: ${tls.serverKey}`]);
    const r = await runCli(["run", "--check-config", "--web.config.file", bad]);
    expect(r.code).toBe(EXIT.configInvalid);
    expect(r.stderr).toContain(`${bad}:1: cannot use ${tls.serverKey} as the server certificate`);
  });

  it("accepts a matching pair", async (ctx) => {
    const dir = tempRoot("tls-");
    const tls = makeTlsMaterial(requireTool(ctx, "openssl"), dir);
    const good = webConfig(dir, [`cert_file: ${tls.serverCert}`, `key_file: ${tls.serverKey}`]);
    const r = await runCli(["run", "--check-config", "--web.config.file", good]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toContain(`web config OK: ${good}`);
  });
});

describe("SIGHUP with a new client certificate policy", () => {
  it("takes effect both ways on the running agent", async (ctx) => {
    const host = healthyHost();
    const dir = tempRoot("tls-");
    const tls = makeTlsMaterial(requireTool(ctx, "openssl"), dir);
    const serverPair = [`cert_file: ${tls.serverCert}`, `key_file: ${tls.serverKey}`];
    const web = webConfig(dir, serverPair);
    const agent = await startAgent(host.root, ["--web.config.file", web]);
    agents.push(agent);
    // Listening on port 0: a new server binds a new port, which its "listening" line names.
    const base = () => `https://${agent.logs.filter((l) => l.event === "listening").at(-1)?.address}`;
    const get = (withCert: boolean) => healthz(`${base()}/healthz`, tls, withCert);
    await waitFor(
      "TLS healthz",
      () => get(false),
      (s) => s === 200,
    );
    const reloads = () => agent.logs.filter((l) => l.event === "config_reloaded").length;

    webConfig(dir, [
      ...serverPair,
      "client_auth_type: RequireAndVerifyClientCert",
      `client_ca_file: ${tls.clientCa}`,
    ]);
    agent.child.kill("SIGHUP");
    await waitFor(
      "the reload",
      async () => reloads(),
      (n) => n === 1,
    );
    expect(await get(true)).toBe(200);
    expect(await get(false)).not.toBe(200);

    webConfig(dir, serverPair);
    agent.child.kill("SIGHUP");
    await waitFor(
      "the second reload",
      async () => reloads(),
      (n) => n === 2,
    );
    expect(await get(false)).toBe(200);
    expect(agent.logs.filter((l) => l.event === "server_restarted")).toHaveLength(2);
    expect(agent.logs.some((l) => l.event === "config_reload_failed")).toBe(false);
  });
});

/** The status code, or the error a TLS client saw. */
function healthz(url: string, tls: TlsMaterial, withCert: boolean): Promise<number | string> {
  return new Promise((resolve) => {
    const opts: https.RequestOptions = {
      ca: tls.read(tls.serverCert),
      agent: false,
      ...(withCert ? { cert: tls.read(tls.clientCert), key: tls.read(tls.clientKey) } : {}),
    };
    https
      .get(url, opts, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", (e) => resolve(`error: ${e.message}`));
      })
      .on("error", (e) => resolve(`error: ${e.message}`));
  });
}
