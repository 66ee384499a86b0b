import * as fs from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { SECRET_FORMATS, type SecretFormat } from "../src/core/model.js";
import {
  ageRecipients,
  ENC_TYPES,
  type EncType,
  lookupKey,
  MAX_DEPTH,
  MAX_INPUT_BYTES,
  parseSopsFile,
  recipientCounts,
  type SopsDocument,
  type SopsParse,
} from "../src/sops/parse.js";

const ASSETS = new URL("./fixtures/sops-nix/test-assets/", import.meta.url);
const asset = (name: string): string => fs.readFileSync(new URL(name, ASSETS), "utf8");

const AGE_TEST = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw";
const AGE_SSH = "age1a8pk4akrdamj7nvqy3zywgtny8dxz7t5xzu7u8v9mhrayp9freqsqatyrs";
const ENC = (type: string, data = "QUJD"): string =>
  `ENC[AES256_GCM,data:${data},iv:voX4IQemcgt0O97oLExy5r2V85nn687cIyWmHNDhUag=,tag:R97qy4fKneU7D9UFhXNvgA==,type:${type}]`;
const META = {
  sops: {
    age: [{ recipient: AGE_TEST, enc: "-----BEGIN AGE ENCRYPTED FILE-----\nx\n" }],
    lastmodified: "2024-01-02T03:04:05Z",
    mac: ENC("str"),
    version: "3.9.0",
  },
};

function ok(parse: SopsParse): SopsDocument {
  if (!parse.ok) throw new Error(`expected ok, got: ${parse.reason}`);
  return parse.document;
}

function reasonOf(parse: SopsParse): string {
  if (parse.ok) throw new Error("expected a failure");
  return parse.reason;
}

describe("real sops-nix fixtures", () => {
  it("secrets.yaml: keys, types and both age recipients", () => {
    const doc = ok(parseSopsFile(asset("secrets.yaml"), "yaml"));
    expect([...doc.tree.entries.keys()]).toEqual(["test_key", "a_list", "nested"]);
    expect(lookupKey(doc, "test_key")).toEqual({ kind: "found", node: { kind: "enc", type: "str" } });
    expect(lookupKey(doc, "nested/test/file")).toEqual({ kind: "found", node: { kind: "enc", type: "str" } });
    expect(lookupKey(doc, "a_list")).toMatchObject({ kind: "found", node: { kind: "list" } });
    expect(lookupKey(doc, "nested")).toMatchObject({ kind: "found", node: { kind: "map" } });
    expect(lookupKey(doc, "nested/nope")).toEqual({ kind: "absent", at: "nested/nope", why: "missing" });
    expect(lookupKey(doc, "test_key/deeper")).toEqual({ kind: "absent", at: "test_key", why: "not-a-map" });
    expect(lookupKey(doc, "")).toEqual({ kind: "whole-file" });
    expect(ageRecipients(doc)).toEqual([AGE_TEST, AGE_SSH]);
    expect(recipientCounts(doc)).toEqual({ age: 2, pgp: 2 });
    expect(doc.metadata.recipients.filter((r) => r.kind === "pgp").map((r) => r.id)).toEqual([
      "7FB89715AADA920D65D25E63F9BA9DEBD03F57C0",
      "2504791468B153B8A3963CC97BA53D1919C5DFD4",
    ]);
    expect(doc.metadata.lastModified).toBe(Date.parse("2021-09-30T19:49:41Z") / 1000);
    expect(doc.metadata.recipients.every((r) => r.hasEnc)).toBe(true);
  });

  it("secrets.json", () => {
    const doc = ok(parseSopsFile(asset("secrets.json"), "json"));
    expect(lookupKey(doc, "test_key")).toEqual({ kind: "found", node: { kind: "enc", type: "str" } });
    expect(recipientCounts(doc)).toEqual({ pgp: 1 });
    expect(doc.metadata.lastModified).toBe(Date.parse("2020-07-03T08:21:21Z") / 1000);
  });

  it("secrets.bin (binary): a data value; keys are ignored", () => {
    const doc = ok(parseSopsFile(asset("secrets.bin"), "binary"));
    expect(doc.tree.entries.get("data")).toEqual({ kind: "enc", type: "str" });
    expect(lookupKey(doc, "anything")).toEqual({ kind: "whole-file" });
    expect(recipientCounts(doc)).toEqual({ pgp: 1 });
  });

  it("secrets.env (dotenv): flat sops_ metadata, comment lines skipped", () => {
    const doc = ok(parseSopsFile(asset("secrets.env"), "dotenv"));
    expect([...doc.tree.entries.keys()]).toEqual([
      "hello",
      "example_key",
      "example_multiline",
      "never_gonna",
    ]);
    expect(doc.tree.entries.get("hello")).toEqual({ kind: "enc", type: "str" });
    expect(doc.metadata.recipients.map((r) => [r.kind, r.id, r.hasEnc])).toEqual([
      ["pgp", "7FB89715AADA920D65D25E63F9BA9DEBD03F57C0", true],
      ["pgp", "2504791468B153B8A3963CC97BA53D1919C5DFD4", true],
    ]);
    expect(doc.metadata.lastModified).toBe(Date.parse("2023-01-17T12:33:06Z") / 1000);
    expect(lookupKey(doc, "hello")).toEqual({ kind: "whole-file" });
  });

  it("secrets.ini: sections, [sops] metadata", () => {
    const doc = ok(parseSopsFile(asset("secrets.ini"), "ini"));
    expect([...doc.tree.entries.keys()]).toEqual(["Welcome!"]);
    expect(recipientCounts(doc)).toEqual({ pgp: 2 });
    expect(doc.metadata.lastModified).toBe(Date.parse("2023-01-17T13:07:01Z") / 1000);
  });

  it("flat formats carry age and key_groups recipients too, the top-level lists winning as in sops", () => {
    const env = [
      `token=${ENC("str")}`,
      `sops_age__list_0__map_recipient=${AGE_TEST}`,
      "sops_age__list_0__map_enc=-----BEGIN AGE ENCRYPTED FILE-----\\nx\\n",
      `sops_key_groups__list_0__map_age__list_0__map_recipient=${AGE_SSH}`,
      "sops_key_groups__list_0__map_age__list_0__map_enc=x",
      "sops_lastmodified=2024-01-02T03:04:05Z",
    ].join("\n");
    const doc = ok(parseSopsFile(env, "dotenv"));
    // sops stores/stores.go:377-399: a non-empty top-level list wins and key_groups are ignored.
    expect(ageRecipients(doc)).toEqual([AGE_TEST]);
    expect(doc.metadata.keyGroups).toBe(1);
    const groupsOnly = env
      .split("\n")
      .filter((l) => !l.startsWith("sops_age__"))
      .join("\n");
    const grouped = ok(parseSopsFile(groupsOnly, "dotenv"));
    expect(ageRecipients(grouped)).toEqual([AGE_SSH]);
    expect(grouped.metadata.recipients.map((r) => r.group)).toEqual([0]);
    const ini = `[app]\nk = ${ENC("str")}\n[sops]\nage__list_0__map_recipient = ${AGE_SSH}\nage__list_0__map_enc = x\n`;
    expect(ageRecipients(ok(parseSopsFile(ini, "ini")))).toEqual([AGE_SSH]);
  });
});

describe("recipient kinds", () => {
  it("distinguishes X25519, post-quantum, plugin and native ssh recipients, and counts the services", () => {
    const sops = {
      age: [
        { recipient: AGE_TEST, enc: "x" },
        { recipient: "age1pq1qqqqqqqqqqqqqqqq", enc: "x" },
        { recipient: "age1yubikey1qqqqqqqqqqqqqqqqqqqqq", enc: "x" },
        {
          recipient: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBI1+Q+ntzANebtnicCiAY29uqLGWOaOGLEa8bUqOVmS",
          enc: "x",
        },
        { recipient: "ssh-rsa AAAAB3NzaC1yc2E", enc: "x" },
        { recipient: AGE_SSH },
      ],
      kms: [{ arn: "arn:aws:kms:x", enc: "x" }],
      gcp_kms: [{ resource_id: "r", enc: "x" }],
      azure_kv: [{ vault_url: "u", enc: "x" }],
      hc_vault: [{ vault_address: "v", enc: "x" }],
      lastmodified: "not a date",
    };
    const doc = ok(parseSopsFile(JSON.stringify({ a: ENC("str"), sops }), "json"));
    expect(recipientCounts(doc)).toEqual({
      age: 2,
      age_pq: 1,
      age_plugin: 1,
      ssh_ed25519: 1,
      ssh_rsa: 1,
      kms: 1,
      gcp_kms: 1,
      azure_kv: 1,
      hc_vault: 1,
    });
    // The entry without `enc` cannot decrypt, so it is not a usable recipient.
    expect(ageRecipients(doc)).toEqual([AGE_TEST]);
    expect(doc.metadata.lastModified).toBeNull();
  });

  it("reads every ENC type and unencrypted values", () => {
    const data: Record<string, unknown> = Object.fromEntries(ENC_TYPES.map((t) => [t, ENC(t)]));
    data.plain_unencrypted = "hello";
    data.n_unencrypted = 3;
    const doc = ok(parseSopsFile(stringify({ ...data, ...META }), "yaml"));
    for (const t of ENC_TYPES)
      expect(lookupKey(doc, t)).toEqual({ kind: "found", node: { kind: "enc", type: t } });
    expect(lookupKey(doc, "plain_unencrypted")).toEqual({
      kind: "found",
      node: { kind: "plain", type: "string" },
    });
    expect(lookupKey(doc, "n_unencrypted")).toEqual({
      kind: "found",
      node: { kind: "plain", type: "number" },
    });
  });
});

describe("bad and hostile input", () => {
  const yaml = (body: string): SopsParse =>
    parseSopsFile(`${body}\nsops:\n  lastmodified: "2024-01-01T00:00:00Z"\n`, "yaml");

  it.each([
    ["an empty file", "", "yaml", /empty/],
    ["a top-level list", "- a\n- b\n", "yaml", /top level is not a map/],
    ["a plaintext file without sops metadata", "password: hunter2\n", "yaml", /no `sops` metadata/],
    ["sops metadata of the wrong type", "a: 1\nsops: 3\n", "yaml", /`sops` metadata is not a map/],
    ["age that is not a list", "sops:\n  age: yes\n", "yaml", /sops\.age is not a list/],
    [
      "a recipient that is not a string",
      "sops:\n  age:\n    - recipient: 3\n",
      "yaml",
      /recipient is not a string/,
    ],
    ["a key group that is not a map", "sops:\n  key_groups: [1]\n", "yaml", /key_groups\[0\] is not a map/],
    ["duplicate YAML keys", "a: 1\na: 2\nsops: {}\n", "yaml", /duplicate key 'a' at line 2/],
    ["duplicate JSON keys", '{"a": 1,\n "a": 2, "sops": {}}', "json", /duplicate key 'a' at line 2/],
    ["duplicate dotenv keys", "a=1\na=2\nsops_version=1\n", "dotenv", /duplicate key a at line 2/],
    [
      "duplicate ini keys",
      "[s]\na = 1\na = 2\n[sops]\nversion = 1\n",
      "ini",
      /duplicate key a in section \[s\] at line 3/,
    ],
    ["invalid JSON", "{a: 1}", "json", /not valid JSON/],
    ["YAML given as json", "a: 1\nsops: {}\n", "json", /not valid JSON/],
    ["a dotenv line without =", "just words\n", "dotenv", /line 1 has no '='/],
    [
      "a huge flattened list index",
      "sops_age__list_999999999__map_recipient=x\n",
      "dotenv",
      /sops_age is incomplete: 1 entries, but index 999999999/,
    ],
    ["a binary file without data", '{"sops": {}}', "binary", /no encrypted `data`/],
    [
      "a malformed ENC value",
      `a: "ENC[AES256_GCM,data:xx]"\nsops: {}\n`,
      "yaml",
      /malformed ENC\[\] value at 'a'/,
    ],
    ["an unknown ENC type", `a: ${ENC("blob")}\nsops: {}\n`, "yaml", /malformed ENC\[\] value at 'a'/],
    ["a YAML syntax error", "a: [1, 2\nsops: {}\n", "yaml", /YAML syntax error \w+ at line \d+/],
    ["NUL bytes", "a: 1\u0000\u0001\u0002", "yaml", /NUL bytes/],
  ] as const)("%s", (_name, text, format, reason) => {
    expect(reasonOf(parseSopsFile(text, format))).toMatch(reason);
  });

  it("refuses YAML aliases without expanding them (billion laughs)", () => {
    const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 10; i++) {
      const prev = String.fromCharCode(96 + i);
      lines.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${prev}`).join(",")}]`,
      );
    }
    expect(reasonOf(yaml(lines.join("\n")))).toMatch(/YAML alias at line 2/);
  });

  it("refuses merge keys (they need aliases)", () => {
    expect(reasonOf(yaml("base: &b {x: 1}\nderived:\n  <<: *b\n"))).toMatch(/alias/);
  });

  it("refuses a file over the size limit without parsing it", () => {
    expect(reasonOf(parseSopsFile("#".repeat(MAX_INPUT_BYTES + 1), "yaml"))).toMatch(/larger than/);
  });

  // The pre-scan's reason, not the yaml package's: the package (slow on tiny tokens) never saw the text.
  // How long the refusal takes is measured in `npm run bench` (hardening), never asserted here.
  it("refuses too many tokens before the yaml package parses them (it is slow on tiny tokens)", () => {
    expect(reasonOf(parseSopsFile("a: b\n".repeat(200_000), "yaml"))).toMatch(/more than \d+ lines/);
  });

  it.each([
    ["flow nesting", "[".repeat(100_000), "yaml"],
    ["JSON nesting", `${'{"a":'.repeat(5000)}1${"}".repeat(5000)}`, "json"],
    ["block sequence nesting", `a:\n  ${"- ".repeat(50_000)}x\n`, "yaml"],
    [
      "indentation nesting",
      Array.from({ length: 2000 }, (_, i) => `${" ".repeat(i)}k${i}:`).join("\n"),
      "yaml",
    ],
  ] as const)("refuses deep %s", (_name, text, format) => {
    expect(reasonOf(parseSopsFile(text, format))).toMatch(/nested|deep/);
  });

  it("refuses compact block sequences nested 50,000 deep every time, before the yaml package sees them", () => {
    // The yaml package's parser aborted Node on the third parse of this text in one process (V8's regexp
    // compiler out of memory): refused by the pre-scan, it can be parsed any number of times.
    const text = `a:\n  ${"- ".repeat(50_000)}x\n`;
    for (let i = 0; i < 5; i++)
      expect(reasonOf(parseSopsFile(text, "yaml"))).toBe(`file is nested deeper than ${MAX_DEPTH} levels`);
  });

  it("never puts a value into a reason", () => {
    const secret = "PLANTED-value-4f4f";
    const cases: [string, SecretFormat][] = [
      [`a: "ENC[AES256_GCM,data:${secret}]"\nsops: {}\n`, "yaml"],
      [`a: ${secret}\na: ${secret}\n`, "yaml"],
      [`a: [${secret}\n`, "yaml"],
      [`{"a": "${secret}", "a": "${secret}"}`, "json"],
      [`{"a": ${secret}}`, "json"],
      [`{"data": "${secret}", "sops": {}}`, "binary"],
      [`${secret}\n`, "dotenv"],
      [`a=${secret}\na=${secret}\n`, "dotenv"],
      [`[s]\n${secret}\n`, "ini"],
      [`a: &x ${secret}\nb: *x\n`, "yaml"],
      [`sops:\n  age:\n    - recipient: [${secret}]\n`, "yaml"],
      [`sops:\n  age: ${secret}\n`, "yaml"],
    ];
    for (const [text, format] of cases) {
      const reason = reasonOf(parseSopsFile(text, format));
      expect(reason).not.toContain(secret);
      expect(reason).not.toContain("PLANTED");
    }
  });

  it("never puts ENC or enc blob text into a reason or the document", () => {
    const text = asset("secrets.yaml");
    const blobs = [...text.matchAll(/data:([A-Za-z0-9+/=]{8,})/g)].map((m) => m[1] ?? "");
    const broken = `${text.replace("type:str]", "type:nope]")}`;
    const reason = reasonOf(parseSopsFile(broken, "yaml"));
    const doc = JSON.stringify(ok(parseSopsFile(text, "yaml")), (_k, v: unknown) =>
      v instanceof Map ? [...v] : v,
    );
    for (const blob of blobs) {
      expect(reason).not.toContain(blob);
      expect(doc).not.toContain(blob);
    }
    expect(doc).not.toContain("BEGIN AGE ENCRYPTED FILE");
    expect(doc).not.toContain("BEGIN PGP MESSAGE");
  });
});

describe("properties", () => {
  const formats = fc.constantFrom(...SECRET_FORMATS);

  function bounded(text: string, format: SecretFormat): void {
    const result = parseSopsFile(text, format);
    expect(typeof result.ok).toBe("boolean");
    if (!result.ok) expect(result.reason.length).toBeLessThan(300);
  }

  it("arbitrary strings never throw", () => {
    fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 400 }), formats, bounded), { numRuns: 500 });
  });

  it("arbitrary line-structured text never throws", () => {
    const line = fc.stringMatching(/^[ a-z_:=[\]{}\-#&*!|>'",.0-9]{0,30}$/);
    fc.assert(
      fc.property(fc.array(line, { maxLength: 30 }), formats, (lines, format) =>
        bounded(lines.join("\n"), format),
      ),
      { numRuns: 500 },
    );
  });

  it("arbitrary JSON, as JSON and as YAML, never throws", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), formats, (value, format) => {
        bounded(JSON.stringify(value), format);
        bounded(stringify(value), format);
        bounded(JSON.stringify({ data: value, sops: value }), format);
      }),
      { numRuns: 300 },
    );
  });

  // A generated sops-like tree: maps of maps with ENC leaves (and lists, which keys cannot reach).
  type Gen = { [k: string]: Gen | string | string[] };
  const keyArb = fc.stringMatching(/^[a-zA-Z0-9_.-]{1,12}$/).filter((k) => k !== "sops");
  const leafArb = fc.constantFrom(...ENC_TYPES).map((t) => ENC(t));
  const treeArb = fc.letrec<{ tree: Gen; node: Gen | string | string[] }>((tie) => ({
    tree: fc.dictionary(keyArb, tie("node"), { minKeys: 1, maxKeys: 5 }) as fc.Arbitrary<Gen>,
    node: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      leafArb,
      fc.array(leafArb, { maxLength: 3 }),
      tie("tree"),
    ),
  })).tree;

  function leaves(tree: Gen, prefix: string[] = []): [string, EncType][] {
    return Object.entries(tree).flatMap(([k, v]): [string, EncType][] => {
      if (typeof v === "string")
        return [[[...prefix, k].join("/"), /type:([a-z]+)\]$/.exec(v)?.[1] as EncType]];
      if (Array.isArray(v)) return [];
      return leaves(v, [...prefix, k]);
    });
  }

  it("round-trip: every generated key is found with its type, in yaml and json", () => {
    fc.assert(
      fc.property(treeArb, (tree) => {
        const expected = leaves(tree).filter(([path]) => !path.split("/").some((p) => p === ""));
        for (const [text, format] of [
          [stringify({ ...tree, ...META }), "yaml"],
          [JSON.stringify({ ...tree, ...META }, null, "\t"), "json"],
        ] as const) {
          const doc = ok(parseSopsFile(text, format));
          expect(ageRecipients(doc)).toEqual([AGE_TEST]);
          for (const [path, type] of expected) {
            expect(lookupKey(doc, path)).toEqual({ kind: "found", node: { kind: "enc", type } });
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});
