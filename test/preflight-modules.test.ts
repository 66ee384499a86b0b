// The preflight in each module: the NixOS pre-switch fragment, the nix-darwin check and the home-manager
// activation entry, evaluated offline (test/helpers/nix.ts), then run as the real shell their systems run
// them in, against generations built in a host tree, with the real built CLI. A real switch-to-configuration
// cannot run here: the fragment is wrapped exactly as nixpkgs' pre-switch-check.nix wraps it instead.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, beforeAll, describe, expect, it, type TestContext } from "vitest";
import { sopsStorePath } from "../src/example/layout.js";
import { CLI, ensureBuilt } from "./helpers/agent.js";
import { buildGeneration, type GenManifest, sopsFile } from "./helpers/generation.js";
import { cleanupRoots, healthyHost, TEST_AGE_RECIPIENT, tempRoot } from "./helpers/host.js";
import { evalNixOk } from "./helpers/nix.js";

const ENABLE = "{ services.sops-agent.enable = true; }";
const OFF = "{ services.sops-agent.preflight.enable = false; }";
const OTHER_RECIPIENT = "age1a8pk4akrdamj7nvqy3zywgtny8dxz7t5xzu7u8v9mhrayp9freqsqatyrs";
const EXE = /\/nix\/store\/[0-9a-f]{32}-sops-agent\/bin\/sops-agent/;

beforeAll(() => ensureBuilt());
afterEach(cleanupRoots);

function nixosFragment(ctx: TestContext, ...modules: string[]): string | null {
  return evalNixOk<string | null>(
    ctx,
    { platform: "nixos", modules: [ENABLE, ...modules] },
    `r.config.system.preSwitchChecks.sops-agent or null`,
  );
}

function darwinChecks(ctx: TestContext, ...modules: string[]): string {
  return evalNixOk<string>(
    ctx,
    { platform: "darwin", modules: [ENABLE, ...modules] },
    "r.config.system.checks.text",
  );
}

interface DagEntry {
  before: string[];
  after: string[];
  data: string;
}

function hmEntry(ctx: TestContext, ...modules: string[]): DagEntry | null {
  return evalNixOk<DagEntry | null>(
    ctx,
    { platform: "home-manager", modules: [ENABLE, ...modules] },
    "r.config.home.activation.sopsAgentPreflight or null",
  );
}

/**
 * Replaces the package's store path with a stand-in that runs the built CLI on the test host tree: the
 * fragment is otherwise run as rendered.
 */
function withCli(script: string, root: string): string {
  const dir = tempRoot("sops-agent-bin-");
  const bin = path.join(dir, "sops-agent");
  fs.writeFileSync(
    bin,
    `#!/bin/sh\ncmd="$1"; shift\nexec "${process.execPath}" "${CLI}" "$cmd" --root "${root}" "$@"\n`,
    {
      mode: 0o755,
    },
  );
  return script.replace(EXE, bin);
}

/** nixpkgs pre-switch-check.nix (087f644f): each fragment in a subshell, a failure ends the script. */
function preSwitchScript(name: string, text: string): string {
  return `# pre-switch check ${name}\n(\n${text}\n)\nif [[ $? != 0 ]]; then\n  echo "Pre-switch check '${name}' failed"\n  exit 1\nfi\n`;
}

function bash(script: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync("bash", ["-c", script, "pre-switch-checks", ...args], {
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function system(extra: GenManifest["secrets"] = []): GenManifest {
  const file = sopsStorePath("secrets");
  return {
    ageKeyFile: "/var/lib/sops-nix/key.txt",
    secrets: [
      { name: "db-password", sopsFile: file },
      { name: "nginx/htpasswd", sopsFile: file, owner: "nginx", group: "nginx" },
      ...extra,
    ],
  };
}

const ACCOUNTS = { users: ["root", "alice", "nginx"], groups: ["root", "keys", "users", "nginx"] };

describe("NixOS: system.preSwitchChecks.sops-agent", () => {
  it('is rendered by default, runs `preflight "$1"`, skips dry-activate and NIXOS_NO_CHECK', (ctx) => {
    const text = nixosFragment(ctx);
    expect(text).not.toBeNull();
    expect(text).toMatch(new RegExp(`${EXE.source} preflight --override-hint '[^']+' "\\$1"`));
    // Shell parameter expansions, not template placeholders.
    expect(text).toContain(`[ "\${2:-}" = dry-activate ]`);
    expect(text).toContain(`[ "\${NIXOS_NO_CHECK:-}" = 1 ]`);
    expect(text).toContain("SOPS_AGENT_SKIP_PREFLIGHT");
  });

  it("is off with preflight.enable = false, and without the agent", (ctx) => {
    expect(nixosFragment(ctx, OFF)).toBeNull();
    expect(
      evalNixOk<Record<string, string>>(
        ctx,
        { platform: "nixos", modules: [] },
        "r.config.system.preSwitchChecks",
      ),
    ).toEqual({});
  });

  it("run as switch-to-configuration runs it: refuses a bad generation, lets a good one and the overrides through", (ctx) => {
    const host = healthyHost();
    fs.writeFileSync(host.real("/etc/hostname"), "web1\n");
    const good = buildGeneration(host.root, { name: "mod-good", system: system(), accounts: ACCOUNTS });
    const other = sopsFile(host.root, "x.yaml", ["smtp"], [OTHER_RECIPIENT]);
    const bad = buildGeneration(host.root, {
      name: "mod-bad",
      system: system([{ name: "smtp", sopsFile: other }]),
      accounts: ACCOUNTS,
    });
    const script = preSwitchScript("sops-agent", withCli(nixosFragment(ctx) ?? "", host.root));

    const ok = bash(script, [good, "switch"]);
    expect(ok.out).toContain("would install");
    expect(ok.code).toBe(0);

    const refused = bash(script, [bad, "switch"]);
    expect(refused.code).toBe(1);
    expect(refused.out).toContain("host web1: REFUSED");
    expect(refused.out).toContain("[system]");
    expect(refused.out).toContain(`Add ${TEST_AGE_RECIPIENT} to the file's creation rule in .sops.yaml`);
    expect(refused.out).toContain(
      "To switch anyway, once: sudo env SOPS_AGENT_SKIP_PREFLIGHT=1 nixos-rebuild switch",
    );
    expect(refused.out).toContain("Pre-switch check 'sops-agent' failed");

    // `boot` installs the secrets at the next boot: still checked.
    expect(bash(script, [bad, "boot"]).code).toBe(1);
    // dry-activate installs nothing.
    const dry = bash(script, [bad, "dry-activate"]);
    expect(dry.code).toBe(0);
    expect(dry.out).not.toContain("REFUSED");
    // The overrides, once.
    expect(bash(script, [bad, "switch"], { NIXOS_NO_CHECK: "1" }).code).toBe(0);
    const skipped = bash(script, [bad, "switch"], { SOPS_AGENT_SKIP_PREFLIGHT: "1" });
    expect(skipped.code).toBe(0);
    expect(skipped.out).toContain("skipped");
    // The checker failing (here: no such generation, exit 2) never blocks a switch.
    const broken = bash(script, ["/nix/store/absent-system", "switch"]);
    expect(broken.code).toBe(0);
    expect(broken.out).toContain("could not check /nix/store/absent-system (exit 2)");
  });
});

describe("nix-darwin: system.checks", () => {
  it('runs `preflight "$systemConfig"` under set -e and fails the activation on exit 1', (ctx) => {
    const text = darwinChecks(ctx);
    expect(text).toMatch(new RegExp(`${EXE.source} preflight --override-hint '[^']+' "\\$systemConfig"`));
    expect(darwinChecks(ctx, OFF)).not.toContain("preflight");

    const host = healthyHost();
    const other = sopsFile(host.root, "x.yaml", ["smtp"], [OTHER_RECIPIENT]);
    const bad = buildGeneration(host.root, {
      name: "darwin-bad",
      kind: "nix-darwin",
      system: system([{ name: "smtp", sopsFile: other }]),
    });
    const good = buildGeneration(host.root, { name: "darwin-good", kind: "nix-darwin", system: system() });
    // nix-darwin's activate script: set -e, systemConfig set, checks, then the activation proper.
    const activate = (top: string) =>
      `set -e\nset -o pipefail\nsystemConfig='${top}'\n${withCli(text, host.root)}\necho ACTIVATED\n`;
    const refused = bash(activate(bad), []);
    expect(refused.code).toBe(1);
    expect(refused.out).not.toContain("ACTIVATED");
    expect(refused.out).toContain("sudo env SOPS_AGENT_SKIP_PREFLIGHT=1 darwin-rebuild switch");
    const ok = bash(activate(good), []);
    expect(ok.out).toContain("ACTIVATED");
    expect(ok.code).toBe(0);
  });
});

describe("home-manager: home.activation.sopsAgentPreflight", () => {
  it("runs before writeBoundary with $newGenPath and fails `home-manager switch` on exit 1", (ctx) => {
    const entry = hmEntry(ctx);
    expect(entry?.before).toEqual(["writeBoundary"]);
    expect(entry?.data).toMatch(
      new RegExp(`${EXE.source} preflight --override-hint '[^']+' "\\$newGenPath"`),
    );
    expect(hmEntry(ctx, OFF)).toBeNull();

    const host = healthyHost();
    const keys = "/root/.config/sops/age/keys.txt";
    host.writeFile(keys, fs.readFileSync(host.real("/var/lib/sops-nix/key.txt")), 0o600);
    const mine = sopsFile(host.root, "hm.yaml", ["gh-token"], [TEST_AGE_RECIPIENT]);
    const theirs = sopsFile(host.root, "hm-other.yaml", ["gh-token"], [OTHER_RECIPIENT]);
    const gen = (name: string, file: string) =>
      buildGeneration(host.root, {
        name,
        kind: "home-manager",
        user: { ageKeyFile: keys, secrets: [{ name: "gh-token", sopsFile: file }] },
      });
    // home-manager's activate: set -eu, newGenPath declared, the DAG entries in order.
    const activate = (top: string) =>
      `set -eu\nset -o pipefail\nnewGenPath='${top}'\n${withCli(entry?.data ?? "", host.root)}\necho WRITE_BOUNDARY\n`;
    const ok = bash(activate(gen("hm-good", mine)), []);
    expect(ok.out).toContain("WRITE_BOUNDARY");
    expect(ok.code).toBe(0);
    const refused = bash(activate(gen("hm-bad", theirs)), []);
    expect(refused.code).toBe(1);
    expect(refused.out).not.toContain("WRITE_BOUNDARY");
    expect(refused.out).toContain("SOPS_AGENT_SKIP_PREFLIGHT=1 home-manager switch");
  });
});
