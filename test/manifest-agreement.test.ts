// Issue 11 made the manifest parser allocate less (field names built only for errors, shared principals
// looked up before they are made, no per-item iterator). Its answers must not change: on generated
// manifests, with every field valid, null, absent or of a wrong type, it returns exactly what the parser
// before the change returned — scope, item errors and document errors alike.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type ManifestContext, parseManifest } from "../src/core/manifest.js";
import { parseManifest as referenceParse } from "./helpers/manifest-reference.js";

const CONTEXTS: ManifestContext[] = [
  { manifestPath: "/m.json", scope: "system", platform: "linux", user: null, runtimeDir: null },
  { manifestPath: "/m.json", scope: "for-users", platform: "linux", user: null, runtimeDir: null },
  {
    manifestPath: "/m.json",
    scope: "user:alice",
    platform: "linux",
    user: { name: "alice", uid: 1000, gid: 100, home: "/home/alice" },
    runtimeDir: "/run/user/1000",
  },
];

/** A field's value: usually a plausible one, sometimes null, absent or of another JSON type. */
function field(valid: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 40, arbitrary: valid },
    { weight: 1, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    {
      weight: 1,
      arbitrary: fc.constantFrom("", "x", 1, -1, 1.5, true, [], ["a"], [1], {}, 2 ** 60),
    },
  );
}

const name = fc.constantFrom("a", "b", "db/password", "svc0/secret-0", "", "c");
const units = fc.array(fc.constantFrom("nginx.service", "x.service"), { maxLength: 2 });

function item(kind: "secret" | "template"): fc.Arbitrary<unknown> {
  const common = {
    name: field(name),
    path: field(fc.constantFrom("/run/x", "%r/x", "%%r/y", "")),
    mode: field(
      fc.oneof(
        { weight: 8, arbitrary: fc.constantFrom("0400", "0440", "2750") },
        { weight: 1, arbitrary: fc.constantFrom("777777", "0o400", "abc", "") },
      ),
    ),
    owner: field(fc.constantFrom("root", "alice", "")),
    uid: field(fc.constantFrom(0, 1000)),
    group: field(fc.constantFrom("root", "users", "")),
    gid: field(fc.constantFrom(0, 100)),
    restartUnits: field(units),
    reloadUnits: field(units),
  };
  const own: Record<string, fc.Arbitrary<unknown>> = kind === "secret"
    ? {
        key: field(fc.constantFrom("a", "", "x/y")),
        format: field(fc.constantFrom("yaml", "json", "binary", "dotenv", "ini", "toml", "")),
        sopsFile: field(fc.constantFrom("/nix/store/a.yaml", "/nix/store/b.yaml", "")),
        sopsFileHash: field(fc.constantFrom("", "abc")),
      }
    : {
        content: field(fc.constantFrom("", "hello <SOPS:x:PLACEHOLDER>")),
        file: field(fc.constantFrom("", "/nix/store/t")),
      };
  return fc.oneof(
    { weight: 12, arbitrary: fc.record({ ...common, ...own }, { requiredKeys: [] }) },
    { weight: 1, arbitrary: fc.constantFrom(null, "x", 1, []) },
  );
}

const manifest = fc.record(
  {
    secrets: field(fc.array(item("secret"), { maxLength: 8 })),
    templates: field(fc.array(item("template"), { maxLength: 3 })),
    symlinkPath: field(fc.constantFrom("/run/secrets", "%r/secrets")),
    secretsMountPoint: field(fc.constantFrom("/run/secrets.d", "%r/secrets.d")),
    userMode: field(fc.boolean()),
    ageKeyFile: field(fc.constantFrom("/var/lib/sops-nix/key.txt", "")),
    ageSshKeyPaths: field(fc.array(fc.constantFrom("/etc/ssh/ssh_host_ed25519_key"), { maxLength: 2 })),
    sshKeyPaths: field(fc.array(fc.constantFrom("/etc/ssh/ssh_host_rsa_key"), { maxLength: 1 })),
    gnupgHome: field(fc.constantFrom("/root/.gnupg", "")),
    keepGenerations: field(fc.constantFrom(0, 1, 5)),
  },
  { requiredKeys: [] },
);

describe("manifest parser agreement with the parser before issue 11", () => {
  it("property: the same result on generated manifests, in every scope", () => {
    let declaredSeveral = 0;
    let refusedItems = 0;
    fc.assert(
      fc.property(
        fc.oneof(
          { weight: 20, arbitrary: manifest },
          { weight: 1, arbitrary: fc.constantFrom(null, [], "x") },
        ),
        fc.constantFrom(...CONTEXTS),
        (doc, ctx) => {
          const text = JSON.stringify(doc);
          const result = parseManifest(text, ctx);
          expect(result).toEqual(referenceParse(text, ctx));
          if (result.ok && result.scope.secrets.length >= 2) declaredSeveral++;
          if (result.ok && result.itemErrors.length > 0) refusedItems++;
        },
      ),
      { numRuns: 3000 },
    );
    // Not vacuous: many runs declare several secrets side by side, many refuse some items.

    expect(declaredSeveral).toBeGreaterThan(150);
    expect(refusedItems).toBeGreaterThan(300);
  });

  it("agrees on text that is not JSON", () => {
    for (const text of ["", "{", "[1,", "nul"])
      expect(parseManifest(text, CONTEXTS[0] as ManifestContext)).toEqual(
        referenceParse(text, CONTEXTS[0] as ManifestContext),
      );
  });
});
