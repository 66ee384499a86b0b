// Identities sops loads from the SOPS_AGE_* variables `sops.environment` sets (issue 8.1), on host trees
// whose entry points are written the way sops-nix 56b24064 writes them, with real keys from age-keygen and
// ssh-keygen. Upstream: sops 15e36f97 age/keysource.go:329-339, :411-484; sops-install-secrets main.go:1399-1404.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { renderState } from "../src/agent/metrics.js";
import { wantedPaths } from "../src/agent/watcher.js";
import type { Problem } from "../src/core/problems.js";
import type { HostLayout } from "../src/example/layout.js";
import { checkHost } from "../src/host/check-host.js";
import { environmentFor } from "../src/host/entry-environment.js";
import { runCli } from "./helpers/cli.js";
import { cleanupRoots, makeHost } from "./helpers/host.js";
import { ageKeygen, sshKeygen } from "./helpers/keys.js";
import { requireTool } from "./helpers/tools.js";

afterAll(cleanupRoots);

const ENV_KEY = "/var/lib/sops-env/keys.txt";
const ALICE = { name: "alice", uid: 1000, gid: 100, home: "/home/alice" };

function critical(ps: readonly Problem[]): string[] {
  return ps
    .filter((p) => p.severity === "critical")
    .map((p) => `${p.scope}:${p.code}:${p.subject}`)
    .sort();
}

function verdicts(ps: readonly Problem[]): string[] {
  return ps.map((p) => `${p.severity}:${p.code}:${p.subject}`).sort();
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

// sops v3.12.2 — the version sops-nix 56b24064 pins (go.mod:8) — runs SOPS_AGE_SSH_PRIVATE_KEY_CMD and
// SOPS_AGE_KEY_CMD with SOPS_AGE_RECIPIENT set (age/keysource.go:342-357, :429-438) and parses their output
// as an ssh key or an age identity file. The agent never runs them: what they yield cannot be known.
describe("SOPS_AGE_KEY_CMD and SOPS_AGE_SSH_PRIVATE_KEY_CMD", () => {
  it("an age-only file only the command could open is unverifiable, not critical; the command never runs", (ctx) => {
    const age = ageKeygen(ctx);
    // Without the command nothing can open the file: critical, the other direction.
    expect(critical(problems(envHost({}, [age.recipient])))).toEqual(["system:host_not_recipient:db"]);
    const probe = envHost({}, [age.recipient]);
    const marker = probe.real("/command-ran");
    const host = envHost({ SOPS_AGE_KEY_CMD: `touch ${marker}` }, [age.recipient]);
    const ps = problems(host);
    expect(verdicts(ps)).toEqual(["info:recipient_unverifiable:db"]);
    expect(ps[0]?.message).toContain("SOPS_AGE_KEY_CMD in sops.environment");
    expect(ps[0]?.message).not.toContain("touch");
    expect(fs.existsSync(marker)).toBe(false);
  });

  it("runs beside the combined key file: a file the ageKeyFile cannot open is unverifiable, one it opens is fine", (ctx) => {
    const age = ageKeygen(ctx);
    const other = ageKeygen(ctx);
    const withKey = (recipient: string) => {
      const host = makeHost({
        system: {
          secrets: [{ name: "db" }],
          ageKeyFile: "/var/lib/sops-nix/key.txt",
          recipients: [recipient],
        },
      });
      host.writeFile("/var/lib/sops-nix/key.txt", age.file, 0o600);
      exportInActivate(host, { SOPS_AGE_KEY_CMD: "/run/current-system/sw/bin/vault-age-key" });
      return host;
    };
    expect(verdicts(problems(withKey(other.recipient)))).toEqual(["info:recipient_unverifiable:db"]);
    expect(problems(withKey(age.recipient))).toEqual([]);
  });

  it("the ssh command can open only native ssh recipients: an age-only file stays critical", (ctx) => {
    const age = ageKeygen(ctx);
    const ssh = sshKeygen(ctx, "ed25519");
    const cmd = { SOPS_AGE_SSH_PRIVATE_KEY_CMD: "ssh-key-from-tpm" };
    expect(verdicts(problems(envHost(cmd, [ssh.nativeRecipient])))).toEqual([
      "info:recipient_unverifiable:db",
    ]);
    expect(critical(problems(envHost(cmd, [age.recipient])))).toEqual(["system:host_not_recipient:db"]);
  });

  it("a missing ssh key is a warning when only the command could tell (no false critical)", (ctx) => {
    const age = ageKeygen(ctx);
    const host = makeHost({
      system: {
        secrets: [{ name: "db" }],
        ageKeyFile: null,
        ageSshKeyPaths: ["/etc/ssh/ssh_host_ed25519_key"],
        recipients: [age.recipient],
      },
    });
    expect(critical(problems(host))).toContain("system:key_missing:/etc/ssh/ssh_host_ed25519_key");
    exportInActivate(host, { SOPS_AGE_KEY_CMD: "get-age-key" });
    expect(verdicts(problems(host))).toEqual([
      "info:recipient_unverifiable:db",
      "warning:key_missing:/etc/ssh/ssh_host_ed25519_key",
    ]);
  });

  it("is read from every entry point's syntax, and only its presence is kept", () => {
    const unit = `[Service]\nEnvironment="SOPS_AGE_KEY_CMD=vault read -field=key token=s3cr3t"\nEnvironment="SOPS_AGE_SSH_PRIVATE_KEY_CMD=tpm-ssh"\nExecStart=x m\n`;
    const env = environmentFor("/etc/systemd/system/sops-install-secrets.service", unit, "m");
    expect(env).toEqual({ ageKeyCommand: true, ageSshKeyCommand: true });
    expect(JSON.stringify(env)).not.toContain("s3cr3t");
  });
});

// The files SOPS_AGE_KEY_FILE and SOPS_AGE_SSH_PRIVATE_KEY_FILE name get the checks a declared key gets:
// sops opens them following links and reports one it cannot open (keysource.go v3.12.2:330-339, :425-431).
describe("key files named by sops.environment", () => {
  it("a dangling SOPS_AGE_KEY_FILE link is key_dangling (critical when a file needs it); a live link is a warning", (ctx) => {
    const age = ageKeygen(ctx);
    const host = envHost({ SOPS_AGE_KEY_FILE: ENV_KEY }, [age.recipient]);
    host.symlink(ENV_KEY, "/home/alice/.config/sops/age/keys.txt");
    const ps = problems(host);
    expect(critical(ps)).toEqual(["system:host_not_recipient:db", `system:key_dangling:${ENV_KEY}`].sort());
    expect(ps.find((p) => p.code === "key_dangling")?.message).toContain(
      "SOPS_AGE_KEY_FILE in sops.environment",
    );
    host.writeFile("/home/alice/.config/sops/age/keys.txt", age.file, 0o600);
    expect(verdicts(problems(host))).toEqual([`warning:key_is_symlink:${ENV_KEY}`]);
  });

  it("a SOPS_AGE_KEY_FILE others may read is key_insecure_mode (warning); 0600 is clean", (ctx) => {
    const age = ageKeygen(ctx);
    const host = envHost({ SOPS_AGE_KEY_FILE: ENV_KEY }, [age.recipient]);
    host.writeFile(ENV_KEY, age.file, 0o644);
    expect(verdicts(problems(host))).toEqual([`warning:key_insecure_mode:${ENV_KEY}`]);
    fs.chmodSync(host.real(ENV_KEY), 0o600);
    expect(problems(host)).toEqual([]);
  });

  it("a dangling SOPS_AGE_SSH_PRIVATE_KEY_FILE is key_dangling, a warning when another key still opens the file", (ctx) => {
    const age = ageKeygen(ctx);
    const ssh = sshKeygen(ctx, "ed25519");
    const key = "/etc/ssh/deploy_ed25519";
    const host = envHost({ SOPS_AGE_SSH_PRIVATE_KEY_FILE: key, SOPS_AGE_KEY_FILE: ENV_KEY }, [
      ssh.nativeRecipient,
    ]);
    host.writeFile(ENV_KEY, age.file, 0o600);
    host.symlink(key, "/persist/etc/ssh/deploy_ed25519");
    expect(critical(problems(host))).toEqual(
      ["system:host_not_recipient:db", `system:key_dangling:${key}`].sort(),
    );
    // The same file also encrypted to the age key: losing the ssh key costs nothing.
    const both = envHost({ SOPS_AGE_SSH_PRIVATE_KEY_FILE: key, SOPS_AGE_KEY_FILE: ENV_KEY }, [
      ssh.nativeRecipient,
      age.recipient,
    ]);
    both.writeFile(ENV_KEY, age.file, 0o600);
    both.symlink(key, "/persist/etc/ssh/deploy_ed25519");
    expect(verdicts(problems(both))).toEqual([`warning:key_dangling:${key}`]);
  });

  it("a path the manifest declares too is reported once, as the declared key", (ctx) => {
    const age = ageKeygen(ctx);
    const hostKey = "/etc/ssh/ssh_host_ed25519_key";
    const host = makeHost({
      system: {
        secrets: [{ name: "db" }],
        ageKeyFile: null,
        ageSshKeyPaths: [hostKey],
        recipients: [age.recipient],
      },
    });
    exportInActivate(host, { SOPS_AGE_SSH_PRIVATE_KEY_FILE: hostKey });
    expect(
      problems(host)
        .filter((p) => p.subject === hostKey)
        .map((p) => p.code),
    ).toEqual(["key_missing"]);
  });
});

// What the agent may not see is unreadable, never missing (issue 8.7): the real CLI as uid 65534.
describe("a key file sops.environment names, seen without root", () => {
  const CLI = path.join(fileURLToPath(new URL("..", import.meta.url)), "dist/cli.js");

  it("behind a directory the agent may not search is unreadable and unverifiable, never missing or critical", (ctx) => {
    requireTool(ctx, "setpriv");
    if (!fs.existsSync(CLI)) return ctx.skip("dist/cli.js is not built: npm run build");
    const age = ageKeygen(ctx);
    const host = envHost({ SOPS_AGE_KEY_FILE: ENV_KEY }, [age.recipient]);
    host.writeFile(ENV_KEY, age.file, 0o600);
    fs.chmodSync(host.real(path.dirname(ENV_KEY)), 0o700);
    fs.chmodSync(host.root, 0o755);
    // As root the same tree is healthy: the key is there and opens the file.
    expect(critical(problems(host))).toEqual([]);
    const run = spawnSync(
      "setpriv",
      [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        process.execPath,
        CLI,
        "status",
        "--root",
        host.root,
        "--json",
      ],
      { encoding: "utf8", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } },
    );
    const doc = JSON.parse(run.stdout) as { problems: Problem[] };
    const mine = doc.problems.filter(
      (p) => p.scope === "system" && (p.subject === ENV_KEY || p.subject === "db"),
    );
    expect(verdicts(mine)).toEqual(["info:recipient_unverifiable:db", `warning:unreadable:${ENV_KEY}`]);
  });
});

describe("the agent watches the key files sops.environment names", () => {
  it("as it watches declared keys, so a changed key is seen at once, not at the next scheduled check", () => {
    const ssh = "/etc/ssh/deploy_ed25519";
    const host = envHost({ SOPS_AGE_KEY_FILE: ENV_KEY, SOPS_AGE_SSH_PRIVATE_KEY_FILE: ssh }, []);
    const run = checkHost({ root: host.root, manifests: null, env: {} });
    const entries = wantedPaths({ run, extraKeyPaths: [], homes: [], platform: "linux" })
      .filter((w) => w.kind === "entry")
      .map((w) => w.path);
    expect(entries).toEqual(expect.arrayContaining([ENV_KEY, ssh]));
    const plain = checkHost({ root: envHost({}, []).root, manifests: null, env: {} });
    const none = wantedPaths({ run: plain, extraKeyPaths: [], homes: [], platform: "linux" }).map(
      (w) => w.path,
    );
    expect(none).not.toContain(ENV_KEY);
  });
});
