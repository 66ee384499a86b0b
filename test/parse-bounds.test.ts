// Issue 9.3: the flat formats' metadata (`sops_age__list_0__map_recipient=…`) is unflattened with work
// linear in the input, whatever indices a hostile file names. Work is counted (nodes placed, list slots
// allocated), never timed.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseSopsFile, type SopsParse, type WorkMeter } from "../src/sops/parse.js";

const AGE = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw";

function reasonOf(p: SopsParse): string {
  return p.ok ? "" : p.reason;
}

function metered(text: string, format: "dotenv" | "ini"): { parse: SopsParse; units: number } {
  const meter: WorkMeter = { units: 0 };
  const parse = parseSopsFile(text, format, meter);
  return { parse, units: meter.units };
}

describe("flattened metadata (dotenv, ini)", () => {
  it("refuses the list-index bomb as sops does ('Incomplete list'), allocating one slot per entry", () => {
    // 20,000 lines naming index 9,999 of 20,000 different lists: 200 million slots with dense arrays.
    const lines = Array.from({ length: 20_000 }, (_, i) => `sops_k${i}__list_9999=x`);
    const text = `a=1\n${lines.join("\n")}\n`;
    const { parse, units } = metered(text, "dotenv");
    expect(reasonOf(parse)).toMatch(/metadata list sops_k\d+ is incomplete: 1 entries, but index 9999/);
    expect(units).toBeLessThanOrEqual(text.length);
  });

  it("refuses a list with a gap, a negative index and a value that is also a map", () => {
    expect(reasonOf(parseSopsFile("sops_age__list_0=a\nsops_age__list_2=b\n", "dotenv"))).toMatch(
      /sops_age is incomplete: 2 entries, but index 2/,
    );
    expect(reasonOf(parseSopsFile("sops_age__list_-1=a\n", "dotenv"))).toMatch(/incomplete/);
    expect(reasonOf(parseSopsFile("sops_a=1\nsops_a__map_b=2\n", "dotenv"))).toMatch(
      /sops_a mixes a value, a map and a list/,
    );
  });

  it("reads a non-number index as 0, as sops' tokenizer does (its Atoi error is ignored)", () => {
    const doc = parseSopsFile(
      `a=1\nsops_age__list_x__map_recipient=${AGE}\nsops_age__list_x__map_enc=e\n`,
      "dotenv",
    );
    expect(doc.ok && doc.document.metadata.recipients).toEqual([
      { kind: "age", id: AGE, hasEnc: true, group: 0 },
    ]);
  });

  it("keeps complete lists in index order whatever the line order", () => {
    const lines = [2, 0, 1].flatMap((i) => [
      `sops_age__list_${i}__map_recipient=${AGE.slice(0, -1)}${i}`,
      `sops_age__list_${i}__map_enc=e`,
    ]);
    const doc = parseSopsFile(`a=1\n${lines.join("\n")}\n`, "dotenv");
    expect(doc.ok && doc.document.metadata.recipients.map((r) => r.id.slice(-1))).toEqual(["0", "1", "2"]);
  });

  const token = fc.oneof(
    fc.stringMatching(/^[a-z]{0,3}$/).map((k) => `__map_${k}`),
    fc.oneof(fc.nat(3), fc.nat(2_000_000_000), fc.constantFrom("x", "-1", "007")).map((i) => `__list_${i}`),
  );
  const key = fc
    .tuple(fc.stringMatching(/^[a-z_]{0,4}$/), fc.array(token, { maxLength: 8 }))
    .map(([head, rest]) => `${head}${rest.join("")}`);
  const entries = fc.array(key, { maxLength: 60 });

  it.each(["dotenv", "ini"] as const)("property (%s): work is at most the input's length", (format) => {
    fc.assert(
      fc.property(entries, (keys) => {
        const body = keys
          .map((k, i) => (format === "dotenv" ? `sops_${k}=v${i}` : `${k} = v${i}`))
          .join("\n");
        const text = format === "dotenv" ? `a=1\n${body}\n` : `[app]\na = 1\n[sops]\n${body}\n`;
        const { units } = metered(text, format);
        expect(units).toBeLessThanOrEqual(text.length);
      }),
      { numRuns: 500 },
    );
  });
});
