// Identities sops loads from the SOPS_AGE_* variables `sops.environment` sets (issue 8.1), on host trees
// whose entry points are written the way sops-nix 56b24064 writes them, with real keys from age-keygen and
// ssh-keygen. Upstream: sops 15e36f97 age/keysource.go:329-339, :411-484; sops-install-secrets main.go:1399-1404.

import * as fs from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { renderState } from "../src/agent/metrics.js";
import type { Problem } from "../src/core/problems.js";
import type { HostLayout } from "../src/example/layout.js";
import { checkHost } from "../src/host/check-host.js";
import { environmentFor } from "../src/host/entry-environment.js";
import { runCli } from "./helpers/cli.js";
import { cleanupRoots, makeHost } from "./helpers/host.js";
import { ageKeygen, sshKeygen } from "./helpers/keys.js";

afterAll(cleanupRoots);

const ENV_KEY = "/var/lib/sops-env/keys.txt";
const ALICE = { name: "alice", uid: 1000, gid: 100, home: "/home/alice" };

function critical(ps: readonly Problem[]): string[] {
  return ps
    .filter((p) => p.severity === "critical")
    .map((p) => `${p.scope}:${p.code}:${p.subject}`)
    .sort();
}

function problems(host: HostLayout): Problem[] {
  return [...checkHost({ root: host.root, manifests: null, env: {} }).document.problems];
}

/** The store file a host path links to (entry points are links into the store). */
function storeFile(host: HostLayout, hostPath: string): string {
  return fs.readlinkSync(host.real(hostPath));
}

/** Rewrites the system activation script as with-environment.nix:5-12 wraps the sops-install-secrets call. */
function exportInActivate(host: HostLayout, exports: Record<string, string>): void {
  const system = storeFile(host, "/run/current-system");
  const activate = `${system}/activate`;
  const text = fs.readFileSync(host.real(activate), "utf8");
  const manifest = host.scopes.get("system")?.manifestPath ?? "";
  const lines = Object.entries(exports).map(([n, v]) => `  export ${n}='${v}'`);
  const call = text.split("\n").find((l) => l.includes(manifest)) ?? "";
  expect(call).not.toBe("");
  host.writeFile(activate, text.replace(call, `(\n${lines.join("\n")}\n  ${call}\n)`), 0o555);
}

function envHost(exports: Record<string, string>, recipients: string[]): HostLayout {
  const host = makeHost({ system: { secrets: [{ name: "db" }], ageKeyFile: null, recipients } });
  exportInActivate(host, exports);
  return host;
}

describe("SOPS_AGE_KEY_FILE exported in the activation script", () => {
  it("decrypts a scope without ageKeyFile or sshKeyPaths (was a false host_not_recipient)", (ctx) => {
    const age = ageKeygen(ctx);
    const host = envHost({ SOPS_AGE_KEY_FILE: ENV_KEY }, [age.recipient]);
    host.writeFile(ENV_KEY, age.file, 0o600);
    expect(critical(problems(host))).toEqual([]);
  });

  it("a missing file is key_missing and host_not_recipient, both critical", (ctx) => {
    const age = ageKeygen(ctx);
    const host = envHost({ SOPS_AGE_KEY_FILE: ENV_KEY }, [age.recipient]);
    const ps = problems(host);
    expect(critical(ps)).toEqual(["system:host_not_recipient:db", `system:key_missing:${ENV_KEY}`].sort());
    expect(ps.find((p) => p.code === "key_missing")?.message).toContain("SOPS_AGE_KEY_FILE");
  });

  it("is replaced by the combined key file when the manifest has an ageKeyFile (main.go:1399-1404)", (ctx) => {
    const age = ageKeygen(ctx);
    const other = ageKeygen(ctx);
    const host = makeHost({
      system: {
        secrets: [{ name: "db" }],
        ageKeyFile: "/var/lib/sops-nix/key.txt",
        recipients: [age.recipient],
      },
    });
    host.writeFile("/var/lib/sops-nix/key.txt", other.file, 0o600);
    exportInActivate(host, { SOPS_AGE_KEY_FILE: ENV_KEY });
    host.writeFile(ENV_KEY, age.file, 0o600);
    // The user's file holds the right key, but sops never sees it.
    expect(critical(problems(host))).toEqual(["system:host_not_recipient:db"]);
  });

  it("a subshell's exports belong to its own manifest only", () => {
    const text = `#!/bin/sh\n(\n  export SOPS_AGE_KEY_FILE='${ENV_KEY}'\n  /nix/store/x/bin/sops-install-secrets /nix/store/${"a".repeat(32)}-manifest.json\n)\n/nix/store/x/bin/sops-install-secrets -ignore-passwd /nix/store/${"b".repeat(32)}-manifest-for-users.json\n`;
    expect(
      environmentFor("/run/current-system/activate", text, `/nix/store/${"a".repeat(32)}-manifest.json`),
    ).toEqual({
      ageKeyFile: ENV_KEY,
    });
    expect(
      environmentFor(
        "/run/current-system/activate",
        text,
        `/nix/store/${"b".repeat(32)}-manifest-for-users.json`,
      ),
    ).toBeNull();
  });
});

describe("SOPS_AGE_SSH_PRIVATE_KEY_FILE", () => {
  it("adds the ssh key as a native ssh identity (keysource.go:331-339)", (ctx) => {
    const ssh = sshKeygen(ctx, "ed25519");
    const key = "/etc/ssh/deploy_ed25519";
    const host = envHost({ SOPS_AGE_SSH_PRIVATE_KEY_FILE: key }, [ssh.nativeRecipient]);
    expect(critical(problems(host))).toContain("system:host_not_recipient:db");
    host.writeFile(key, ssh.privateKey, 0o600);
    expect(critical(problems(host))).toEqual([]);
  });
});

describe("SOPS_AGE_KEY: identities inline", () => {
  it("decrypts with the inline key and its value appears in no output", async (ctx) => {
    const age = ageKeygen(ctx);
    const secret = age.file.split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1")) ?? "";
    expect(secret).not.toBe("");
    const host = envHost({ SOPS_AGE_KEY: `# inline\n${secret}` }, [age.recipient]);
    const run = checkHost({ root: host.root, manifests: null, env: {} });
    expect(critical([...run.document.problems])).toEqual([]);
    const outputs = [
      await runCli(["status", "--root", host.root]),
      await runCli(["status", "--root", host.root, "--json"]),
      await runCli(["recipient", "--root", host.root]),
    ];
    const json = outputs[1]?.stdout ?? "";
    expect(json).toContain(age.recipient);
    const metrics = renderState({ run, switches: new Map() }).toString("utf8");
    const tail = secret.slice("AGE-SECRET-KEY-1".length);
    for (const o of outputs) {
      expect(o.stdout).not.toContain(tail);
      expect(o.stderr).not.toContain(tail);
    }
    expect(metrics).not.toContain(tail);
    expect(JSON.stringify(run)).not.toContain(tail);
  });

  it("a value sops cannot parse loses all of it: key_unparseable naming the variable, never the value", (ctx) => {
    const age = ageKeygen(ctx);
    const secret = age.file.split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1")) ?? "";
    const host = envHost({ SOPS_AGE_KEY: `${secret} Public-key` }, [age.recipient]);
    const ps = problems(host);
    expect(critical(ps)).toEqual(["system:host_not_recipient:db", "system:key_unparseable:SOPS_AGE_KEY"]);
    for (const p of ps) expect(p.message).not.toContain(secret.slice(20));
  });
});

describe("home-manager's sops-nix.service Environment= line (home-manager/sops.nix:386-388)", () => {
  it("points sops at the user's key file", (ctx) => {
    const age = ageKeygen(ctx);
    const host = makeHost({
      users: [ALICE],
      groups: [{ name: "users", gid: 100 }],
      homeManager: [
        {
          user: "alice",
          scope: { secrets: [{ name: "token" }], ageKeyFile: null, recipients: [age.recipient] },
        },
      ],
    });
    const keyFile = "/home/alice/.local/share/sops/key.txt";
    const unit = storeFile(host, "/home/alice/.config/systemd/user/sops-nix.service");
    const text = fs.readFileSync(host.real(unit), "utf8");
    host.writeFile(keyFile, age.file, 0o600, ALICE.uid, ALICE.gid);
    expect(critical(problems(host))).toEqual(["user:alice:host_not_recipient:token"]);
    host.writeFile(
      unit,
      text.replace(
        "Type=oneshot\n",
        `Type=oneshot\nEnvironment='SOPS_AGE_KEY_FILE=${keyFile}' 'OTHER=x y'\n`,
      ),
    );
    expect(critical(problems(host))).toEqual([]);
  });
});

describe("the other entry points' syntax", () => {
  it("the NixOS unit's Environment=\"…\" lines and the LaunchAgent's EnvironmentVariables", () => {
    const unit = `[Unit]\nDescription=x\n\n[Service]\nEnvironment="SOPS_AGE_KEY_FILE=/k 1.txt"\nEnvironment="SOPS_RESTART_UNITS_VIA_SYSTEMCTL=1"\nExecStart=/nix/store/x/bin/sops-install-secrets m\n`;
    expect(environmentFor("/etc/systemd/system/sops-install-secrets.service", unit, "m")).toEqual({
      ageKeyFile: "/k 1.txt",
    });
    const plist = `<plist version="1.0"><dict><key>EnvironmentVariables</key>\n<dict>\n<key>SOPS_AGE_SSH_PRIVATE_KEY_FILE</key>\n<string>/Users/a/.ssh/id_ed25519</string>\n</dict><key>Program</key><string>/nix/store/x</string></dict></plist>`;
    expect(
      environmentFor("/Users/a/Library/LaunchAgents/org.nix-community.home.sops-nix.plist", plist, "m"),
    ).toEqual({
      ageSshKeyFile: "/Users/a/.ssh/id_ed25519",
    });
  });
});
