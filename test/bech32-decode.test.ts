// Issue 11: bech32Decode runs without spread arrays (first-run code is what a one-shot `status` pays).
// Its answers must be those of the decoder before the change, kept here verbatim as the reference, on
// generated valid, damaged and foreign strings.

import { bech32 } from "@scure/base";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { bech32Decode } from "../src/sops/identity-file.js";

// ---- the decoder before issue 11 (src/sops/identity-file.ts at 99dbc47) ----
const CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const GENERATOR = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3] as const;

function polymod(values: readonly number[]): number {
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = (((chk & 0x1ffffff) << 5) ^ v) >>> 0;
    for (let i = 0; i < 5; i++) if (((top >>> i) & 1) === 1) chk = (chk ^ (GENERATOR[i] ?? 0)) >>> 0;
  }
  return chk;
}

function hrpExpand(hrp: string): number[] {
  const h = [...Buffer.from(hrp.toLowerCase(), "latin1")];
  return [...h.map((c) => c >> 5), 0, ...h.map((c) => c & 31)];
}

function referenceDecode(s: string): { readonly hrp: string; readonly data: Uint8Array } | string {
  if (s.toLowerCase() !== s && s.toUpperCase() !== s) return "mixed case";
  const pos = s.lastIndexOf("1");
  if (pos < 1 || pos + 7 > s.length) return "separator at an invalid position";
  const hrp = s.slice(0, pos);
  for (let i = 0; i < hrp.length; i++) {
    const c = hrp.charCodeAt(i);
    if (c < 33 || c > 126) return "invalid character in the human-readable part";
  }
  const words: number[] = [];
  for (const c of s.slice(pos + 1).toLowerCase()) {
    const d = CHARSET.indexOf(c);
    if (d === -1) return "invalid character in the data part";
    words.push(d);
  }
  if (polymod([...hrpExpand(hrp), ...words]) !== 1) return "invalid checksum";
  const data = convertBits(words.slice(0, -6));
  return typeof data === "string" ? data : { hrp, data };
}

function convertBits(words: readonly number[]): Uint8Array | string {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const w of words) {
    acc = ((acc << 5) | w) & 0xfff;
    bits += 5;
    while (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  if (bits >= 5) return "illegal zero padding";
  if (((acc << (8 - bits)) & 0xff) !== 0) return "non-zero padding";
  const bytes = Uint8Array.from(out);
  out.fill(0);
  return bytes;
}

// ---- end of the reference ----

const hrp = fc.constantFrom("age-secret-key-", "AGE-SECRET-KEY-", "age", "age-plugin-yubikey-", "a", "x1");
const valid = fc
  .tuple(hrp, fc.uint8Array({ minLength: 0, maxLength: 40 }), fc.boolean())
  .map(([h, bytes, upper]) => {
    const s = bech32.encode(h.toLowerCase(), bech32.toWords(bytes), false);
    return upper ? s.toUpperCase() : s;
  });
/** Any 5-bit words with a valid checksum: reaches the padding rules (a length no byte string has). */
const anyWords = fc
  .tuple(hrp, fc.array(fc.integer({ min: 0, max: 31 }), { maxLength: 40 }))
  .map(([h, words]) => bech32.encode(h.toLowerCase(), words, false));
/** A valid string with one character replaced, inserted or removed, or its case flipped in one place. */
const damaged = fc
  .tuple(
    valid,
    fc.nat(),
    fc.constantFrom("q", "1", "b", "Q", "K", "\u212a", "\u0130", "é", " ", "\u0000"),
    fc.nat(2),
  )
  .map(([s, at, c, how]) => {
    const i = at % (s.length + 1);
    if (how === 0) return s.slice(0, i) + c + s.slice(i + 1);
    if (how === 1) return s.slice(0, i) + c + s.slice(i);
    return s.slice(0, i) + s.slice(i + 1);
  });
const anything = fc.string({ maxLength: 80 });

function view(r: ReturnType<typeof bech32Decode>): unknown {
  return typeof r === "string" ? r : { hrp: r.hrp, data: [...r.data] };
}

describe("bech32Decode", () => {
  it("property: the same answer as the decoder before issue 11", () => {
    let decoded = 0;
    let refused = 0;
    const reasons = new Set<string>();
    fc.assert(
      fc.property(fc.oneof(valid, anyWords, damaged, anything), (s) => {
        const got = bech32Decode(s);
        expect(view(got)).toEqual(view(referenceDecode(s)));
        if (typeof got === "string") {
          refused++;
          reasons.add(got);
        } else decoded++;
      }),
      { numRuns: 5000 },
    );
    expect(decoded).toBeGreaterThan(500);
    expect(refused).toBeGreaterThan(500);
    // Every rule was reached.
    expect([...reasons].sort()).toEqual([
      "illegal zero padding",
      "invalid character in the data part",
      "invalid character in the human-readable part",
      "invalid checksum",
      "mixed case",
      "non-zero padding",
      "separator at an invalid position",
    ]);
  });
});
