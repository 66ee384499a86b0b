// `sops-agent preflight` against generations built the way the modules build them, on a real host tree
// (healthyHost: the running system). Each case is one way a switch breaks secrets, and the code and exit
// status the preflight must predict for it.

import * as fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { parseGroup, parsePasswd } from "../src/core/accounts.js";
import { bootAvailability, parseFstab } from "../src/core/boot-mounts.js";
import { accountsAfter, parseAccountsJson, parseSysusers } from "../src/core/generation-accounts.js";
import { sopsStorePath } from "../src/example/layout.js";
import { runCli } from "./helpers/cli.js";
import { buildGeneration, type GenManifest, sopsFile, storeText } from "./helpers/generation.js";
import { cleanupRoots, healthyHost, PLANTED, TEST_AGE_RECIPIENT } from "./helpers/host.js";

afterEach(cleanupRoots);

/** Another host's recipient: the test ssh key's, which the test age identity is not. */
const OTHER_RECIPIENT = "age1a8pk4akrdamj7nvqy3zywgtny8dxz7t5xzu7u8v9mhrayp9freqsqatyrs";
const KEY = "/var/lib/sops-nix/key.txt";

/** The running system's declaration (healthySpec's system scope), to build the next generation from. */
function runningSystem(extra: Partial<GenManifest> = {}): GenManifest {
  const file = sopsStorePath("secrets");
  return {
    ageKeyFile: KEY,
    secrets: [
      { name: "db-password", sopsFile: file },
      { name: "nginx/htpasswd", sopsFile: file, owner: "nginx", group: "nginx" },
      { name: "api-token", sopsFile: file, owner: "nginx" },
      ...(extra.secrets ?? []),
    ],
    ...(extra.ageKeyFile === undefined ? {} : { ageKeyFile: extra.ageKeyFile }),
    ...(extra.ageSshKeyPaths === undefined ? {} : { ageSshKeyPaths: extra.ageSshKeyPaths }),
    ...(extra.templates === undefined ? {} : { templates: extra.templates }),
  };
}

const ACCOUNTS = { users: ["root", "alice", "nginx"], groups: ["root", "keys", "users", "nginx"] };

async function preflight(root: string, top: string, ...flags: string[]) {
  return runCli(["preflight", "--root", root, ...flags, top]);
}

async function preflightJson(root: string, top: string) {
  const result = await preflight(root, top, "--json");
  return { code: result.code, report: JSON.parse(result.stdout) as PreflightJson, stderr: result.stderr };
}

interface PreflightJson {
  host: string;
  safe: boolean;
  accounts: string;
  generation: { path: string; kind: string } | null;
  scopes: {
    scope: string;
    changes: { change: string; kind: string; name: string; fields?: string[] }[] | null;
  }[];
  problems: { code: string; severity: string; scope: string; subject: string; message: string }[];
}

function codes(report: PreflightJson, severity?: string): string[] {
  return report.problems.filter((p) => severity === undefined || p.severity === severity).map((p) => p.code);
}

describe("preflight of a NixOS generation", () => {
  it("healthy: a new secret in a file this host can decrypt is safe, and the change is listed", async () => {
    const host = healthyHost();
    const added = sopsFile(host.root, "added.yaml", ["grafana-token"], [TEST_AGE_RECIPIENT]);
    const top = buildGeneration(host.root, {
      name: "healthy",
      system: runningSystem({ secrets: [{ name: "grafana-token", sopsFile: added }] }),
      accounts: ACCOUNTS,
    });
    const { code, report } = await preflightJson(host.root, top);
    expect(codes(report, "critical")).toEqual([]);
    expect(code).toBe(0);
    expect(report.safe).toBe(true);
    expect(report.generation).toEqual({ path: top, kind: "nixos" });
    const system = report.scopes.find((s) => s.scope === "system");
    expect(system?.changes).toContainEqual({ change: "added", kind: "secret", name: "grafana-token" });
    // The running generation has a template the new one does not declare.
    expect(system?.changes).toContainEqual({ change: "removed", kind: "template", name: "app.env" });
    expect(report.accounts).toContain("users-groups.json");

    const text = await preflight(host.root, top);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("would install");
    expect(text.stdout).toContain("+ secret grafana-token: added");
  });

  it("host not a recipient of a newly added file: critical, with the recipient and sops updatekeys", async () => {
    const host = healthyHost();
    fs.writeFileSync(host.real("/etc/hostname"), "web1\n");
    const other = sopsFile(host.root, "x.yaml", ["smtp-password", "smtp-user"], [OTHER_RECIPIENT]);
    const top = buildGeneration(host.root, {
      name: "not-recipient",
      system: runningSystem({
        secrets: [
          { name: "smtp-password", sopsFile: other },
          { name: "smtp-user", sopsFile: other },
        ],
      }),
      accounts: ACCOUNTS,
    });
    const { code, report } = await preflightJson(host.root, top);
    expect(code).toBe(1);
    expect(report.safe).toBe(false);
    // One problem per file, not per secret: the fix is per file.
    const problems = report.problems.filter((p) => p.code === "host_not_recipient");
    expect(problems).toHaveLength(1);
    expect(problems[0]?.severity).toBe("critical");
    expect(problems[0]?.message).toContain(`host web1 is not a recipient of x.yaml (${other})`);
    expect(problems[0]?.message).toContain(
      `Add ${TEST_AGE_RECIPIENT} to the file's creation rule in .sops.yaml`,
    );
    expect(problems[0]?.message).toContain("sops updatekeys");
    expect(problems[0]?.message).toContain("smtp-password, smtp-user");

    const text = await preflight(
      host.root,
      top,
      "--override-hint",
      "SOPS_AGENT_SKIP_PREFLIGHT=1 nixos-rebuild switch",
    );
    expect(text.code).toBe(1);
    expect(text.stdout).toContain("host web1: REFUSED");
    expect(text.stdout).toContain("CRITICAL host_not_recipient [system]");
    expect(text.stdout).toContain("To switch anyway, once: SOPS_AGENT_SKIP_PREFLIGHT=1 nixos-rebuild switch");
  });

  it("key that is a dangling home-manager link: key_dangling, critical as the scope's only key", async () => {
    const host = healthyHost();
    const hmTarget = "/nix/store/00000000000000000000000000000001-home-manager-files/.ssh/id_infrastructure";
    host.symlink("/root/.ssh/id_infrastructure", hmTarget);
    const top = buildGeneration(host.root, {
      name: "hm-link",
      system: { ...runningSystem(), ageKeyFile: null, ageSshKeyPaths: ["/root/.ssh/id_infrastructure"] },
      accounts: ACCOUNTS,
    });
    const { code, report } = await preflightJson(host.root, top);
    expect(code).toBe(1);
    expect(report.problems).toContainEqual(
      expect.objectContaining({
        code: "key_dangling",
        severity: "critical",
        subject: "/root/.ssh/id_infrastructure",
      }),
    );
  });

  it("key that is a home-manager link resolving now: unavailable at boot, critical as the only key", async () => {
    const host = healthyHost();
    const hmFiles = "/nix/store/00000000000000000000000000000002-home-manager-files";
    host.writeFile(`${hmFiles}/key.txt`, fs.readFileSync(host.real(KEY)), 0o400);
    host.symlink("/root/key.txt", `${hmFiles}/key.txt`);
    const top = buildGeneration(host.root, {
      name: "hm-link-live",
      system: { ...runningSystem(), ageKeyFile: "/root/key.txt" },
      accounts: ACCOUNTS,
    });
    const { code, report } = await preflightJson(host.root, top);
    expect(code).toBe(1);
    const p = report.problems.find((x) => x.code === "key_unavailable_at_boot");
    expect(p?.severity).toBe("critical");
    expect(p?.message).toContain("home-manager link");
    // The host can decrypt now: the key is fine today, only the boot is at risk.
    expect(codes(report)).not.toContain("host_not_recipient");
  });

  it("owner that only the new generation creates: resolved in its users-groups.json", async () => {
    const host = healthyHost();
    const file = sopsStorePath("secrets");
    const grafana = sopsFile(host.root, "grafana.yaml", ["grafana-token"], [TEST_AGE_RECIPIENT]);
    const spec = runningSystem({
      secrets: [{ name: "grafana-token", sopsFile: grafana, owner: "grafana", group: "grafana" }],
    });
    expect(file).toBeTruthy();

    const withUser = buildGeneration(host.root, {
      name: "new-user",
      system: spec,
      accounts: { users: [...ACCOUNTS.users, "grafana"], groups: [...ACCOUNTS.groups, "grafana"] },
    });
    const ok = await preflightJson(host.root, withUser);
    expect(codes(ok.report)).not.toContain("unknown_owner");
    expect(codes(ok.report)).not.toContain("unknown_group");
    expect(ok.code).toBe(0);

    // The same generation without the user: the switch would abort every secret.
    const without = buildGeneration(host.root, { name: "no-user", system: spec, accounts: ACCOUNTS });
    const bad = await preflightJson(host.root, without);
    expect(bad.code).toBe(1);
    expect(codes(bad.report, "critical")).toEqual(expect.arrayContaining(["unknown_owner", "unknown_group"]));

    // No users-groups.json found: the current accounts stand in, and the report says so.
    const unknown = buildGeneration(host.root, { name: "no-spec", system: spec });
    const fallback = await preflightJson(host.root, unknown);
    expect(fallback.report.accounts).toContain("the current /etc/passwd and /etc/group");
    expect(codes(fallback.report, "critical")).toContain("unknown_owner");
  });

  it("key removed from the sops file: sops_key_absent, and re-keyed in the diff", async () => {
    const host = healthyHost();
    const trimmed = sopsFile(
      host.root,
      "secrets.yaml",
      ["nginx/htpasswd", "api-token"],
      [TEST_AGE_RECIPIENT],
    );
    const top = buildGeneration(host.root, {
      name: "key-removed",
      system: {
        ageKeyFile: KEY,
        secrets: [
          { name: "db-password", sopsFile: trimmed },
          { name: "nginx/htpasswd", sopsFile: trimmed, owner: "nginx", group: "nginx" },
          { name: "api-token", sopsFile: trimmed, owner: "nginx" },
        ],
      },
      accounts: ACCOUNTS,
    });
    const { code, report } = await preflightJson(host.root, top);
    expect(code).toBe(1);
    expect(report.problems).toContainEqual(
      expect.objectContaining({ code: "sops_key_absent", severity: "critical", subject: "db-password" }),
    );
    const system = report.scopes.find((s) => s.scope === "system");
    expect(system?.changes).toContainEqual({
      change: "rekeyed",
      kind: "secret",
      name: "db-password",
      fields: ["sopsFile"],
    });
  });

  it("nested key in a JSON file: sops-install-secrets walks only YAML maps, so it fails", async () => {
    const host = healthyHost();
    const json = storeText(
      host.root,
      "app.json",
      `${JSON.stringify({
        app: { token: "ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]" },
        sops: {
          age: [
            {
              recipient: TEST_AGE_RECIPIENT,
              enc: "-----BEGIN AGE ENCRYPTED FILE-----\nAAAA\n-----END AGE ENCRYPTED FILE-----\n",
            },
          ],
          lastmodified: "2026-11-01T10:00:00Z",
          mac: "ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]",
          version: "3.9.4",
        },
      })}\n`,
    );
    const top = buildGeneration(host.root, {
      name: "nested-json",
      system: runningSystem({
        secrets: [{ name: "app-token", key: "app/token", format: "json", sopsFile: json }],
      }),
      accounts: ACCOUNTS,
    });
    const { code, report } = await preflightJson(host.root, top);
    expect(code).toBe(1);
    const p = report.problems.find((x) => x.subject === "app-token");
    expect(p?.severity).toBe("critical");
    expect(p?.code).toBe("sops_key_unreachable");
  });

  it("a key on a file system not mounted in stage 1 (impermanence /persist) is unavailable at boot", async () => {
    const host = healthyHost();
    host.writeFile("/persist/var/lib/sops-nix/key.txt", fs.readFileSync(host.real(KEY)), 0o600);
    const system = { ...runningSystem(), ageKeyFile: "/persist/var/lib/sops-nix/key.txt" };
    const fstab = (persistOptions: string) =>
      `none / tmpfs defaults,size=2G,mode=755 0 0\n/dev/disk/by-label/nix /nix ext4 x-initrd.mount 0 2\n/dev/disk/by-label/persist /persist ext4 ${persistOptions} 0 2\n`;

    const late = buildGeneration(host.root, {
      name: "persist-late",
      system,
      accounts: ACCOUNTS,
      fstab: fstab("defaults"),
    });
    const bad = await preflightJson(host.root, late);
    expect(bad.code).toBe(1);
    const p = bad.report.problems.find((x) => x.code === "key_unavailable_at_boot");
    expect(p?.message).toContain('fileSystems."/persist".neededForBoot = true');

    const early = buildGeneration(host.root, {
      name: "persist-early",
      system,
      accounts: ACCOUNTS,
      fstab: fstab("x-initrd.mount"),
    });
    expect(codes((await preflightJson(host.root, early)).report)).not.toContain("key_unavailable_at_boot");

    // With systemd activation the unit waits for local-fs.target and RequiresMountsFor the key.
    const unit = buildGeneration(host.root, {
      name: "persist-unit",
      activation: "systemd",
      system,
      accounts: ACCOUNTS,
      fstab: fstab("defaults"),
    });
    expect(codes((await preflightJson(host.root, unit)).report)).not.toContain("key_unavailable_at_boot");

    // A key kept on the tmpfs root itself is gone after every reboot, whatever the activation.
    const volatile = buildGeneration(host.root, {
      name: "tmpfs-root",
      activation: "systemd",
      system: runningSystem(),
      accounts: ACCOUNTS,
      fstab: fstab("x-initrd.mount"),
    });
    const gone = await preflightJson(host.root, volatile);
    expect(gone.report.problems.find((x) => x.code === "key_unavailable_at_boot")?.message).toContain(
      "tmpfs",
    );
  });

  it("sopsFileHash: a match is quiet, a mismatch is a warning that does not refuse the switch", async () => {
    const host = healthyHost();
    const file = sopsFile(host.root, "hashed.yaml", ["grafana-token"], [TEST_AGE_RECIPIENT]);
    const { createHash } = await import("node:crypto");
    const hash = createHash("sha256")
      .update(fs.readFileSync(host.real(file)))
      .digest("hex");
    const matching = buildGeneration(host.root, {
      name: "hash-ok",
      system: runningSystem({ secrets: [{ name: "grafana-token", sopsFile: file, sopsFileHash: hash }] }),
      accounts: ACCOUNTS,
    });
    expect(codes((await preflightJson(host.root, matching)).report)).not.toContain("sops_file_hash_mismatch");
    const stale = buildGeneration(host.root, {
      name: "hash-stale",
      system: runningSystem({
        secrets: [{ name: "grafana-token", sopsFile: file, sopsFileHash: "0".repeat(64) }],
      }),
      accounts: ACCOUNTS,
    });
    const { code, report } = await preflightJson(host.root, stale);
    expect(report.problems).toContainEqual(
      expect.objectContaining({ code: "sops_file_hash_mismatch", severity: "warning" }),
    );
    expect(code).toBe(0);
  });

  it("a template that references an undeclared placeholder would stay unrendered", async () => {
    const host = healthyHost();
    const { createHash } = await import("node:crypto");
    const ph = (name: string) => `<SOPS:${createHash("sha256").update(name).digest("hex")}:PLACEHOLDER>`;
    const top = buildGeneration(host.root, {
      name: "templates",
      system: runningSystem({
        templates: [
          { name: "ok.env", content: `DB=${ph("db-password")}\n` },
          { name: "bad.env", content: `SMTP=${ph("smtp-password")}\n` },
        ],
      }),
      accounts: ACCOUNTS,
    });
    const { code, report } = await preflightJson(host.root, top);
    expect(code).toBe(1);
    const found = report.problems.filter((p) => p.code === "unrendered_placeholder").map((p) => p.subject);
    expect(found).toEqual(["bad.env"]);
  });

  it("for-users and system scopes found through systemd units", async () => {
    const host = healthyHost();
    const top = buildGeneration(host.root, {
      name: "units",
      activation: "systemd",
      system: runningSystem(),
      forUsers: {
        ageKeyFile: KEY,
        secrets: [{ name: "alice-password", sopsFile: sopsStorePath("secrets") }],
      },
      accounts: ACCOUNTS,
    });
    const { report } = await preflightJson(host.root, top);
    expect(report.scopes.map((s) => s.scope)).toEqual(["for-users", "system"]);
  });
});

describe("preflight of other generations", () => {
  it("a home-manager generation: the user's scope from home-files, compared with the running one", async () => {
    const host = healthyHost();
    const file = sopsFile(host.root, "hm.yaml", ["gh-token"], [TEST_AGE_RECIPIENT]);
    const top = buildGeneration(host.root, {
      name: "hm",
      kind: "home-manager",
      user: {
        ageKeyFile: "/root/.config/sops/age/keys.txt",
        secrets: [{ name: "gh-token", sopsFile: file }],
      },
    });
    host.writeFile("/root/.config/sops/age/keys.txt", fs.readFileSync(host.real(KEY)), 0o600);
    const { code, report } = await preflightJson(host.root, top);
    expect(report.generation?.kind).toBe("home-manager");
    expect(report.scopes.map((s) => s.scope)).toEqual([
      `user:${process.getuid?.() === 0 ? "root" : process.getuid?.()}`,
    ]);
    expect(codes(report, "critical")).toEqual([]);
    expect(code).toBe(0);
  });

  it("a nix-darwin generation: manifests from its LaunchDaemons; no boot-mount rule applies", async () => {
    const host = healthyHost();
    const top = buildGeneration(host.root, { name: "darwin", kind: "nix-darwin", system: runningSystem() });
    const { report } = await preflightJson(host.root, top);
    expect(report.generation?.kind).toBe("nix-darwin");
    expect(report.scopes.map((s) => s.scope)).toEqual(["system"]);
    expect(codes(report)).not.toContain("key_unavailable_at_boot");
  });

  it("--manifest instead of a generation", async () => {
    const host = healthyHost();
    const top = buildGeneration(host.root, { name: "manifest-only", system: runningSystem() });
    const activate = fs.readFileSync(host.real(`${top}/activate`), "utf8");
    const manifest = /\/nix\/store\/[0-9a-z]{32}-manifest\.json/.exec(activate)?.[0] ?? "";
    const result = await runCli(["preflight", "--root", host.root, "--json", "--manifest", manifest]);
    expect(JSON.parse(result.stdout).scopes).toHaveLength(1);
    expect(result.code).toBe(0);
  });
});

describe("preflight output and usage", () => {
  it("usage errors exit 2: no SYSTEM, SYSTEM and --manifest, a path that is no generation", async () => {
    const host = healthyHost();
    expect((await runCli(["preflight", "--root", host.root])).code).toBe(2);
    expect((await runCli(["preflight", "--root", host.root, "/x", "--manifest", "/y"])).code).toBe(2);
    const absent = await runCli(["preflight", "--root", host.root, "/nix/store/absent"]);
    expect(absent.code).toBe(2);
    expect(absent.stderr).toContain("no such generation");
    host.writeFile("/srv/not-a-system/readme", "x");
    const notGen = await runCli(["preflight", "--root", host.root, "/srv/not-a-system"]);
    expect(notGen.code).toBe(2);
    expect(notGen.stderr).toContain("not a NixOS or nix-darwin toplevel");
  });

  it("a profile link is followed to its toplevel", async () => {
    const host = healthyHost();
    const top = buildGeneration(host.root, { name: "profile", system: runningSystem(), accounts: ACCOUNTS });
    host.symlink("/nix/var/nix/profiles/system-42-link", top);
    const { report } = await preflightJson(host.root, "/nix/var/nix/profiles/system-42-link");
    expect(report.generation?.path).toBe(top);
  });

  it("control characters in names are escaped, and no secret value is ever printed", async () => {
    const host = healthyHost();
    const file = sopsFile(host.root, "evil.yaml", ["k"], [OTHER_RECIPIENT]);
    const top = buildGeneration(host.root, {
      name: "evil",
      system: runningSystem({ secrets: [{ name: "evil\u001b[2J\nFAKE OK", key: "k", sopsFile: file }] }),
      accounts: ACCOUNTS,
    });
    const text = await preflight(host.root, top);
    expect(text.stdout).not.toContain("\u001b");
    expect(text.stdout).toContain("evil\\x1b[2J\\nFAKE OK");
    expect(text.stdout).not.toMatch(PLANTED);
    const json = await preflight(host.root, top, "--json");
    expect(json.stdout).not.toMatch(PLANTED);
  });
});

describe("the pure rules", () => {
  it("fstab: longest mount point wins; x-initrd.mount and pathsNeededForBoot are stage 1; tmpfs is volatile", () => {
    const entries = parseFstab(
      "# comment\nnone / tmpfs mode=755 0 0\n/dev/a /persist ext4 defaults 0 2\n/dev/b /var/lib ext4 defaults 0 2\n/dev/c /srv\\040data xfs x-initrd.mount 0 2\n/dev/sw none swap defaults 0 0\n",
    );
    expect(entries.map((e) => e.mountPoint)).toEqual(["/", "/persist", "/var/lib", "/srv data"]);
    expect(bootAvailability("/persist/key", entries).kind).toBe("late-mount");
    expect(bootAvailability("/persistent/key", entries).kind).toBe("volatile");
    expect(bootAvailability("/var/lib/sops/key", entries).kind).toBe("stage1");
    expect(bootAvailability("/srv data/key", entries).kind).toBe("stage1");
    expect(bootAvailability("/etc/key", []).kind).toBe("stage1");
  });

  it("accounts after update-users-groups.pl: mutableUsers keeps undeclared accounts unless declared before", () => {
    const current = {
      users: parsePasswd(
        "root:x:0:0::/root:/bin/sh\nold:x:1001:100::/home/old:/bin/sh\nmanual:x:1002:100::/home/m:/bin/sh\n",
      ),
      groups: parseGroup("root:x:0:\n"),
    };
    const declared = parseAccountsJson(
      '{"mutableUsers":true,"users":[{"name":"root"},{"name":"grafana"}],"groups":[{"name":"grafana"}]}',
    );
    expect(declared).not.toBeNull();
    if (declared === null) return;
    const after = accountsAfter({ kind: "users-groups", file: "f", declared }, current, {
      users: new Set(["old"]),
      groups: new Set(),
    });
    expect([...after.users.keys()].sort()).toEqual(["grafana", "manual", "root"]);
    const immutable = accountsAfter(
      { kind: "users-groups", file: "f", declared: { ...declared, mutableUsers: false } },
      current,
      { users: new Set(), groups: new Set() },
    );
    expect([...immutable.users.keys()].sort()).toEqual(["grafana", "root"]);
    expect(parseSysusers('u grafana - "Grafana" /var/lib/grafana\ng media 990\n# u x\n')).toEqual({
      users: ["grafana"],
      groups: ["grafana", "media"],
      mutableUsers: true,
    });
  });
});

describe("preflight agrees with status once a generation is installed", () => {
  // The same manifest, judged twice: before the switch by preflight (--manifest), after it by status.
  // On the decryption-readiness codes the two must agree, code by code and severity by severity.
  const READINESS = /^(host_not_recipient|recipient_unverifiable|key_|sops_)/;

  it.each([
    ["host not a recipient", [OTHER_RECIPIENT], [] as string[], "host_not_recipient:critical"],
    [
      "a dangling home-manager key beside a good one",
      [TEST_AGE_RECIPIENT],
      ["/root/.ssh/id_infrastructure"],
      "key_dangling:warning",
    ],
    ["healthy", [TEST_AGE_RECIPIENT], [] as string[], null],
  ])("%s", async (_name, recipients, sshKeys, expected) => {
    const { makeHost } = await import("./helpers/host.js");
    const host = makeHost({
      system: {
        ageKeyFile: KEY,
        ageSshKeyPaths: sshKeys,
        recipients,
        secrets: [{ name: "db-password", value: "PLANTED-db-password-7f3a", mode: "0400" }],
      },
    });
    host.writeFile(
      KEY,
      fs.readFileSync(new URL("./fixtures/sops-nix/test-assets/age-keys.txt", import.meta.url)),
      0o600,
    );
    for (const k of sshKeys)
      host.symlink(k, "/nix/store/00000000000000000000000000000003-home-manager-files/.ssh/x");
    const manifest = host.scopes.get("system")?.manifestPath ?? "";
    const status = JSON.parse(
      (await runCli(["status", "--root", host.root, "--json"])).stdout,
    ) as PreflightJson;
    const pre = await runCli(["preflight", "--root", host.root, "--json", "--manifest", manifest]);
    const predicted = JSON.parse(pre.stdout) as PreflightJson;
    const readiness = (r: PreflightJson) =>
      [
        ...new Set(r.problems.filter((p) => READINESS.test(p.code)).map((p) => `${p.code}:${p.severity}`)),
      ].sort();
    expect(readiness(predicted)).toEqual(readiness(status));
    if (expected === null) expect(readiness(status)).toEqual([]);
    else expect(readiness(status)).toContain(expected);
    expect(pre.code).toBe(readiness(status).some((c) => c.endsWith(":critical")) ? 1 : 0);
  });
});

describe("one set of discovery rules", () => {
  it.each(["classic", "systemd"] as const)(
    "%s activation: a generation's manifests are the ones discovery finds once it is the running system",
    async (activation) => {
      const { tempRoot } = await import("./helpers/host.js");
      const { emptyAccounts } = await import("../src/core/accounts.js");
      const { RootFs } = await import("../src/host/rootfs.js");
      const { discoverGenerationManifests, discoverManifests } = await import("../src/host/discovery.js");
      const root = tempRoot();
      const file = sopsFile(root, "s.yaml", ["a"], [TEST_AGE_RECIPIENT]);
      const top = buildGeneration(root, {
        name: `rules-${activation}`,
        activation,
        system: { ageKeyFile: KEY, secrets: [{ name: "a", sopsFile: file }] },
        forUsers: { ageKeyFile: KEY, secrets: [{ name: "a", sopsFile: file }] },
      });
      const env = { uid: 0, xdgRuntimeDir: undefined, darwinUserTempDir: () => null };
      const rootFs = new RootFs(root);
      const before = discoverGenerationManifests(rootFs, { path: top, kind: "nixos" }, emptyAccounts(), env);
      expect(before.map((r) => r.scope)).toEqual(["for-users", "system"]);
      expect(discoverManifests(rootFs, emptyAccounts(), env)).toEqual([]);
      // The switch, as far as discovery sees it: /run/current-system and /etc/systemd/system follow the toplevel.
      fs.mkdirSync(`${root}/run`, { recursive: true });
      fs.symlinkSync(top, `${root}/run/current-system`);
      fs.mkdirSync(`${root}/etc/systemd`, { recursive: true });
      if (fs.existsSync(`${root}${top}/etc/systemd/system`))
        fs.symlinkSync(`${top}/etc/systemd/system`, `${root}/etc/systemd/system`);
      const after = discoverManifests(rootFs, emptyAccounts(), env);
      expect(after.map((r) => [r.scope, r.path])).toEqual(before.map((r) => [r.scope, r.path]));
    },
  );
});
