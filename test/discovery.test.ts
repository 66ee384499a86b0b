import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { emptyAccounts, parseGroup, parsePasswd } from "../src/core/accounts.js";
import type { Accounts } from "../src/core/model.js";
import { type DiscoveryEnv, discoverManifests, explicitManifestRefs } from "../src/host/discovery.js";
import { loadScopes } from "../src/host/load-scopes.js";
import { RootFs } from "../src/host/rootfs.js";

// Store paths with fake but well-formed hashes: one letter repeated 32 times.
const store = (letter: string, name: string) => `/nix/store/${letter.repeat(32)}-${name}`;
const MANIFEST = store("m", "manifest.json");
const MANIFEST_FOR_USERS = store("n", "manifest-for-users.json");
const HM_MANIFEST = store("h", "manifest.json");
const ME = process.getuid?.() ?? 0;
const MY_GID = process.getgid?.() ?? 0;

let root: string;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "sops-agent-"));
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function write(hostPath: string, text: string): void {
  const real = path.join(root, hostPath);
  fs.mkdirSync(path.dirname(real), { recursive: true });
  fs.writeFileSync(real, text);
}

/** A symlink inside the tree; absolute targets are host paths, as on a real host. */
function link(hostPath: string, target: string): void {
  const real = path.join(root, hostPath);
  fs.mkdirSync(path.dirname(real), { recursive: true });
  fs.symlinkSync(target, real);
}

function fixture(name: string): string {
  return fs.readFileSync(new URL(`./fixtures/manifests/${name}`, import.meta.url), "utf8");
}

function env(overrides: Partial<DiscoveryEnv> = {}): DiscoveryEnv {
  return { uid: 1000, xdgRuntimeDir: undefined, darwinUserTempDir: () => null, ...overrides };
}

function accounts(passwd: string): Accounts {
  return { users: parsePasswd(passwd), groups: parseGroup("") };
}

const PASSWD = [
  "root:x:0:0::/root:/bin/sh",
  "alice:x:1000:100::/home/alice:/bin/sh",
  "bob:x:1001:100::/home/bob:/bin/sh",
  "ghost:x:1002:100::/home/ghost:/bin/sh",
].join("\n");

/** NixOS with classic activation: /run/current-system is a link into the store, activate names both manifests. */
function classicNixos(manifest = MANIFEST): void {
  const system = store("s", "nixos-system-x");
  link("/run/current-system", system);
  write(
    `${system}/activate`,
    [
      "#!/nix/store/ssssssssssssssssssssssssssssssss-bash/bin/bash",
      "#### Activation script snippet setupSecretsForUsers:",
      `${store("i", "sops-install-secrets-0.0.1")}/bin/sops-install-secrets -ignore-passwd ${MANIFEST_FOR_USERS}`,
      "#### Activation script snippet setupSecrets:",
      `${store("i", "sops-install-secrets-0.0.1")}/bin/sops-install-secrets ${manifest}`,
    ].join("\n"),
  );
}

describe("discoverManifests on NixOS", () => {
  it("finds both manifests in the classic activation script through its symlink chain", () => {
    classicNixos();
    expect(discoverManifests(new RootFs(root), emptyAccounts(), env())).toEqual([
      {
        path: MANIFEST_FOR_USERS,
        scope: "for-users",
        platform: "linux",
        user: null,
        runtimeDir: null,
        via: "/run/current-system/activate",
      },
      {
        path: MANIFEST,
        scope: "system",
        platform: "linux",
        user: null,
        runtimeDir: null,
        via: "/run/current-system/activate",
      },
    ]);
  });

  it("finds manifests in systemd units, directly or through the script ExecStart runs", () => {
    const units = store("u", "system-units");
    link("/etc/systemd/system", units);
    const start = store("t", "unit-script-sops-install-secrets-start");
    write(
      `${units}/sops-install-secrets.service`,
      `[Service]\nType=oneshot\nExecStart=${start}/bin/sops-install-secrets-start\n`,
    );
    write(
      `${start}/bin/sops-install-secrets-start`,
      `#!/bin/sh\nexec ${store("i", "sops-install-secrets")}/bin/sops-install-secrets ${MANIFEST}\n`,
    );
    write(
      `${units}/sops-install-secrets-for-users.service`,
      `[Service]\nExecStart=${store("i", "sops-install-secrets")}/bin/sops-install-secrets -ignore-passwd ${MANIFEST_FOR_USERS}\n`,
    );
    const refs = discoverManifests(new RootFs(root), emptyAccounts(), env());
    expect(refs.map((r) => [r.scope, r.path, r.platform, r.via])).toEqual([
      [
        "for-users",
        MANIFEST_FOR_USERS,
        "linux",
        "/etc/systemd/system/sops-install-secrets-for-users.service",
      ],
      ["system", MANIFEST, "linux", "/etc/systemd/system/sops-install-secrets.service"],
    ]);
  });

  it("prefers the activation script over a unit that claims the same scope", () => {
    classicNixos();
    write(
      "/etc/systemd/system/sops-install-secrets.service",
      `ExecStart=/bin/sops-install-secrets ${store("o", "manifest.json")}\n`,
    );
    const refs = discoverManifests(new RootFs(root), emptyAccounts(), env());
    expect(refs.find((r) => r.scope === "system")?.path).toBe(MANIFEST);
    expect(refs).toHaveLength(2);
  });

  it("follows scripts two levels deep, but not three", () => {
    const level1 = store("a", "wrapper");
    const level2 = store("b", "inner");
    write("/etc/systemd/system/sops-install-secrets.service", `ExecStart=${level1}\n`);
    write(level1, `#!/bin/sh\nexec ${level2} "$@"\n`);
    write(level2, `#!/bin/sh\nexec sops-install-secrets ${MANIFEST}\n`);
    expect(discoverManifests(new RootFs(root), emptyAccounts(), env()).map((r) => r.path)).toEqual([
      MANIFEST,
    ]);

    const level3 = store("c", "innermost");
    write(level2, `#!/bin/sh\nexec ${level3}\n`);
    write(level3, `#!/bin/sh\nexec sops-install-secrets ${MANIFEST}\n`);
    expect(discoverManifests(new RootFs(root), emptyAccounts(), env())).toEqual([]);
  });

  it("finds nothing on a host without sops-nix", () => {
    write("/etc/passwd", PASSWD);
    expect(discoverManifests(new RootFs(root), accounts(PASSWD), env())).toEqual([]);
  });
});

describe("discoverManifests for home-manager on Linux", () => {
  function homeManagerUser(home: string, letter: string, manifest: string): void {
    // home-manager links the unit from its generation's home-files into the store.
    const files = store(letter, "home-manager-files");
    const script = store(letter, "sops-nix-user");
    link(`${home}/.config/systemd/user/sops-nix.service`, `${files}/.config/systemd/user/sops-nix.service`);
    write(
      `${files}/.config/systemd/user/sops-nix.service`,
      `[Unit]\nDescription=sops-nix activation\n[Service]\nType=oneshot\nExecStart=${script}\n`,
    );
    write(
      script,
      `#!/nix/store/${"x".repeat(32)}-bash/bin/bash\n${store("i", "sops-install-secrets")}/bin/sops-install-secrets -ignore-passwd ${manifest}\n`,
    );
  }

  it("finds each user's unit and script, with the session's runtime dir for the agent's own user", () => {
    homeManagerUser("/home/alice", "p", HM_MANIFEST);
    homeManagerUser("/home/bob", "q", store("r", "manifest.json"));
    fs.mkdirSync(path.join(root, "root"));
    const refs = discoverManifests(
      new RootFs(root),
      accounts(PASSWD),
      env({ xdgRuntimeDir: "/tmp/xdg-alice" }),
    );
    expect(refs).toEqual([
      {
        path: HM_MANIFEST,
        scope: "user:alice",
        platform: "linux",
        user: { name: "alice", uid: 1000, gid: 100, home: "/home/alice" },
        runtimeDir: "/tmp/xdg-alice",
        via: "/home/alice/.config/systemd/user/sops-nix.service",
      },
      {
        path: store("r", "manifest.json"),
        scope: "user:bob",
        platform: "linux",
        user: { name: "bob", uid: 1001, gid: 100, home: "/home/bob" },
        runtimeDir: "/run/user/1001",
        via: "/home/bob/.config/systemd/user/sops-nix.service",
      },
    ]);
  });

  it("uses /run/user/<uid> when the agent has no XDG_RUNTIME_DIR, next to the system scopes", () => {
    classicNixos();
    homeManagerUser("/home/alice", "p", HM_MANIFEST);
    const refs = discoverManifests(new RootFs(root), accounts(PASSWD), env());
    expect(refs.map((r) => [r.scope, r.runtimeDir])).toEqual([
      ["for-users", null],
      ["system", null],
      ["user:alice", "/run/user/1000"],
    ]);
  });

  it("lists a manifest once, under the system scope, when a user unit names the system's manifest", () => {
    classicNixos();
    homeManagerUser("/home/alice", "p", MANIFEST);
    const refs = discoverManifests(new RootFs(root), accounts(PASSWD), env());
    expect(refs.map((r) => r.scope)).toEqual(["for-users", "system"]);
  });
});

describe("discoverManifests on macOS", () => {
  function launchAgent(home: string, letter: string, manifest: string): void {
    const script = store(letter, "sops-nix-user");
    write(
      `${home}/Library/LaunchAgents/org.nix-community.home.sops-nix.plist`,
      [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<plist version="1.0"><dict>',
        "<key>ProgramArguments</key><array>",
        "<string>/bin/sh</string><string>-c</string>",
        `<string>/bin/wait4path /nix/store &amp;&amp; exec ${script}</string>`,
        "</array><key>RunAtLoad</key><true/></dict></plist>",
      ].join("\n"),
    );
    write(
      script,
      `#!/bin/sh\n${store("i", "sops-install-secrets")}/bin/sops-install-secrets -ignore-passwd ${manifest}\n`,
    );
  }

  it("finds launch agents of users outside /etc/passwd, owner from /Users/<name>", () => {
    launchAgent("/Users/carol", "p", HM_MANIFEST);
    let asked = 0;
    const darwinUserTempDir = () => {
      asked++;
      return "/var/folders/zz/abc/T";
    };
    const refs = discoverManifests(new RootFs(root), emptyAccounts(), env({ uid: ME, darwinUserTempDir }));
    expect(refs).toEqual([
      {
        path: HM_MANIFEST,
        scope: "user:carol",
        platform: "darwin",
        user: { name: "carol", uid: ME, gid: MY_GID, home: "/Users/carol" },
        runtimeDir: "/var/folders/zz/abc/T",
        via: "/Users/carol/Library/LaunchAgents/org.nix-community.home.sops-nix.plist",
      },
    ]);
    expect(asked).toBe(1);
  });

  it("uses the passwd entry when it has the home, and no runtime dir for another user", () => {
    launchAgent("/Users/dave", "p", HM_MANIFEST);
    const passwd = "dave:*:501:20:Dave:/Users/dave:/bin/zsh\n";
    const refs = discoverManifests(new RootFs(root), accounts(passwd), env({ uid: 502 }));
    expect(refs).toEqual([
      {
        path: HM_MANIFEST,
        scope: "user:dave",
        platform: "darwin",
        user: { name: "dave", uid: 501, gid: 20, home: "/Users/dave" },
        runtimeDir: null,
        via: "/Users/dave/Library/LaunchAgents/org.nix-community.home.sops-nix.plist",
      },
    ]);
  });

  it("finds nix-darwin launch daemons; the activate script that names the same manifest comes first", () => {
    const start = store("d", "sops-install-secrets-start");
    write(
      "/Library/LaunchDaemons/org.nixos.sops-install-secrets.plist",
      `<plist><dict><key>ProgramArguments</key><array><string>/bin/sh</string><string>-c</string><string>/bin/wait4path /nix/store &amp;&amp; exec ${start}</string></array></dict></plist>`,
    );
    write(start, `#!/bin/sh\necho "Setting up secrets..."\nsops-install-secrets ${MANIFEST}\n`);
    write(
      "/Library/LaunchDaemons/org.nixos.sops-install-secrets-for-users.plist",
      `<plist><dict><key>Program</key><string>${store("e", "for-users-start")}</string></dict></plist>`,
    );
    write(store("e", "for-users-start"), `sops-install-secrets -ignore-passwd ${MANIFEST_FOR_USERS}\n`);
    const fsys = new RootFs(root);
    expect(
      discoverManifests(fsys, emptyAccounts(), env()).map((r) => [r.scope, r.path, r.platform, r.via]),
    ).toEqual([
      [
        "for-users",
        MANIFEST_FOR_USERS,
        "darwin",
        "/Library/LaunchDaemons/org.nixos.sops-install-secrets-for-users.plist",
      ],
      ["system", MANIFEST, "darwin", "/Library/LaunchDaemons/org.nixos.sops-install-secrets.plist"],
    ]);

    const system = store("s", "darwin-system-x");
    link("/run/current-system", system);
    write(
      `${system}/activate`,
      `# postActivation\necho "Setting up secrets..."\nsops-install-secrets ${MANIFEST}\n`,
    );
    const system2 = discoverManifests(fsys, emptyAccounts(), env()).find((r) => r.scope === "system");
    expect(system2).toMatchObject({
      path: MANIFEST,
      platform: "darwin",
      via: "/run/current-system/activate",
    });
  });
});

describe("explicitManifestRefs", () => {
  const alice = accounts(PASSWD);

  it("names scopes from the manifests' own fields", () => {
    write(MANIFEST, fixture("example-manifest.nixos.json"));
    write(store("f", "whatever.json"), fixture("example-manifest-for-users.nixos.json"));
    write(HM_MANIFEST.replace("manifest", "hm"), fixture("example-manifest.home-manager.json"));
    const refs = explicitManifestRefs(
      new RootFs(root),
      [MANIFEST, store("f", "whatever.json"), HM_MANIFEST.replace("manifest", "hm"), MANIFEST],
      alice,
      env({ xdgRuntimeDir: "/tmp/xdg" }),
      "linux",
    );
    expect(refs).toEqual([
      { path: MANIFEST, scope: "system", platform: "linux", user: null, runtimeDir: null, via: "--manifest" },
      {
        path: store("f", "whatever.json"),
        scope: "for-users",
        platform: "linux",
        user: null,
        runtimeDir: null,
        via: "--manifest",
      },
      {
        path: HM_MANIFEST.replace("manifest", "hm"),
        scope: "user:alice",
        platform: "linux",
        user: { name: "alice", uid: 1000, gid: 100, home: "/home/alice" },
        runtimeDir: "/tmp/xdg",
        via: "--manifest",
      },
    ]);
  });

  it("names a user scope by uid when passwd does not know the agent's user", () => {
    write(HM_MANIFEST, fixture("example-manifest.home-manager.json"));
    const refs = explicitManifestRefs(new RootFs(root), [HM_MANIFEST], alice, env({ uid: 4242 }), "darwin");
    expect(refs).toEqual([
      {
        path: HM_MANIFEST,
        scope: "user:4242",
        platform: "darwin",
        user: null,
        runtimeDir: null,
        via: "--manifest",
      },
    ]);
  });

  it("still gives unreadable manifests a ref, scoped by the file name", () => {
    write("/tmp/corrupt.json", "{ not json");
    const refs = explicitManifestRefs(
      new RootFs(root),
      ["/tmp/corrupt.json", "/nowhere/manifest-for-users.json"],
      alice,
      env(),
      "linux",
    );
    expect(refs.map((r) => [r.path, r.scope])).toEqual([
      ["/tmp/corrupt.json", "system"],
      ["/nowhere/manifest-for-users.json", "for-users"],
    ]);
  });

  it("reads a relative path from the working directory, outside --root", () => {
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), "sops-agent-"));
    const cwd = process.cwd();
    try {
      fs.writeFileSync(path.join(outside, "m.json"), fixture("example-manifest-for-users.nixos.json"));
      process.chdir(outside);
      const refs = explicitManifestRefs(new RootFs(root), ["m.json"], alice, env(), "linux");
      expect(refs).toEqual([
        {
          path: path.join(fs.realpathSync(outside), "m.json"),
          scope: "for-users",
          platform: "linux",
          user: null,
          runtimeDir: null,
          via: "--manifest",
          outsideRoot: true,
        },
      ]);
      const loaded = loadScopes(new RootFs(root), refs);
      expect(loaded.problems).toEqual([]);
      expect(loaded.scopes[0]?.secrets[0]?.name).toBe("test_key");
    } finally {
      process.chdir(cwd);
      fs.rmSync(outside, { recursive: true, force: true });
    }
  });
});

describe("loadScopes", () => {
  it("reports a corrupt manifest as manifest_invalid and still loads the other scope", () => {
    classicNixos();
    write(MANIFEST, '{"secrets": [{"name": "a", "mode": "0999"');
    write(MANIFEST_FOR_USERS, fixture("example-manifest-for-users.nixos.json"));
    const fsys = new RootFs(root);
    const { scopes, problems } = loadScopes(fsys, discoverManifests(fsys, emptyAccounts(), env()));
    expect(scopes.map((s) => [s.scope, s.manifestPath, s.secrets.length])).toEqual([
      ["for-users", MANIFEST_FOR_USERS, 1],
    ]);
    expect(problems).toEqual([
      {
        code: "manifest_invalid",
        severity: "critical",
        scope: "system",
        subject: MANIFEST,
        path: MANIFEST,
        message: `${MANIFEST}: (document): not valid JSON`,
      },
    ]);
  });

  it("reports a field error with its JSON path", () => {
    classicNixos();
    const doc = JSON.parse(fixture("example-manifest.nixos.json")) as {
      secrets: { mode: string; name: string }[];
    };
    const second = doc.secrets[1];
    if (second !== undefined) second.mode = "0999";
    write(MANIFEST, JSON.stringify(doc));
    write(MANIFEST_FOR_USERS, fixture("example-manifest-for-users.nixos.json"));
    const fsys = new RootFs(root);
    const { scopes, problems } = loadScopes(fsys, discoverManifests(fsys, emptyAccounts(), env()));
    expect(problems.map((p) => [p.code, p.severity, p.scope, p.subject, p.path])).toEqual([
      ["manifest_invalid", "critical", "system", second?.name ?? "?", MANIFEST],
    ]);
    expect(problems[0]?.message).toContain(`${MANIFEST}: secrets[1].mode: "0999" is not an octal mode`);
    // The rest of the scope is still declared, so its real failures are still checked.
    expect(scopes.find((s) => s.scope === "system")?.secrets).toHaveLength(doc.secrets.length - 1);
  });

  it("reports a manifest the activation script names but the store lacks as manifest_missing", () => {
    classicNixos();
    write(MANIFEST, fixture("example-manifest.nixos.json"));
    const fsys = new RootFs(root);
    const { scopes, problems } = loadScopes(fsys, discoverManifests(fsys, emptyAccounts(), env()));
    expect(scopes.map((s) => s.scope)).toEqual(["system"]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({
      code: "manifest_missing",
      severity: "critical",
      scope: "for-users",
      subject: MANIFEST_FOR_USERS,
      path: MANIFEST_FOR_USERS,
    });
    expect(problems[0]?.message).toContain("/run/current-system/activate");
  });

  it("loads a user scope with the ref's user and runtime dir", () => {
    write(HM_MANIFEST, fixture("example-manifest.home-manager.json"));
    const fsys = new RootFs(root);
    const refs = explicitManifestRefs(fsys, [HM_MANIFEST], accounts(PASSWD), env(), "linux");
    const { scopes, problems } = loadScopes(fsys, refs);
    expect(problems).toEqual([]);
    expect(scopes[0]).toMatchObject({
      scope: "user:alice",
      runtimeDir: "/run/user/1000",
      mountPoint: "/run/user/1000/secrets.d",
    });
    expect(scopes[0]?.secrets[0]?.owner).toEqual({ kind: "id", id: 1000 });
  });

  it("says so when there is no manifest at all: critical, nothing checked is not healthy", () => {
    expect(loadScopes(new RootFs(root), [])).toEqual({
      scopes: [],
      problems: [
        {
          code: "no_manifests",
          severity: "critical",
          scope: "host",
          subject: "/",
          path: "/",
          message: expect.stringContaining("--allow-no-manifests"),
        },
      ],
    });
    expect(loadScopes(new RootFs(root), [], undefined, true).problems[0]?.severity).toBe("info");
  });
});
