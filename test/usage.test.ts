// Secrets in use: stale consumers after a rotation, failed activations and leftover plaintext, on host trees
// laid out as sops-install-secrets leaves them. The machines here run no systemd: unit states come from the
// real `systemctl show` adapter fed with recorded answers (see recordedSystemd).

import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { renderState } from "../src/agent/metrics.js";
import type { ScopeName } from "../src/core/model.js";
import type { Problem } from "../src/core/problems.js";
import type { CheckRun } from "../src/core/report.js";
import type { HostLayout } from "../src/example/layout.js";
import { checkHost } from "../src/host/check-host.js";
import {
  parseLaunchctlExitCode,
  parseSystemctlShow,
  type Runner,
  SystemServiceManager,
} from "../src/host/service-manager.js";
import { UsageCache } from "../src/host/usage.js";
import {
  currentManifest,
  currentSystemGeneration,
  formerManifest,
  homeManagerGeneration,
  type ManifestJson,
  systemGeneration,
} from "./helpers/generations.js";
import { cleanupRoots, healthyHost, healthySpec, installKeys, makeHost } from "./helpers/host.js";

afterEach(cleanupRoots);

/** What `systemctl show --timestamp=unix --property=…` prints for one unit (systemd 256). */
function showBlock(
  unit: string,
  s: { active?: string; result?: string; since?: number | null; status?: number },
) {
  const since = s.since === undefined || s.since === null ? "" : `@${Math.floor(s.since)}`;
  return [
    `Id=${unit}`,
    "LoadState=loaded",
    `ActiveState=${s.active ?? "active"}`,
    `Result=${s.result ?? "success"}`,
    `ActiveEnterTimestamp=${since}`,
    `ExecMainStatus=${s.status ?? 0}`,
  ].join("\n");
}

interface Recorded {
  readonly units: Record<string, Parameters<typeof showBlock>[1]>;
  readonly journal?: string;
  readonly calls: string[][];
}

/**
 * A Runner answering as systemd would: `systemctl show` prints a block per unit asked for (not-found units
 * included), `journalctl` the recorded last line. Every call is recorded.
 */
function recordedSystemd(rec: Recorded): Runner {
  return (command, args) => {
    rec.calls.push([command, ...args]);
    if (command === "journalctl") return rec.journal === undefined ? null : `${rec.journal}\n`;
    if (command !== "systemctl") return null;
    const units = args.slice(args.indexOf("--") + 1);
    return `${units
      .map((u) =>
        rec.units[u] === undefined
          ? `Id=${u}\nLoadState=not-found\nActiveState=inactive\nResult=success\nActiveEnterTimestamp=\nExecMainStatus=0`
          : showBlock(u, rec.units[u]),
      )
      .join("\n\n")}\n`;
  };
}

function check(host: HostLayout, rec: Recorded | null): CheckRun {
  return checkHost({
    root: host.root,
    manifests: null,
    env: {},
    usageCache: new UsageCache(),
    services: rec === null ? null : new SystemServiceManager(recordedSystemd(rec)),
  });
}

function codes(run: CheckRun, ...wanted: string[]): Problem[] {
  return run.document.problems.filter((p) => wanted.includes(p.code));
}

function generationSeconds(host: HostLayout, scope: ScopeName = "system"): number {
  const laid = host.scopes.get(scope);
  if (laid === undefined) throw new Error(scope);
  return fs.statSync(host.real(fs.readlinkSync(host.real(laid.symlinkPath)))).mtimeMs / 1000;
}

function editManifest(host: HostLayout, scope: string, edit: (m: ManifestJson) => void): void {
  const laid = host.scopes.get(scope);
  if (laid === undefined) throw new Error(scope);
  const m = currentManifest(host, scope);
  edit(m);
  host.writeFile(laid.manifestPath, JSON.stringify(m), 0o444);
}

const secretOf = (m: ManifestJson, name: string) => {
  const s = m.secrets.find((x) => x.name === name);
  if (s === undefined) throw new Error(name);
  return s;
};

/**
 * A NixOS host right after a rotation of db-password: generation 2 of the profile is the running one, whose
 * sops file differs from generation 1's. `app.service` is declared in restartUnits, `web.service` reads the
 * secret through EnvironmentFile=.
 */
function rotatedHost(change: (old: ManifestJson) => void): HostLayout {
  const host = healthyHost();
  editManifest(host, "system", (m) => {
    secretOf(m, "db-password").restartUnits = ["app.service"];
  });
  host.writeFile(
    "/etc/systemd/system/web.service",
    "[Service]\nEnvironmentFile=-/run/secrets/db-password\nExecStart=/nix/store/00000000000000000000000000000000-web/bin/web\n",
  );
  systemGeneration(host, 1, formerManifest(host, "system", "before-rotation", change));
  currentSystemGeneration(host, 2);
  return host;
}

const rotateFile = (m: ManifestJson) => {
  secretOf(m, "db-password").sopsFile = "/nix/store/11111111111111111111111111111111-secrets.yaml";
};

describe("consumer_stale", () => {
  it("names the service that was not restarted after a rotation, and the fix", () => {
    const host = rotatedHost(rotateFile);
    const installed = generationSeconds(host);
    const rec: Recorded = {
      units: {
        "app.service": { since: installed + 5 }, // restarted by the switch
        "web.service": { since: installed - 3600 }, // running since before: stale
      },
      calls: [],
    };
    const run = check(host, rec);
    const stale = codes(run, "consumer_stale");
    expect(stale).toHaveLength(1);
    expect(stale[0]).toMatchObject({ severity: "warning", scope: "system", subject: "db-password" });
    expect(stale[0]?.message).toContain("web.service");
    expect(stale[0]?.message).toContain("systemctl restart web.service");
    expect(stale[0]?.message).toContain("restartUnits");
    expect(run.staleConsumers).toEqual([{ scope: "system", name: "db-password", unit: "web.service" }]);
    // One systemctl call for the system manager, however many units.
    expect(rec.calls.filter((c) => c[0] === "systemctl" && !c.includes("--user"))).toHaveLength(1);
  });

  it("is critical for a restartUnits unit that missed the restart of a re-keyed secret", () => {
    const host = rotatedHost((m) => {
      secretOf(m, "db-password").key = "old/db-password";
    });
    const installed = generationSeconds(host);
    const run = check(host, {
      units: { "app.service": { since: installed - 60 }, "web.service": { since: installed + 1 } },
      calls: [],
    });
    const stale = codes(run, "consumer_stale");
    expect(stale.map((p) => [p.severity, p.subject])).toEqual([["critical", "db-password"]]);
    expect(stale[0]?.message).toContain("app.service");
    expect(stale[0]?.message).toContain("did not restart it");
    expect(run.document.healthy).toBe(false);
  });

  it("says nothing when the declaration did not change, however old the service", () => {
    const host = rotatedHost(() => {});
    const installed = generationSeconds(host);
    const run = check(host, {
      units: { "app.service": { since: installed - 9999 }, "web.service": { since: installed - 9999 } },
      calls: [],
    });
    expect(codes(run, "consumer_stale")).toEqual([]);
  });

  it("says nothing of inactive units and of reloadUnits (systemd keeps no reload time)", () => {
    const host = rotatedHost(rotateFile);
    editManifest(host, "system", (m) => {
      secretOf(m, "db-password").restartUnits = [];
      secretOf(m, "db-password").reloadUnits = ["app.service"];
    });
    const installed = generationSeconds(host);
    const run = check(host, {
      units: { "app.service": { since: installed - 60 }, "web.service": { active: "inactive", since: null } },
      calls: [],
    });
    expect(codes(run, "consumer_stale")).toEqual([]);
  });

  it("shows only relations under --root: no unit state, no verdict", () => {
    const host = rotatedHost(rotateFile);
    const run = check(host, null);
    expect(codes(run, "consumer_stale")).toEqual([]);
    expect(run.staleConsumers).toEqual([]);
  });

  it("finds consumers through LoadCredential=, drop-ins and the store scripts ExecStart runs", () => {
    const host = rotatedHost(rotateFile);
    const script = "/nix/store/22222222222222222222222222222222-unit-script-api-start/bin/api-start";
    host.writeFile(script, '#!/bin/sh\nexport TOKEN="$(cat /run/secrets/db-password)"\nexec api\n', 0o555);
    host.writeFile("/etc/systemd/system/api.service", `[Service]\nExecStart=${script}\n`);
    host.writeFile("/etc/systemd/system/cred.service", "[Service]\nExecStart=/bin/true\n");
    host.writeFile(
      "/etc/systemd/system/cred.service.d/override.conf",
      "[Service]\nLoadCredential=db:/run/secrets/db-password\n",
    );
    const installed = generationSeconds(host);
    const old = { since: installed - 600 };
    const run = check(host, {
      units: { "app.service": old, "web.service": old, "api.service": old, "cred.service": old },
      calls: [],
    });
    expect(
      codes(run, "consumer_stale")
        .map((p) => /^(\S+) has been running/.exec(p.message)?.[1])
        .sort(),
    ).toEqual(["api.service", "app.service", "cred.service", "web.service"]);
  });
});

describe("consumer_stale in a user's own scope", () => {
  /** alice's gh-token changed since her previous home-manager generation; x.service is her unit. */
  function aliceRotated(): HostLayout {
    const host = healthyHost();
    const before = formerManifest(host, "user:alice", "alice-before", (m) => {
      secretOf(m, "gh-token").key = "old-gh-token";
    });
    homeManagerGeneration(host, "alice", 1, before, "/home/alice/.local/state/nix/profiles");
    return host;
  }
  const unit = "[Service]\nEnvironmentFile=/home/alice/.config/sops-nix/secrets/gh-token\n";

  it("names her stale unit, found through her unit files", () => {
    const host = aliceRotated();
    host.writeFile("/home/alice/.config/systemd/user/x.service", unit, 0o644, 1000, 100);
    const installed = generationSeconds(host, "user:alice");
    const run = check(host, { units: { "x.service": { since: installed - 600 } }, calls: [] });
    const stale = codes(run, "consumer_stale");
    expect(stale.map((p) => [p.scope, p.subject])).toEqual([["user:alice", "gh-token"]]);
    expect(stale[0]?.message).toContain("systemctl --user restart x.service (as alice)");
  });

  it("never reads a unit file she could not read herself through a link in her unit directory", () => {
    const host = aliceRotated();
    host.writeFile("/root/units/x.service", unit, 0o600);
    host.symlink("/home/alice/.config/systemd/user/x.service", "/root/units/x.service");
    const installed = generationSeconds(host, "user:alice");
    const run = check(host, { units: { "x.service": { since: installed - 600 } }, calls: [] });
    expect(codes(run, "consumer_stale")).toEqual([]);
  });
});

describe("activation_failed", () => {
  it("is critical when sops-install-secrets.service failed, with its last log line", () => {
    const host = makeHost({ ...healthySpec(), activation: "systemd" });
    installKeys(host);
    const rec: Recorded = {
      units: { "sops-install-secrets.service": { active: "failed", result: "exit-code", status: 1 } },
      journal: "failed to decrypt '/nix/store/x-secrets.yaml': 0 successful groups required, got 0",
      calls: [],
    };
    const run = check(host, rec);
    const failed = codes(run, "activation_failed");
    expect(failed.map((p) => [p.scope, p.severity, p.subject])).toEqual([
      ["system", "critical", "sops-install-secrets.service"],
    ]);
    expect(failed[0]?.message).toContain("exit status 1");
    expect(failed[0]?.message).toContain("0 successful groups required");
    expect(failed[0]?.message).toContain("journalctl -b -u sops-install-secrets.service");
    expect(run.activations).toContainEqual({ scope: "system", succeeded: false });
    const metrics = renderState({ run, switches: new Map() }).toString("utf8");
    expect(metrics).toContain('sops_activation_success{scope="system"} 0');
  });

  it("is quiet and exports success when the units succeeded", () => {
    const host = makeHost({ ...healthySpec(), activation: "systemd" });
    installKeys(host);
    const run = check(host, {
      units: {
        "sops-install-secrets.service": { active: "inactive", result: "success" },
        "sops-install-secrets-for-users.service": { active: "inactive", result: "success" },
        "sops-nix.service": { active: "inactive", result: "success" },
      },
      calls: [],
    });
    expect(codes(run, "activation_failed")).toEqual([]);
    const metrics = renderState({ run, switches: new Map() }).toString("utf8");
    expect(metrics).toContain('sops_activation_success{scope="system"} 1');
    expect(metrics).toContain('sops_activation_success{scope="user:alice"} 1');
  });

  it("is critical when home-manager's sops-nix user unit failed", () => {
    const host = healthyHost();
    const rec: Recorded = {
      units: { "sops-nix.service": { active: "failed", result: "exit-code" } },
      calls: [],
    };
    const run = check(host, rec);
    expect(codes(run, "activation_failed").map((p) => p.scope)).toEqual(["user:alice"]);
    expect(rec.calls).toContainEqual(expect.arrayContaining(["--user", "--machine=alice@"]));
  });

  it("catches a classic activation whose setupSecrets failed: the switch is newer than the generation", () => {
    const host = healthyHost();
    const generation = generationSeconds(host);
    fs.lutimesSync(host.real("/run/current-system"), generation + 600, generation + 600);
    const run = check(host, null);
    const failed = codes(run, "activation_failed");
    expect(failed.map((p) => [p.scope, p.subject])).toEqual([
      ["for-users", "setupSecrets"],
      ["system", "setupSecrets"],
    ]);
    expect(run.activations).toContainEqual({ scope: "system", succeeded: false });
  });

  it("accepts a classic activation that wrote its generation just before the switch", () => {
    const host = healthyHost();
    const generation = generationSeconds(host);
    fs.lutimesSync(host.real("/run/current-system"), generation + 30, generation + 30);
    const run = check(host, null);
    expect(codes(run, "activation_failed")).toEqual([]);
    expect(run.activations).toContainEqual({ scope: "system", succeeded: true });
  });
});

describe("housekeeping", () => {
  it("reports generations kept beyond keepGenerations and a dry activation's generation", () => {
    const spec = healthySpec();
    const host = makeHost({
      ...spec,
      system: { ...spec.system, secrets: spec.system?.secrets ?? [], generation: 3 },
    });
    installKeys(host);
    for (const n of [1, 4])
      host.writeFile(`/run/secrets.d/${n}/db-password`, "PLANTED-old-value-0001", 0o400);
    const found = codes(check(host, null), "old_generation");
    expect(found.map((p) => [p.severity, p.subject])).toEqual([
      ["warning", "/run/secrets.d/1"],
      ["warning", "/run/secrets.d/4"],
    ]);
    expect(found[1]?.message).toContain("dry activation");
    expect(JSON.stringify(found)).not.toMatch(/PLANTED/);
  });

  it("keeps quiet about the generations keepGenerations keeps", () => {
    const spec = healthySpec();
    const host = makeHost({
      ...spec,
      system: { ...spec.system, secrets: spec.system?.secrets ?? [], generation: 3 },
    });
    installKeys(host);
    editManifest(host, "system", (m) => {
      m.keepGenerations = 2;
    });
    host.writeFile("/run/secrets.d/2/db-password", "x", 0o400);
    expect(codes(check(host, null), "old_generation")).toEqual([]);
  });

  it("reports a template source outside the store that is gone: the activation aborts", () => {
    const host = healthyHost();
    editManifest(host, "system", (m) => {
      const t = m.templates[0];
      if (t === undefined) throw new Error("template");
      t.content = "";
      t.file = "/etc/sops-templates/app.env";
    });
    const found = codes(check(host, null), "template_source_missing");
    expect(found.map((p) => [p.severity, p.subject, p.path])).toEqual([
      ["critical", "app.env", "/etc/sops-templates/app.env"],
    ]);
    host.writeFile("/etc/sops-templates/app.env", "TOKEN=<SOPS:x:PLACEHOLDER>\n");
    expect(codes(check(host, null), "template_source_missing")).toEqual([]);
  });

  it("reports a sops file whose content no longer has the recorded sopsFileHash", () => {
    const host = healthyHost();
    const m = currentManifest(host, "system");
    const sopsFile = String(secretOf(m, "db-password").sopsFile);
    const actual = createHash("sha256")
      .update(fs.readFileSync(host.real(sopsFile)))
      .digest("hex");
    editManifest(host, "system", (mm) => {
      for (const s of mm.secrets) s.sopsFileHash = actual;
    });
    expect(codes(check(host, null), "sops_file_hash_mismatch")).toEqual([]);
    editManifest(host, "system", (mm) => {
      for (const s of mm.secrets) s.sopsFileHash = "0".repeat(64);
    });
    const found = codes(check(host, null), "sops_file_hash_mismatch");
    expect(found.map((p) => [p.severity, p.subject, p.path])).toEqual([
      ["warning", "api-token", sopsFile],
      ["warning", "db-password", sopsFile],
      ["warning", "nginx/htpasswd", sopsFile],
    ]);
  });

  it("reports a gnupg home that does not exist", () => {
    const host = healthyHost();
    editManifest(host, "system", (m) => {
      m.gnupgHome = "/var/lib/sops/gnupg";
    });
    expect(codes(check(host, null), "gnupg_home_missing").map((p) => p.subject)).toEqual([
      "/var/lib/sops/gnupg",
    ]);
    fs.mkdirSync(host.real("/var/lib/sops/gnupg"), { recursive: true });
    expect(codes(check(host, null), "gnupg_home_missing")).toEqual([]);
  });

  it("finds nothing to say on a healthy host", () => {
    const run = check(healthyHost(), { units: {}, calls: [] });
    expect(
      codes(
        run,
        "activation_failed",
        "consumer_stale",
        "old_generation",
        "sops_file_hash_mismatch",
        "gnupg_home_missing",
        "template_source_missing",
      ),
    ).toEqual([]);
  });
});

describe("the adapters, on recorded answers", () => {
  it("parses systemctl show, not-found units and empty timestamps included", () => {
    const text = [
      showBlock("nginx.service", { since: 1764440000 }),
      "Id=gone.service\nLoadState=not-found\nActiveState=inactive\nResult=success\nActiveEnterTimestamp=\nExecMainStatus=0",
      showBlock("sops-install-secrets.service", { active: "failed", result: "exit-code", status: 1 }),
    ].join("\n\n");
    expect(parseSystemctlShow(text)).toEqual([
      {
        unit: "nginx.service",
        loadState: "loaded",
        activeState: "active",
        result: "success",
        activeEnterSeconds: 1764440000,
        mainStatus: 0,
      },
      {
        unit: "gone.service",
        loadState: "not-found",
        activeState: "inactive",
        result: "success",
        activeEnterSeconds: null,
        mainStatus: 0,
      },
      {
        unit: "sops-install-secrets.service",
        loadState: "loaded",
        activeState: "failed",
        result: "exit-code",
        activeEnterSeconds: null,
        mainStatus: 1,
      },
    ]);
  });

  it("reads the last exit code of a launchd job", () => {
    const printed = [
      "system/org.nixos.sops-install-secrets = {",
      "\tactive count = 0",
      "\tpath = /Library/LaunchDaemons/org.nixos.sops-install-secrets.plist",
      "\tstate = not running",
      "\truns = 1",
      "\tlast exit code = 1",
      "}",
    ].join("\n");
    expect(parseLaunchctlExitCode(printed)).toBe(1);
    expect(parseLaunchctlExitCode("\tlast exit code = (never exited)\n")).toBeNull();
  });

  it("asks a user's manager with --user --machine and survives a failing systemctl", () => {
    const calls: string[][] = [];
    const manager = new SystemServiceManager((c, a) => {
      calls.push([c, ...a]);
      return null;
    });
    expect(manager.unitStates("user:alice", ["sops-nix.service"]).size).toBe(0);
    expect(calls[0]).toEqual([
      "systemctl",
      "--user",
      "--machine=alice@",
      "show",
      "--timestamp=unix",
      "--property=Id,LoadState,ActiveState,Result,ActiveEnterTimestamp,ExecMainStatus",
      "--",
      "sops-nix.service",
    ]);
  });
});
