// What an ssh key file is, as far as sops and sops-nix care: its type, whether it is passphrase-protected,
// and its public key. Pure: text in, facts out. Private material stays in local buffers that are zeroed.
//
// Who reads ssh keys:
// - sops-install-secrets converts `sops.age.sshKeyPaths` with ssh-to-age's SSHPrivateKeyToAge(key, no
//   passphrase) (sops-nix main.go:873-886): only an unencrypted ed25519 key converts; anything else is a
//   warning on stderr and the key is skipped.
// - sops itself reads SOPS_AGE_SSH_PRIVATE_KEY_FILE, ~/.ssh/id_ed25519 and ~/.ssh/id_rsa with
//   agessh.ParseIdentity (sops age/ssh_parse.go:48-80, v3.12.2): ed25519 and RSA keys; a protected key
//   becomes an identity that prompts for its passphrase.

import { createPrivateKey, createPublicKey } from "node:crypto";
import { base64 } from "@scure/base";
import { SshWireReader } from "./ssh-wire.js";

export type SshKeyType = "ssh-ed25519" | "ssh-rsa" | "other";

export type SshPrivateKey =
  | {
      readonly state: "key";
      readonly keyType: SshKeyType;
      readonly passphrase: boolean;
      /** base64 of the public key blob; null when it cannot be read without the passphrase. */
      readonly publicKey: string | null;
    }
  | { readonly state: "not-a-key"; readonly reason: string };

const OPENSSH = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/;
const PEM = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/;

export function inspectSshPrivateKey(text: string): SshPrivateKey {
  const openssh = OPENSSH.exec(text);
  if (openssh?.[1] !== undefined) return inspectOpenSsh(openssh[1]);
  const pem = PEM.exec(text);
  if (pem?.[1] !== undefined) return inspectPem(pem[0], pem[1]);
  return { state: "not-a-key", reason: "not an ssh private key" };
}

/**
 * How much of an OpenSSH ed25519 private key file holds its clear header (OpenSSH PROTOCOL.key: magic,
 * cipher, kdf, kdf options, key count, public key): 94 decoded bytes unencrypted, 126 with a passphrase
 * (bcrypt salt and rounds). 232 file bytes decode to 144; an unencrypted key's secret seed starts at
 * decoded byte 161 (after the private section's length, check integers, key type and public key).
 */
export const OPENSSH_HEADER_BYTES = 232;

/**
 * An OpenSSH private key inspected from the first OPENSSH_HEADER_BYTES of its file only, so the secret part
 * is never read. "not-a-key" when those bytes are not an OpenSSH key's header or do not hold its public key
 * whole (RSA keys: their public key is longer): the caller then reads the whole file.
 */
export function inspectOpenSshHeader(prefix: string): SshPrivateKey {
  const m = /^-----BEGIN OPENSSH PRIVATE KEY-----\r?\n([A-Za-z0-9+/\s]*)/.exec(prefix);
  if (m?.[1] === undefined) return { state: "not-a-key", reason: "not an OpenSSH private key" };
  const b64 = m[1].replace(/\s+/g, "");
  return inspectOpenSsh(b64.slice(0, b64.length - (b64.length % 4)));
}

function inspectOpenSsh(body: string): SshPrivateKey {
  let bytes: Uint8Array;
  try {
    bytes = base64.decode(body.replace(/\s+/g, ""));
  } catch {
    return { state: "not-a-key", reason: "the OpenSSH private key is not valid base64" };
  }
  try {
    const magic = Buffer.from("openssh-key-v1\0", "latin1");
    if (bytes.length < magic.length || !magic.every((b, i) => bytes[i] === b))
      return { state: "not-a-key", reason: "not an openssh-key-v1 key" };
    const r = new SshWireReader(bytes.subarray(magic.length));
    const cipher = r.string();
    const kdf = r.string();
    const kdfOptions = r.string();
    const count = r.u32();
    const blob = r.string();
    if (
      cipher === null ||
      kdf === null ||
      kdfOptions === null ||
      count === null ||
      blob === null ||
      count < 1
    )
      return { state: "not-a-key", reason: "truncated OpenSSH private key" };
    const type = new SshWireReader(blob).string();
    return {
      state: "key",
      keyType: keyTypeOf(type === null ? "" : Buffer.from(type).toString("latin1")),
      passphrase: Buffer.from(cipher).toString("latin1") !== "none",
      publicKey: base64.encode(blob),
    };
  } finally {
    bytes.fill(0);
  }
}

function inspectPem(pem: string, label: string): SshPrivateKey {
  // RFC 1421 headers mark a legacy encrypted PEM key; PKCS#8 says so in its label.
  const encrypted = label === "ENCRYPTED PRIVATE KEY" || /Proc-Type:\s*4,ENCRYPTED/.test(pem);
  if (encrypted) {
    const keyType = label.startsWith("RSA") ? "ssh-rsa" : "other";
    return { state: "key", keyType, passphrase: true, publicKey: null };
  }
  if (label !== "RSA PRIVATE KEY" && label !== "PRIVATE KEY" && label !== "EC PRIVATE KEY")
    return { state: "not-a-key", reason: `a PEM ${label.toLowerCase()}, not an ssh private key` };
  try {
    const jwk = createPublicKey(createPrivateKey(pem)).export({ format: "jwk" });
    if (jwk.kty === "OKP" && jwk.crv === "Ed25519" && typeof jwk.x === "string") {
      const blob = wire([str("ssh-ed25519"), str(Buffer.from(jwk.x, "base64url"))]);
      return { state: "key", keyType: "ssh-ed25519", passphrase: false, publicKey: base64.encode(blob) };
    }
    if (jwk.kty === "RSA" && typeof jwk.n === "string" && typeof jwk.e === "string") {
      const blob = wire([
        str("ssh-rsa"),
        str(mpint(Buffer.from(jwk.e, "base64url"))),
        str(mpint(Buffer.from(jwk.n, "base64url"))),
      ]);
      return { state: "key", keyType: "ssh-rsa", passphrase: false, publicKey: base64.encode(blob) };
    }
    return { state: "key", keyType: "other", passphrase: false, publicKey: null };
  } catch {
    // Never forward the library's message: it may quote its input.
    return { state: "not-a-key", reason: "a PEM key that does not parse" };
  }
}

export interface SshPublicKey {
  readonly keyType: SshKeyType;
  readonly publicKey: string;
}

/** The first key of an authorized_keys-style text (`.pub` files, native recipients in sops files). */
export function parseSshPublicKey(text: string): SshPublicKey | null {
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const fields = line.split(/\s+/);
    const at = fields.findIndex((f) => /^(ssh-|ecdsa-|sk-)/.test(f));
    const type = fields[at];
    const b64 = fields[at + 1];
    if (type === undefined || b64 === undefined) return null;
    return { keyType: keyTypeOf(type), publicKey: b64 };
  }
  return null;
}

function keyTypeOf(name: string): SshKeyType {
  return name === "ssh-ed25519" || name === "ssh-rsa" ? name : "other";
}

/** The 32-byte ed25519 key inside an `ssh-ed25519` public key blob (base64), or null. */
export function ed25519KeyOfBlob(publicKey: string): Uint8Array | null {
  let blob: Uint8Array;
  try {
    blob = base64.decode(publicKey);
  } catch {
    return null;
  }
  const r = new SshWireReader(blob);
  const type = r.string();
  const key = r.string();
  if (type === null || Buffer.from(type).toString("latin1") !== "ssh-ed25519") return null;
  return key !== null && key.length === 32 ? Uint8Array.from(key) : null;
}

function str(v: string | Uint8Array): Buffer {
  const b = typeof v === "string" ? Buffer.from(v, "latin1") : Buffer.from(v);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

function wire(parts: readonly Buffer[]): Buffer {
  return Buffer.concat(parts);
}

/** An ssh mpint: big-endian, no leading zeros, a zero byte first when the top bit is set. */
function mpint(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const trimmed = bytes.subarray(i);
  return (trimmed[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed;
}
