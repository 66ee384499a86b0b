// Parses an age identity file exactly the way sops does: all or nothing. Pure: text in, identities out.
//
// Upstream (sops v3.12.2, the version sops-nix 56b24064 pins in go.mod):
// - age/keysource.go:499-520 `parseIdentities`: a bufio.Scanner over lines; a line that is empty or starts
//   with `#` is skipped, every other line must parse, and the first one that does not fails the whole
//   reader ("failed to parse '<location>' age identities", age/encrypted_keys.go:182-186).
// - age/keysource.go:522-533 `parseIdentity`: `AGE-PLUGIN-` → plugin identity, `AGE-SECRET-KEY-PQ-1` →
//   hybrid, `AGE-SECRET-KEY-1` → X25519, anything else "unknown identity type". No trimming anywhere: an
//   indented key, a whitespace-only line, a trailing blank or a pasted `Public key: age1…` line all fail.
// - age/encrypted_keys.go:107-113: a file starting with `age-encryption` or `-----BEGIN AGE` is a
//   passphrase-encrypted identity file, which needs a prompt.
// - filippo.io/age v1.3.1 internal/bech32/bech32.go:143-173 `Decode`, x25519.go:142-155, pq.go:124-137 and
//   plugin/encode.go `ParseIdentity` decide which key lines are well formed; modelled here byte for byte.
//
// A reason never holds the line's text, only its number: the line may be a private key.

import { x25519RecipientOfScalar } from "./age.js";

export type FileIdentity =
  /** `AGE-SECRET-KEY-1…`: its recipient is derived from the scalar, never taken from a comment. */
  | { readonly kind: "x25519"; readonly line: number; readonly recipient: string }
  /**
   * `AGE-SECRET-KEY-PQ-1…` (age 1.3 hybrid). Its recipient needs ML-KEM to derive; `recipient` is the
   * `# public key: age1pq1…` comment age-keygen writes right above it, when there is one.
   */
  | { readonly kind: "pq"; readonly line: number; readonly recipient: string | null }
  /**
   * `AGE-PLUGIN-<NAME>-1…` (age-plugin-yubikey, -tpm, -se, …). Only the plugin can tell which recipient it
   * opens; `recipients` are the `age1<name>1…` recipients named in the comments of the file, which the
   * plugins write beside the identity.
   */
  | {
      readonly kind: "plugin";
      readonly line: number;
      readonly plugin: string;
      readonly recipients: readonly string[];
    };

export type IdentityFileParse =
  | { readonly state: "parsed"; readonly identities: readonly FileIdentity[] }
  /** sops loses every identity of the file; `line` is 1-based. */
  | { readonly state: "invalid"; readonly line: number; readonly reason: string }
  /** A passphrase-encrypted identity file: sops asks for the passphrase, which a service cannot answer. */
  | { readonly state: "encrypted" };

/** bufio.MaxScanTokenSize: a longer line stops the scanner, and sops ignores scanner.Err(). */
const MAX_SCAN_TOKEN = 64 * 1024;

export function parseIdentityFile(text: string): IdentityFileParse {
  // age/encrypted_keys.go:108-113 peeks at the first 14 bytes.
  if (text.startsWith("age-encryption") || text.startsWith("-----BEGIN AGE")) return { state: "encrypted" };
  const identities: FileIdentity[] = [];
  const comments: string[] = [];
  const lines = scanLines(text);
  for (const [i, line] of lines.entries()) {
    const number = i + 1;
    if (Buffer.byteLength(line) >= MAX_SCAN_TOKEN) break;
    if (line === "") continue;
    if (line.startsWith("#")) {
      comments.push(line);
      continue;
    }
    const parsed = parseIdentityLine(line, number, comments);
    if (typeof parsed === "string") return { state: "invalid", line: number, reason: parsed };
    identities.push(parsed);
    comments.length = 0;
  }
  // Plugins write the recipient comment before or after the identity; late comments still count.
  if (comments.length > 0) {
    const late = commentRecipients(comments);
    for (const [i, id] of identities.entries()) {
      if (id.kind === "plugin") {
        const more = late.filter((r) => pluginOfRecipient(r) === id.plugin && !id.recipients.includes(r));
        if (more.length > 0) identities[i] = { ...id, recipients: [...id.recipients, ...more] };
      }
    }
  }
  return { state: "parsed", identities };
}

/** bufio.ScanLines: split on `\n`, drop one trailing `\r`, no empty token after a final newline. */
function scanLines(text: string): string[] {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines.map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
}

function parseIdentityLine(line: string, number: number, comments: readonly string[]): FileIdentity | string {
  if (line.startsWith("AGE-PLUGIN-")) {
    const decoded = bech32Decode(line);
    if (typeof decoded === "string") return `malformed plugin identity (${decoded})`;
    const { hrp } = decoded;
    if (!hrp.startsWith("AGE-PLUGIN-") || !hrp.endsWith("-")) return "not a plugin identity";
    const plugin = hrp.slice("AGE-PLUGIN-".length, -1).toLowerCase();
    if (!validPluginName(plugin)) return "invalid plugin name";
    const recipients = commentRecipients(comments).filter((r) => pluginOfRecipient(r) === plugin);
    return { kind: "plugin", line: number, plugin, recipients };
  }
  if (line.startsWith("AGE-SECRET-KEY-PQ-1")) {
    const decoded = bech32Decode(line);
    if (typeof decoded === "string") return `malformed post-quantum secret key (${decoded})`;
    if (decoded.hrp !== "AGE-SECRET-KEY-PQ-") return "malformed post-quantum secret key (unknown type)";
    // hpke MLKEM768X25519 private keys are 32-byte seeds.
    const ok = decoded.data.length === 32;
    decoded.data.fill(0);
    if (!ok) return "malformed post-quantum secret key (wrong length)";
    const recipient = commentRecipients(comments).find((r) => r.startsWith("age1pq1")) ?? null;
    return { kind: "pq", line: number, recipient };
  }
  if (line.startsWith("AGE-SECRET-KEY-1")) {
    const decoded = bech32Decode(line);
    if (typeof decoded === "string") return `malformed secret key (${decoded})`;
    try {
      if (decoded.hrp !== "AGE-SECRET-KEY-") return "malformed secret key (unknown type)";
      if (decoded.data.length !== 32) return "malformed secret key (invalid X25519 secret key)";
      return { kind: "x25519", line: number, recipient: x25519RecipientOfScalar(decoded.data) };
    } finally {
      decoded.data.fill(0);
    }
  }
  if (/^\s/.test(line)) return "unknown identity type (the line starts with white space)";
  if (/^public key:/i.test(line))
    return "unknown identity type (a `public key:` line without its leading `#`)";
  return "unknown identity type";
}

/** `# public key: age1…` (age-keygen), `#    Recipient: age1…` (age-plugin-yubikey), `# Recipient: …`. */
function commentRecipients(comments: readonly string[]): string[] {
  const out: string[] = [];
  for (const c of comments) {
    const m = /^#\s*(?:public key|recipient)\s*:\s*(age1[0-9a-z._+-]*1[0-9a-z]+)\s*$/i.exec(c);
    if (m?.[1] !== undefined) out.push(m[1].toLowerCase());
  }
  return out;
}

/** The plugin a recipient belongs to: `age1yubikey1…` → `yubikey`; null for X25519 and hybrid recipients. */
export function pluginOfRecipient(recipient: string): string | null {
  const r = recipient.trim().toLowerCase();
  if (!r.startsWith("age1") || r.startsWith("age1pq1")) return null;
  const last = r.lastIndexOf("1");
  if (last <= 4) return null;
  const name = r.slice(4, last);
  return validPluginName(name) ? name : null;
}

/** plugin/encode.go validPluginName. */
function validPluginName(name: string): boolean {
  return name !== "" && /^[A-Za-z0-9+\-._]+$/.test(name);
}

// ---------------------------------------------------------------------------------------------------------
// bech32 exactly as age's internal/bech32 decodes it: no length limit (unlike BIP-173), all upper or all
// lower case, the hrp is everything before the last `1`, and padding must be zero and short.

const CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const GENERATOR = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3] as const;

/** One step of the BCH checksum (BIP-173 polymod) over a 5-bit value. */
function polymodStep(chk: number, v: number): number {
  const top = chk >>> 25;
  let c = (((chk & 0x1ffffff) << 5) ^ v) >>> 0;
  for (let i = 0; i < 5; i++) if (((top >>> i) & 1) === 1) c = (c ^ (GENERATOR[i] ?? 0)) >>> 0;
  return c;
}

/**
 * Decoded with plain loops over the string, no arrays spread or copied: this runs once per key line in a
 * one-shot `status`, where the cost of first-run code is what the user waits for.
 */
export function bech32Decode(s: string): { readonly hrp: string; readonly data: Uint8Array } | string {
  if (s.toLowerCase() !== s && s.toUpperCase() !== s) return "mixed case";
  const pos = s.lastIndexOf("1");
  if (pos < 1 || pos + 7 > s.length) return "separator at an invalid position";
  const hrp = s.slice(0, pos);
  for (let i = 0; i < hrp.length; i++) {
    const c = hrp.charCodeAt(i);
    if (c < 33 || c > 126) return "invalid character in the human-readable part";
  }
  const lower = s.toLowerCase();
  const words = new Uint8Array(s.length - pos - 1);
  for (let i = pos + 1; i < lower.length; i++) {
    const d = CHARSET.indexOf(lower.charAt(i));
    if (d === -1) return "invalid character in the data part";
    words[i - pos - 1] = d;
  }
  // The checksum over the expanded hrp (high bits, a zero, low bits) and the data words.
  let chk = 1;
  for (let i = 0; i < pos; i++) chk = polymodStep(chk, lower.charCodeAt(i) >> 5);
  chk = polymodStep(chk, 0);
  for (let i = 0; i < pos; i++) chk = polymodStep(chk, lower.charCodeAt(i) & 31);
  for (const w of words) chk = polymodStep(chk, w);
  if (chk !== 1) {
    words.fill(0);
    return "invalid checksum";
  }
  const data = convertBits(words.subarray(0, words.length - 6));
  words.fill(0);
  return typeof data === "string" ? data : { hrp, data };
}

function convertBits(words: Uint8Array): Uint8Array | string {
  const out = new Uint8Array(Math.floor((words.length * 5) / 8));
  let n = 0;
  let acc = 0;
  let bits = 0;
  for (const w of words) {
    acc = ((acc << 5) | w) & 0xfff;
    bits += 5;
    while (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  if (bits >= 5 || ((acc << (8 - bits)) & 0xff) !== 0) {
    out.fill(0);
    return bits >= 5 ? "illegal zero padding" : "non-zero padding";
  }
  return out;
}

/**
 * SOPS_AGE_KEY as sops parses it (sops 15e36f97 age/keysource.go:413-419, parseIdentities :527-560 with
 * allowMultipleKeysPerLine): every whitespace-separated word of a line that is not empty and does not
 * start with `#` is an identity. A failing `line` counts those words, not the value's lines.
 */
export function parseInlineIdentities(value: string): IdentityFileParse {
  if (value.startsWith("age-encryption") || value.startsWith("-----BEGIN AGE")) return { state: "encrypted" };
  const lines = value
    .split(/\r?\n/)
    .flatMap((line) =>
      line === "" || line.startsWith("#") ? [line] : line.split(/\s+/).filter((w) => w !== ""),
    );
  return parseIdentityFile(lines.join("\n"));
}
