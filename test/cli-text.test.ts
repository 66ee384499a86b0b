// The small text helpers of the command line: the one duration grammar, JSON error locations, and the
// terminal escaping of host text.

import { describe, expect, it } from "vitest";
import { escapeTerminal } from "../src/cli/terminal.js";
import { formatDuration, parseDuration } from "../src/core/duration.js";
import { jsonSyntaxError } from "../src/core/json-syntax.js";

describe("parseDuration", () => {
  it.each([
    ["30s", 30_000],
    ["1m30s", 90_000],
    ["1h0m0s", 3_600_000],
    ["500ms", 500],
    ["1.5s", 1500],
    ["2h", 7_200_000],
    ["1d", 86_400_000],
    ["30", 30_000],
    ["0", 0],
    [" 2m ", 120_000],
  ])("%j is %d ms", (text, ms) => {
    expect(parseDuration(text)).toEqual({ ok: true, ms });
  });

  it.each([
    ["-5s", "must not be negative"],
    ["soon", "is not a duration"],
    ["1m30", "is not a duration"],
    ["5 s", "is not a duration"],
    ["", "is not a duration"],
    ["1x", "is not a duration"],
  ])("%j is refused: %s", (text, reason) => {
    const d = parseDuration(text);
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.reason).toContain(reason);
  });

  // The exporter-toolkit web config is read by Go's time.ParseDuration: same grammar, Go's units only.
  it.each([
    ["1s", 1000],
    ["500ms", 500],
    ["1m30s", 90_000],
    ["0", 0],
    ["+2s", 2000],
    [".5s", 500],
    ["1500us", 1.5],
    ["1500\u00b5s", 1.5],
    ["2000000ns", 2],
  ])("Go dialect: %j is %d ms", (text, ms) => {
    expect(parseDuration(text, "go")).toEqual({ ok: true, ms });
  });

  it.each([["1d"], ["30"], [""], ["x"], [" 1s"]])("Go dialect: %j is refused as Go refuses it", (text) => {
    expect(parseDuration(text, "go").ok).toBe(false);
  });

  it.each([
    [0, "0s"],
    [4_200, "4s"],
    [90_000, "1m30s"],
    [3_600_000, "1h"],
    [90_061_000, "1d1h1m1s"],
  ])("formats %d ms as %j, which reads back", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
    const back = parseDuration(text);
    expect(back.ok && back.ms).toBe(Math.floor(ms / 1000) * 1000);
  });
});

describe("jsonSyntaxError", () => {
  it.each([
    ['{"a": 1}', null],
    ["[]", null],
    [' {"a": [1, -2.5e3, true, false, null, "x\\u00e9\\n"]}\n', null],
    ['{"a":}', { line: 1, column: 6, message: "expected a value" }],
    [
      '{"secrets": [\n  {"name": "a",}\n]}',
      { line: 2, column: 16, message: "expected a property name in double quotes" },
    ],
    ['{"a": 1', { line: 1, column: 8, message: "unexpected end of the file" }],
    ['{"a" 1}', { line: 1, column: 6, message: "expected ':' after a property name" }],
    ["[1 2]", { line: 1, column: 4, message: "expected ',' or ']'" }],
    ['{"a": 1} x', { line: 1, column: 10, message: "unexpected text after the document" }],
    ['"\\q"', { line: 1, column: 2, message: "bad escape in a string" }],
    ["", { line: 1, column: 1, message: "unexpected end of the file" }],
    ["{'a': 1}", { line: 1, column: 2, message: "expected a property name in double quotes" }],
  ])("%j", (text, expected) => {
    expect(jsonSyntaxError(text)).toEqual(expected);
    // Agrees with JSON.parse on what is valid.
    let valid = true;
    try {
      JSON.parse(text);
    } catch {
      valid = false;
    }
    expect(expected === null).toBe(valid);
  });

  it("does not overflow on deep nesting", () => {
    expect(jsonSyntaxError(`${"[".repeat(200_000)}${"]".repeat(200_000)}`)).toBeNull();
    expect(jsonSyntaxError("[".repeat(200_000))?.message).toBe("unexpected end of the file");
  });
});

describe("escapeTerminal", () => {
  it.each([
    ["db/password", "db/password"],
    ["a\nb", "a\\nb"],
    ["a\r\tb", "a\\r\\tb"],
    ["\u001b]0;owned\u0007", "\\x1b]0;owned\\x07"],
    ["\u001b[2J", "\\x1b[2J"],
    ["del\u007f", "del\\x7f"],
    ["csi\u009b31m", "csi\\u009b31m"],
    ["nul\u0000", "nul\\x00"],
    ["line\u2028sep", "line\\u2028sep"],
    ["é ü ✓ 秘密", "é ü ✓ 秘密"],
  ])("%j → %j", (raw, shown) => {
    expect(escapeTerminal(raw)).toBe(shown);
  });

  it("leaves no control character, for every code point below U+00A0", () => {
    const all = Array.from({ length: 0xa0 }, (_, i) => String.fromCharCode(i)).join("");
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the assertion is about control characters
    expect(escapeTerminal(all)).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
  });
});
