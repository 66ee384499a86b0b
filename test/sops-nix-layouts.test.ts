// Host trees laid out the way sops-install-secrets leaves them (sops-nix 56b24064), each rule checked in
// both directions: the healthy variant is healthy with no critical problem, the broken one gets its code.

import * as fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import type { Problem } from "../src/core/problems.js";
import type { HostLayout, HostSpec } from "../src/example/layout.js";
import { checkHost } from "../src/host/check-host.js";
import { cleanupRoots, editManifest, makeHost, TEST_AGE_KEYS, TEST_AGE_RECIPIENT } from "./helpers/host.js";

afterEach(cleanupRoots);

function problems(host: HostLayout): Problem[] {
  return [...checkHost({ root: host.root, manifests: null, env: {} }).document.problems];
}

function critical(host: HostLayout): string[] {
  return problems(host)
    .filter((p) => p.severity === "critical")
    .map((p) => `${p.scope} ${p.code} ${p.subject}`);
}

const ALICE = { name: "alice", uid: 1000, gid: 100, home: "/home/alice" };

function systemHost(
  spec: Omit<HostSpec, "users" | "groups"> & Pick<HostSpec, "users" | "groups">,
): HostLayout {
  const host = makeHost({
    ...spec,
    users: [ALICE, { name: "nginx", uid: 60, gid: 60, home: "/var/empty" }, ...(spec.users ?? [])],
    groups: [{ name: "users", gid: 100 }, { name: "nginx", gid: 60 }, ...(spec.groups ?? [])],
  });
  host.writeFile("/var/lib/sops-nix/key.txt", TEST_AGE_KEYS, 0o600);
  return host;
}

const KEYED = { ageKeyFile: "/var/lib/sops-nix/key.txt", recipients: [TEST_AGE_RECIPIENT] };

// Item 3: manifests as tolerant as sops-install-secrets' encoding/json decoding (main.go:30-87).
describe("manifests sops-nix's modules emit", () => {
  it("null ids and names, long and setgid modes, an unknown format: healthy", () => {
    const host = systemHost({
      system: {
        ...KEYED,
        secrets: [
          { name: "plain", mode: "0400" },
          { name: "long-mode", mode: "00000440", group: "nginx" },
          { name: "setgid", mode: "2750", owner: "nginx" },
          { name: "by-id", mode: "0400", uid: 60, gid: 60 },
        ],
      },
    });
    editManifest(host, "system", (m) => {
      const [plain, , , byId] = m.secrets;
      Object.assign(plain ?? {}, { uid: null, gid: null, owner: null, group: null, format: "toml" });
      Object.assign(byId ?? {}, { owner: null, group: null });
    });
    expect(problems(host)).toEqual([]);
  });

  it("a bad item is its own problem; a real failure elsewhere in the scope is still reported", () => {
    const host = systemHost({
      system: { ...KEYED, secrets: [{ name: "bad-mode" }, { name: "fine" }, { name: "gone" }] },
    });
    editManifest(host, "system", (m) => {
      Object.assign(m.secrets[0] ?? {}, { mode: "0_400" });
    });
    fs.rmSync(host.real("/run/secrets.d/1/gone"));
    expect(critical(host).sort()).toEqual(["system manifest_invalid bad-mode", "system missing gone"]);
    const bad = problems(host).find((p) => p.code === "manifest_invalid");
    expect(bad?.message).toContain("secrets[0].mode");
  });

  it("an empty owner name is looked up, and never found (main.go:615-621)", () => {
    const host = systemHost({ system: { ...KEYED, secrets: [{ name: "a", uid: 60 }] } });
    editManifest(host, "system", (m) => {
      Object.assign(m.secrets[0] ?? {}, { owner: "" });
    });
    expect(critical(host)).toEqual(["system unknown_owner a"]);
  });
});

// Item 5: `%r` is expanded only in user mode (main.go:1249-1260, 1331-1351); hard-coded paths are paths.
describe("home-manager manifests with hard-coded runtime paths", () => {
  const hardCoded = (loggedIn: boolean) =>
    systemHost({
      homeManager: [
        {
          user: "alice",
          loggedIn,
          scope: {
            ageKeyFile: "/home/alice/.config/sops/age/keys.txt",
            recipients: [TEST_AGE_RECIPIENT],
            symlinkPath: "/run/user/1000/secrets",
            secretsMountPoint: "/run/user/1000/secrets.d",
            secrets: [{ name: "gh-token" }, { name: "ssh-key", path: "/home/alice/.ssh/id_work" }],
          },
        },
      ],
    });

  function withKey(host: HostLayout): HostLayout {
    host.writeFile("/home/alice/.config/sops/age/keys.txt", TEST_AGE_KEYS, 0o600, 1000, 100);
    return host;
  }

  it("are checked like any others: healthy when laid out", () => {
    const host = withKey(hardCoded(true));
    const run = checkHost({ root: host.root, manifests: null, env: {} });
    expect(run.document.problems).toEqual([]);
    expect(run.document.scopes.find((s) => s.scope === "user:alice")?.generation).toBe(1);
  });

  it("are checked like any others: a missing secret is reported, not 'cannot be known'", () => {
    const host = withKey(hardCoded(true));
    fs.rmSync(host.real("/run/user/1000/secrets.d/1/gh-token"));
    expect(critical(host)).toEqual(["user:alice missing gh-token"]);
    expect(problems(host).map((p) => p.code)).not.toContain("user_session_inactive");
  });

  it("inside the user's runtime directory: not logged in is still an inactive session", () => {
    const host = withKey(hardCoded(false));
    expect(problems(host).map((p) => [p.code, p.severity])).toEqual([["user_session_inactive", "info"]]);
  });
});
