// The age identity file parser models sops' own (age/keysource.go:499-533, v3.12.2) and age's bech32
// (filippo.io/age v1.3.1 internal/bech32): every case here is one sops accepts or refuses.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { bech32 } from "@scure/base";
import { afterAll, describe, expect, it } from "vitest";
import { bech32Decode, parseIdentityFile, pluginOfRecipient } from "../src/sops/identity-file.js";
import { requireTool } from "./helpers/tools.js";

const ASSETS = new URL("./fixtures/sops-nix/test-assets/", import.meta.url);
const TEST_KEYS = fs.readFileSync(new URL("age-keys.txt", ASSETS), "utf8");
const TEST_RECIPIENT = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw";
const TEST_SECRET = TEST_KEYS.split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1")) ?? "";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function encode(hrp: string, bytes: Uint8Array): string {
  const s = bech32.encode(hrp.toLowerCase(), bech32.toWords(bytes), false);
  return hrp === hrp.toUpperCase() ? s.toUpperCase() : s;
}

describe("lines sops skips and lines it refuses", () => {
  it("accepts sops-nix's test key file and derives its recipient", () => {
    const r = parseIdentityFile(TEST_KEYS);
    expect(r).toEqual({
      state: "parsed",
      identities: [{ kind: "x25519", line: 3, recipient: TEST_RECIPIENT }],
    });
  });

  it.each([
    ["empty lines and # comments anywhere", `# c\n\n${TEST_SECRET}\n\n# d\n`, null],
    ["CRLF line ends (bufio.ScanLines drops the \\r)", `# c\r\n${TEST_SECRET}\r\n`, null],
    ["no final newline", TEST_SECRET, null],
    ["a pasted `Public key:` line", `${TEST_SECRET}\nPublic key: ${TEST_RECIPIENT}\n`, 2],
    ["an indented key", `  ${TEST_SECRET}\n`, 1],
    ["an indented comment", `  # comment\n${TEST_SECRET}\n`, 1],
    ["a whitespace-only line", `${TEST_SECRET}\n \n`, 2],
    ["a tab-only line", `\t\n${TEST_SECRET}\n`, 1],
    ["trailing white space after the key", `${TEST_SECRET} \n`, 1],
    ["a lower-case key", `${TEST_SECRET.toLowerCase()}\n`, 1],
    ["mixed case", `${TEST_SECRET.replace(/[A-Z](?=[^A-Z]*$)/, (c) => c.toLowerCase())}\n`, 1],
    ["a broken checksum", `${TEST_SECRET.slice(0, -1)}${TEST_SECRET.endsWith("Q") ? "P" : "Q"}\n`, 1],
    ["a UTF-8 byte order mark before a comment", `\uFEFF# created\n${TEST_SECRET}\n`, 1],
    ["a stray word", `${TEST_SECRET}\nhello\n`, 2],
    ["a bare ssh private key pasted in", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n", 1],
  ])("%s", (_name, text, badLine) => {
    const r = parseIdentityFile(text);
    if (badLine === null) {
      expect(r.state).toBe("parsed");
      expect(r.state === "parsed" ? r.identities.map((i) => i.kind) : []).toEqual(["x25519"]);
    } else {
      expect(r).toMatchObject({ state: "invalid", line: badLine });
      // Never the line itself: it may be a private key.
      expect(JSON.stringify(r)).not.toContain(TEST_SECRET.slice(16, 40));
      expect(JSON.stringify(r)).not.toContain(TEST_SECRET.slice(16, 40).toLowerCase());
    }
  });

  it("keys of the wrong length or padding are refused like age refuses them", () => {
    expect(parseIdentityFile(`${encode("AGE-SECRET-KEY-", new Uint8Array(31).fill(1))}\n`)).toMatchObject({
      state: "invalid",
      line: 1,
      reason: expect.stringMatching(/invalid X25519 secret key/),
    });
    // age's bech32 has no 90-character limit: a long, well-formed key of the wrong type is a type error.
    expect(bech32Decode(encode("AGE-SECRET-KEY-", new Uint8Array(200)))).toMatchObject({
      hrp: "AGE-SECRET-KEY-",
    });
  });

  it("a passphrase-encrypted identity file is recognised from its first bytes", () => {
    expect(parseIdentityFile("age-encryption.org/v1\n-> scrypt abc 18\n")).toEqual({ state: "encrypted" });
    expect(parseIdentityFile("-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n")).toEqual({ state: "encrypted" });
  });

  it("a line longer than bufio's 64 KiB token stops the scan silently, as sops ignores scanner.Err()", () => {
    const r = parseIdentityFile(`${TEST_SECRET}\n${"x".repeat(70_000)}\ngarbage\n`);
    expect(r).toMatchObject({ state: "parsed", identities: [{ kind: "x25519" }] });
  });
});

describe("post-quantum and plugin identities", () => {
  it("a hybrid identity takes its recipient from the age-keygen comment above it", () => {
    const pq = encode("AGE-SECRET-KEY-PQ-", new Uint8Array(32).fill(3));
    const pqRecipient = encode("age1pq", new Uint8Array(40).fill(4));
    expect(parseIdentityFile(`# public key: ${pqRecipient}\n${pq}\n${pq}\n`)).toEqual({
      state: "parsed",
      identities: [
        { kind: "pq", line: 2, recipient: pqRecipient },
        { kind: "pq", line: 3, recipient: null },
      ],
    });
    expect(parseIdentityFile(`${encode("AGE-SECRET-KEY-PQ-", new Uint8Array(31))}\n`)).toMatchObject({
      state: "invalid",
      line: 1,
    });
  });

  it("a plugin identity names its plugin; comments beside it name its recipients", () => {
    const id = encode("AGE-PLUGIN-YUBIKEY-", new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]));
    const recipient = encode("age1yubikey", new Uint8Array(33).fill(2));
    const other = encode("age1tpm", new Uint8Array(33).fill(5));
    const text = [
      "#       Serial: 1234, Slot: 1",
      `#    Recipient: ${recipient}`,
      id,
      `# Recipient: ${other}`,
      "",
    ].join("\n");
    expect(parseIdentityFile(text)).toEqual({
      state: "parsed",
      identities: [{ kind: "plugin", line: 3, plugin: "yubikey", recipients: [recipient] }],
    });
    expect(pluginOfRecipient(recipient)).toBe("yubikey");
    expect(pluginOfRecipient(TEST_RECIPIENT)).toBeNull();
    expect(pluginOfRecipient(encode("age1pq", new Uint8Array(8)))).toBeNull();
    // A malformed plugin identity fails the whole file like any other line.
    expect(parseIdentityFile(`${TEST_SECRET}\nAGE-PLUGIN-YUBIKEY-1XYZ\n`)).toMatchObject({
      state: "invalid",
      line: 2,
    });
  });
});

describe("real keys from age-keygen", () => {
  it("every key age-keygen writes parses, with the recipient `age-keygen -y` prints", (ctx) => {
    const ageKeygen = requireTool(ctx, "age-keygen");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sops-agent-identity-"));
    dirs.push(dir);
    const files: string[] = [];
    const expected: string[] = [];
    for (let i = 0; i < 3; i++) {
      const file = path.join(dir, `key${i}.txt`);
      execFileSync(ageKeygen, ["-o", file], { stdio: "ignore" });
      files.push(fs.readFileSync(file, "utf8"));
      expected.push(execFileSync(ageKeygen, ["-y", file], { encoding: "utf8" }).trim());
    }
    // Concatenated files (comments, created-at lines, public key comments) are one valid key file.
    const r = parseIdentityFile(files.join(""));
    expect(
      r.state === "parsed" ? r.identities.map((i) => (i.kind === "x25519" ? i.recipient : "")) : [],
    ).toEqual(expected);
    // age-keygen's own `Public key:` line, pasted without its `#`, breaks it at that line.
    const pasted = `${files[0]}Public key: ${expected[0]}\n${files[1]}`;
    expect(parseIdentityFile(pasted)).toMatchObject({ state: "invalid", line: 4 });
  });
});
