// The NixOS, home-manager and nix-darwin modules, evaluated as those systems would (offline, over
// vendored nixpkgs lib / home-manager / nix-darwin modules; see test/helpers/nix.ts): what a user who
// enables services.sops-agent gets — units, launchd jobs, config files, rejected values, warnings.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it, type TestContext } from "vitest";
import { LOG_LEVELS } from "../src/agent/config.js";
import { type EvalOptions, evalNix, evalNixOk, storeText } from "./helpers/nix.js";
import { asDict, type PlistValue, parsePlist } from "./helpers/plist.js";
import { requireTool } from "./helpers/tools.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = path.join(ROOT, "dist/cli.js");
const FLAKE = path.join(ROOT, "test/nix/flake-outputs.nix");
const ENABLE = "{ services.sops-agent.enable = true; }";
const settings = (nix: string) => `{ services.sops-agent.settings = ${nix}; }`;

const HM_LINUX: EvalOptions = { platform: "home-manager", system: "x86_64-linux", modules: [ENABLE] };
const HM_DARWIN: EvalOptions = { platform: "home-manager", system: "aarch64-darwin", modules: [ENABLE] };
const DARWIN: EvalOptions = { platform: "darwin", modules: [ENABLE] };
const NIXOS: EvalOptions = { platform: "nixos", modules: [ENABLE] };
const more = (opts: EvalOptions, ...modules: string[]): EvalOptions => ({
  ...opts,
  modules: [...(opts.modules ?? []), ...modules],
});

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sops-agent-nix-modules-"));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function expectRejected(ctx: TestContext, opts: EvalOptions, select: string, message: RegExp): void {
  const r = evalNix(ctx, opts, select);
  expect(r.ok, `evaluation should fail with ${message}`).toBe(false);
  if (!r.ok) expect(r.error).toMatch(message);
}

/** `[Section] Key=value` of a rendered unit file. */
function unitFile(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const header = /^\[([\w-]+)\]$/.exec(line);
    if (header?.[1] !== undefined) {
      section = header[1];
      continue;
    }
    const eq = line.indexOf("=");
    const key = `${section}.${line.slice(0, eq)}`;
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

interface NixosUnit {
  wantedBy: string[];
  wants: string[];
  after: string[];
  reloadTriggers: string[];
  environment: Record<string, string>;
  serviceConfig: Record<string, string | number | boolean | (string | number | boolean)[]>;
}

const nixosUnit = (ctx: TestContext, opts: EvalOptions = NIXOS) =>
  evalNixOk<NixosUnit>(ctx, opts, "r.config.systemd.services.sops-agent");

/** The unit file NixOS writes from systemd.services (nixos/lib/systemd-lib.nix: one line per list item). */
function renderNixosUnit(unit: NixosUnit): string {
  const line = (k: string, v: string | number | boolean) =>
    `${k}=${typeof v === "boolean" ? (v ? "true" : "false") : v}`;
  const lines = [
    "[Unit]",
    ...unit.wants.map((u) => `Wants=${u}`),
    ...unit.after.map((u) => `After=${u}`),
    "",
    "[Service]",
  ];
  for (const [k, v] of Object.entries(unit.environment)) lines.push(`Environment="${k}=${v}"`);
  for (const [k, v] of Object.entries(unit.serviceConfig)) {
    for (const item of Array.isArray(v) ? v : [v]) lines.push(line(k, item));
  }
  lines.push("", "[Install]", ...unit.wantedBy.map((t) => `WantedBy=${t}`));
  return `${lines.join("\n")}\n`;
}

describe("NixOS module", () => {
  it("runs `sops-agent run --config /etc/sops-agent/config.yaml` as a hardened dynamic user", (ctx) => {
    const unit = nixosUnit(ctx);
    expect(unit.serviceConfig.ExecStart).toMatch(
      /^'?\/nix\/store\/[0-9a-f]{32}-sops-agent\/bin\/sops-agent'? run --config \/etc\/sops-agent\/config\.yaml$/,
    );
    expect(unit.wantedBy).toEqual(["multi-user.target"]);
    expect(unit.after).toContain("sops-install-secrets.service");
    expect(unit.serviceConfig).toMatchObject({
      DynamicUser: true,
      AmbientCapabilities: ["CAP_DAC_READ_SEARCH"],
      CapabilityBoundingSet: ["CAP_DAC_READ_SEARCH"],
      NoNewPrivileges: true,
      ProtectSystem: "strict",
      ProtectHome: "read-only",
    });
  });

  it("carries the system unit's least-privilege settings", (ctx) => {
    const unit = nixosUnit(ctx).serviceConfig;
    expect(unit).toMatchObject({
      InaccessiblePaths: ["-/etc/shadow", "-/etc/gshadow"],
      MemoryMax: "512M",
      RestrictAddressFamilies: ["AF_INET", "AF_INET6", "AF_UNIX"],
      MemoryDenyWriteExecute: false,
    });
  });

  it("renders a unit that systemd-analyze rates at most 1.6", (ctx) => {
    const analyze = requireTool(ctx, "systemd-analyze");
    const dir = tempDir();
    const file = path.join(dir, "sops-agent.service");
    fs.writeFileSync(file, renderNixosUnit(nixosUnit(ctx)));
    const r = spawnSync(analyze, ["security", "--offline=true", "--no-pager", file], { encoding: "utf8" });
    const match = /Overall exposure level for sops-agent\.service:\s*([0-9.]+)/.exec(
      `${r.stdout}${r.stderr}`,
    );
    expect(match, `${r.stdout}\n${r.stderr}`).not.toBeNull();
    expect(Number(match?.[1])).toBeLessThanOrEqual(1.6);
  });

  it("reloads the agent when the config changes, and only then", (ctx) => {
    const triggers = (s: string) => nixosUnit(ctx, more(NIXOS, settings(s))).reloadTriggers;
    const a = triggers("{ }");
    expect(a).toHaveLength(1);
    expect(triggers("{ }")).toEqual(a);
    expect(triggers(`{ schedule = "*/10 * * * *"; }`)).not.toEqual(a);
    expect(nixosUnit(ctx).serviceConfig.ExecReload).toMatch(/kill -HUP \$MAINPID$/);
  });

  it("rejects a port that is not a port, and a listen address in settings", (ctx) => {
    expectRejected(
      ctx,
      more(NIXOS, "{ services.sops-agent.port = 70000; }"),
      "r.config.services.sops-agent.port",
      /services\.sops-agent\.port/,
    );
    const failed = evalNixOk<string[]>(
      ctx,
      more(NIXOS, settings(`{ listen = "0.0.0.0:1"; }`)),
      "r.failedAssertions",
    );
    expect(failed.join("\n")).toMatch(/services\.sops-agent\.settings\.listen.*listenAddress/s);
    expect(evalNixOk<string[]>(ctx, NIXOS, "r.failedAssertions")).toEqual([]);
  });

  it("warns when the firewall is opened for an agent that listens on loopback only", (ctx) => {
    const warnings = evalNixOk<string[]>(
      ctx,
      more(NIXOS, "{ services.sops-agent.openFirewall = true; }"),
      "r.warnings",
    );
    expect(warnings.join("\n")).toMatch(/openFirewall.*127\.0\.0\.1/s);
    expect(
      evalNixOk<string[]>(
        ctx,
        more(NIXOS, '{ services.sops-agent = { openFirewall = true; listenAddress = "0.0.0.0"; }; }'),
        "r.warnings",
      ),
    ).toEqual([]);
    expect(
      evalNixOk<number[]>(
        ctx,
        more(NIXOS, '{ services.sops-agent = { openFirewall = true; listenAddress = "0.0.0.0"; }; }'),
        "r.config.networking.firewall.allowedTCPPorts",
      ),
    ).toEqual([29100]);
  });

  it("the flake's module runs the flake's package", (ctx) => {
    const unit = evalNixOk<NixosUnit>(
      ctx,
      { ...NIXOS, module: `(import ${FLAKE}).nixosModules.default` },
      "r.config.systemd.services.sops-agent",
    );
    expect(unit.serviceConfig.ExecStart).toMatch(/-sops-agent-0\.1\.0\/bin\/sops-agent'? run /);
  });
});

describe("the config check at build time", () => {
  interface Check {
    script: string;
    env: Record<string, { text?: string } | string | unknown[]>;
  }
  // The stub runCommand's script and environment, with the texts of the files it names.
  const CHECK_FIELDS =
    "{ inherit (s) script; env = builtins.mapAttrs (_: v: if builtins.isAttrs v && v ? text then { inherit (v) text; } else v) s.env; }";
  /** Runs the check derivation's build script with the real agent as `sops-agent`. */
  function runCheck(
    ctx: TestContext,
    check: Check,
  ): { status: number | null; output: string; out: string | null } {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
    const dir = tempDir();
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    fs.writeFileSync(
      path.join(bin, "sops-agent"),
      `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`,
      { mode: 0o755 },
    );
    const env: NodeJS.ProcessEnv = { PATH: `${bin}:${process.env.PATH ?? ""}`, out: path.join(dir, "out") };
    for (const [k, v] of Object.entries(check.env)) {
      if (typeof v === "object" && v !== null && !Array.isArray(v) && typeof v.text === "string") {
        const file = path.join(dir, `${k}.yaml`);
        fs.writeFileSync(file, v.text);
        env[k] = file;
      }
    }
    const bash = requireTool(ctx, "bash");
    // As stdenv runs a build script: bash with `set -eu -o pipefail`, no rc files.
    fs.writeFileSync(path.join(dir, "builder.sh"), `set -eu -o pipefail\n${check.script}`);
    const r = spawnSync(bash, ["--norc", "--noprofile", path.join(dir, "builder.sh")], {
      env,
      encoding: "utf8",
      cwd: dir,
    });
    const outFile = path.join(dir, "out");
    return {
      status: r.status,
      output: `${r.stdout}${r.stderr}`,
      out: fs.existsSync(outFile) ? fs.readFileSync(outFile, "utf8") : null,
    };
  }
  const checkOf = (ctx: TestContext, opts: EvalOptions) =>
    evalNixOk<Check>(
      ctx,
      opts,
      `let s = r.config.environment.etc."sops-agent/config.yaml".source; in ${CHECK_FIELDS}`,
    );

  it("checks settings even when the web config file is a run-time secret, and installs the full config", (ctx) => {
    const opts = more(
      NIXOS,
      '{ services.sops-agent.webConfigFile = "/run/secrets/sops-agent-web.yml"; }',
      settings('{ log_level = "debug"; }'),
    );
    expect(evalNixOk<boolean>(ctx, opts, "r.config.services.sops-agent.checkConfig")).toBe(true);
    const r = runCheck(ctx, checkOf(ctx, opts));
    expect(r.status, r.output).toBe(0);
    expect(r.output).toMatch(/config OK/);
    expect(r.out).not.toBeNull();
    const installed = JSON.parse(r.out ?? "{}") as Record<string, unknown>;
    expect(installed).toMatchObject({
      web_config_file: "/run/secrets/sops-agent-web.yml",
      log_level: "debug",
      listen: "127.0.0.1:29100",
    });
  });

  it("fails the build on a setting the agent rejects, naming it", (ctx) => {
    const r = runCheck(ctx, checkOf(ctx, more(NIXOS, settings('{ schedul = "*/5 * * * *"; }'))));
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/schedul/);
    expect(r.out).toBeNull();
  });

  it.for([
    ["home-manager", HM_LINUX, `r.config.xdg.configFile."sops-agent/config.yaml".source`],
    ["nix-darwin", DARWIN, `r.config.environment.etc."sops-agent/config.yaml".source`],
  ] as const)("%s checks the config too", ([, opts, select], ctx) => {
    const check = evalNixOk<Check>(ctx, opts, `let s = ${select}; in ${CHECK_FIELDS}`);
    expect(runCheck(ctx, check).status).toBe(0);
  });
});

describe("option types", () => {
  it.for([...LOG_LEVELS])("log_level %s, which the CLI accepts, is accepted", (level, ctx) => {
    expect(
      evalNixOk<string>(
        ctx,
        more(NIXOS, settings(`{ log_level = "${level}"; }`)),
        "r.config.services.sops-agent.settings.log_level",
      ),
    ).toBe(level);
  });

  it.for([
    ["log_level", settings('{ log_level = "verbose"; }'), "r.config.services.sops-agent.settings.log_level"],
    [
      "listenAddress",
      "{ services.sops-agent.listenAddress = 1; }",
      "r.config.services.sops-agent.listenAddress",
    ],
    [
      "extraFlags",
      '{ services.sops-agent.extraFlags = "--root /"; }',
      "r.config.services.sops-agent.extraFlags",
    ],
    [
      "manifests",
      '{ services.sops-agent.settings.manifests = "/run/secrets"; }',
      "r.config.services.sops-agent.settings.manifests",
    ],
  ] as const)("a bad %s is rejected, naming the option", ([option, module, select], ctx) => {
    for (const opts of [NIXOS, HM_LINUX, DARWIN])
      expectRejected(
        ctx,
        more(opts, module),
        select,
        new RegExp(`services\\.sops-agent\\.(settings\\.)?${option}`),
      );
  });
});

describe("home-manager module on Linux", () => {
  const unitText = (ctx: TestContext, opts: EvalOptions = HM_LINUX) =>
    storeText(
      evalNixOk<string>(ctx, opts, `r.config.xdg.configFile."systemd/user/sops-agent.service".source`),
    );

  it("a user unit ordered after sops-nix.service without pulling it in", (ctx) => {
    const unit = unitFile(unitText(ctx));
    expect(unit.get("Unit.After")).toEqual(["sops-nix.service"]);
    // sops-nix's user unit is a oneshot without RemainAfterExit: Wants= would re-run decryption on
    // every start of the agent.
    expect(unit.has("Unit.Wants")).toBe(false);
    expect(unit.has("Unit.Requires")).toBe(false);
    expect(unit.get("Service.ExecStart")?.[0]).toMatch(
      /\/bin\/sops-agent'? run --config \/home\/alice\/\.config\/sops-agent\/config\.yaml$/,
    );
    expect(unit.get("Install.WantedBy")).toEqual(["default.target"]);
    const links = evalNixOk<string[]>(ctx, HM_LINUX, "builtins.attrNames r.config.xdg.configFile");
    expect(links).toContain("systemd/user/default.target.wants/sops-agent.service");
  });

  it("reloads on a config change (X-Reload-Triggers, read by sd-switch)", (ctx) => {
    const trigger = (s: string) =>
      unitFile(unitText(ctx, more(HM_LINUX, settings(s)))).get("Unit.X-Reload-Triggers");
    expect(trigger("{ }")).toHaveLength(1);
    expect(trigger(`{ schedule = "*/10 * * * *"; }`)).not.toEqual(trigger("{ }"));
  });

  it("defines no LaunchAgent", (ctx) => {
    expect(evalNixOk<string[]>(ctx, HM_LINUX, "builtins.attrNames r.config.launchd.agents")).toEqual([]);
  });
});

describe("home-manager module on macOS", () => {
  const agent = (ctx: TestContext, opts: EvalOptions = HM_DARWIN) =>
    evalNixOk<{ config: Record<string, PlistValue>; waitForNixStore: boolean; domain: string }>(
      ctx,
      opts,
      "let a = r.config.launchd.agents.sops-agent; in { inherit (a) waitForNixStore domain; config = r.lib.filterAttrs (_: v: v != null) a.config; }",
    );

  it("a LaunchAgent that runs the agent directly (home-manager adds the wait for /nix/store)", (ctx) => {
    const a = agent(ctx);
    expect(a.waitForNixStore).toBe(true);
    const args = a.config.ProgramArguments as string[];
    expect(args[0]).toMatch(/^\/nix\/store\/[0-9a-f]{32}-sops-agent\/bin\/sops-agent$/);
    expect(args.slice(1, 3)).toEqual(["run", "--config"]);
    expect(a.config).toMatchObject({
      Label: "org.nix-community.home.sops-agent",
      RunAtLoad: true,
      KeepAlive: true,
      StandardOutPath: "/Users/alice/Library/Logs/sops-agent/sops-agent.log",
      StandardErrorPath: "/Users/alice/Library/Logs/sops-agent/sops-agent.err.log",
    });
  });

  it("a config change changes the plist, so home-manager reloads the agent", (ctx) => {
    const args = (s: string) => agent(ctx, more(HM_DARWIN, settings(s))).config.ProgramArguments;
    expect(args("{ }")).toEqual(args("{ }"));
    expect(args(`{ schedule = "*/10 * * * *"; }`)).not.toEqual(args("{ }"));
  });

  it("creates the log directory before home-manager loads the agent", (ctx) => {
    const entry = evalNixOk<{ before: string[]; after: string[]; data: string }>(
      ctx,
      HM_DARWIN,
      "r.config.home.activation.sopsAgentLogDir",
    );
    expect(entry.before).toContain("setupLaunchAgents");
    expect(entry.data).toMatch(/mkdir -p '?\/Users\/alice\/Library\/Logs\/sops-agent'?/);
  });

  it("defines no systemd unit", (ctx) => {
    expect(evalNixOk<string[]>(ctx, HM_DARWIN, "builtins.attrNames r.config.xdg.configFile")).toEqual([
      "sops-agent/config.yaml",
    ]);
  });
});

describe("nix-darwin module", () => {
  const daemonPlist = (ctx: TestContext, opts: EvalOptions = DARWIN) =>
    evalNixOk<string>(
      ctx,
      opts,
      `r.config.environment.launchDaemons."org.nix-community.sops-agent.plist".text`,
    );

  it("a LaunchDaemon that runs the agent as root after /nix/store is mounted", (ctx) => {
    const plist = asDict(parsePlist(daemonPlist(ctx)));
    expect(plist).toMatchObject({
      Label: "org.nix-community.sops-agent",
      RunAtLoad: true,
      KeepAlive: true,
      StandardOutPath: "/var/log/sops-agent/sops-agent.log",
      StandardErrorPath: "/var/log/sops-agent/sops-agent.err.log",
    });
    const args = plist.ProgramArguments as string[];
    expect(args.slice(0, 2)).toEqual(["/bin/sh", "-c"]);
    expect(args[2]).toMatch(
      /^\/bin\/wait4path \/nix\/store[;|& ]+.*exec \S+\/bin\/sops-agent'? run --config \S+/,
    );
  });

  it("the plist stays valid on nix-darwin releases that do not escape XML", (ctx) => {
    const raw = evalNixOk<string>(
      ctx,
      more(DARWIN, '{ services.sops-agent.extraFlags = [ "--log-level" "info" ]; }'),
      "r.lib.generators.toPlist { } r.config.launchd.daemons.sops-agent.serviceConfig",
    );
    expect(asDict(parsePlist(raw)).Label).toBe("org.nix-community.sops-agent");
  });

  it("a config change changes the plist, so nix-darwin reloads the daemon", (ctx) => {
    const plist = (s: string) => daemonPlist(ctx, more(DARWIN, settings(s)));
    expect(plist("{ }")).toBe(plist("{ }"));
    expect(plist(`{ schedule = "*/10 * * * *"; }`)).not.toBe(plist("{ }"));
  });

  it("creates the log directory before launchd starts the daemon (preActivation)", (ctx) => {
    const scripts = evalNixOk<Record<string, { text: string }>>(
      ctx,
      DARWIN,
      "r.config.system.activationScripts",
    );
    expect(scripts.preActivation?.text).toMatch(/mkdir -p '?\/var\/log\/sops-agent'?/);
    expect(scripts.postActivation?.text ?? "").not.toMatch(/sops-agent/);
  });
});
