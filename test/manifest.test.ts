import * as fs from "node:fs";
import { describe, expect, it } from "vitest";
import {
  type ManifestContext,
  type ManifestItemError,
  manifestErrorMessage,
  parseManifest,
} from "../src/core/manifest.js";
import type { DeclaredScope } from "../src/core/model.js";

const FILE = "/nix/store/00000000000000000000000000000000-manifest.json";

function fixture(name: string): string {
  return fs.readFileSync(new URL(`./fixtures/manifests/${name}`, import.meta.url), "utf8");
}

const SYSTEM: ManifestContext = {
  manifestPath: FILE,
  scope: "system",
  platform: "linux",
  user: null,
  runtimeDir: null,
};
const ALICE = { name: "alice", uid: 1000, gid: 100, home: "/home/alice" };
const ALICE_CTX: ManifestContext = {
  manifestPath: FILE,
  scope: "user:alice",
  platform: "linux",
  user: ALICE,
  runtimeDir: "/run/user/1000",
};

function parsed(text: string, ctx: ManifestContext = SYSTEM): DeclaredScope {
  const result = parseManifest(text, ctx);
  if (!result.ok) throw new Error(manifestErrorMessage(result.error));
  if (result.itemErrors.length > 0) throw new Error(result.itemErrors.map(manifestErrorMessage).join("; "));
  return result.scope;
}

/** The one item error of a manifest whose other items must still be declared. */
function itemErrorText(text: string, ctx: ManifestContext = SYSTEM): string {
  const result = parseManifest(text, ctx);
  if (!result.ok) throw new Error(`expected one bad item, got ${manifestErrorMessage(result.error)}`);
  expect(result.itemErrors).toHaveLength(1);
  expect(result.scope.secrets.length + result.scope.templates.length).toBe(2);
  return manifestErrorMessage(result.itemErrors[0] as ManifestItemError);
}

function errorText(text: string, ctx: ManifestContext = SYSTEM): string {
  const result = parseManifest(text, ctx);
  if (result.ok) throw new Error("expected the manifest to be rejected");
  return manifestErrorMessage(result.error);
}

type Json = Record<string, unknown>;

function minimal(): Json {
  return {
    secrets: [
      {
        name: "a",
        key: "a",
        mode: "0400",
        sopsFile: "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-secrets.yaml",
      },
      {
        name: "b",
        key: "b",
        mode: "0400",
        sopsFile: "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-secrets.yaml",
      },
    ],
    templates: [{ name: "t", mode: "0400", content: "hunter2-like content" }],
    secretsMountPoint: "/run/secrets.d",
    symlinkPath: "/run/secrets",
  };
}

function withSecret(index: number, changes: Json): string {
  const doc = minimal();
  const secrets = doc.secrets as Json[];
  secrets[index] = { ...secrets[index], ...changes };
  return JSON.stringify(doc);
}

function withTemplate(changes: Json): string {
  const doc = minimal();
  const templates = doc.templates as Json[];
  templates[0] = { ...templates[0], ...changes };
  return JSON.stringify(doc);
}

function withTop(changes: Json): string {
  return JSON.stringify({ ...minimal(), ...changes });
}

function without(field: string): string {
  const doc = minimal();
  delete doc[field];
  return JSON.stringify(doc);
}

function secretWithout(field: string): string {
  const doc = minimal();
  const secrets = doc.secrets as Json[];
  const first = { ...secrets[0] };
  delete first[field];
  secrets[0] = first;
  return JSON.stringify(doc);
}

describe("parseManifest rejects what sops-install-secrets cannot decode, naming file and field", () => {
  it.each([
    ["invalid JSON", '{"secrets": [', `${FILE}: (document): not valid JSON`],
    ["empty text", "", `${FILE}: (document): not valid JSON`],
    ["a list document", "[]", `${FILE}: (document): expected a JSON object, got a list`],
    ["a null document", "null", `${FILE}: (document): expected a JSON object, got null`],
    ["secrets not a list", withTop({ secrets: {} }), `${FILE}: secrets: expected a list, got an object`],
    [
      "templates not a list",
      withTop({ templates: "x" }),
      `${FILE}: templates: expected a list, got a string`,
    ],
    [
      "symlinkPath a number",
      withTop({ symlinkPath: 1 }),
      `${FILE}: symlinkPath: expected a string, got a number`,
    ],
    ["symlinkPath empty", withTop({ symlinkPath: "" }), `${FILE}: symlinkPath: must not be empty`],
    [
      "secretsMountPoint missing",
      without("secretsMountPoint"),
      `${FILE}: secretsMountPoint: missing (expected a non-empty string)`,
    ],
    [
      "userMode a string",
      withTop({ userMode: "yes" }),
      `${FILE}: userMode: expected a boolean, got a string`,
    ],
    [
      "ageSshKeyPaths item not a string",
      withTop({ ageSshKeyPaths: ["/etc/ssh/ssh_host_ed25519_key", 1] }),
      `${FILE}: ageSshKeyPaths[1]: expected a string, got a number`,
    ],
    [
      "sshKeyPaths not a list",
      withTop({ sshKeyPaths: "/k" }),
      `${FILE}: sshKeyPaths: expected a list, got a string`,
    ],
    [
      "ageKeyFile a list",
      withTop({ ageKeyFile: [] }),
      `${FILE}: ageKeyFile: expected a string or null, got a list`,
    ],
  ])("%s", (_, text, expected) => {
    expect(errorText(text)).toBe(expected);
  });
});

// sops-install-secrets refuses these (a JSON type error, a mode ParseUint rejects, a template without
// text, main.go:168-176, 592-598, 701-712): the item is a problem, the other items are still declared.
describe("parseManifest reports a bad item and keeps the others", () => {
  it.each([
    [
      "a secret not an object",
      withSecret(0, { name: undefined, key: 3 }),
      `${FILE}: secrets[0].name: missing (expected a non-empty string)`,
    ],
    ["name empty", withSecret(0, { name: "" }), `${FILE}: secrets[0].name: must not be empty`],
    [
      "name a number",
      withSecret(1, { name: 7 }),
      `${FILE}: secrets[1].name: expected a string, got a number`,
    ],
    [
      "sopsFile null",
      withSecret(0, { sopsFile: null }),
      `${FILE}: secrets[0].sopsFile: expected a string, got null`,
    ],
    [
      "format a bool",
      withSecret(0, { format: true }),
      `${FILE}: secrets[0].format: expected a string or null, got a boolean`,
    ],
    ["mode 0999", withSecret(1, { mode: "0999" }), `${FILE}: secrets[1].mode: "0999" is not an octal mode`],
    ["mode abc", withSecret(0, { mode: "abc" }), `${FILE}: secrets[0].mode: "abc" is not an octal mode`],
    // Go accepts underscores only with base 0; ParseUint(s, 8, 16) takes no sign and no prefix.
    [
      "mode 0_400",
      withSecret(0, { mode: "0_400" }),
      `${FILE}: secrets[0].mode: "0_400" is not an octal mode`,
    ],
    ["mode +400", withSecret(0, { mode: "+400" }), `${FILE}: secrets[0].mode: "+400" is not an octal mode`],
    [
      "mode 0o400",
      withSecret(0, { mode: "0o400" }),
      `${FILE}: secrets[0].mode: "0o400" is not an octal mode`,
    ],
    [
      "mode 200000 (> 16 bits)",
      withSecret(0, { mode: "200000" }),
      `${FILE}: secrets[0].mode: "200000" is not an octal mode`,
    ],
    ["mode empty", withSecret(0, { mode: "" }), `${FILE}: secrets[0].mode: "" is not an octal mode`],
    ["mode absent", withSecret(0, { mode: undefined }), `${FILE}: secrets[0].mode: "" is not an octal mode`],
    ["mode null", withSecret(0, { mode: null }), `${FILE}: secrets[0].mode: "" is not an octal mode`],
    [
      "mode a number",
      withSecret(0, { mode: 400 }),
      `${FILE}: secrets[0].mode: expected a string or null, got a number`,
    ],
    [
      "owner a number",
      withSecret(0, { owner: 5 }),
      `${FILE}: secrets[0].owner: expected a string or null, got a number`,
    ],
    [
      "uid a string",
      withSecret(0, { uid: "0" }),
      `${FILE}: secrets[0].uid: expected a non-negative integer, got a string`,
    ],
    [
      "gid negative",
      withSecret(0, { gid: -1 }),
      `${FILE}: secrets[0].gid: expected a non-negative integer, got a negative number`,
    ],
    [
      "uid fractional",
      withSecret(0, { uid: 1.5 }),
      `${FILE}: secrets[0].uid: expected a non-negative integer, got a fractional number`,
    ],
    [
      "template name missing",
      withTemplate({ name: undefined }),
      `${FILE}: templates[0].name: missing (expected a non-empty string)`,
    ],
    [
      "template mode 0999",
      withTemplate({ mode: "0999" }),
      `${FILE}: templates[0].mode: "0999" is not an octal mode`,
    ],
    [
      "template content a number",
      withTemplate({ content: 42 }),
      `${FILE}: templates[0].content: expected a string or null, got a number`,
    ],
    [
      "template file a bool",
      withTemplate({ file: false }),
      `${FILE}: templates[0].file: expected a string or null, got a boolean`,
    ],
    [
      "template with neither content nor file",
      withTemplate({ content: "", file: null }),
      `${FILE}: templates[0].content: neither content nor file is set: sops-install-secrets refuses it`,
    ],
  ])("%s", (_, text, expected) => {
    expect(itemErrorText(text)).toBe(expected);
  });

  it("names the item by its name when it has one", () => {
    const result = parseManifest(withSecret(1, { mode: "0999" }), SYSTEM);
    expect(result.ok && result.itemErrors).toEqual([
      { file: FILE, subject: "b", field: "secrets[1].mode", message: '"0999" is not an octal mode' },
    ]);
    expect(result.ok && result.scope.secrets.map((x) => x.name)).toEqual(["a"]);
  });

  it("never echoes template content or the document text", () => {
    const secretish = "password=correct-horse-battery-staple";
    expect(itemErrorText(withTemplate({ content: secretish, mode: "9" }))).not.toContain(secretish);
    expect(errorText(`{"content": "${secretish}",`)).not.toContain(secretish);
  });
});

describe("parseManifest on the example manifests", () => {
  it("reads a NixOS manifest with sops-install-secrets' ownership rule", () => {
    const scope = parsed(fixture("example-manifest.nixos.json"));
    expect(scope).toMatchObject({
      scope: "system",
      manifestPath: FILE,
      platform: "linux",
      userMode: false,
      user: null,
      runtimeDir: null,
      symlinkPath: "/run/secrets",
      mountPoint: "/run/secrets.d",
    });
    expect(scope.keys).toEqual([
      { path: "/etc/ssh/ssh_host_ed25519_key", role: "age-ssh" },
      { path: "/etc/ssh/ssh_host_rsa_key", role: "ssh-gpg" },
      { path: "/var/lib/sops-nix/key.txt", role: "age-key-file" },
    ]);
    expect(scope.secrets).toEqual([
      {
        kind: "secret",
        name: "existing-file",
        path: "/run/existing-file",
        mode: 0o400,
        modeText: "0400",
        owner: { kind: "id", id: 0 },
        group: { kind: "id", id: 0 },
        key: "test_key",
        format: "yaml",
        sopsFile: "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-secrets.yaml",
        sopsFileHash: "e1556cc60fd41c8da9a339afd3ea6d3cb86cb86b21d8c5c4d080be6c2633884d",
        restartUnits: ["nginx.service"],
        reloadUnits: [],
      },
      {
        kind: "secret",
        name: "nested/test/file",
        path: "/run/secrets/nested/test/file",
        mode: 0o400,
        modeText: "0400",
        owner: { kind: "name", name: "someuser" },
        group: { kind: "name", name: "somegroup" },
        key: "nested/test/file",
        format: "yaml",
        sopsFile: "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-secrets.yaml",
        sopsFileHash: "e1556cc60fd41c8da9a339afd3ea6d3cb86cb86b21d8c5c4d080be6c2633884d",
        restartUnits: [],
        reloadUnits: [],
      },
    ]);
    expect(scope.templates).toEqual([
      {
        kind: "template",
        name: "test_template",
        path: "/run/secrets/rendered/test_template",
        mode: 0o400,
        modeText: "0400",
        owner: { kind: "name", name: "someuser" },
        group: { kind: "name", name: "somegroup" },
        // The content wins over the file (main.go:702); only its digest is kept.
        source: { kind: "content", sha256: expect.stringMatching(/^[0-9a-f]{64}$/) },
        restartUnits: ["nginx.service"],
        reloadUnits: [],
      },
    ]);
  });

  it("reads the for-users manifest as owned by root, whatever it names (-ignore-passwd)", () => {
    const doc = JSON.parse(fixture("example-manifest-for-users.nixos.json")) as Json;
    (doc.secrets as Json[]).push({
      ...(doc.secrets as Json[])[0],
      name: "named",
      owner: "alice",
      uid: 5,
      gid: 7,
    });
    const scope = parsed(JSON.stringify(doc), { ...SYSTEM, scope: "for-users" });
    expect(scope.symlinkPath).toBe("/run/secrets-for-users");
    expect(scope.mountPoint).toBe("/run/secrets-for-users.d");
    expect(scope.secrets.map((s) => [s.name, s.path, s.owner, s.group])).toEqual([
      ["test_key", "/run/secrets-for-users/test_key", { kind: "id", id: 0 }, { kind: "id", id: 0 }],
      ["named", "/run/secrets-for-users/test_key", { kind: "id", id: 0 }, { kind: "id", id: 0 }],
    ]);
  });

  it("reads a home-manager manifest: owned by the user, %r expanded with the runtime dir", () => {
    const scope = parsed(fixture("example-manifest.home-manager.json"), ALICE_CTX);
    expect(scope).toMatchObject({
      scope: "user:alice",
      userMode: true,
      user: ALICE,
      runtimeDir: "/run/user/1000",
      symlinkPath: "/home/alice/.config/sops-nix/secrets",
      mountPoint: "/run/user/1000/secrets.d",
    });
    expect(scope.keys).toEqual([{ path: "/home/alice/.age-key.txt", role: "age-key-file" }]);
    expect(scope.secrets[0]).toMatchObject({
      path: "/home/alice/.config/sops-nix/secrets/test_key",
      format: "yaml",
      owner: { kind: "id", id: 1000 },
      group: { kind: "id", id: 100 },
    });
    expect(scope.templates[0]).toMatchObject({
      name: "template.toml",
      path: "/home/alice/.config/sops-nix/secrets/rendered/template.toml",
      owner: { kind: "id", id: 1000 },
      group: { kind: "id", id: 100 },
    });
  });

  it("keeps %r visible and the runtime dir null when the session is unknown", () => {
    const scope = parsed(fixture("example-manifest.home-manager.json"), { ...ALICE_CTX, runtimeDir: null });
    expect(scope.mountPoint).toBe("%r/secrets.d");
    expect(scope.runtimeDir).toBeNull();
    expect(scope.usesRuntimeDir).toBe(true);
    expect(scope.secrets).toHaveLength(1);
  });
});

describe("parseManifest defaults and expansion", () => {
  it("fills in the defaults sops-nix's modules would have written", () => {
    const scope = parsed(JSON.stringify(minimal()));
    expect(scope.secrets[0]).toEqual({
      kind: "secret",
      name: "a",
      path: "/run/secrets/a",
      mode: 0o400,
      modeText: "0400",
      owner: { kind: "id", id: 0 },
      group: { kind: "id", id: 0 },
      key: "a",
      format: "yaml",
      sopsFile: "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-secrets.yaml",
      sopsFileHash: "",
      restartUnits: [],
      reloadUnits: [],
    });
    expect(scope.templates[0]?.path).toBe("/run/secrets/rendered/t");
    expect(scope.keys).toEqual([]);
    expect(scope.userMode).toBe(false);
  });

  it.each([
    [{ format: "" }, "format", "yaml"],
    [{ format: "binary" }, "format", "binary"],
    [{ mode: "644" }, "mode", 0o644],
    [{ mode: "0" }, "mode", 0],
    // Only permission bits are applied (Go's syscallMode takes FileMode.Perm()): setuid/setgid/sticky go.
    [{ mode: "4755" }, "mode", 0o755],
    [{ mode: "2750" }, "mode", 0o750],
    [{ mode: "177777" }, "mode", 0o777],
    [{ mode: "00000000400" }, "mode", 0o400],
    [{ mode: "4755" }, "modeText", "4755"],
    [{ uid: null, owner: null }, "owner", { kind: "id", id: 0 }],
    [{ gid: null, group: null }, "group", { kind: "id", id: 0 }],
    [{ key: null }, "key", ""],
    [{ format: null }, "format", "yaml"],
    // FormatType.UnmarshalJSON keeps "" for a string it does not know; validateSecret makes that yaml.
    [{ format: "toml" }, "format", "yaml"],
    [{ path: "" }, "path", "/run/secrets/a"],
    // A present name is looked up even when empty (main.go:615-621), and "" is never found.
    [{ owner: "", uid: 33 }, "owner", { kind: "name", name: "" }],
    [{ owner: null, uid: 33 }, "owner", { kind: "id", id: 33 }],
    [{ group: "nginx", gid: 33 }, "group", { kind: "name", name: "nginx" }],
  ])("reads %j as %s %j", (changes, field, expected) => {
    const secret = parsed(withSecret(0, changes)).secrets[0];
    expect(secret).toHaveProperty(field, expected);
  });

  it("reads an absent key as the whole file, as Go's zero value", () => {
    expect(parsed(secretWithout("key")).secrets[0]?.key).toBe("");
  });

  it("reads absent or null lists and flags as Go's zero values", () => {
    const scope = parsed(
      withTop({ secrets: null, templates: null, userMode: null, sshKeyPaths: null, ageSshKeyPaths: null }),
    );
    expect(scope.secrets).toEqual([]);
    expect(scope.templates).toEqual([]);
    expect(scope.userMode).toBe(false);
    expect(parsed(without("secrets")).secrets).toEqual([]);
  });

  it("accepts fields it does not know, and an absent templates list", () => {
    const doc = { ...minimal(), futureField: { nested: [1, 2] } };
    delete (doc as Json).templates;
    const scope = parsed(JSON.stringify(doc));
    expect(scope.templates).toEqual([]);
  });

  it("expands %r and %% in every user-mode path, default paths included", () => {
    const doc = {
      ...minimal(),
      userMode: true,
      symlinkPath: "%r/secrets",
      secretsMountPoint: "%r/secrets.d",
      secrets: [
        { name: "a", key: "a", mode: "0400", sopsFile: "/s" },
        { name: "b", key: "b", mode: "0400", sopsFile: "/s", path: "/home/alice/100%%/%r" },
      ],
    };
    const scope = parsed(JSON.stringify(doc), { ...ALICE_CTX, runtimeDir: "/tmp/xdg" });
    expect(scope.runtimeDir).toBe("/tmp/xdg");
    expect(scope.symlinkPath).toBe("/tmp/xdg/secrets");
    expect(scope.mountPoint).toBe("/tmp/xdg/secrets.d");
    expect(scope.secrets.map((s) => s.path)).toEqual(["/tmp/xdg/secrets/a", "/home/alice/100%//tmp/xdg"]);
    expect(scope.templates[0]?.path).toBe("/tmp/xdg/secrets/rendered/t");
  });

  it("says when a user manifest does not use %r: its hard-coded paths are checked as they are", () => {
    const doc = {
      ...minimal(),
      userMode: true,
      symlinkPath: "/run/user/1000/secrets",
      secretsMountPoint: "/run/user/1000/secrets.d",
    };
    const scope = parsed(JSON.stringify(doc), ALICE_CTX);
    expect(scope.usesRuntimeDir).toBe(false);
    expect(scope.symlinkPath).toBe("/run/user/1000/secrets");
    expect(scope.runtimeDir).toBe("/run/user/1000");
  });

  it("takes %r literally in a system manifest, as sops-install-secrets does outside user mode", () => {
    const scope = parsed(withTop({ symlinkPath: "/run/%r" }), { ...SYSTEM, runtimeDir: "/run/user/0" });
    expect(scope.symlinkPath).toBe("/run/%r");
    expect(scope.usesRuntimeDir).toBe(false);
  });

  it("takes a nix-darwin manifest as written (owner root, group staff)", () => {
    const scope = parsed(withSecret(0, { owner: "root", group: "staff", uid: 0, gid: 20 }), {
      ...SYSTEM,
      platform: "darwin",
    });
    expect(scope.platform).toBe("darwin");
    expect(scope.secrets[0]?.owner).toEqual({ kind: "name", name: "root" });
    expect(scope.secrets[0]?.group).toEqual({ kind: "name", name: "staff" });
  });
});
