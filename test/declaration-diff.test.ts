import { describe, expect, it } from "vitest";
import { changeSummary, type DeclarationChange, diffDeclarations } from "../src/core/declaration-diff.js";
import { parseManifest } from "../src/core/manifest.js";
import type { DeclaredScope, DeclaredSecret, DeclaredTemplate } from "../src/core/model.js";
import { declaredScope, declaredSecret, declaredTemplate } from "../src/example/declared.js";

const STORE = "/nix/store/11111111111111111111111111111111-secrets.yaml";
const HASH = "e1556cc60fd41c8da9a339afd3ea6d3cb86cb86b21d8c5c4d080be6c2633884d";

function scope(secrets: DeclaredSecret[], templates: DeclaredTemplate[] = []): DeclaredScope {
  return declaredScope(secrets, { templates });
}

const base = declaredSecret("db", { sopsFileHash: HASH });
const tpl = declaredTemplate("app.env", { source: { kind: "content", sha256: "a".repeat(64) } });

type Row = readonly [string, DeclaredScope | null, DeclaredScope | null, DeclarationChange[]];

const rows: Row[] = [
  ["identical scopes", scope([base], [tpl]), scope([base], [tpl]), []],
  [
    "a secret added",
    scope([base]),
    scope([base, declaredSecret("api")]),
    [{ change: "added", kind: "secret", name: "api" }],
  ],
  [
    "a secret removed",
    scope([base, declaredSecret("api")]),
    scope([base]),
    [{ change: "removed", kind: "secret", name: "api" }],
  ],
  [
    "a template added",
    scope([base]),
    scope([base], [tpl]),
    [{ change: "added", kind: "template", name: "app.env" }],
  ],
  [
    "a scope that appears: everything added",
    null,
    scope([base], [tpl]),
    [
      { change: "added", kind: "secret", name: "db" },
      { change: "added", kind: "template", name: "app.env" },
    ],
  ],
  [
    "a scope that vanishes: everything removed",
    scope([base], [tpl]),
    null,
    [
      { change: "removed", kind: "secret", name: "db" },
      { change: "removed", kind: "template", name: "app.env" },
    ],
  ],
  [
    "re-encrypted sops file: hash differs",
    scope([base]),
    scope([{ ...base, sopsFileHash: "b".repeat(64) }]),
    [{ change: "rekeyed", kind: "secret", name: "db", fields: ["sopsFileHash"] }],
  ],
  [
    "another sops file",
    scope([base]),
    scope([{ ...base, sopsFile: STORE, sopsFileHash: "c".repeat(64) }]),
    [{ change: "rekeyed", kind: "secret", name: "db", fields: ["sopsFile", "sopsFileHash"] }],
  ],
  [
    "another key",
    scope([base]),
    scope([{ ...base, key: "db/password" }]),
    [{ change: "rekeyed", kind: "secret", name: "db", fields: ["key"] }],
  ],
  [
    "another format",
    scope([base]),
    scope([{ ...base, format: "binary" }]),
    [{ change: "rekeyed", kind: "secret", name: "db", fields: ["format"] }],
  ],
  [
    "owner by name instead of id",
    scope([base]),
    scope([{ ...base, owner: { kind: "name", name: "root" } }]),
    [{ change: "access", kind: "secret", name: "db", fields: ["owner"] }],
  ],
  [
    "another group id",
    scope([base]),
    scope([{ ...base, group: { kind: "id", id: 1 } }]),
    [{ change: "access", kind: "secret", name: "db", fields: ["group"] }],
  ],
  [
    "another mode",
    scope([base]),
    scope([{ ...base, mode: 0o440, modeText: "0440" }]),
    [{ change: "access", kind: "secret", name: "db", fields: ["mode"] }],
  ],
  ["the same mode spelled differently", scope([base]), scope([{ ...base, modeText: "400" }]), []],
  [
    "another path",
    scope([base]),
    scope([{ ...base, path: "/etc/db" }]),
    [{ change: "moved", kind: "secret", name: "db" }],
  ],
  [
    "template content edited",
    scope([], [tpl]),
    scope([], [{ ...tpl, source: { kind: "content", sha256: "d".repeat(64) } }]),
    [{ change: "template-source", kind: "template", name: "app.env", from: "content", to: "content" }],
  ],
  [
    "template moved from content to a file",
    scope([], [tpl]),
    scope([], [{ ...tpl, source: { kind: "file", path: STORE } }]),
    [{ change: "template-source", kind: "template", name: "app.env", from: "content", to: "file" }],
  ],
  [
    "template owner and mode changed",
    scope([], [tpl]),
    scope([], [{ ...tpl, owner: { kind: "id", id: 5 }, mode: 0o440 }]),
    [{ change: "access", kind: "template", name: "app.env", fields: ["owner", "mode"] }],
  ],
  [
    "several changes, sorted by kind, name, change",
    scope([declaredSecret("b"), declaredSecret("z")], [tpl]),
    scope([declaredSecret("a"), { ...declaredSecret("b"), key: "k", mode: 0o444, path: "/b" }], []),
    [
      { change: "added", kind: "secret", name: "a" },
      { change: "moved", kind: "secret", name: "b" },
      { change: "rekeyed", kind: "secret", name: "b", fields: ["key"] },
      { change: "access", kind: "secret", name: "b", fields: ["mode"] },
      { change: "removed", kind: "secret", name: "z" },
      { change: "removed", kind: "template", name: "app.env" },
    ],
  ],
];

describe("diffDeclarations", () => {
  it.each(rows)("%s", (_, before, after, expected) => {
    expect(diffDeclarations(before, after)).toEqual(expected);
  });

  it("names a secret and a template of the same name apart", () => {
    const changes = diffDeclarations(scope([declaredSecret("x")]), scope([], [declaredTemplate("x")]));
    expect(changes).toEqual([
      { change: "removed", kind: "secret", name: "x" },
      { change: "added", kind: "template", name: "x" },
    ]);
  });

  it("compares parsed manifests: an edited template content and a re-encrypted file, never their text", () => {
    const ctx = {
      manifestPath: "/m.json",
      scope: "system",
      platform: "linux",
      user: null,
      runtimeDir: null,
    } as const;
    const manifest = (content: string, hash: string) =>
      JSON.stringify({
        secretsMountPoint: "/run/secrets.d",
        symlinkPath: "/run/secrets",
        secrets: [{ name: "db", key: "db", sopsFile: STORE, sopsFileHash: hash, mode: "0400" }],
        templates: [{ name: "t", mode: "0400", content, file: "/nix/store/x-t" }],
      });
    const parse = (text: string) => {
      const r = parseManifest(text, ctx);
      if (!r.ok) throw new Error(r.error.message);
      return r.scope;
    };
    const changes = diffDeclarations(
      parse(manifest("pw = SECRET-ONE", HASH)),
      parse(manifest("pw = SECRET-TWO", "e".repeat(64))),
    );
    expect(changes.map((c) => `${c.kind} ${c.name}: ${changeSummary(c)}`)).toEqual([
      "secret db: re-keyed (sopsFileHash)",
      "template t: template content changed",
    ]);
    expect(JSON.stringify(changes)).not.toMatch(/SECRET-/);
  });
});

describe("changeSummary", () => {
  it.each([
    [{ change: "added", kind: "secret", name: "a" }, "added"],
    [{ change: "removed", kind: "template", name: "a" }, "removed"],
    [{ change: "moved", kind: "secret", name: "a" }, "moved"],
    [
      { change: "rekeyed", kind: "secret", name: "a", fields: ["sopsFile", "key"] },
      "re-keyed (sopsFile, key)",
    ],
    [{ change: "access", kind: "secret", name: "a", fields: ["owner", "mode"] }, "owner, mode changed"],
    [
      { change: "template-source", kind: "template", name: "a", from: "file", to: "file" },
      "template file changed",
    ],
    [
      { change: "template-source", kind: "template", name: "a", from: "none", to: "content" },
      "template source changed (none → content)",
    ],
  ] satisfies [DeclarationChange, string][])("%o → %s", (change, text) => {
    expect(changeSummary(change)).toBe(text);
  });
});
