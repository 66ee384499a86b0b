// The codecs of the key code, written out so that a one-shot `status` does not load @scure/base (~50 KB of
// generic radix code: ~2–3 ms of its start-up) for one bech32 encoding and a few base64 blobs. The encoder
// and base64 answer exactly as @scure/base 2.x did here (test/codec.test.ts holds them to it on generated
// input); the decoder is age's own (filippo.io/age v1.3.1 internal/bech32/bech32.go:143-173 `Decode`).

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

/** bech32 (BIP-173, not bech32m) of bytes under a lower-case hrp, no length limit (age recipients are 62). */
export function bech32Encode(hrp: string, bytes: Uint8Array): string {
  const prefix = hrp.toLowerCase();
  let chk = 1;
  for (let i = 0; i < prefix.length; i++) chk = polymodStep(chk, prefix.charCodeAt(i) >> 5);
  chk = polymodStep(chk, 0);
  for (let i = 0; i < prefix.length; i++) chk = polymodStep(chk, prefix.charCodeAt(i) & 31);
  let out = `${prefix}1`;
  // 8-bit bytes as 5-bit words, the last one padded with zero bits.
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = ((acc << 8) | b) & 0xfff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      const w = (acc >> bits) & 31;
      chk = polymodStep(chk, w);
      out += CHARSET.charAt(w);
    }
  }
  if (bits > 0) {
    const w = (acc << (5 - bits)) & 31;
    chk = polymodStep(chk, w);
    out += CHARSET.charAt(w);
  }
  for (let i = 0; i < 6; i++) chk = polymodStep(chk, 0);
  chk ^= 1;
  for (let i = 0; i < 6; i++) out += CHARSET.charAt((chk >>> (5 * (5 - i))) & 31);
  return out;
}

/** Canonical padded base64: whole quads, `=` only as padding, the padding's unused bits zero. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$/;

/**
 * Strict base64 (RFC 4648 with padding, no whitespace, no URL alphabet), as @scure/base decodes it; null
 * for anything else. Node's own decoder skips what it does not know, which would read a damaged key.
 */
export function base64Decode(text: string): Uint8Array | null {
  if (!BASE64.test(text)) return null;
  const buf = Buffer.from(text, "base64");
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

export function base64Encode(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("base64");
}
