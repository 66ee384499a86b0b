// The human `status` view (issue 10.3): golden reports of the bundled example host, healthy and broken,
// with colour off — the same reports the README shows — and the rules behind them.

import * as fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { COLOUR, formatStatus, PLAIN, styleFor } from "../src/cli/format.js";
import type { Problem } from "../src/core/problems.js";
import type { StatusDocument } from "../src/core/report.js";
import { layoutExampleHost } from "../src/example/example-host.js";
import { runCli } from "./helpers/cli.js";
import { cleanupRoots, healthyHost, healthySpec, installKeys, makeHost, tempRoot } from "./helpers/host.js";

afterEach(cleanupRoots);

// biome-ignore lint/suspicious/noControlCharactersInRegex: looking for escape sequences is the point
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

/** The example host's recipient is made fresh for every layout: the one varying part of the report. */
function stable(report: string): string {
  return report.replace(/age1[0-9a-z]{58}/g, "age1…");
}

function exampleHost(): string {
  const root = tempRoot("sops-agent-example-");
  layoutExampleHost(root);
  return root;
}

/** Breaks the example host the way the README shows: a missing secret and a readable key. */
function breakExample(root: string): void {
  fs.rmSync(`${root}/run/secrets.d/1/nginx/htpasswd`);
  fs.chmodSync(`${root}/root/id_infrastructure`, 0o644);
}

describe("the human status report", () => {
  it("of the healthy example host", async () => {
    const root = exampleHost();
    const r = await runCli(["status", "--root", root]);
    expect(r.code).toBe(0);
    await expect(stable(r.stdout)).toMatchFileSnapshot("golden/status-healthy.txt");
  });

  it("of the broken example host: problems first, broken scopes first", async () => {
    const root = exampleHost();
    breakExample(root);
    const r = await runCli(["status", "--root", root]);
    expect(r.code).toBe(1);
    await expect(stable(r.stdout)).toMatchFileSnapshot("golden/status-broken.txt");
    // The scope with the critical problem comes first, the healthy one last.
    const headers = r.stdout.split("\n").filter((l) => /^[✗!✓] /.test(l));
    expect(headers.map((h) => h.slice(0, 1))).toEqual(["✗", "!", "✓"]);
  });

  it("shows the manifest only with --verbose", async () => {
    const root = exampleHost();
    const plain = await runCli(["status", "--root", root]);
    expect(plain.stdout).not.toContain("/nix/store/");
    const verbose = await runCli(["status", "--root", root, "--verbose"]);
    expect(verbose.stdout).toMatch(/^ {2}manifest \/nix\/store\/[0-9a-z]{32}-manifest\.json$/m);
  });

  it("names the log to read in every hint that says to check it", async () => {
    const host = healthyHost();
    fs.rmSync(host.real("/run/secrets.d/1/db-password"));
    fs.rmSync(host.real("/run/secrets-for-users"));
    const r = await runCli(["status", "--root", host.root]);
    const hints = r.stdout.split("\n").filter((l) => /\blog\b/i.test(l));
    expect(hints.length).toBeGreaterThanOrEqual(2);
    for (const hint of hints) expect(hint).toMatch(/journalctl [^)]*-u sops-install-secrets[\w-]*\.service/);
  });

  it("never says all ok of a scope whose only problem is a key", async () => {
    const host = healthyHost();
    fs.chmodSync(host.real("/var/lib/sops-nix/key.txt"), 0o644);
    const r = await runCli(["status", "--root", host.root]);
    const system = r.stdout.split("\n\n").find((block) => /^. system /.test(block)) ?? "";
    expect(system).toContain("key_insecure_mode");
    expect(system).not.toMatch(/all .* ok/);
    expect(system).toContain("in place; see the problem above");
  });
});

describe("plurals and counts", () => {
  const problem = (severity: Problem["severity"], subject: string): Problem => ({
    code: "wrong_mode",
    severity,
    scope: "system",
    subject,
    path: `/run/secrets/${subject}`,
    message: `fix ${subject}`,
  });
  const doc = (problems: Problem[]): StatusDocument => ({
    healthy: !problems.some((p) => p.severity === "critical"),
    incomplete: [],
    scopes: [
      {
        scope: "system",
        manifest: "/nix/store/m",
        symlinkPath: "/run/secrets",
        mountPoint: "/run/secrets.d",
        generation: 2,
        secrets: 1,
        templates: 0,
      },
    ],
    problems,
    secrets: [{ scope: "system", kind: "secret", name: "a", path: "/run/secrets/a", ok: true }],
    recipients: [],
  });

  it.each([
    [[], "healthy: 1 scope, 1 secret, no problems"],
    [[problem("warning", "a")], "healthy (1 warning): 1 scope, 1 secret"],
    [
      [problem("warning", "a"), problem("warning", "b"), problem("info", "c")],
      "healthy (2 warnings, 1 info): 1 scope, 1 secret",
    ],
    [[problem("critical", "x"), problem("warning", "b")], "NOT healthy: 1 critical, 1 warning"],
  ])("%#: the verdict says %j", (problems, last) => {
    const text = formatStatus(doc(problems), PLAIN);
    expect(text.trimEnd().split("\n").at(-1)).toBe(last);
    expect(text).not.toMatch(/\(s\)|\b0 (warning|critical|info)/);
  });

  it("prints the fix in normal weight, never dimmed", () => {
    const text = formatStatus(doc([problem("critical", "x")]), COLOUR);
    const fix = text.split("\n").find((l) => l.includes("fix x")) ?? "";
    expect(fix).toBe(`${" ".repeat(12)}fix x`);
  });
});

describe("colour", () => {
  it.each([
    [true, {}, COLOUR],
    [false, {}, PLAIN],
    [true, { NO_COLOR: "1" }, PLAIN],
    [true, { TERM: "dumb" }, PLAIN],
    [false, { FORCE_COLOR: "1" }, COLOUR],
    [false, { FORCE_COLOR: "1", TERM: "dumb" }, COLOUR],
    [true, { FORCE_COLOR: "0" }, PLAIN],
    [true, { NO_COLOR: "" }, COLOUR],
  ] as const)("tty %s, env %j", (tty, env, style) => {
    expect(styleFor(tty, env)).toBe(style);
  });
});

describe("terminal-safe output (issue 9.8)", () => {
  const EVIL = "evil\u001b]0;pwned\u0007\nline\u009b2J\u007f";

  it("escapes control characters in names, paths, owners and messages; JSON stays exact", async () => {
    const spec = healthySpec();
    const system = spec.system;
    if (system === undefined) throw new Error("no system scope");
    const host = makeHost({
      ...spec,
      system: {
        ...system,
        secrets: [...system.secrets, { name: EVIL, value: "PLANTED-evil-0000", mode: "0400" }],
      },
    });
    installKeys(host);
    fs.chmodSync(host.real(`/run/secrets.d/1/${EVIL}`), 0o444);
    for (const tty of [true, false]) {
      const r = await runCli(["status", "--root", host.root], { isTTY: tty, env: { NO_COLOR: "1" } });
      expect(r.code).toBe(1);
      expect(r.stdout).not.toMatch(CONTROL);
      expect(r.stdout).toContain("evil\\x1b]0;pwned\\x07\\nline\\u009b2J\\x7f");
      // Each report line is one line: the name's newline did not start a new one.
      expect(r.stdout.split("\n").some((l) => l.startsWith("line"))).toBe(false);
    }
    const json = await runCli(["status", "--root", host.root, "--json"]);
    const doc = JSON.parse(json.stdout) as StatusDocument;
    expect(doc.secrets.map((s) => s.name)).toContain(EVIL);
    expect(doc.problems.find((p) => p.code === "wrong_mode")?.subject).toBe(EVIL);
  });

  it("escapes a scope, recipient source and message built from host text", () => {
    const text = formatStatus(
      {
        healthy: false,
        incomplete: [],
        scopes: [],
        problems: [
          {
            code: "key_missing",
            severity: "critical",
            scope: `user:${EVIL}`,
            subject: `/home/${EVIL}/key`,
            path: `/home/${EVIL}/key`,
            message: `The key /home/${EVIL}/key is absent.`,
          },
        ],
        secrets: [],
        recipients: [{ scope: `user:${EVIL}`, recipient: "age1x", source: `/home/${EVIL}/key` }],
      },
      COLOUR,
    );
    // Only the report's own colour sequences remain.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping the report's own SGR sequences
    expect(text.replace(/\u001b\[[0-9;]*m/g, "")).not.toMatch(CONTROL);
  });
});
