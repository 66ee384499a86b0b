// nix-darwin: regular macOS accounts live in Directory Services, not /etc/passwd (modules/nix-darwin
// defaults owner root, group staff). On the Mac the agent asks `id`/`dscl`; elsewhere a name missing from
// /etc/passwd is unverifiable (a warning), never "sops-install-secrets aborts".

import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { emptyAccounts, parseGroup, parsePasswd } from "../src/core/accounts.js";
import type { Problem } from "../src/core/problems.js";
import { declaredScope, declaredSecret } from "../src/example/declared.js";
import { withDarwinAccounts } from "../src/host/accounts.js";
import { checkHost } from "../src/host/check-host.js";
import {
  type DirectoryService,
  execRunner,
  liveDirectoryService,
  type Runner,
} from "../src/host/directory-service.js";
import { cleanupRoots, makeHost, TEST_AGE_KEYS, TEST_AGE_RECIPIENT, tempRoot } from "./helpers/host.js";

afterEach(cleanupRoots);

const ALICE = { name: "alice", uid: 501, gid: 20, home: "/Users/alice" };

function darwinHost() {
  const host = makeHost({
    activation: "nix-darwin",
    directoryUsers: [ALICE],
    directoryGroups: [{ name: "staff", gid: 20 }],
    system: {
      ageKeyFile: "/var/lib/sops-nix/key.txt",
      recipients: [TEST_AGE_RECIPIENT],
      secrets: [
        { name: "root-owned", owner: "root", group: "staff" },
        { name: "alice-token", owner: "alice", group: "staff", mode: "0440" },
      ],
    },
  });
  host.writeFile("/var/lib/sops-nix/key.txt", TEST_AGE_KEYS, 0o600);
  return host;
}

function problems(root: string): Problem[] {
  return [...checkHost({ root, manifests: null, env: {} }).document.problems];
}

describe("a nix-darwin host read under --root (Directory Services cannot be asked)", () => {
  it("is healthy: the directory-only owner and group are unverifiable warnings, nothing critical", () => {
    const host = darwinHost();
    const found = problems(host.root);
    expect(found.filter((p) => p.severity === "critical")).toEqual([]);
    expect(found.map((p) => [p.code, p.severity, p.subject]).sort()).toEqual([
      ["owner_unverifiable", "warning", "alice-token"],
      ["owner_unverifiable", "warning", "alice-token"],
      ["owner_unverifiable", "warning", "root-owned"],
    ]);
    expect(found.map((p) => p.message).join("\n")).not.toMatch(/aborts/);
  });

  it("still checks what can be checked: a missing secret is critical", () => {
    const host = darwinHost();
    fs.rmSync(host.real("/run/secrets.d/1/alice-token"));
    expect(
      problems(host.root)
        .filter((p) => p.severity === "critical")
        .map((p) => [p.code, p.subject]),
    ).toEqual([["missing", "alice-token"]]);
  });
});

describe("withDarwinAccounts", () => {
  const passwd = {
    users: parsePasswd("root:x:0:0::/var/root:/bin/sh\n"),
    groups: parseGroup("wheel:x:0:\n"),
  };
  const scope = declaredScope(
    [declaredSecret("t", { owner: { kind: "name", name: "alice" }, group: { kind: "name", name: "staff" } })],
    { platform: "darwin" },
  );
  const directory = (users: Record<string, number>, groups: Record<string, number>): DirectoryService => ({
    user: (n) =>
      n in users ? { state: "found", value: { uid: users[n] ?? 0, gid: 20 } } : { state: "absent" },
    group: (n) => (n in groups ? { state: "found", value: groups[n] ?? 0 } : { state: "absent" }),
  });

  it("on the Mac, resolves the names Directory Services knows, so owners are checked by id", () => {
    const accounts = withDarwinAccounts(passwd, [scope], directory({ alice: 501 }, { staff: 20 }));
    expect(accounts.users.get("alice")?.id).toBe(501);
    expect(accounts.groups.get("staff")?.id).toBe(20);
    expect(accounts.unverifiable).toBeUndefined();
  });

  it("on the Mac, a name Directory Services does not know is unknown: sops-install-secrets aborts on it", () => {
    const accounts = withDarwinAccounts(passwd, [scope], directory({}, { staff: 20 }));
    expect(accounts.users.has("alice")).toBe(false);
    expect(accounts.unverifiable).toBeUndefined();
  });

  it("elsewhere, every name missing from /etc/passwd is unverifiable; Linux scopes are left alone", () => {
    const accounts = withDarwinAccounts(passwd, [scope], null);
    expect([...(accounts.unverifiable?.users ?? [])]).toEqual(["alice"]);
    expect([...(accounts.unverifiable?.groups ?? [])]).toEqual(["staff"]);
    const linux = declaredScope(scope.secrets, { platform: "linux" });
    expect(withDarwinAccounts(emptyAccounts(), [linux], null).unverifiable).toBeUndefined();
  });
});

describe("liveDirectoryService", () => {
  const scripted =
    (answers: Record<string, { status: number | null; stdout?: string; stderr?: string }>): Runner =>
    (command, args) => {
      const a = answers[[command, ...args].join(" ")] ?? { status: 127, stderr: "not scripted" };
      return { status: a.status, stdout: a.stdout ?? "", stderr: a.stderr ?? "" };
    };

  it.each([
    [
      "found",
      { "id -u alice": { status: 0, stdout: "501\n" }, "id -g alice": { status: 0, stdout: "20\n" } },
      { state: "found", value: { uid: 501, gid: 20 } },
    ],
    ["absent", { "id -u alice": { status: 1, stderr: "id: alice: no such user\n" } }, { state: "absent" }],
    [
      "timed out",
      { "id -u alice": { status: null } },
      { state: "unknown", why: "id did not answer in time" },
    ],
  ] as const)("user lookup %s", (_, answers, expected) => {
    expect(liveDirectoryService(scripted(answers)).user("alice")).toEqual(expected);
  });

  it.each([
    ["found", { status: 0, stdout: "PrimaryGroupID: 20\n" }, { state: "found", value: 20 }],
    ["absent", { status: 56, stderr: "<main> attribute status: eDSRecordNotFound\n" }, { state: "absent" }],
  ] as const)("group lookup %s", (_, answer, expected) => {
    const run = scripted({ "dscl . -read /Groups/staff PrimaryGroupID": answer });
    expect(liveDirectoryService(run).group("staff")).toEqual(expected);
  });

  it("never hands a name that is not an account name to a command", () => {
    let called = 0;
    const run: Runner = () => {
      called++;
      return { status: 0, stdout: "0\n", stderr: "" };
    };
    expect(liveDirectoryService(run).user("-x")).toMatchObject({ state: "unknown" });
    expect(liveDirectoryService(run).group("../Users/x")).toMatchObject({ state: "unknown" });
    expect(called).toBe(0);
  });

  it("runs the real commands it finds on PATH, with a timeout", () => {
    const bin = tempRoot("fake-bin-");
    fs.writeFileSync(
      path.join(bin, "id"),
      '#!/bin/sh\n[ "$2" = alice ] || { echo "id: $2: no such user" >&2; exit 1; }\n[ "$1" = -u ] && echo 501 || echo 20\n',
      { mode: 0o755 },
    );
    fs.writeFileSync(path.join(bin, "dscl"), "#!/bin/sh\nsleep 5\n", { mode: 0o755 });
    const oldPath = process.env.PATH;
    process.env.PATH = `${bin}:${oldPath ?? ""}`;
    try {
      const live = liveDirectoryService(execRunner, 300);
      expect(live.user("alice")).toEqual({ state: "found", value: { uid: 501, gid: 20 } });
      expect(live.user("bob")).toEqual({ state: "absent" });
      expect(live.group("staff")).toMatchObject({ state: "unknown" });
    } finally {
      process.env.PATH = oldPath;
    }
  });
});
