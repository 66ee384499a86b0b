// Issue 9.2: sizes never change a verdict. A family's problems are never dropped for being many, a
// family that fails makes the result unhealthy and says it is incomplete, and inputs over a limit are
// reported as such instead of being cut short in silence.

import * as fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { runFamilies } from "../src/checks/engine.js";
import type { CheckFamily } from "../src/checks/family.js";
import { checkFiles } from "../src/checks/files.js";
import { formatStatus, PLAIN } from "../src/cli/format.js";
import { formatPreflight } from "../src/cli/preflight.js";
import { PlaceholderScanner } from "../src/core/placeholder.js";
import type { Problem } from "../src/core/problems.js";
import { buildStatus } from "../src/core/status.js";
import { MAX_ACCOUNTS_BYTES, oversizedAccounts, readAccounts } from "../src/host/accounts.js";
import { checkHost } from "../src/host/check-host.js";
import { MAX_TEMPLATE_SCAN } from "../src/host/observe.js";
import { RootFs } from "../src/host/rootfs.js";
import { cleanupRoots, healthyHost } from "./helpers/host.js";

afterEach(cleanupRoots);

const PLACEHOLDER = `<SOPS:${"ab".repeat(32)}:PLACEHOLDER>`;
const EMPTY_INPUT = {
  scopes: [],
  host: { accounts: { users: new Map(), groups: new Map() }, strayKeyLinks: [] },
  sops: { files: new Map(), identities: new Map(), keyrings: new Map() },
};

function manyProblems(n: number): Problem[] {
  return Array.from({ length: n }, (_, i) => ({
    code: "missing",
    severity: "critical",
    scope: "system",
    subject: `s${i}`,
    path: `/run/secrets.d/1/s${i}`,
    message: `The secret s${i} is absent`,
  }));
}

function run(host: { root: string }) {
  return checkHost({ root: host.root, manifests: null, env: {} });
}

describe("many problems", () => {
  it("keeps all 200,000 problems of a family, and the human view prints them", () => {
    const big: CheckFamily = { name: "big", run: () => manyProblems(200_000) };
    const result = runFamilies([big], EMPTY_INPUT);
    expect(result.families).toMatchObject([{ family: "big", ok: true }]);
    expect(result.problems).toHaveLength(200_000);
    const doc = buildStatus([], result.problems, [], result.families);
    expect(doc.healthy).toBe(false);
    const text = formatStatus(doc, PLAIN);
    expect(text).toContain("NOT healthy: 200000 critical");
    expect(text).toContain("s199999");
  });

  it("a family that fails makes the document unhealthy and incomplete, and status says so", () => {
    const broken: CheckFamily = {
      name: "files",
      run: () => {
        throw new Error("boom");
      },
    };
    const fine: CheckFamily = { name: "keys", run: () => [] };
    const result = runFamilies([broken, fine], EMPTY_INPUT);
    const doc = buildStatus([], result.problems, [], result.families);
    expect(result.problems).toEqual([]);
    expect(doc.healthy).toBe(false);
    expect(doc.incomplete).toEqual([{ check: "files", error: "boom" }]);
    expect(formatStatus(doc, PLAIN)).toMatch(
      /INCOMPLETE: the files check failed \(boom\)[\s\S]*NOT healthy \(incomplete\)/,
    );
  });
});

describe("passwd and group of LDAP-synced hosts", () => {
  function ldapLines(bytes: number, line: (i: number) => string): string {
    const out: string[] = [];
    let size = 0;
    for (let i = 0; size < bytes; i++) {
      const l = line(i);
      out.push(l);
      size += l.length + 1;
    }
    return `${out.join("\n")}\n`;
  }

  function padAccounts(host: { real: (p: string) => string }, bytes: number): void {
    // The host's own accounts come after the directory's: past 1 MiB, where the old reader stopped.
    const passwd = fs.readFileSync(host.real("/etc/passwd"), "utf8");
    const group = fs.readFileSync(host.real("/etc/group"), "utf8");
    const users = ldapLines(
      bytes,
      (i) => `ldap${i}:x:${100000 + i}:100000:LDAP user ${i}:/home/ldap${i}:/bin/sh`,
    );
    const groups = ldapLines(bytes, (i) => `ldapgroup${i}:x:${200000 + i}:ldap${i},ldap${i + 1}`);
    fs.writeFileSync(host.real("/etc/passwd"), `${users}${passwd}`);
    fs.writeFileSync(host.real("/etc/group"), `${groups}${group}`);
  }

  it("a 2 MiB passwd and group: no false unknown_owner, the user scope stays", () => {
    const host = healthyHost();
    padAccounts(host, 2 << 20);
    expect(fs.statSync(host.real("/etc/passwd")).size).toBeGreaterThan(2 << 20);
    const r = run(host);
    expect(r.document.problems.filter((p) => p.severity === "critical")).toEqual([]);
    expect(r.document.scopes.map((s) => s.scope)).toContain("user:alice");
    expect(r.document.healthy).toBe(true);
  });

  it("over the limit: input_too_large, the entries read are used, and no name is called unknown", () => {
    const host = healthyHost();
    padAccounts(host, 4096);
    const accounts = readAccounts(new RootFs(host.root), 1024);
    expect(accounts.partial).toEqual({ users: true, groups: true, limitBytes: 1024 });
    expect(accounts.users.get("ldap0")).toMatchObject({ id: 100000 });
    expect(accounts.users.has("nginx")).toBe(false);
    expect(oversizedAccounts(accounts)).toEqual([
      { scope: "host", subject: "/etc/passwd", path: "/etc/passwd", limitBytes: 1024 },
      { scope: "host", subject: "/etc/group", path: "/etc/group", limitBytes: 1024 },
    ]);
    const system = run(host).observed.find((o) => o.declared.scope === "system");
    if (system === undefined) throw new Error("no system scope");
    const codes = checkFiles(system, accounts).map((p) => p.code);
    expect(codes).not.toContain("unknown_owner");
    expect(codes).not.toContain("unknown_group");
    expect(MAX_ACCOUNTS_BYTES).toBeGreaterThanOrEqual(64 << 20);
  });
});

describe("templates of any size", () => {
  const TEMPLATE = "/run/secrets.d/1/rendered/app.env";

  it("finds a placeholder after 4 MiB of a template", () => {
    const host = healthyHost();
    const real = host.real(TEMPLATE);
    fs.writeFileSync(real, `${"x".repeat(5 << 20)}\n${PLACEHOLDER}\n`);
    const problems = run(host).document.problems;
    expect(problems).toContainEqual(
      expect.objectContaining({ code: "unrendered_placeholder", subject: "app.env", severity: "critical" }),
    );
  });

  it("a template over the scan limit is reported as too large, never passed as clean", () => {
    const host = healthyHost();
    fs.writeFileSync(host.real(TEMPLATE), Buffer.alloc(MAX_TEMPLATE_SCAN + 1, 0x79));
    const problems = run(host).document.problems;
    expect(problems).toContainEqual({
      code: "input_too_large",
      severity: "warning",
      scope: "system",
      subject: "app.env",
      path: TEMPLATE,
      message: `${TEMPLATE} is larger than the 64 MiB the agent reads: what lies past the limit was not checked.`,
    });
  });

  it("finds a placeholder cut by a chunk boundary, at every cut", () => {
    for (let cut = 0; cut <= PLACEHOLDER.length; cut++) {
      const scanner = new PlaceholderScanner();
      const a = Buffer.from(`${"é".repeat(100)}${PLACEHOLDER.slice(0, cut)}`);
      const b = Buffer.from(`${PLACEHOLDER.slice(cut)}tail`);
      scanner.push(a, a.length);
      scanner.push(b, b.length);
      expect(scanner.found, `cut at ${cut}`).toBe(true);
    }
    const clean = new PlaceholderScanner();
    const half = Buffer.from(PLACEHOLDER.slice(0, 40));
    clean.push(half, half.length);
    clean.push(half, half.length);
    expect(clean.found).toBe(false);
  });

  it("reads in chunks of bounded size and says when the limit cut the file", () => {
    const host = healthyHost();
    fs.writeFileSync(host.real(TEMPLATE), "y".repeat(10_000));
    const sizes: number[] = [];
    const rootFs = new RootFs(host.root);
    const read = (max: number) =>
      rootFs.readChunks(TEMPLATE, 4096, max, (_chunk, n) => {
        sizes.push(n);
        return false;
      });
    expect(read(1 << 20)).toBe("done");
    expect(Math.max(...sizes)).toBeLessThanOrEqual(4096);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(10_000);
    expect(read(10_000)).toBe("done");
    expect(read(9_999)).toBe("too-large");
  });
});

describe("many changes in a preflight", () => {
  it("prints a switch that adds 200,000 secrets (no spread into push)", () => {
    const changes = Array.from({ length: 200_000 }, (_, i) => ({
      change: "added" as const,
      kind: "secret" as const,
      name: `s${i}`,
    }));
    const scope = {
      scope: "system" as const,
      manifest: "/nix/store/x-manifest.json",
      via: "activate",
      secrets: 200_000,
      templates: 0,
      changes,
      runningManifest: null,
    };
    const text = formatPreflight(
      {
        host: "h",
        generation: null,
        accounts: "/etc/passwd",
        scopes: [scope],
        droppedScopes: [scope],
        problems: [],
        safe: true,
      },
      null,
    );
    expect(text.split("\n").filter((l) => l.includes("+ secret s199999"))).toHaveLength(2);
  });
});
