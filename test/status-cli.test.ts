import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { StatusDocument } from "../src/core/report.js";
import { runCli } from "./helpers/cli.js";
import { cleanupRoots, healthyHost } from "./helpers/host.js";

afterEach(cleanupRoots);

function splitAtLastReturn(s: string): [string, string] {
  const i = s.lastIndexOf("\r");
  return [s.slice(0, i + 1), s.slice(i + 1)];
}

const ANSI = new RegExp(`${String.fromCharCode(27)}\\[`);

describe("sops-agent status", () => {
  it("exits 0 on a healthy host and prints every scope", async () => {
    const host = healthyHost();
    const r = await runCli(["status", "--root", host.root]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    for (const scope of ["system", "for-users", "user:alice"]) expect(r.stdout).toContain(scope);
    expect(r.stdout).toContain("healthy");
    expect(r.stdout).not.toMatch(ANSI);
  });

  it("exits 1 and shows the problem with its hint when anything is critical", async () => {
    const host = healthyHost();
    fs.rmSync(host.real("/run/secrets.d/1/db-password"));
    const r = await runCli(["status", "--root", host.root]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/critical\s+missing\s+db-password/);
    expect(r.stdout).toContain("run the switch again");
    expect(r.stdout).toContain("NOT healthy: 1 critical");
  });

  it("prints one JSON document with the documented shape", async () => {
    const host = healthyHost();
    fs.chmodSync(host.real("/run/secrets.d/1/db-password"), 0o444);
    const r = await runCli(["status", "--root", host.root, "--json"]);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout) as StatusDocument;
    expect(doc.healthy).toBe(false);
    expect(Object.keys(doc).sort()).toEqual([
      "healthy",
      "incomplete",
      "problems",
      "recipients",
      "scopes",
      "secrets",
    ]);
    expect(doc.incomplete).toEqual([]);
    expect(doc.scopes.find((s) => s.scope === "system")).toEqual({
      scope: "system",
      manifest: host.scopes.get("system")?.manifestPath,
      symlinkPath: "/run/secrets",
      mountPoint: "/run/secrets.d",
      generation: 1,
      secrets: 3,
      templates: 1,
    });
    expect(doc.problems).toEqual([
      expect.objectContaining({
        code: "wrong_mode",
        severity: "critical",
        scope: "system",
        subject: "db-password",
        path: "/run/secrets.d/1/db-password",
      }),
    ]);
    expect(doc.secrets.find((s) => s.name === "db-password")).toEqual({
      scope: "system",
      kind: "secret",
      name: "db-password",
      path: "/run/secrets/db-password",
      ok: false,
    });
    expect(doc.secrets.filter((s) => s.ok)).toHaveLength(7);
  });

  it("colours only on a terminal, and never with NO_COLOR", async () => {
    const host = healthyHost();
    fs.rmSync(host.real("/run/secrets.d/1/db-password"));
    expect((await runCli(["status", "--root", host.root], { isTTY: true })).stdout).toMatch(ANSI);
    expect(
      (await runCli(["status", "--root", host.root], { isTTY: true, env: { NO_COLOR: "1" } })).stdout,
    ).not.toMatch(ANSI);
    expect((await runCli(["status", "--root", host.root], { isTTY: false })).stdout).not.toMatch(ANSI);
  });

  it("--config reads the agent's config, so status checks what the agent checks", async () => {
    const host = healthyHost();
    const config = path.join(host.root, "agent.yaml");
    fs.writeFileSync(config, "extra_key_paths: [/root/id_infrastructure]\n");
    const without = await runCli(["status", "--root", host.root, "--json"]);
    const docWithout = JSON.parse(without.stdout) as StatusDocument;
    expect(docWithout.problems.filter((p) => p.path === "/root/id_infrastructure")).toEqual([]);
    const withConfig = await runCli(["status", "--root", host.root, "--config", config, "--json"]);
    const doc = JSON.parse(withConfig.stdout) as StatusDocument;
    expect(doc.problems).toContainEqual(
      expect.objectContaining({ code: "key_missing", path: "/root/id_infrastructure" }),
    );
    // The config's root is used when --root is not given.
    fs.writeFileSync(config, `root: ${host.root}\n`);
    const rooted = await runCli(["status", "--config", config, "--json"]);
    expect((JSON.parse(rooted.stdout) as StatusDocument).scopes.map((s) => s.scope).sort()).toEqual([
      "for-users",
      "system",
      "user:alice",
    ]);
  });

  it("checks only the manifests given with --manifest", async () => {
    const host = healthyHost();
    const manifest = host.scopes.get("for-users")?.manifestPath ?? "";
    const r = await runCli(["status", "--root", host.root, "--manifest", manifest, "--json"]);
    const doc = JSON.parse(r.stdout) as StatusDocument;
    expect(doc.scopes.map((s) => s.scope)).toEqual(["for-users"]);
    expect(r.code).toBe(0);
  });

  it("--wait re-checks until the host is healthy", async () => {
    const host = healthyHost();
    const file = host.real("/run/secrets.d/1/db-password");
    fs.renameSync(file, `${file}.away`);
    setTimeout(() => fs.renameSync(`${file}.away`, file), 300);
    const r = await runCli(["status", "--root", host.root, "--wait", "10s"]);
    expect(r.code).toBe(0);
  });

  it("--wait gives up after the duration with exit 1, saying it waits only on a terminal", async () => {
    const host = healthyHost();
    fs.rmSync(host.real("/run/secrets.d/1/db-password"));
    const tty = await runCli(["status", "--root", host.root, "--wait", "2s"], {
      isTTY: true,
      env: { NO_COLOR: "1" },
    });
    expect(tty.code).toBe(1);
    // One line updated in place (carriage returns, no newline) before the report, then cleared.
    const [progress, report] = splitAtLastReturn(tty.stdout);
    expect(progress).toMatch(/^\r1 critical, re-checking… 0s\/2s/);
    expect(progress.match(/\r1 critical, re-checking… \ds\/2s/g)?.length).toBeGreaterThanOrEqual(2);
    expect(progress).not.toContain("\n");
    expect(report).toMatch(/^✗ system/);
    const pipe = await runCli(["status", "--root", host.root, "--wait", "1s"], { isTTY: false });
    expect(pipe.code).toBe(1);
    expect(pipe.stdout).not.toContain("re-checking");
    expect(pipe.stdout).toMatch(/^✗ system/);
    expect(pipe.stdout).toContain("db-password");
  });

  it.each([
    [["status", "--bogus"], /unknown option '--bogus'/],
    [["status", "--wait", "soon"], /--wait: "soon" is not a duration/],
    [["frobnicate"], /unknown command "frobnicate"/],
  ])("%j is a usage error: exit 2 with the message on stderr", async (args, message) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe("");
  });

  it("answers --help and --version", async () => {
    const help = await runCli(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("sops-agent status");
    const statusHelp = await runCli(["status", "--help"]);
    expect(statusHelp.stdout).toContain("--wait DURATION");
    const version = await runCli(["--version"]);
    expect(version.stdout).toMatch(/^sops-agent, version \d+\.\d+\.\d+/);
  });
});
