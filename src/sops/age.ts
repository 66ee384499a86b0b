// The host's age recipients, computed from public data where possible (ssh-to-age in TypeScript).
//
// Private material (an AGE-SECRET-KEY scalar, the body of an OpenSSH private key) only lives in local
// buffers that are zeroed after use; it is never returned, logged or put in a reason. Library error
// messages are never forwarded either, because codecs like to quote their input.

import { createPrivateKey, createPublicKey } from "node:crypto";
import { createRequire } from "node:module";
import { base64, bech32 } from "@scure/base";
import { SshWireReader } from "./ssh-wire.js";

/**
 * @noble/curves, only for the ed25519 → X25519 conversion of ssh keys (node:crypto has none), loaded on
 * first need: its module graph costs tens of milliseconds, which a host with only an age key file never pays.
 */
let noble: typeof import("@noble/curves/ed25519.js") | null = null;
function ed25519(): typeof import("@noble/curves/ed25519.js")["ed25519"] {
  noble ??= createRequire(import.meta.url)(
    "@noble/curves/ed25519.js",
  ) as typeof import("@noble/curves/ed25519.js");
  return noble.ed25519;
}

export type RecipientResult =
  | { readonly ok: true; readonly recipients: readonly string[] }
  | { readonly ok: false; readonly reason: string };

const AGE_HRP = "age";

/** Edwards y → Montgomery u = (1+y)/(1-y), then bech32 (BIP-173, not bech32m) with hrp `age`. */
export function ed25519PublicToAge(pub32: Uint8Array): string {
  if (pub32.length !== 32) throw new Error("an ed25519 public key has 32 bytes");
  return x25519PublicToAge(ed25519().utils.toMontgomery(pub32));
}

export function x25519PublicToAge(u32: Uint8Array): string {
  if (u32.length !== 32) throw new Error("an X25519 public key has 32 bytes");
  return bech32.encode(AGE_HRP, bech32.toWords(u32), false);
}

// ---------------------------------------------------------------------------------------------------------
// SSH keys (read with the shared wire reader, ssh-wire.ts)

const decoder = new TextDecoder();

/** The 32-byte key of an ssh-ed25519 public key blob (`string "ssh-ed25519", string key`). */
function ed25519FromBlob(blob: Uint8Array): Uint8Array | string {
  const r = new SshWireReader(blob);
  const type = r.string();
  if (type === null) return "truncated public key";
  const name = decoder.decode(type);
  if (name !== "ssh-ed25519") return `${name} key: only ssh-ed25519 keys convert to age`;
  const key = r.string();
  if (key === null || key.length !== 32) return "malformed ssh-ed25519 public key";
  return key;
}

function decodeBase64(text: string): Uint8Array | null {
  try {
    return base64.decode(text);
  } catch {
    return null;
  }
}

function fromEd25519(pub: Uint8Array | string): RecipientResult {
  if (typeof pub === "string") return { ok: false, reason: pub };
  try {
    return { ok: true, recipients: [ed25519PublicToAge(pub)] };
  } catch {
    return { ok: false, reason: "the ed25519 public key is not a valid curve point" };
  }
}

/** `ssh-ed25519 AAAA… comment`, as in a `.pub` file or authorized_keys (options before the type are allowed). */
export function ageFromSshPublicKey(text: string): RecipientResult {
  const line = text.split("\n").find((l) => l.trim() !== "" && !l.trimStart().startsWith("#"));
  if (line === undefined) return { ok: false, reason: "no public key line" };
  const fields = line.trim().split(/\s+/);
  const at = fields.findIndex((f) => /^(ssh-|ecdsa-|sk-)/.test(f));
  const type = fields[at];
  const b64 = fields[at + 1];
  if (type === undefined || b64 === undefined) return { ok: false, reason: "not an ssh public key line" };
  if (type !== "ssh-ed25519")
    return { ok: false, reason: `${type} key: only ssh-ed25519 keys convert to age` };
  const blob = decodeBase64(b64);
  if (blob === null) return { ok: false, reason: "the public key is not valid base64" };
  return fromEd25519(ed25519FromBlob(blob));
}

const OPENSSH_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----";
const OPENSSH_END = "-----END OPENSSH PRIVATE KEY-----";
const OPENSSH_MAGIC = "openssh-key-v1\0";

/**
 * The public key of an OpenSSH private key file. The format stores the public key in clear before the
 * (possibly passphrase-encrypted) private section, so the private part is never parsed.
 */
export function ageFromOpenSshPrivateKey(text: string): RecipientResult {
  const begin = text.indexOf(OPENSSH_BEGIN);
  const end = text.indexOf(OPENSSH_END);
  if (begin === -1 || end < begin) return { ok: false, reason: "not an OpenSSH private key" };
  const body = text.slice(begin + OPENSSH_BEGIN.length, end).replace(/\s+/g, "");
  const bytes = decodeBase64(body);
  if (bytes === null) return { ok: false, reason: "the OpenSSH private key is not valid base64" };
  try {
    return fromEd25519(publicBlobOf(bytes));
  } finally {
    bytes.fill(0);
  }
}

function publicBlobOf(bytes: Uint8Array): Uint8Array | string {
  const magic = new TextEncoder().encode(OPENSSH_MAGIC);
  if (bytes.length < magic.length || !magic.every((b, i) => bytes[i] === b))
    return "not an openssh-key-v1 key";
  const r = new SshWireReader(bytes.subarray(magic.length));
  // ciphername, kdfname, kdfoptions: skipped; the public key does not depend on them.
  if (r.string() === null || r.string() === null || r.string() === null)
    return "truncated OpenSSH key header";
  const count = r.u32();
  if (count === null || count < 1) return "the OpenSSH key file holds no key";
  const blob = r.string();
  if (blob === null) return "truncated OpenSSH public key";
  // Copy out: the caller zeroes the whole buffer, public part included.
  const pub = ed25519FromBlob(blob);
  return typeof pub === "string" ? pub : Uint8Array.from(pub);
}

// ---------------------------------------------------------------------------------------------------------
// age identity files

const SECRET_PREFIX = "AGE-SECRET-KEY-1";

/**
 * The recipients of an age identity file. `AGE-SECRET-KEY-1…` lines are what decrypts, so their public
 * keys are derived (a comment can be stale). `# public key:` comments are only used for identities that
 * cannot be derived here (plugins such as age-plugin-yubikey, post-quantum keys).
 */
export function ageFromIdentityFile(text: string): RecipientResult {
  const derived: string[] = [];
  const commented: string[] = [];
  let underivable = 0;
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^#\s*(?:public key|recipient):\s*(age1[0-9a-z]+)\s*$/i.exec(line);
      if (m?.[1] !== undefined) commented.push(m[1]);
      continue;
    }
    if (line.startsWith(SECRET_PREFIX)) {
      const r = x25519FromSecretLine(line);
      if (r === null) return { ok: false, reason: `line ${i + 1}: malformed AGE-SECRET-KEY` };
      derived.push(r);
    } else if (line.startsWith("AGE-PLUGIN-") || line.startsWith("AGE-SECRET-KEY-PQ-")) {
      underivable++;
    } else {
      return { ok: false, reason: `line ${i + 1}: not an age identity` };
    }
  }
  const all = underivable > 0 ? [...derived, ...commented] : derived;
  const recipients = [...new Set(all)];
  if (recipients.length === 0) return { ok: false, reason: "no age identity in the file" };
  return { ok: true, recipients };
}

/** The `age1…` recipient of an X25519 secret scalar (32 bytes); the caller zeroes the scalar. */
export function x25519RecipientOfScalar(scalar: Uint8Array): string {
  return x25519PublicToAge(x25519PublicOf(scalar));
}

function x25519FromSecretLine(line: string): string | null {
  let scalar: Uint8Array | undefined;
  try {
    const decoded = bech32.decodeToBytes(line, false);
    scalar = decoded.bytes;
    if (decoded.prefix !== "age-secret-key-" || scalar.length !== 32) return null;
    return x25519RecipientOfScalar(scalar);
  } catch {
    return null;
  } finally {
    scalar?.fill(0);
  }
}

/** RFC 8410 PKCS#8 wrapping of a raw X25519 private key: this prefix, then the 32-byte scalar. */
const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

/**
 * The X25519 public key of a 32-byte scalar, by node:crypto (OpenSSL: constant time, no table to build). The
 * DER copy of the scalar is zeroed after use; the KeyObject's own copy lives in OpenSSL memory, freed with it.
 */
function x25519PublicOf(scalar: Uint8Array): Uint8Array {
  const der = Buffer.concat([X25519_PKCS8_PREFIX, scalar]);
  try {
    const spki = createPublicKey(createPrivateKey({ key: der, format: "der", type: "pkcs8" })).export({
      format: "der",
      type: "spki",
    });
    // SPKI of an X25519 key: a 12-byte header, then the 32-byte u-coordinate.
    return new Uint8Array(spki.subarray(spki.length - 32));
  } finally {
    der.fill(0);
  }
}

// ---------------------------------------------------------------------------------------------------------

export type KeyFileKind = "ssh-public" | "openssh-private" | "age-identity" | "unknown";

/** Guesses what a key file is from its content; the extension is not trusted. */
export function keyFileKind(text: string): KeyFileKind {
  if (text.includes(OPENSSH_BEGIN)) return "openssh-private";
  if (/^\s*(#[^\n]*\n\s*)*AGE-(SECRET-KEY|PLUGIN)-/.test(text)) return "age-identity";
  if (/(^|\s)(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/=]+/.test(text))
    return "ssh-public";
  return "unknown";
}

/** Any key file the CLI accepts: an ssh public key, an OpenSSH private key or an age identity file. */
export function ageFromKeyFile(text: string): RecipientResult {
  switch (keyFileKind(text)) {
    case "openssh-private":
      return ageFromOpenSshPrivateKey(text);
    case "age-identity":
      return ageFromIdentityFile(text);
    case "ssh-public":
      return ageFromSshPublicKey(text);
    case "unknown":
      return {
        ok: false,
        reason: /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)
          ? "a PEM key that is not in OpenSSH format (only openssh-key-v1 ed25519 keys convert to age)"
          : "not an ssh public key, OpenSSH private key or age identity file",
      };
  }
}
