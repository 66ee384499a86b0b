// The readiness rules as pure functions: identities and a file's key metadata in, a verdict out. Each rule
// is tested both ways. sops v3.12.2 sops.go:836-890 (groups, Shamir), age v1.3.1 age.go:332-377.

import { describe, expect, it } from "vitest";
import type { SopsMetadata, SopsRecipient } from "../src/sops/parse.js";
import { type HeldIdentity, readiness } from "../src/sops/readiness.js";

const A = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw";
const B = "age1a8pk4akrdamj7nvqy3zywgtny8dxz7t5xzu7u8v9mhrayp9freqsqatyrs";
const C = "age1wcwc3myrqsfer807n4x364h30ejneryegzpd7kcn0wg2ptnwma6qfgnx5h";
const YUBI = "age1yubikey1qgg42m2szz3rdkgmksv3wwk6qk3xg3n5fq6xfehzvxa2zqp4qqeq8yjmvl";
const TPM = "age1tpm1qg86fn5esp30u9h6jy6zvu9gcsvnac09vn8jzjxt8s3qtlcv5h2x287wm36";
const PQ = "age1pq1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqs2q2r";
const SSH_BLOB = "AAAAC3NzaC1lZDI1NTE5AAAAIBI1+Q+ntzANebtnicCiAY29uqLGWOaOGLEa8bUqOVmS";

const age = (id: string, group = 0, hasEnc = true): SopsRecipient => ({
  kind: id.startsWith("age1pq1") ? "age_pq" : id.indexOf("1", 4) !== -1 ? "age_plugin" : "age",
  id,
  hasEnc,
  group,
});
const pgp = (group = 0): SopsRecipient => ({ kind: "pgp", id: "ABCDEF", hasEnc: true, group });
const ssh = (group = 0): SopsRecipient => ({
  kind: "ssh_ed25519",
  id: `ssh-ed25519 ${SSH_BLOB}`,
  hasEnc: true,
  group,
});

function meta(recipients: SopsRecipient[], threshold: number | null = null): SopsMetadata {
  const groups = recipients.length === 0 ? 0 : Math.max(...recipients.map((r) => r.group)) + 1;
  return { recipients, lastModified: null, keyGroups: groups, shamirThreshold: threshold };
}

const x = (recipient: string, source = "/var/lib/sops-nix/key.txt"): HeldIdentity => ({
  kind: "x25519",
  recipient,
  source,
});

describe("one key group (the flat lists)", () => {
  it("opens with an X25519 identity whose recipient is listed, and names it", () => {
    const r = readiness([x(C), x(A)], meta([age(A), age(B)]));
    expect(r).toEqual({
      verdict: "decrypts",
      openings: [{ recipient: A, source: "/var/lib/sops-nix/key.txt", byComment: false }],
    });
  });

  it("does not open when no identity matches, or the matching entry has no encrypted data key", () => {
    expect(readiness([x(C)], meta([age(A), age(B)]))).toMatchObject({
      verdict: "cannot",
      needed: 1,
      opened: 0,
    });
    expect(readiness([x(A)], meta([age(A, 0, false)]))).toMatchObject({ verdict: "cannot" });
  });

  it("no identity left at all is a definite no for an age-only file", () => {
    expect(readiness([], meta([age(A)]))).toMatchObject({ verdict: "cannot", groups: 1, opened: 0 });
  });

  it("a file with no key at all never decrypts (sops: No keys found in file)", () => {
    expect(readiness([x(A)], meta([]))).toMatchObject({ verdict: "cannot", groups: 0 });
  });

  it("a key the agent may not read makes an age miss unverifiable, not critical", () => {
    const unknown: HeldIdentity = {
      kind: "unknown",
      could: "age",
      source: "/k",
      why: "may not be read (EACCES)",
    };
    expect(readiness([unknown], meta([age(A)]))).toMatchObject({
      verdict: "unverifiable",
      reasons: ["/k may not be read (EACCES)"],
    });
    // An unreadable ssh key sops reads itself says nothing about age recipients.
    expect(readiness([{ ...unknown, could: "ssh" }], meta([age(A)]))).toMatchObject({ verdict: "cannot" });
  });
});

describe("Shamir key groups", () => {
  const three = [age(A, 0), age(B, 1), age(C, 2)];

  it("needs identities in threshold groups", () => {
    expect(readiness([x(A), x(B)], meta(three, 2))).toMatchObject({ verdict: "decrypts" });
    expect(readiness([x(A)], meta(three, 2))).toMatchObject({
      verdict: "cannot",
      needed: 2,
      groups: 3,
      opened: 1,
    });
  });

  it("with no threshold written, every group is needed", () => {
    expect(readiness([x(A), x(B)], meta(three, null))).toMatchObject({ verdict: "cannot", needed: 3 });
    expect(readiness([x(A), x(B), x(C)], meta(three, null))).toMatchObject({ verdict: "decrypts" });
  });

  it("a group only pgp may open counts as a may", () => {
    const gpg: HeldIdentity = { kind: "gpg", source: "/root/.gnupg" };
    expect(readiness([x(A), gpg], meta([age(A, 0), pgp(1)], 2))).toMatchObject({ verdict: "unverifiable" });
    expect(readiness([x(C), gpg], meta([age(A, 0), pgp(1)], 2))).toMatchObject({ verdict: "cannot" });
  });
});

describe("plugin, post-quantum and native ssh recipients", () => {
  const plugin = (recipients: string[], name = "yubikey"): HeldIdentity => ({
    kind: "plugin",
    plugin: name,
    recipients,
    source: "/home/alice/.config/sops/age/keys.txt",
  });

  it("a plugin identity opens the recipient its comment names", () => {
    expect(readiness([plugin([YUBI])], meta([age(YUBI)]))).toMatchObject({
      verdict: "decrypts",
      openings: [{ recipient: YUBI, byComment: true }],
    });
  });

  it("a plugin identity of the same plugin without that comment only may", () => {
    expect(readiness([plugin([])], meta([age(YUBI)]))).toMatchObject({
      verdict: "unverifiable",
      reasons: [expect.stringMatching(/only age-plugin-yubikey can tell/)],
    });
  });

  it("a plugin identity of another plugin, or none, cannot", () => {
    expect(readiness([plugin([], "tpm")], meta([age(YUBI)]))).toMatchObject({ verdict: "cannot" });
    const r = readiness([x(A)], meta([age(TPM)]));
    expect(r).toMatchObject({ verdict: "cannot", hints: [expect.stringMatching(/AGE-PLUGIN-TPM-1/)] });
  });

  it("post-quantum: the identity whose comment names the recipient opens it", () => {
    expect(readiness([{ kind: "pq", recipient: PQ, source: "/k" }], meta([age(PQ)]))).toMatchObject({
      verdict: "decrypts",
    });
    expect(readiness([{ kind: "pq", recipient: null, source: "/k" }], meta([age(PQ)]))).toMatchObject({
      verdict: "unverifiable",
    });
    expect(readiness([x(A)], meta([age(PQ)]))).toMatchObject({ verdict: "cannot" });
  });

  it("native ssh recipients open with the same ssh key read by sops, never with a converted identity", () => {
    const key = (passphrase: boolean): HeldIdentity => ({
      kind: "ssh",
      keyType: "ssh-ed25519",
      publicKey: SSH_BLOB,
      passphrase,
      source: "/home/alice/.ssh/id_ed25519",
    });
    expect(readiness([key(false)], meta([ssh()]))).toMatchObject({ verdict: "decrypts" });
    expect(readiness([key(true)], meta([ssh()]))).toMatchObject({
      verdict: "cannot",
      hints: [expect.stringMatching(/passphrase-protected/)],
    });
    // sops-nix's converted identity of the very same key is an X25519 identity (sops-nix #824, #955).
    expect(readiness([x(B, "/etc/ssh/ssh_host_ed25519_key")], meta([ssh()]))).toMatchObject({
      verdict: "cannot",
      hints: [expect.stringMatching(/native ssh recipient.*#824/)],
    });
  });

  it("cloud KMS entries only may", () => {
    const kms: SopsRecipient = { kind: "kms", id: "", hasEnc: true, group: 0 };
    expect(readiness([], meta([kms]))).toMatchObject({ verdict: "unverifiable" });
  });
});
