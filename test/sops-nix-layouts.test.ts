// Host trees laid out the way sops-install-secrets leaves them (sops-nix 56b24064), each rule checked in
// both directions: the healthy variant is healthy with no critical problem, the broken one gets its code.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import type { Problem } from "../src/core/problems.js";
import type { HostLayout, HostSpec } from "../src/example/layout.js";
import { checkHost } from "../src/host/check-host.js";
import { cleanupRoots, editManifest, makeHost, TEST_AGE_KEYS, TEST_AGE_RECIPIENT } from "./helpers/host.js";
import { requireTool } from "./helpers/tools.js";

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

// Item 4: can the declared owner (and group) reach and read the file? Directories are Mkdir(0751) through
// the umask, root:keys (main.go:431-457); secrets are WriteFile'd through it (main.go:466); templates get an
// exact fchmod (main.go:1290); a link's parents are MkdirAll(0777) through it (main.go:256-283).
describe("the declared owner can read what sops-install-secrets wrote", () => {
  const services = (umask: number, groups: HostSpec["groups"] = []) =>
    systemHost({
      groups,
      system: {
        ...KEYED,
        umask,
        secrets: [
          { name: "root-only", mode: "0400" },
          { name: "nginx/htpasswd", mode: "0400", owner: "nginx", group: "nginx" },
          { name: "api-token", mode: "0400", owner: "nginx", path: "/var/lib/app/token" },
        ],
        templates: [{ name: "app.env", mode: "0440", group: "nginx" }],
      },
    });

  it("umask 022: every owner and group reads its files (healthy)", () => {
    expect(problems(services(0o022))).toEqual([]);
  });

  it("umask 077: generation directories 0700 lock every non-root reader out", () => {
    const host = services(0o077);
    const found = problems(host).filter((p) => p.code === "owner_cannot_read");
    expect(found.map((p) => [p.subject, p.severity, p.path])).toEqual([
      ["api-token", "critical", "/run/secrets.d/1"],
      ["app.env", "critical", "/run/secrets.d/1"],
      ["nginx/htpasswd", "critical", "/run/secrets.d/1"],
    ]);
    expect(found[0]?.message).toContain("umask clearing 0051");
    expect(found[1]?.message).toContain("nginx, a member of group nginx");
    // The root-only secret is fine, and nothing else is wrong with the files themselves.
    expect(critical(host).filter((c) => !c.includes("owner_cannot_read"))).toEqual([]);
  });

  it("umask 027: 0750 root:keys lets members of keys through, and only them", () => {
    const locked = problems(services(0o027)).filter((p) => p.code === "owner_cannot_read");
    expect(locked.map((p) => p.subject)).toEqual(["api-token", "app.env", "nginx/htpasswd"]);
    const inKeys = services(0o027, [{ name: "keys", gid: 62, members: ["nginx"] }]);
    // The template's group nginx has one member, nginx, now in keys: it passes. The link's parent
    // directories (this fresh tree had no /var/lib either) were MkdirAll'ed 0777 &^ 027 = 0750 root:root,
    // which keys does not open.
    expect(
      problems(inKeys)
        .filter((p) => p.severity === "critical")
        .map((p) => [p.subject, p.path]),
    ).toEqual([["api-token", "/var/lib"]]);
  });

  it("umask 027: a group's members are read with their own groups; a member outside keys is locked out", () => {
    const web = (keysMembers: string[]) =>
      systemHost({
        groups: [
          { name: "keys", gid: 62, members: keysMembers },
          { name: "web", gid: 70, members: ["nginx", "alice"] },
        ],
        system: {
          ...KEYED,
          umask: 0o027,
          secrets: [],
          templates: [{ name: "site.env", mode: "0440", group: "web" }],
        },
      });
    const locked = problems(web(["nginx"])).filter((p) => p.severity === "critical");
    expect(locked.map((p) => [p.code, p.subject, p.path])).toEqual([
      ["owner_cannot_read", "site.env", "/run/secrets.d/1"],
    ]);
    expect(locked[0]?.message).toContain("alice, a member of group web");
    expect(problems(web(["nginx", "alice"]))).toEqual([]);
    // A group no account is in is read by a stand-in member that has only that group.
    const nobody = systemHost({
      groups: [
        { name: "keys", gid: 62, members: ["nginx"] },
        { name: "empty", gid: 71 },
      ],
      system: {
        ...KEYED,
        umask: 0o027,
        secrets: [],
        templates: [{ name: "t", mode: "0440", group: "empty" }],
      },
    });
    expect(problems(nobody).map((p) => [p.code, p.message.includes("members of group empty")])).toEqual([
      ["owner_cannot_read", true],
    ]);
  });

  it("a link's parent directory that refuses the owner is reported at that directory", () => {
    const host = services(0o022);
    fs.chmodSync(host.real("/var/lib/app"), 0o700);
    const found = problems(host).filter((p) => p.severity === "critical");
    expect(found.map((p) => [p.code, p.subject, p.path])).toEqual([
      ["owner_cannot_read", "api-token", "/var/lib/app"],
    ]);
    expect(found[0]?.message).toContain("through /var/lib/app/token");
  });

  it("a home-manager scope under umask 077 is its user's own: healthy", () => {
    const host = systemHost({
      homeManager: [
        {
          user: "alice",
          scope: {
            ageKeyFile: "/home/alice/.config/sops/age/keys.txt",
            recipients: [TEST_AGE_RECIPIENT],
            umask: 0o077,
            secrets: [{ name: "a/b", mode: "0400" }],
            templates: [{ name: "t", mode: "0400" }],
          },
        },
      ],
    });
    host.writeFile("/home/alice/.config/sops/age/keys.txt", TEST_AGE_KEYS, 0o600, 1000, 100);
    expect(problems(host)).toEqual([]);
  });

  it("says a secret's mode lost bits to the umask, not to a later chmod (main.go:466)", () => {
    const host = systemHost({
      system: { ...KEYED, umask: 0o077, secrets: [{ name: "shared", mode: "0440", group: "nginx" }] },
    });
    const wrong = problems(host).find((p) => p.code === "wrong_mode");
    expect(wrong?.message).toContain("the umask sops-install-secrets ran under cleared 0040");
    expect(wrong?.message).not.toContain("changed it after activation");
    // A template is fchmod'ed exactly: umask plays no part, so the same loss is a later change.
    const tpl = systemHost({ system: { ...KEYED, secrets: [], templates: [{ name: "t", mode: "0440" }] } });
    fs.chmodSync(tpl.real("/run/secrets.d/1/rendered/t"), 0o400);
    expect(problems(tpl).find((p) => p.code === "wrong_mode")?.message).toContain(
      "changed it after activation",
    );
  });

  it("agrees with the kernel: nginx really cannot read under 077 and really can under 022", (ctx) => {
    requireTool(ctx, "setpriv");
    const readAs = (host: HostLayout, file: string) => {
      fs.chmodSync(host.root, 0o755);
      return spawnSync("setpriv", ["--reuid=60", "--regid=60", "--clear-groups", "cat", host.real(file)], {
        stdio: "ignore",
      }).status;
    };
    // The generation path, not the link: its absolute target would resolve on this machine, not in the tree.
    expect(readAs(services(0o022), "/run/secrets.d/1/api-token")).toBe(0);
    expect(readAs(services(0o077), "/run/secrets.d/1/api-token")).not.toBe(0);
  });
});
