// Issue 11: the ENC[] values of a sops file are typed without a regexp match array per value, and the key
// path of a value is built only when it is refused. The verdicts must be those of the capturing regexp the
// parser used before, on generated well-formed and malformed values, nested in maps and lists.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ENC_TYPES,
  type KeyLookup,
  lookupKey,
  parseSopsFile,
  type SopsDocument,
  type SopsNode,
} from "../src/sops/parse.js";

// The rule before the change, as the reference.
const ENC_RE =
  /^ENC\[AES256_GCM,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]+,tag:[A-Za-z0-9+/=]+,type:([a-z]+)\]$/;

const b64 = fc.stringMatching(/^[A-Za-z0-9+/=]{0,12}$/);
const encValue = fc
  .record({
    data: b64,
    iv: b64,
    tag: b64,
    type: fc.constantFrom(...ENC_TYPES, "foo", "STR", "s", "strx", "str:str", ""),
    tail: fc.constantFrom("]", "]", "]", "]x", ""),
    head: fc.constantFrom("ENC[AES256_GCM,", "ENC[AES256_GCM,", "ENC[AES128,"),
  })
  .map((v) => `${v.head}data:${v.data},iv:${v.iv},tag:${v.tag},type:${v.type}${v.tail}`);

const META = `sops:
    age:
        - recipient: age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw
          enc: |
            -----BEGIN AGE ENCRYPTED FILE-----
            x
            -----END AGE ENCRYPTED FILE-----
    lastmodified: "2026-11-01T10:00:00Z"
    version: 3.9.4
`;

/** The reference verdict of one value: its node type, or the refusal naming its path. */
function expected(value: string, path: string): { type: string } | { refused: string } {
  const type = ENC_RE.exec(value)?.[1];
  return type !== undefined && (ENC_TYPES as readonly string[]).includes(type)
    ? { type }
    : { refused: `malformed ENC[] value at '${path}'` };
}

describe("ENC[] values", () => {
  it("property: typed exactly as the capturing regexp did, at the top level and nested", () => {
    fc.assert(
      fc.property(encValue, fc.constantFrom("top", "nested", "list"), (value, where) => {
        // Quoted, so that every generated value is a YAML string (one ending in `:` would not be).
        const yaml =
          where === "top"
            ? `a: "${value}"\n`
            : where === "nested"
              ? `svc:\n    a: "${value}"\n`
              : `svc:\n    - "${value}"\n`;
        const path = where === "top" ? "a" : where === "nested" ? "svc/a" : "svc/0";
        const parsed = parseSopsFile(`${yaml}${META}`, "yaml");
        const want = expected(value, path);
        if ("refused" in want) {
          expect(parsed).toEqual({ ok: false, reason: want.refused });
          return;
        }
        expect(parsed.ok).toBe(true);
        if (!parsed.ok) return;
        const top = parsed.document.tree.entries.get(where === "top" ? "a" : "svc") as SopsNode;
        const node = top.kind === "map" ? top.entries.get("a") : top.kind === "list" ? top.items[0] : top;
        expect(node).toEqual({ kind: "enc", type: want.type });
      }),
      { numRuns: 2000 },
    );
  });
});

// lookupKey walks `a/b/c` along the slashes without an array of parts (issue 11); the reference is the
// split-based walk it replaced.
function lookupBySplit(tree: SopsNode, key: string): KeyLookup {
  const parts = key.split("/");
  let node = tree;
  for (let i = 0; i < parts.length; i++) {
    if (node.kind !== "map") return { kind: "absent", at: parts.slice(0, i).join("/"), why: "not-a-map" };
    const next = node.entries.get(parts[i] ?? "");
    if (next === undefined) return { kind: "absent", at: parts.slice(0, i + 1).join("/"), why: "missing" };
    node = next;
  }
  return { kind: "found", node };
}

describe("lookupKey", () => {
  const leaf: SopsNode = { kind: "enc", type: "str" };
  const tree = fc.letrec<{ node: SopsNode }>((tie) => ({
    node: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      fc.constant(leaf),
      fc
        .array(fc.tuple(fc.constantFrom("a", "b", "", "c.d"), tie("node")), { maxLength: 3 })
        .map((entries): SopsNode => ({ kind: "map", entries: new Map(entries) })),
    ),
  })).node;
  const key = fc
    .array(fc.constantFrom("a", "b", "", "c.d", "x"), { minLength: 1, maxLength: 4 })
    .map((parts) => parts.join("/"));

  it("property: walks as the split-based lookup did", () => {
    fc.assert(
      fc.property(tree, key, (root, k) => {
        if (root.kind !== "map" || k === "") return;
        const document: SopsDocument = {
          format: "yaml",
          tree: root,
          metadata: { recipients: [], lastModified: null, keyGroups: 0, shamirThreshold: null },
        };
        expect(lookupKey(document, k)).toEqual(lookupBySplit(root, k));
      }),
      { numRuns: 3000 },
    );
  });
});
