// Decryption readiness on host trees laid out the way sops-install-secrets leaves them, with real keys
// from age-keygen and ssh-keygen. Every rule both ways: the healthy variant has no critical problem, the
// broken one gets the right code. Upstream: sops-nix 56b24064 pkgs/sops-install-secrets/main.go, sops
// v3.12.2 age/keysource.go and sops.go (cited beside each rule in src/sops/).

import { afterAll, describe, expect, it } from "vitest";
import type { Problem } from "../src/core/problems.js";
import { type HostLayout, type HostSpec, type ScopeSpec, sopsStorePath } from "../src/example/layout.js";
import { checkHost } from "../src/host/check-host.js";
import { parseIdentityFile } from "../src/sops/identity-file.js";
import { cleanupRoots, makeHost } from "./helpers/host.js";
import {
  ageKeygen,
  combinedKeyFile,
  pluginIdentity,
  pluginRecipient,
  shamirSopsYaml,
  sshKeygen,
} from "./helpers/keys.js";

afterAll(cleanupRoots);

const KEY_FILE = "/var/lib/sops-nix/key.txt";
const HOST_KEY = "/etc/ssh/ssh_host_ed25519_key";
const RSA_KEY = "/etc/ssh/ssh_host_rsa_key";
const ALICE = { name: "alice", uid: 1000, gid: 100, home: "/home/alice" };

function systemHost(scope: Omit<ScopeSpec, "secrets">): HostLayout {
  return makeHost({ system: { secrets: [{ name: "db" }], ...scope } });
}

function aliceHost(scope: Omit<ScopeSpec, "secrets">, system?: Omit<ScopeSpec, "secrets">): HostLayout {
  const spec: HostSpec = {
    users: [ALICE],
    groups: [{ name: "users", gid: 100 }],
    homeManager: [{ user: "alice", scope: { secrets: [{ name: "token" }], ...scope } }],
    ...(system === undefined ? {} : { system: { secrets: [{ name: "db" }], ...system } }),
  };
  return makeHost(spec);
}

function problems(host: HostLayout): Problem[] {
  return [...checkHost({ root: host.root, manifests: null, env: {} }).document.problems];
}

function critical(ps: readonly Problem[]): string[] {
  return ps
    .filter((p) => p.severity === "critical")
    .map((p) => `${p.scope}:${p.code}:${p.subject}`)
    .sort();
}

function find(ps: readonly Problem[], code: string): Problem | undefined {
  return ps.find((p) => p.code === code);
}

describe("the combined key file (main.go:1399-1436)", () => {
  it("one pasted `Public key:` line loses every identity, the converted ssh key's too", (ctx) => {
    const age = ageKeygen(ctx);
    const ssh = sshKeygen(ctx, "ed25519");
    // The file is encrypted to the ssh host key only: the ageKeyFile's own identity is not even needed.
    const host = systemHost({
      ageKeyFile: KEY_FILE,
      ageSshKeyPaths: [HOST_KEY],
      recipients: [ssh.ageRecipient ?? ""],
    });
    host.writeFile(HOST_KEY, ssh.privateKey, 0o600);
    host.writeFile(`${HOST_KEY}.pub`, ssh.publicKey, 0o644);
    host.writeFile(KEY_FILE, age.file, 0o600);
    expect(critical(problems(host))).toEqual([].sort());

    const pasted = `${age.file}Public key: ${age.recipient}\n`;
    host.writeFile(KEY_FILE, pasted, 0o600);
    const ps = problems(host);
    expect(critical(ps)).toEqual(
      ["system:host_not_recipient:db", `system:key_unparseable:${KEY_FILE}`].sort(),
    );
    const p = find(ps, "key_unparseable");
    expect(p?.message).toMatch(/^Line 4 of the age key file/);
    expect(p?.message).toContain(`identities converted from ${HOST_KEY}`);
    // The line number, never the line: neither the pasted text nor the secret key.
    const secret = age.file.split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1")) ?? "";
    for (const q of ps) {
      expect(q.message).not.toContain(secret.slice(20));
      expect(q.message).not.toContain("Public key: age1");
    }
    // The same text as sops-install-secrets writes it fails at the same line, shifted by its first line.
    expect(parseIdentityFile(combinedKeyFile([], pasted))).toMatchObject({ state: "invalid", line: 5 });
    expect(parseIdentityFile(combinedKeyFile([], age.file))).toMatchObject({ state: "parsed" });
  });

  it.for([
    ["an indented key", (f: string) => f.replace("AGE-SECRET-KEY-1", "  AGE-SECRET-KEY-1")],
    ["a whitespace-only line", (f: string) => `${f} \n`],
    ["a truncated key", (f: string) => f.replace(/(AGE-SECRET-KEY-1\w+)\w{6}/, "$1")],
  ] as const)("%s in the ageKeyFile is critical when nothing else opens the file", ([, breakIt], ctx) => {
    const age = ageKeygen(ctx);
    const host = systemHost({ ageKeyFile: KEY_FILE, recipients: [age.recipient] });
    host.writeFile(KEY_FILE, breakIt(age.file), 0o600);
    expect(critical(problems(host))).toEqual(
      ["system:host_not_recipient:db", `system:key_unparseable:${KEY_FILE}`].sort(),
    );
  });
});

describe("a missing or unusable key is critical exactly when a file can no longer be decrypted", () => {
  it("a missing ssh host key is a warning while the ageKeyFile still decrypts, naming what does", (ctx) => {
    const age = ageKeygen(ctx);
    const host = systemHost({
      ageKeyFile: KEY_FILE,
      ageSshKeyPaths: [HOST_KEY],
      recipients: [age.recipient],
    });
    host.writeFile(KEY_FILE, age.file, 0o600);
    const ps = problems(host);
    expect(critical(ps)).toEqual([].sort());
    const missing = find(ps, "key_missing");
    expect(missing?.severity).toBe("warning");
    expect(missing?.message).toContain(
      `still decrypts: ${sopsStorePath("secrets")} with ${age.recipient.slice(0, 24)}`,
    );
  });

  it("it is critical when the file was encrypted to that key only", (ctx) => {
    const age = ageKeygen(ctx);
    const ssh = sshKeygen(ctx, "ed25519");
    const host = systemHost({
      ageKeyFile: KEY_FILE,
      ageSshKeyPaths: [HOST_KEY],
      recipients: [ssh.ageRecipient ?? ""],
    });
    host.writeFile(KEY_FILE, age.file, 0o600);
    const ps = problems(host);
    expect(critical(ps)).toEqual(["system:host_not_recipient:db", `system:key_missing:${HOST_KEY}`].sort());
    expect(find(ps, "key_missing")?.message).toMatch(/can no longer be decrypted/);
  });

  it("an ssh key ssh-to-age cannot convert (RSA, passphrase) is skipped like a missing one", (ctx) => {
    const age = ageKeygen(ctx);
    const rsa = sshKeygen(ctx, "rsa");
    const locked = sshKeygen(ctx, "ed25519", "correct horse");
    for (const [key, why] of [
      [rsa, /only ed25519/],
      [locked, /passphrase-protected/],
    ] as const) {
      const recipients = key.ageRecipient === null ? [age.recipient] : [key.ageRecipient];
      const host = systemHost({ ageKeyFile: KEY_FILE, ageSshKeyPaths: [HOST_KEY], recipients });
      host.writeFile(HOST_KEY, key.privateKey, 0o600);
      host.writeFile(`${HOST_KEY}.pub`, key.publicKey, 0o644);
      host.writeFile(KEY_FILE, age.file, 0o600);
      const ps = problems(host);
      const p = find(ps, "key_unparseable");
      expect(p?.message).toMatch(why);
      // RSA: the ageKeyFile still decrypts (warning); the locked key was the only way (critical).
      expect(p?.severity).toBe(key === rsa ? "warning" : "critical");
    }
  });

  it("RSA keys in sops.gnupg.sshKeyPaths are GnuPG keys: they never open an age-only file", (ctx) => {
    const age = ageKeygen(ctx);
    const rsa = sshKeygen(ctx, "rsa");
    const host = systemHost({ sshKeyPaths: [RSA_KEY], recipients: [age.recipient] });
    host.writeFile(RSA_KEY, rsa.privateKey, 0o600);
    expect(critical(problems(host))).toEqual(["system:host_not_recipient:db"].sort());
    const healthy = systemHost({ sshKeyPaths: [RSA_KEY], ageKeyFile: KEY_FILE, recipients: [age.recipient] });
    healthy.writeFile(RSA_KEY, rsa.privateKey, 0o600);
    healthy.writeFile(KEY_FILE, age.file, 0o600);
    expect(critical(problems(healthy))).toEqual([].sort());
  });
});

describe("Shamir key groups (sops.go:836-867)", () => {
  it("needs identities in shamir_threshold groups", (ctx) => {
    const a = ageKeygen(ctx);
    const b = ageKeygen(ctx);
    const c = ageKeygen(ctx);
    const host = systemHost({ ageKeyFile: KEY_FILE });
    const write = (threshold: number) =>
      host.writeFile(
        sopsStorePath("secrets"),
        shamirSopsYaml(["db"], [[a.recipient], [b.recipient], [c.recipient]], threshold),
        0o444,
      );
    host.writeFile(KEY_FILE, a.file, 0o600);
    write(2);
    const ps = problems(host);
    expect(critical(ps)).toEqual(["system:host_not_recipient:db"].sort());
    expect(find(ps, "host_not_recipient")?.message).toMatch(
      /3 Shamir key groups and needs identities in 2 of them.*only 1/,
    );
    host.writeFile(KEY_FILE, `${a.file}${b.file}`, 0o600);
    expect(critical(problems(host))).toEqual([].sort());
    host.writeFile(KEY_FILE, a.file, 0o600);
    write(1);
    expect(critical(problems(host))).toEqual([].sort());
  });
});

describe("age plugin identities (AGE-PLUGIN-<NAME>-1…)", () => {
  it("open the recipient their comment names; another device of the same plugin only may", () => {
    const yubikey = pluginIdentity("yubikey");
    const keys = "/home/alice/.config/sops/age/keys.txt";
    const host = aliceHost({ ageKeyFile: keys, recipients: [yubikey.recipient] });
    host.writeFile(keys, yubikey.file, 0o600, 1000, 100);
    const ps = problems(host);
    expect(critical(ps)).toEqual([].sort());
    expect(find(ps, "recipient_unverifiable")).toBeUndefined();

    const other = aliceHost({ ageKeyFile: keys, recipients: [pluginRecipient("yubikey")] });
    other.writeFile(keys, yubikey.file, 0o600, 1000, 100);
    const maybe = problems(other);
    expect(critical(maybe)).toEqual([].sort());
    expect(find(maybe, "recipient_unverifiable")?.message).toMatch(/only age-plugin-yubikey can tell/);

    const tpm = aliceHost({ ageKeyFile: keys, recipients: [pluginRecipient("tpm")] });
    tpm.writeFile(keys, yubikey.file, 0o600, 1000, 100);
    expect(critical(problems(tpm))).toEqual(["user:alice:host_not_recipient:token"].sort());
  });
});

describe("what sops reads by itself (age/keysource.go:286-431)", () => {
  it("a home-manager scope uses ~/.config/sops/age/keys.txt without any key in its manifest", (ctx) => {
    const age = ageKeygen(ctx);
    const host = aliceHost({ recipients: [age.recipient] });
    expect(critical(problems(host))).toEqual(["user:alice:host_not_recipient:token"].sort());
    host.writeFile("/home/alice/.config/sops/age/keys.txt", age.file, 0o600, 1000, 100);
    expect(critical(problems(host))).toEqual([].sort());
    // A bad line there loses that file only: critical here, as nothing else opens the file.
    host.writeFile("/home/alice/.config/sops/age/keys.txt", `  ${age.file}`, 0o600, 1000, 100);
    expect(critical(problems(host))).toEqual(
      [
        "user:alice:host_not_recipient:token",
        "user:alice:key_unparseable:/home/alice/.config/sops/age/keys.txt",
      ].sort(),
    );
    // With the manifest's own key file opening it, the same bad line is a warning.
    const withKey = aliceHost({ ageKeyFile: "/home/alice/.age/key.txt", recipients: [age.recipient] });
    withKey.writeFile("/home/alice/.age/key.txt", age.file, 0o600, 1000, 100);
    withKey.writeFile("/home/alice/.config/sops/age/keys.txt", `  ${age.file}`, 0o600, 1000, 100);
    const ps = problems(withKey);
    expect(critical(ps)).toEqual([].sort());
    expect(find(ps, "key_unparseable")?.severity).toBe("warning");
  });

  it("native ssh recipients open with ~/.ssh/id_ed25519 in a user scope, never with a converted key", (ctx) => {
    const ssh = sshKeygen(ctx, "ed25519");
    const host = aliceHost(
      { recipients: [ssh.nativeRecipient] },
      { ageSshKeyPaths: [HOST_KEY], recipients: [ssh.nativeRecipient] },
    );
    host.writeFile("/home/alice/.ssh/id_ed25519", ssh.privateKey, 0o600, 1000, 100);
    host.writeFile("/home/alice/.ssh/id_ed25519.pub", ssh.publicKey, 0o644, 1000, 100);
    // The system scope converts the same key with ssh-to-age: an X25519 identity, which cannot open it.
    host.writeFile(HOST_KEY, ssh.privateKey, 0o600);
    const ps = problems(host);
    expect(critical(ps)).toEqual(["system:host_not_recipient:db"].sort());
    expect(find(ps, "host_not_recipient")?.message).toMatch(/native ssh recipient.*#824/);
    // A passphrase-protected key needs a prompt the sops-nix service never answers.
    const locked = sshKeygen(ctx, "ed25519", "correct horse");
    const lockedHost = aliceHost({ recipients: [locked.nativeRecipient] });
    lockedHost.writeFile("/home/alice/.ssh/id_ed25519", locked.privateKey, 0o600, 1000, 100);
    const lp = problems(lockedHost);
    expect(critical(lp)).toEqual(["user:alice:host_not_recipient:token"].sort());
    expect(find(lp, "host_not_recipient")?.message).toMatch(/passphrase-protected/);
  });

  it("system scopes run with HOME=/var/empty: root's ~/.config/sops/age/keys.txt does not count", (ctx) => {
    const age = ageKeygen(ctx);
    const other = ageKeygen(ctx);
    const host = systemHost({ ageKeyFile: KEY_FILE, recipients: [age.recipient] });
    host.writeFile(KEY_FILE, other.file, 0o600);
    host.writeFile("/root/.config/sops/age/keys.txt", age.file, 0o600);
    expect(critical(problems(host))).toEqual(["system:host_not_recipient:db"].sort());
    host.writeFile(KEY_FILE, age.file, 0o600);
    expect(critical(problems(host))).toEqual([].sort());
  });
});
