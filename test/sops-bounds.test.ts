// The pre-parse bounds of a sops file (size, NUL, structure count, nesting) are taken with native searches
// and a shortcut (issue 11): they must refuse exactly what the character-by-character scan refuses, with
// the same reason, on generated texts that sit around every bound and on the real sops files of the tests.

import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { boundsRefusal, boundsRefusalExact, MAX_DEPTH, MAX_STRUCTURE } from "../src/sops/parse.js";

const LIMIT = MAX_DEPTH * 4;

/** Pieces that move every counter: brackets, closers, line-head dashes, separators, NUL, plain text. */
const piece = fc.oneof(
  fc.constantFrom("[", "{", "]", "}", "- ", "-\t", "-", " ", "\t", "\n", ",", "a", "ENC[x,y]", "\u0000", "#"),
  fc
    .integer({ min: LIMIT - 3, max: LIMIT + 3 })
    .chain((n) =>
      fc.constantFrom(
        "[".repeat(n),
        "{".repeat(n),
        "- ".repeat(n),
        "-\t".repeat(n),
        "[]".repeat(n),
        " - ".repeat(n),
      ),
    ),
);
const text = fc.array(piece, { maxLength: 40 }).map((ps) => ps.join(""));

describe("sops file bounds", () => {
  it("property: the fast bounds agree with the exact scan", () => {
    fc.assert(
      fc.property(text, (t) => {
        expect(boundsRefusal(t)).toBe(boundsRefusalExact(t));
      }),
      { numRuns: 3000 },
    );
  });

  it.each([
    ["lines", "\n"],
    ["separators", ","],
    ["brackets", "["],
    ["braces", "{"],
  ])("agrees around the structure bound (%s)", (_, c) => {
    for (const n of [MAX_STRUCTURE - 1, MAX_STRUCTURE, MAX_STRUCTURE + 1]) {
      const t = `a: b\n${c.repeat(n - 1)}`;
      expect(boundsRefusal(t)).toBe(boundsRefusalExact(t));
    }
    expect(boundsRefusal(`${c.repeat(MAX_STRUCTURE + 1)}`)).toMatch(/more than 100000 lines and separators/);
  });

  it("refuses deep nesting by the same rule, including dashes spread over lines", () => {
    const deep = `${"- ".repeat(LIMIT + 1)}x\n`;
    expect(boundsRefusal(deep)).toMatch(/nested deeper than 64 levels/);
    // Many dashes in total, but no line deeper than the bound: accepted by both.
    const wide = `${"- x\n".repeat(LIMIT * 3)}`;
    expect(boundsRefusal(wide)).toBeNull();
    expect(boundsRefusalExact(wide)).toBeNull();
    // Many brackets, closed again: accepted by both.
    const flat = "[x]".repeat(LIMIT * 3);
    expect(boundsRefusal(flat)).toBeNull();
    expect(boundsRefusalExact(flat)).toBeNull();
  });

  it("agrees on every sops file among the test fixtures", () => {
    const dir = fileURLToPath(new URL("./fixtures", import.meta.url));
    const files = walk(dir).filter((f) => /\.(ya?ml|json|env|ini)$/.test(f));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const t = fs.readFileSync(f, "utf8");
      expect(boundsRefusal(t), f).toBe(boundsRefusalExact(t));
    }
  });
});

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : e.isFile() ? [p] : [];
  });
}
