import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ed25519 } from "@noble/curves/ed25519.js";
import { base64, bech32 } from "@scure/base";
import { afterAll, describe, expect, it } from "vitest";
import { sopsFamily } from "../src/checks/sops.js";
import { emptyAccounts } from "../src/core/accounts.js";
import type {
  DeclaredKey,
  DeclaredScope,
  DeclaredSecret,
  ScopeName,
  SecretFormat,
} from "../src/core/model.js";
import type { ObservedScope } from "../src/core/observation.js";
import type { Problem } from "../src/core/problems.js";
import { declaredScope, declaredSecret } from "../src/example/declared.js";
import { RootFs } from "../src/host/rootfs.js";
import { ed25519PublicToAge } from "../src/sops/age.js";
import type { SopsObservation } from "../src/sops/model.js";
import { SopsFileCache, sopsFileSummaries } from "../src/sops/reader.js";

const ASSETS = new URL("./fixtures/sops-nix/test-assets/", import.meta.url);
const asset = (name: string): string => fs.readFileSync(new URL(name, ASSETS), "utf8");
const AGE_TEST = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw";
const AGE_SSH = "age1a8pk4akrdamj7nvqy3zywgtny8dxz7t5xzu7u8v9mhrayp9freqsqatyrs";
const STORE = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-";
const ENC = (type: string): string =>
  `ENC[AES256_GCM,data:QUJD,iv:voX4IQemcgt0O97oLExy5r2V85nn687cIyWmHNDhUag=,tag:R97qy4fKneU7D9UFhXNvgA==,type:${type}]`;

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

class Host {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), "sops-agent-check-"));
  readonly fs = new RootFs(this.root);
  constructor() {
    roots.push(this.root);
  }
  write(hostPath: string, content: string): void {
    const real = path.join(this.root, hostPath);
    fs.mkdirSync(path.dirname(real), { recursive: true });
    fs.writeFileSync(real, content);
  }
}

function secret(name: string, sopsFile: string, key: string, format: SecretFormat = "yaml"): DeclaredSecret {
  return declaredSecret(name, { sopsFile, key, format });
}

function scope(secrets: DeclaredSecret[], keys: DeclaredKey[], name: ScopeName = "system"): DeclaredScope {
  return declaredScope(secrets, { scope: name, manifestPath: `${STORE}manifest.json`, keys });
}

function observed(declared: DeclaredScope): ObservedScope {
  return {
    declared,
    session: "not-applicable",
    link: { state: "absent" },
    generation: null,
    mountFsType: null,
    files: [],
    keys: [],
  };
}

function check(scopes: DeclaredScope[], sops: SopsObservation): Problem[] {
  return sopsFamily.run({
    scopes: scopes.map(observed),
    host: { accounts: emptyAccounts(), strayKeyLinks: [] },
    sops,
  });
}

/** The public key blob of a `.pub` line. */
function pubBlobOf(pub: string): Uint8Array {
  return base64.decode(pub.trim().split(/\s+/)[1] ?? "");
}

/**
 * An unencrypted openssh-key-v1 file around a public key blob. Only the clear public part matters to the
 * agent; the private section is filler (tests that need a working key use ssh-keygen).
 */
function opensshPrivateKey(publicBlob: Uint8Array): string {
  const str = (b: Uint8Array | string): Buffer => {
    const bytes = typeof b === "string" ? Buffer.from(b) : Buffer.from(b);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(bytes.length);
    return Buffer.concat([len, bytes]);
  };
  const count = Buffer.alloc(4);
  count.writeUInt32BE(1);
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0"),
    str("none"),
    str("none"),
    str(""),
    count,
    str(publicBlob),
    str(Buffer.alloc(64)),
  ]);
  const b64 = body.toString("base64").replace(/.{70}/g, "$&\n");
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

const AGE_KEY: DeclaredKey = { path: "/var/lib/sops-nix/key.txt", role: "age-key-file" };
const SSH_KEY: DeclaredKey = { path: "/etc/ssh/ssh_host_ed25519_key", role: "age-ssh" };

/** A host with the sops-nix test files in the store and the test age key installed. */
function testHost(): Host {
  const host = new Host();
  for (const f of ["secrets.yaml", "secrets.json", "secrets.bin", "secrets.env", "secrets.ini"])
    host.write(`${STORE}${f}`, asset(f));
  host.write(AGE_KEY.path, asset("age-keys.txt"));
  return host;
}

function codes(problems: Problem[]): string[] {
  return problems.map((p) => `${p.subject}:${p.code}:${p.severity}`).sort();
}

describe("sops family", () => {
  it("a healthy yaml secret has no problem", () => {
    const host = testHost();
    const s = scope(
      [
        secret("a", `${STORE}secrets.yaml`, "test_key"),
        secret("b", `${STORE}secrets.yaml`, "nested/test/file"),
        secret("whole", `${STORE}secrets.yaml`, ""),
      ],
      [AGE_KEY],
    );
    expect(check([s], new SopsFileCache().observe(host.fs, [s]))).toEqual([]);
  });

  it("a key ssh-to-age cannot convert holds no identity, whatever its .pub says", () => {
    const host = new Host();
    host.write(`${STORE}secrets.yaml`, asset("secrets.yaml"));
    // sops-install-secrets reads the private key (main.go:868-886): garbage does not convert.
    host.write(SSH_KEY.path, "not a key");
    host.write(`${SSH_KEY.path}.pub`, asset("ssh-ed25519-key.pub"));
    const s = scope([secret("a", `${STORE}secrets.yaml`, "test_key")], [SSH_KEY]);
    const sops = new SopsFileCache().observe(host.fs, [s]);
    expect(sops.identities.get("system")).toEqual([]);
    expect(codes(check([s], sops))).toEqual(["a:host_not_recipient:critical"]);
    // An OpenSSH key holding the same public key converts to the second recipient of secrets.yaml.
    host.write(SSH_KEY.path, opensshPrivateKey(pubBlobOf(asset("ssh-ed25519-key.pub"))));
    const ok = new SopsFileCache().observe(host.fs, [s]);
    expect(ok.identities.get("system")).toEqual([
      { scope: "system", recipient: AGE_SSH, source: SSH_KEY.path },
    ]);
    expect(check([s], ok)).toEqual([]);
  });

  it("reports each problem code once per secret, with the secret as subject and the sops file as path", () => {
    const host = testHost();
    host.write(`${STORE}broken.yaml`, "a: [1,\n");
    host.write(
      `${STORE}types.yaml`,
      `n: ${ENC("int")}\nb: ${ENC("bool")}\nm:\n  x: ${ENC("str")}\nl:\n  - ${ENC("str")}\nplain_unencrypted: 3\nsops:\n  age:\n    - recipient: ${AGE_TEST}\n      enc: x\n`,
    );
    const secrets = [
      secret("missing", `${STORE}nope.yaml`, "x"),
      secret("broken", `${STORE}broken.yaml`, "a"),
      secret("absent-key", `${STORE}secrets.yaml`, "nested/test/nope"),
      secret("through-leaf", `${STORE}secrets.yaml`, "test_key/x"),
      secret("int", `${STORE}types.yaml`, "n"),
      secret("bool", `${STORE}types.yaml`, "b"),
      secret("map", `${STORE}types.yaml`, "m"),
      secret("list", `${STORE}types.yaml`, "l"),
      secret("plain-number", `${STORE}types.yaml`, "plain_unencrypted"),
      secret("ok", `${STORE}types.yaml`, "m/x"),
    ];
    const s = scope(secrets, [AGE_KEY]);
    const problems = check([s], new SopsFileCache().observe(host.fs, [s]));
    expect(codes(problems)).toEqual([
      "absent-key:sops_key_absent:critical",
      "bool:sops_value_not_string:critical",
      "broken:sops_file_unparseable:critical",
      "int:sops_value_not_string:critical",
      "list:sops_value_not_string:critical",
      "map:sops_value_not_string:critical",
      "missing:sops_file_missing:critical",
      "plain-number:sops_value_not_string:critical",
      "through-leaf:sops_key_absent:critical",
    ]);
    for (const p of problems) {
      expect(p.scope).toBe("system");
      expect(p.path).toBe(secrets.find((x) => x.name === p.subject)?.sopsFile);
    }
    expect(problems.find((p) => p.subject === "int")?.message).toMatch(/type:int.*#848/);
    expect(problems.find((p) => p.subject === "broken")?.message).toMatch(/YAML syntax error/);
  });

  it("host_not_recipient names the scope's recipient and how to fix it", () => {
    const host = new Host();
    host.write(`${STORE}secrets.yaml`, asset("secrets.yaml"));
    const pub = ed25519.getPublicKey(new Uint8Array(32).fill(7));
    const blob = new Uint8Array([
      0,
      0,
      0,
      11,
      ...new TextEncoder().encode("ssh-ed25519"),
      0,
      0,
      0,
      32,
      ...pub,
    ]);
    host.write(SSH_KEY.path, opensshPrivateKey(blob));
    host.write(`${SSH_KEY.path}.pub`, `ssh-ed25519 ${base64.encode(blob)} root@host\n`);
    const s = scope(
      [secret("a", `${STORE}secrets.yaml`, "test_key"), secret("b", `${STORE}secrets.yaml`, "a_list")],
      [SSH_KEY],
    );
    const problems = check([s], new SopsFileCache().observe(host.fs, [s]));
    expect(codes(problems)).toEqual([
      "a:host_not_recipient:critical",
      "b:host_not_recipient:critical",
      "b:sops_value_not_string:critical",
    ]);
    const mine = ed25519PublicToAge(pub);
    expect(problems[0]?.message).toContain(mine);
    expect(problems[0]?.message).toMatch(/\.sops\.yaml.*sops updatekeys/);
  });

  it("pgp-only files: unverifiable with a GnuPG key, critical without any", () => {
    const host = testHost();
    const flat = [
      secret("json", `${STORE}secrets.json`, "test_key", "json"),
      secret("bin", `${STORE}secrets.bin`, "ignored", "binary"),
      secret("env", `${STORE}secrets.env`, "ignored", "dotenv"),
      secret("ini", `${STORE}secrets.ini`, "ignored", "ini"),
    ];
    // sops-nix main.go:1386-1397: without sshKeyPaths or gnupgHome gpg runs with HOME=/var/empty, no key.
    const ageOnly = scope(flat, [AGE_KEY]);
    const none = check([ageOnly], new SopsFileCache().observe(host.fs, [ageOnly]));
    expect(codes(none)).toEqual([
      "bin:host_not_recipient:critical",
      "env:host_not_recipient:critical",
      "ini:host_not_recipient:critical",
      "json:host_not_recipient:critical",
    ]);
    expect(none[0]?.message).toMatch(/needs a GnuPG key/);
    for (const withGpg of [
      scope(flat, [AGE_KEY, { path: "/etc/ssh/ssh_host_rsa_key", role: "ssh-gpg" }]),
      declaredScope(flat, {
        manifestPath: `${STORE}manifest.json`,
        keys: [AGE_KEY],
        gnupgHome: "/root/.gnupg",
      }),
    ]) {
      host.write("/etc/ssh/ssh_host_rsa_key", "an RSA key imported into GPG");
      expect(codes(check([withGpg], new SopsFileCache().observe(host.fs, [withGpg])))).toEqual([
        "bin:recipient_unverifiable:info",
        "env:recipient_unverifiable:info",
        "ini:recipient_unverifiable:info",
        "json:recipient_unverifiable:info",
      ]);
    }
  });

  it("an ageKeyFile that cannot be read aborts: the keys family says so, not one problem per secret", () => {
    const host = testHost();
    const noKeys = scope(
      [secret("y", `${STORE}secrets.yaml`, "test_key")],
      [{ path: "/nope/key.txt", role: "age-key-file" }],
    );
    const sops = new SopsFileCache().observe(host.fs, [noKeys]);
    expect(sops.keyrings.get("system")?.aborts).toMatch(/aborts/);
    expect(check([noKeys], sops)).toEqual([]);
  });

  it("a miss with pgp recipients and a GnuPG key is unverifiable; without it, critical", () => {
    const host = testHost();
    // secrets.yaml has pgp recipients too; a scope importing ssh keys into GPG might use them.
    const otherKey = bech32
      .encode("AGE-SECRET-KEY-", bech32.toWords(new Uint8Array(32).fill(9)), false)
      .toUpperCase();
    host.write("/var/lib/other.txt", `${otherKey}\n`);
    host.write("/etc/ssh/ssh_host_rsa_key", "an RSA key imported into GPG");
    const gpg = scope(
      [secret("y", `${STORE}secrets.yaml`, "test_key")],
      [
        { path: "/etc/ssh/ssh_host_rsa_key", role: "ssh-gpg" },
        { path: "/var/lib/other.txt", role: "age-key-file" },
      ],
    );
    const sops = new SopsFileCache().observe(host.fs, [gpg]);
    expect(sops.identities.get("system")).toHaveLength(1);
    expect(codes(check([gpg], sops))).toEqual(["y:recipient_unverifiable:info"]);
    // Without the ssh-gpg key the same miss is critical.
    const ageOnly = scope(gpg.secrets.slice(), [{ path: "/var/lib/other.txt", role: "age-key-file" }]);
    expect(codes(check([ageOnly], new SopsFileCache().observe(host.fs, [ageOnly])))).toEqual([
      "y:host_not_recipient:critical",
    ]);
  });

  it("checks user scopes with their own identities, whatever the session", () => {
    const host = testHost();
    const other = bech32
      .encode("AGE-SECRET-KEY-", bech32.toWords(new Uint8Array(32).fill(9)), false)
      .toUpperCase();
    host.write("/home/alice/.config/sops/age/keys.txt", `${other}\n`);
    const user = scope(
      [secret("u", `${STORE}secrets.yaml`, "test_key")],
      [{ path: "/home/alice/.config/sops/age/keys.txt", role: "age-key-file" }],
      "user:alice",
    );
    const p = check([user], new SopsFileCache().observe(host.fs, [user]));
    expect(codes(p)).toEqual(["u:host_not_recipient:critical"]);
    host.write("/home/alice/.config/sops/age/keys.txt", asset("age-keys.txt"));
    expect(check([user], new SopsFileCache().observe(host.fs, [user]))).toEqual([]);
  });

  it("a nested key in a JSON file is unreachable for sops-install-secrets; the same file as YAML is fine", () => {
    const host = testHost();
    const doc = `{"db":{"password":"${ENC("str")}"},"top":"${ENC("str")}","sops":{"age":[{"recipient":"${AGE_TEST}","enc":"x"}],"lastmodified":"2024-01-01T00:00:00Z"}}`;
    host.write(`${STORE}nested.json`, doc);
    // sops-install-secrets main.go:322-326 walks map[interface{}]interface{} only, which encoding/json never yields.
    const asJson = scope(
      [
        secret("nested", `${STORE}nested.json`, "db/password", "json"),
        secret("missing-nested", `${STORE}nested.json`, "db/nope", "json"),
        secret("top", `${STORE}nested.json`, "top", "json"),
      ],
      [AGE_KEY],
    );
    const problems = check([asJson], new SopsFileCache().observe(host.fs, [asJson]));
    expect(codes(problems)).toEqual([
      "missing-nested:sops_key_unreachable:critical",
      "nested:sops_key_unreachable:critical",
    ]);
    expect(problems.find((p) => p.subject === "nested")?.message).toMatch(
      /does not refer to a dictionary.*although the file has the key/,
    );
    // JSON is YAML: declared with format yaml, the YAML decoder walks the path.
    const asYaml = scope([secret("nested", `${STORE}nested.json`, "db/password", "yaml")], [AGE_KEY]);
    expect(check([asYaml], new SopsFileCache().observe(host.fs, [asYaml]))).toEqual([]);
  });

  it("never puts a value into a problem", () => {
    const host = testHost();
    host.write(`${STORE}leaky.yaml`, "password: PLANTED-value-1234\npassword: PLANTED-value-1234\n");
    host.write(
      `${STORE}plain.yaml`,
      `password: PLANTED-value-1234\nn: 5\nsops:\n  age:\n    - recipient: ${AGE_SSH}\n      enc: x\n`,
    );
    const s = scope(
      [
        secret("a", `${STORE}leaky.yaml`, "password"),
        secret("b", `${STORE}plain.yaml`, "n"),
        secret("c", `${STORE}plain.yaml`, "nope"),
      ],
      [AGE_KEY],
    );
    const problems = check([s], new SopsFileCache().observe(host.fs, [s]));
    expect(problems.length).toBeGreaterThan(2);
    for (const p of problems) expect(JSON.stringify(p)).not.toContain("PLANTED");
  });
});

describe("SopsFileCache", () => {
  it("parses each file once per content change", () => {
    const host = testHost();
    const s = scope(
      [
        secret("a", `${STORE}secrets.yaml`, "test_key"),
        secret("b", `${STORE}secrets.yaml`, "nested/test/file"),
        secret("c", `${STORE}secrets.json`, "test_key", "json"),
      ],
      [AGE_KEY],
    );
    const cache = new SopsFileCache();
    const first = cache.observe(host.fs, [s]);
    expect(cache.parseCount).toBe(2);
    const second = cache.observe(host.fs, [s]);
    expect(cache.parseCount).toBe(2);
    expect(second.files.get(`${STORE}secrets.yaml`)).toBe(first.files.get(`${STORE}secrets.yaml`));
    // A changed file (new size and mtime) is parsed again; the other is not.
    host.write(`${STORE}secrets.yaml`, `${asset("secrets.yaml")}\n`);
    cache.observe(host.fs, [s]);
    expect(cache.parseCount).toBe(3);
    // A file declared under a second format gets a parse for it.
    const both = scope([...s.secrets, secret("d", `${STORE}secrets.json`, "", "binary")], [AGE_KEY]);
    const third = cache.observe(host.fs, [both]);
    expect(cache.parseCount).toBe(4);
    const json = third.files.get(`${STORE}secrets.json`);
    expect(json?.state === "present" ? [...json.parses.keys()].sort() : []).toEqual(["binary", "json"]);
  });

  it("absent, directory and unreadable files", () => {
    const host = testHost();
    fs.mkdirSync(path.join(host.root, `${STORE}dir`), { recursive: true });
    const s = scope([secret("a", `${STORE}gone.yaml`, "x"), secret("b", `${STORE}dir`, "x")], []);
    const obs = new SopsFileCache().observe(host.fs, [s]);
    expect(obs.files.get(`${STORE}gone.yaml`)).toEqual({ state: "absent" });
    expect(obs.files.get(`${STORE}dir`)).toEqual({
      state: "unreadable",
      reason: "is a directory, not a file",
    });
    expect(codes(check([s], obs))).toEqual([
      "a:sops_file_missing:critical",
      "b:sops_file_unparseable:critical",
    ]);
  });

  it("summaries: last modified and recipients per kind, per scope and file", () => {
    const host = testHost();
    const s = scope(
      [
        secret("a", `${STORE}secrets.yaml`, "test_key"),
        secret("b", `${STORE}secrets.yaml`, "nested/test/file"),
        secret("c", `${STORE}gone.yaml`, "x"),
      ],
      [AGE_KEY],
    );
    const obs = new SopsFileCache().observe(host.fs, [s]);
    expect(sopsFileSummaries([s], obs)).toEqual([
      {
        scope: "system",
        file: `${STORE}secrets.yaml`,
        lastModifiedSeconds: Date.parse("2021-09-30T19:49:41Z") / 1000,
        recipients: { age: 2, pgp: 2 },
      },
      { scope: "system", file: `${STORE}gone.yaml`, lastModifiedSeconds: null, recipients: {} },
    ]);
  });
});
