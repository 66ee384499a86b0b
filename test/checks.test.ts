// Every problem code, on a real host tree laid out the way sops-install-secrets leaves one: each fault is
// reported with the right code, severity and subject, and nothing else critical appears.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { checkFiles } from "../src/checks/files.js";
import { emptyAccounts } from "../src/core/accounts.js";
import type { ObservedScope } from "../src/core/observation.js";
import type { Problem, ProblemCode, Severity } from "../src/core/problems.js";
import type { HostLayout, HostSpec } from "../src/example/layout.js";
import { layoutHost } from "../src/example/layout.js";
import { checkHost } from "../src/host/check-host.js";
import { cleanupRoots, healthyHost, healthySpec, installKeys, makeHost } from "./helpers/host.js";

afterEach(cleanupRoots);

function check(host: HostLayout): Problem[] {
  return [...checkHost({ root: host.root, manifests: null, env: {} }).document.problems];
}

const PLACEHOLDER = `<SOPS:${"ab".repeat(32)}:PLACEHOLDER>`;

function withSystem(mutate: (spec: HostSpec) => HostSpec): () => HostLayout {
  return () => {
    const host = makeHost(mutate(healthySpec()));
    installKeys(host);
    return host;
  };
}

function healthyThen(mutate: (host: HostLayout) => void): () => HostLayout {
  return () => {
    const host = healthyHost();
    mutate(host);
    return host;
  };
}

const gen = "/run/secrets.d/1";

interface FaultCase {
  readonly code: ProblemCode;
  readonly severity: Severity;
  readonly scope: string;
  readonly subject: string;
  readonly build: () => HostLayout;
  /** Other critical codes that follow from the same fault. */
  readonly alsoCritical?: readonly ProblemCode[];
}

const CASES: readonly FaultCase[] = [
  {
    code: "symlink_missing",
    severity: "critical",
    scope: "system",
    subject: "/run/secrets",
    build: healthyThen((h) => fs.rmSync(h.real("/run/secrets"))),
    alsoCritical: ["link_dangling"],
  },
  {
    code: "symlink_not_symlink",
    severity: "critical",
    scope: "system",
    subject: "/run/secrets",
    build: healthyThen((h) => {
      fs.rmSync(h.real("/run/secrets"));
      fs.mkdirSync(h.real("/run/secrets"));
    }),
    alsoCritical: ["link_dangling"],
  },
  {
    code: "symlink_outside_mount",
    severity: "critical",
    scope: "system",
    subject: "/run/secrets",
    build: healthyThen((h) => {
      fs.mkdirSync(h.real("/run/elsewhere"));
      // cp -a keeps owners and modes, as a hand-made copy of a generation would.
      execFileSync("cp", ["-a", h.real(gen), h.real("/run/elsewhere/1")]);
      h.symlink("/run/secrets", "/run/elsewhere/1");
    }),
  },
  {
    code: "generation_missing",
    severity: "critical",
    scope: "system",
    subject: "/run/secrets",
    build: healthyThen((h) => h.symlink("/run/secrets", "/run/secrets.d/9")),
    alsoCritical: ["link_dangling"],
  },
  {
    code: "user_session_inactive",
    severity: "info",
    scope: "user:alice",
    subject: "/home/alice/.config/sops-nix/secrets",
    build: healthyThen((h) => fs.rmSync(h.real("/run/user/1000"), { recursive: true })),
  },
  {
    code: "missing",
    severity: "critical",
    scope: "system",
    subject: "db-password",
    build: healthyThen((h) => fs.rmSync(h.real(`${gen}/db-password`))),
  },
  {
    code: "not_regular_file",
    severity: "critical",
    scope: "system",
    subject: "db-password",
    build: healthyThen((h) => {
      fs.rmSync(h.real(`${gen}/db-password`));
      fs.mkdirSync(h.real(`${gen}/db-password`));
    }),
  },
  {
    code: "wrong_mode",
    severity: "critical",
    scope: "system",
    subject: "db-password",
    build: healthyThen((h) => fs.chmodSync(h.real(`${gen}/db-password`), 0o444)),
  },
  {
    code: "wrong_mode",
    severity: "critical",
    scope: "system",
    subject: "app.env",
    // Templates are chmod'ed to the exact mode: a missing group bit is wrong even though umask could not clear it.
    build: healthyThen((h) => fs.chmodSync(h.real(`${gen}/rendered/app.env`), 0o400)),
  },
  {
    code: "wrong_owner",
    severity: "critical",
    scope: "system",
    subject: "db-password",
    build: healthyThen((h) => fs.chownSync(h.real(`${gen}/db-password`), 1000, 0)),
  },
  {
    code: "wrong_owner",
    severity: "critical",
    scope: "user:alice",
    subject: "gh-token",
    build: healthyThen((h) => fs.chownSync(h.real("/run/user/1000/secrets.d/1/gh-token"), 0, 100)),
  },
  {
    code: "wrong_group",
    severity: "critical",
    scope: "system",
    subject: "nginx/htpasswd",
    build: healthyThen((h) => fs.chownSync(h.real(`${gen}/nginx/htpasswd`), 60, 100)),
  },
  {
    code: "unknown_owner",
    severity: "critical",
    scope: "system",
    subject: "db-password",
    build: withSystem((spec) => ({
      ...spec,
      system: { ...spec.system, secrets: [{ name: "db-password", owner: "ghost" }] },
    })),
  },
  {
    code: "unknown_group",
    severity: "critical",
    scope: "system",
    subject: "db-password",
    build: withSystem((spec) => ({
      ...spec,
      system: { ...spec.system, secrets: [{ name: "db-password", group: "ghosts" }] },
    })),
  },
  {
    code: "link_missing",
    severity: "critical",
    scope: "system",
    subject: "api-token",
    build: healthyThen((h) => fs.rmSync(h.real("/var/lib/app/token"))),
  },
  {
    code: "link_wrong_target",
    severity: "critical",
    scope: "system",
    subject: "api-token",
    build: healthyThen((h) => h.symlink("/var/lib/app/token", `${gen}/api-token`)),
  },
  {
    code: "link_wrong_target",
    severity: "critical",
    scope: "user:alice",
    subject: "mcp.json",
    build: healthyThen((h) => {
      fs.rmSync(h.real("/home/alice/mcp/service.json"));
      h.writeFile("/home/alice/mcp/service.json", "{}", 0o600, 1000, 100);
    }),
  },
  {
    code: "link_dangling",
    severity: "critical",
    scope: "system",
    subject: "api-token",
    build: healthyThen((h) => fs.rmSync(h.real(`${gen}/api-token`))),
    alsoCritical: ["missing"],
  },
  {
    code: "unrendered_placeholder",
    severity: "critical",
    scope: "system",
    subject: "app.env",
    build: healthyThen((h) => fs.writeFileSync(h.real(`${gen}/rendered/app.env`), `TOKEN=${PLACEHOLDER}\n`)),
  },
  {
    code: "key_missing",
    severity: "critical",
    scope: "system",
    subject: "/var/lib/sops-nix/key.txt",
    build: healthyThen((h) => fs.rmSync(h.real("/var/lib/sops-nix/key.txt"))),
    alsoCritical: ["key_missing", "host_not_recipient"],
  },
  {
    code: "key_dangling",
    severity: "critical",
    scope: "system",
    subject: "/var/lib/sops-nix/key.txt",
    build: healthyThen((h) => {
      fs.rmSync(h.real("/var/lib/sops-nix/key.txt"));
      h.symlink("/var/lib/sops-nix/key.txt", "/home/alice/.ssh/id_infrastructure");
    }),
    alsoCritical: ["key_dangling", "host_not_recipient"],
  },
  {
    code: "key_dangling",
    severity: "warning",
    scope: "host",
    subject: "/root/id_infrastructure",
    build: healthyThen((h) => h.symlink("/root/id_infrastructure", "/home/alice/.ssh/id_infrastructure")),
  },
  {
    code: "key_is_symlink",
    severity: "warning",
    scope: "system",
    subject: "/var/lib/sops-nix/key.txt",
    build: healthyThen((h) => {
      fs.renameSync(h.real("/var/lib/sops-nix/key.txt"), h.real("/root/key.txt"));
      h.symlink("/var/lib/sops-nix/key.txt", "/root/key.txt");
    }),
  },
  {
    code: "key_insecure_mode",
    severity: "warning",
    scope: "user:alice",
    subject: "/home/alice/.config/sops/age/keys.txt",
    build: healthyThen((h) => fs.chmodSync(h.real("/home/alice/.config/sops/age/keys.txt"), 0o644)),
  },
  {
    code: "manifest_invalid",
    severity: "critical",
    scope: "system",
    subject: "",
    build: healthyThen((h) => {
      const m = h.scopes.get("system")?.manifestPath ?? "";
      fs.writeFileSync(h.real(m), '{"secrets": [');
    }),
  },
  {
    code: "manifest_missing",
    severity: "critical",
    scope: "system",
    subject: "",
    build: healthyThen((h) => fs.rmSync(h.real(h.scopes.get("system")?.manifestPath ?? ""))),
  },
  { code: "no_manifests", severity: "critical", scope: "host", subject: "/", build: () => makeHost({}) },
];

describe("a healthy host", () => {
  it("has no problem at all in any scope", () => {
    const host = healthyHost();
    const run = checkHost({ root: host.root, manifests: null, env: {} });
    expect(run.document.problems).toEqual([]);
    expect(run.document.healthy).toBe(true);
    expect(run.document.scopes.map((s) => [s.scope, s.generation, s.secrets, s.templates])).toEqual([
      ["for-users", 1, 1, 0],
      ["system", 1, 3, 1],
      ["user:alice", 1, 2, 1],
    ]);
    expect(run.document.secrets).toHaveLength(8);
    expect(run.document.secrets.every((s) => s.ok)).toBe(true);
  });
});

describe.each(CASES)("$code ($scope $subject)", (c) => {
  it("is reported with its severity and nothing else critical", () => {
    const host = c.build();
    const problems = check(host);
    const subject = c.subject === "" ? (host.scopes.get(c.scope)?.manifestPath ?? "") : c.subject;
    const found = problems.filter((p) => p.code === c.code && p.scope === c.scope && p.subject === subject);
    expect(found, JSON.stringify(problems, null, 1)).toHaveLength(1);
    expect(found[0]?.severity).toBe(c.severity);
    expect(found[0]?.message.length).toBeGreaterThan(20);
    const allowed = new Set<ProblemCode>([c.code, ...(c.alsoCritical ?? [])]);
    const otherCritical = problems.filter((p) => p.severity === "critical" && !allowed.has(p.code));
    expect(otherCritical).toEqual([]);
  });
});

describe("scopes stay independent", () => {
  it("a corrupt manifest never hides the other scopes", () => {
    const host = healthyHost();
    fs.writeFileSync(host.real(host.scopes.get("system")?.manifestPath ?? ""), "not json");
    fs.rmSync(host.real("/run/secrets-for-users.d/1/alice-password"));
    const run = checkHost({ root: host.root, manifests: null, env: {} });
    expect(run.document.problems.map((p) => [p.scope, p.code])).toEqual([
      ["for-users", "missing"],
      ["system", "manifest_invalid"],
    ]);
    expect(run.document.scopes.map((s) => s.scope)).toEqual(["for-users", "user:alice"]);
  });
});

describe("sops-install-secrets' umask", () => {
  it.each([
    [0o664, 0o644, true],
    [0o664, 0o664, true],
    [0o664, 0o640, false],
    [0o400, 0o600, false],
    [0o440, 0o400, false],
  ])("declared %o, found %o: ok=%s", (declared, found, ok) => {
    const host = withSystem((spec) => ({
      ...spec,
      system: { ...spec.system, secrets: [{ name: "s", mode: `0${declared.toString(8)}` }] },
    }))();
    fs.chmodSync(host.real(`${gen}/s`), found);
    expect(check(host).some((p) => p.code === "wrong_mode")).toBe(!ok);
  });
});

describe("mount_not_ramfs", () => {
  it("warns when the mount point sits on a persistent disk", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sops-agent-disk-"));
    try {
      const host = layoutHost(dir, healthySpec());
      installKeys(host);
      const statfs = fs.statfsSync(dir).type;
      const problems = check(host).filter((p) => p.code === "mount_not_ramfs");
      if (statfs === 0x01021994 || statfs === 0x858458f6) {
        expect(problems).toEqual([]);
      } else {
        expect(problems.map((p) => [p.scope, p.severity]).sort()).toEqual([
          ["for-users", "warning"],
          ["system", "warning"],
        ]);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("unreadable", () => {
  it("is a warning, not a failure, when the agent may not look", () => {
    const scopeFixture = checkHost({ root: healthyHost().root, manifests: null, env: {} }).observed.find(
      (o) => o.declared.scope === "system",
    ) as ObservedScope;
    const denied: ObservedScope = {
      ...scopeFixture,
      files: scopeFixture.files.map((f) => ({ ...f, facts: { state: "inaccessible", errno: "EACCES" } })),
    };
    const problems = checkFiles(denied, emptyAccounts());
    expect(problems.filter((p) => p.code === "unreadable").map((p) => p.severity)).toEqual([
      "warning",
      "warning",
      "warning",
      "warning",
    ]);
    expect(
      problems.some(
        (p) => p.severity === "critical" && p.code !== "unknown_owner" && p.code !== "unknown_group",
      ),
    ).toBe(false);
  });
});

describe("--root confinement", () => {
  it("follows an absolute link in a parent directory inside the root, not on the running host", () => {
    const host = healthyHost();
    // /var/lib/sops-nix is an absolute link into an impermanence-style /persist, which only the image has.
    fs.mkdirSync(host.real("/persist"), { recursive: true });
    fs.renameSync(host.real("/var/lib/sops-nix"), host.real("/persist/sops-nix"));
    host.symlink("/var/lib/sops-nix", "/persist/sops-nix");
    expect(fs.existsSync("/persist/sops-nix/key.txt")).toBe(false);
    expect(check(host)).toEqual([]);
  });

  it("never blocks on a FIFO where a file is read", () => {
    const host = healthyHost();
    fs.rmSync(host.real("/etc/group"));
    execFileSync("mkfifo", [host.real("/etc/group")]);
    const problems = check(host);
    // No group database: the declared group names are unknown, which is reported, and the check ends.
    expect(problems.some((p) => p.code === "unknown_group" && p.subject === "nginx/htpasswd")).toBe(true);
  });
});

describe("extra_key_paths", () => {
  it("are checked with the system scope at warning severity", () => {
    const host = healthyHost();
    host.symlink("/root/id_infrastructure", "/home/alice/.ssh/id_infrastructure");
    const run = checkHost({
      root: host.root,
      manifests: null,
      env: {},
      extraKeyPaths: ["/root/id_infrastructure"],
    });
    expect(run.document.problems.map((p) => [p.scope, p.code, p.severity, p.subject])).toEqual([
      ["system", "key_dangling", "warning", "/root/id_infrastructure"],
    ]);
  });
});

describe("a secret and a template with the same name", () => {
  it("are told apart: a problem of one does not mark the other not ok", () => {
    const host = withSystem((spec) => ({
      ...spec,
      system: { ...spec.system, secrets: [{ name: "app" }], templates: [{ name: "app", mode: "0400" }] },
    }))();
    fs.chmodSync(host.real(`${gen}/rendered/app`), 0o444);
    const run = checkHost({ root: host.root, manifests: null, env: {} });
    expect(run.document.problems.map((p) => [p.code, p.subject])).toEqual([["wrong_mode", "app"]]);
    const app = run.document.secrets.filter((s) => s.scope === "system" && s.name === "app");
    expect(app.map((s) => [s.kind, s.ok])).toEqual([
      ["secret", true],
      ["template", false],
    ]);
  });
});
