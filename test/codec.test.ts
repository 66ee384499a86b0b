// The key code's own bech32 encoder and strict base64 (src/sops/codec.ts) answer exactly as @scure/base,
// which they replace on the status path, on generated input: valid, damaged and hostile.

import { randomBytes } from "node:crypto";
import { base64, bech32 } from "@scure/base";
import { describe, expect, it } from "vitest";
import { ageFromIdentityFile, x25519RecipientOfScalar } from "../src/sops/age.js";
import { base64Decode, base64Encode, bech32Encode } from "../src/sops/codec.js";

/** A small deterministic generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function scureBase64(text: string): string | null {
  try {
    return Buffer.from(base64.decode(text)).toString("hex");
  } catch {
    return null;
  }
}

function ours(text: string): string | null {
  const b = base64Decode(text);
  return b === null ? null : Buffer.from(b).toString("hex");
}

describe("codec", () => {
  it("encodes bech32 as @scure/base does, for any length", () => {
    for (let n = 0; n <= 64; n++) {
      const bytes = new Uint8Array(randomBytes(n));
      expect(bech32Encode("age", bytes)).toBe(bech32.encode("age", bech32.toWords(bytes), false));
    }
    // An age recipient of a fixed key, written out: the encoder is not checked against itself only.
    expect(bech32Encode("age", new Uint8Array(32))).toBe(
      "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq5cu47z",
    );
  });

  it("encodes base64 as @scure/base does", () => {
    for (let n = 0; n <= 70; n++) {
      const bytes = new Uint8Array(randomBytes(n));
      expect(base64Encode(bytes)).toBe(base64.encode(bytes));
      expect(base64Encode(bytes.subarray(1))).toBe(base64.encode(bytes.subarray(1)));
    }
  });

  it("decodes base64 as strictly as @scure/base: valid, damaged and odd strings", () => {
    const next = rng(11);
    const cases: string[] = ["", "=", "==", "====", "A", "AA", "AAA", "AAAA", "AA==", "AB==", "AAA=", "AAB="];
    for (let n = 0; n <= 40; n++) {
      const valid = base64.encode(new Uint8Array(randomBytes(n)));
      cases.push(valid, ` ${valid}`, `${valid}\n`, valid.replace(/=/g, ""), `${valid}=`, `${valid}A`);
      // One character changed to anything the alphabets and whitespace hold.
      const odd = "AQgwBEz09+/=-_ \n.";
      for (let k = 0; k < 6 && valid.length > 0; k++) {
        const at = Math.floor(next() * valid.length);
        const c = odd.charAt(Math.floor(next() * odd.length));
        cases.push(valid.slice(0, at) + c + valid.slice(at + 1));
      }
    }
    // Short strings over a small alphabet, every padding position included.
    const small = "AQBE+/=";
    for (let k = 0; k < 3000; k++) {
      let s = "";
      const len = Math.floor(next() * 9);
      for (let i = 0; i < len; i++) s += small.charAt(Math.floor(next() * small.length));
      cases.push(s);
    }
    for (const s of cases) expect({ s, r: ours(s) }).toEqual({ s, r: scureBase64(s) });
  });

  it("derives the recipients of AGE-SECRET-KEY lines as with @scure/base's decoder, damaged ones too", () => {
    const next = rng(7);
    const reference = (line: string): string | null => {
      try {
        const d = bech32.decodeToBytes(line, false);
        if (d.prefix !== "age-secret-key-" || d.bytes.length !== 32) return null;
        return x25519RecipientOfScalar(d.bytes);
      } catch {
        return null;
      }
    };
    for (let k = 0; k < 60; k++) {
      const scalar = new Uint8Array(randomBytes(32));
      const line = bech32.encode("age-secret-key-", bech32.toWords(scalar), false).toUpperCase();
      const at = 16 + Math.floor(next() * (line.length - 16));
      const chars = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7LB1io";
      const variants = [
        line,
        line.slice(0, -1),
        line.slice(0, at) + chars.charAt(Math.floor(next() * chars.length)) + line.slice(at + 1),
        line.slice(0, at) + line.charAt(at).toLowerCase() + line.slice(at + 1),
        `${line}Q`,
      ];
      for (const v of variants) {
        const want = reference(v);
        const got = ageFromIdentityFile(`${v}\n`);
        expect({ v, got }).toEqual({
          v,
          got:
            want === null
              ? { ok: false, reason: "line 1: malformed AGE-SECRET-KEY" }
              : { ok: true, recipients: [want] },
        });
      }
    }
  });
});
