import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { base64, bech32 } from "@scure/base";
import fc from "fast-check";
import { afterAll, describe, expect, it, type TestContext } from "vitest";
import {
  ageFromIdentityFile,
  ageFromKeyFile,
  ageFromOpenSshPrivateKey,
  ageFromSshPublicKey,
  ed25519PublicToAge,
  type RecipientResult,
} from "../src/sops/age.js";
import { findTool, requireTool } from "./helpers/tools.js";

const ASSETS = new URL("./fixtures/sops-nix/test-assets/", import.meta.url);
const asset = (name: string): string => fs.readFileSync(new URL(name, ASSETS), "utf8");
const AGE_TEST = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw";
const AGE_SSH = "age1a8pk4akrdamj7nvqy3zywgtny8dxz7t5xzu7u8v9mhrayp9freqsqatyrs";

const dirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sops-agent-age-"));
  dirs.push(dir);
  return dir;
}
/** age-keygen comes in the Debian package `age`, which the shared helper does not know. */
function requireAgeKeygen(ctx: TestContext): string {
  const found = findTool("age-keygen");
  if (found !== null) return found;
  const message = "age-keygen is not installed: apt-get install age";
  if (process.env.CI === "true") throw new Error(`${message}; CI=true requires it`);
  return ctx.skip(message);
}

afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function recipients(r: RecipientResult): readonly string[] {
  if (!r.ok) throw new Error(`expected recipients, got: ${r.reason}`);
  return r.recipients;
}

function reason(r: RecipientResult): string {
  if (r.ok) throw new Error("expected a failure");
  return r.reason;
}

/** An independent ssh-to-age: u = (1+y)/(1-y) mod p with bigints, then bech32. */
function referenceSshToAge(pub: Uint8Array): string {
  const p = 2n ** 255n - 19n;
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(pub[i] ?? 0);
  y &= (1n << 255n) - 1n;
  const pow = (b: bigint, e: bigint): bigint => {
    let r = 1n;
    let x = ((b % p) + p) % p;
    for (let k = e; k > 0n; k >>= 1n) {
      if (k & 1n) r = (r * x) % p;
      x = (x * x) % p;
    }
    return r;
  };
  let u = ((1n + y) * pow(1n - y, p - 2n)) % p;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    out[i] = Number(u & 0xffn);
    u >>= 8n;
  }
  return bech32.encode("age", bech32.toWords(out), false);
}

describe("test vectors of sops-nix", () => {
  it("ssh-ed25519-key.pub converts to the second recipient of secrets.yaml", () => {
    expect(recipients(ageFromSshPublicKey(asset("ssh-ed25519-key.pub")))).toEqual([AGE_SSH]);
    expect(recipients(ageFromKeyFile(asset("ssh-ed25519-key.pub")))).toEqual([AGE_SSH]);
  });

  it("age-keys.txt derives the first recipient of secrets.yaml", () => {
    expect(recipients(ageFromIdentityFile(asset("age-keys.txt")))).toEqual([AGE_TEST]);
    // Derived from the secret key, not read from the comment.
    const noComment = asset("age-keys.txt").replace(/^#.*$/gm, "");
    expect(recipients(ageFromKeyFile(noComment))).toEqual([AGE_TEST]);
  });

  it("a stale `# public key:` comment does not override the derived recipient", () => {
    const stale = asset("age-keys.txt").replace(AGE_TEST, AGE_SSH);
    expect(recipients(ageFromIdentityFile(stale))).toEqual([AGE_TEST]);
  });

  it("the independent bigint conversion agrees with noble on random keys", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (seed) => {
        const pub = ed25519.getPublicKey(seed);
        expect(ed25519PublicToAge(pub)).toBe(referenceSshToAge(pub));
      }),
      { numRuns: 50 },
    );
  });
});

describe("key formats", () => {
  it("rejects RSA keys, garbage and a truncated blob with clear reasons", () => {
    expect(reason(ageFromKeyFile(asset("ssh-key.pub")))).toMatch(/ssh-rsa key: only ssh-ed25519/);
    expect(reason(ageFromKeyFile("hello world"))).toMatch(/not an ssh public key/);
    expect(reason(ageFromSshPublicKey("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"))).toMatch(/malformed|truncated/);
    expect(
      reason(ageFromKeyFile("-----BEGIN PRIVATE KEY-----\nMC4CAQ\n-----END PRIVATE KEY-----\n")),
    ).toMatch(/not in OpenSSH format/);
    expect(reason(ageFromIdentityFile("# nothing\n"))).toMatch(/no age identity/);
  });

  it("never puts private key material into a reason", () => {
    const line =
      asset("age-keys.txt")
        .split("\n")
        .find((l) => l.startsWith("AGE-SECRET-KEY-1")) ?? "";
    // One flipped character breaks the checksum.
    const broken = `${line.slice(0, 30)}${line[30] === "Q" ? "P" : "Q"}${line.slice(31)}`;
    const r = reason(ageFromIdentityFile(broken));
    expect(r).toBe("line 1: malformed AGE-SECRET-KEY");
    expect(r).not.toContain(line.slice(16, 40));
  });

  it("never throws on arbitrary input", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => {
        for (const f of [
          ageFromKeyFile,
          ageFromIdentityFile,
          ageFromOpenSshPrivateKey,
          ageFromSshPublicKey,
        ]) {
          expect(typeof f(text).ok).toBe("boolean");
          expect(
            typeof f(
              `-----BEGIN OPENSSH PRIVATE KEY-----\n${base64.encode(new TextEncoder().encode(text))}\n-----END OPENSSH PRIVATE KEY-----`,
            ).ok,
          ).toBe("boolean");
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("cross-checks with real tools", () => {
  it("ssh-keygen ed25519 keys: private key, public key and the bigint reference agree", (ctx) => {
    const sshKeygen = requireTool(ctx, "ssh-keygen");
    const dir = tempDir();
    for (const [name, pass] of [
      ["plain", ""],
      ["encrypted", "correct horse"],
    ] as const) {
      const file = path.join(dir, name);
      execFileSync(sshKeygen, ["-q", "-t", "ed25519", "-N", pass, "-C", "test", "-f", file]);
      const priv = fs.readFileSync(file, "utf8");
      const pub = fs.readFileSync(`${file}.pub`, "utf8");
      const fromPub = recipients(ageFromSshPublicKey(pub));
      // The passphrase is never needed: the public key is stored in clear.
      expect(recipients(ageFromOpenSshPrivateKey(priv))).toEqual(fromPub);
      expect(recipients(ageFromKeyFile(priv))).toEqual(fromPub);
      const blob = base64.decode(pub.split(" ")[1] ?? "");
      expect(fromPub).toEqual([referenceSshToAge(blob.subarray(blob.length - 32))]);
    }
  });

  it("ssh-keygen RSA private keys are refused", (ctx) => {
    const sshKeygen = requireTool(ctx, "ssh-keygen");
    const file = path.join(tempDir(), "rsa");
    execFileSync(sshKeygen, ["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f", file]);
    const priv = fs.readFileSync(file, "utf8");
    const r = reason(ageFromKeyFile(priv));
    expect(r).toMatch(/ssh-rsa key: only ssh-ed25519/);
    for (const line of priv.split("\n").slice(1, -2)) expect(r).not.toContain(line);
  });

  it("age-keygen identities derive the same recipient as `age-keygen -y`", (ctx) => {
    const ageKeygen = requireAgeKeygen(ctx);
    const dir = tempDir();
    const lines: string[] = [];
    const expected: string[] = [];
    for (let i = 0; i < 3; i++) {
      const file = path.join(dir, `key${i}.txt`);
      execFileSync(ageKeygen, ["-o", file], { stdio: "ignore" });
      expected.push(execFileSync(ageKeygen, ["-y", file], { encoding: "utf8" }).trim());
      lines.push(
        ...fs
          .readFileSync(file, "utf8")
          .split("\n")
          .filter((l) => l.startsWith("AGE-SECRET-KEY-1")),
      );
    }
    expect(recipients(ageFromIdentityFile(lines.join("\n")))).toEqual(expected);
  });
});

describe("X25519 by node:crypto", () => {
  it("derives the same recipient as @noble/curves from any age secret key", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (scalar) => {
        const line = bech32.encode("age-secret-key-", bech32.toWords(scalar), false).toUpperCase();
        const want = bech32.encode("age", bech32.toWords(x25519.getPublicKey(scalar)), false);
        expect(ageFromIdentityFile(`${line}\n`)).toEqual({ ok: true, recipients: [want] });
      }),
      { numRuns: 200 },
    );
  });
});
