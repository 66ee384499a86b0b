// Leftovers of removed secrets (sops-nix #574, #605): hosts with earlier generations kept the way the NixOS
// system profile and home-manager's profile keep them, each naming its manifest the way the running system
// does, everything under --root.

import * as fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { renderState } from "../src/agent/metrics.js";
import type { Problem } from "../src/core/problems.js";
import type { CheckRun } from "../src/core/report.js";
import type { HostLayout } from "../src/example/layout.js";
import { checkHost } from "../src/host/check-host.js";
import { DeclarationMemory, HistoryCache } from "../src/host/history.js";
import {
  currentSystemGeneration,
  formerManifest,
  homeManagerGeneration,
  type ManifestJson,
  systemGeneration,
} from "./helpers/generations.js";
import { cleanupRoots, healthyHost } from "./helpers/host.js";

afterEach(cleanupRoots);

function check(
  host: HostLayout,
  opts: { historyCache?: HistoryCache; memory?: DeclarationMemory } = {},
): CheckRun {
  return checkHost({ root: host.root, manifests: null, env: {}, ...opts });
}

function leftovers(run: CheckRun): Problem[] {
  return run.document.problems.filter((p) => p.code === "orphan_link" || p.code === "orphan_file");
}

/** A NixOS host on system generation 3 whose generation 2 also declared `old-token` at /var/lib/old/token. */
function hostWithRemovedSecret(activation: "classic" | "systemd" = "classic"): HostLayout {
  const host = healthyHost();
  const withOld = formerManifest(host, "system", "with-old-token", (m) => {
    m.secrets.push({
      ...(m.secrets[0] as ManifestJson["secrets"][0]),
      name: "old-token",
      path: "/var/lib/old/token",
    });
  });
  systemGeneration(
    host,
    1,
    formerManifest(host, "system", "gen1", () => {}),
    activation,
  );
  systemGeneration(host, 2, withOld, activation);
  currentSystemGeneration(host, 3);
  // sops-install-secrets linked it when generation 2 was activated, and left it when 3 dropped the secret.
  host.symlink("/var/lib/old/token", "/run/secrets/old-token");
  return host;
}

describe("orphan_link", () => {
  it("reports nothing on a healthy host whose generations removed nothing", () => {
    const host = healthyHost();
    systemGeneration(
      host,
      1,
      formerManifest(host, "system", "same-1", () => {}),
    );
    // A re-keyed secret is still declared at its path: not a leftover.
    systemGeneration(
      host,
      2,
      formerManifest(host, "system", "rekeyed", (m) => {
        (m.secrets[2] as ManifestJson["secrets"][0]).key = "an-older-key";
      }),
    );
    currentSystemGeneration(host, 3);
    const run = check(host);
    expect(leftovers(run)).toEqual([]);
    expect(run.document.healthy).toBe(true);
    expect(run.families.every((f) => f.ok)).toBe(true);
  });

  it.each(["classic", "systemd"] as const)(
    "reports a dangling link a removed secret left behind (%s activation)",
    (activation) => {
      const run = check(hostWithRemovedSecret(activation));
      const found = leftovers(run);
      expect(found).toHaveLength(1);
      expect(found[0]).toMatchObject({
        code: "orphan_link",
        severity: "warning",
        scope: "system",
        subject: "/var/lib/old/token",
        path: "/var/lib/old/token",
      });
      expect(found[0]?.message).toContain("old-token");
      expect(found[0]?.message).toContain("system generation 2 (/nix/var/nix/profiles/system-2-link)");
      expect(found[0]?.message).toContain("rm /var/lib/old/token");
      // A leftover is a warning: the secrets that are declared are fine.
      expect(run.document.healthy).toBe(true);
    },
  );

  it("reports a leftover that still resolves: the secret moved to another path", () => {
    const host = healthyHost();
    systemGeneration(
      host,
      1,
      formerManifest(host, "system", "moved", (m) => {
        (m.secrets[2] as ManifestJson["secrets"][0]).path = "/var/lib/app/token-v1";
      }),
    );
    currentSystemGeneration(host, 2);
    host.symlink("/var/lib/app/token-v1", "/run/secrets/api-token");
    const found = leftovers(check(host));
    expect(found.map((p) => p.subject)).toEqual(["/var/lib/app/token-v1"]);
    expect(found[0]?.message).toContain("now belongs to the secret api-token declared at another path");
  });

  it("says nothing of a renamed secret that kept its path", () => {
    const host = healthyHost();
    systemGeneration(
      host,
      1,
      formerManifest(host, "system", "renamed", (m) => {
        (m.secrets[2] as ManifestJson["secrets"][0]).name = "app-token";
      }),
    );
    currentSystemGeneration(host, 2);
    expect(leftovers(check(host))).toEqual([]);
  });

  it("reports a link straight into an old generation of the mount point", () => {
    const host = hostWithRemovedSecret();
    host.symlink("/var/lib/old/token", "/run/secrets.d/1/old-token");
    expect(leftovers(check(host)).map((p) => p.code)).toEqual(["orphan_link"]);
  });

  it("says nothing once the link is removed or replaced by a file", () => {
    const host = hostWithRemovedSecret();
    fs.rmSync(host.real("/var/lib/old/token"));
    expect(leftovers(check(host))).toEqual([]);
    host.writeFile("/var/lib/old/token", "the user's own file\n");
    expect(leftovers(check(host))).toEqual([]);
  });

  it("says nothing of a former link that points elsewhere now", () => {
    const host = hostWithRemovedSecret();
    host.symlink("/var/lib/old/token", "/etc/hostname");
    expect(leftovers(check(host))).toEqual([]);
  });

  it("finds a removed home-manager template's link through the user's home-manager generations", () => {
    const host = healthyHost();
    for (const dir of ["/home/alice/.local/state/nix/profiles", "/nix/var/nix/profiles/per-user/alice"]) {
      const manifest = formerManifest(host, "user:alice", `hm-${dir}`, (m) => {
        m.templates.push({
          ...(m.templates[0] as ManifestJson["templates"][0]),
          name: "old.json",
          path: "/home/alice/mcp/old.json",
        });
      });
      homeManagerGeneration(host, "alice", 4, manifest, dir);
    }
    // sops-install-secrets runs as alice in user mode: the link is hers.
    host.symlink("/home/alice/mcp/old.json", "/home/alice/.config/sops-nix/secrets/rendered/old.json");
    fs.lchownSync(host.real("/home/alice/mcp/old.json"), 1000, 100);
    const found = leftovers(check(host));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({
      code: "orphan_link",
      scope: "user:alice",
      subject: "/home/alice/mcp/old.json",
    });
    expect(found[0]?.message).toMatch(/template old\.json .*home-manager generation 4/);
  });

  it("never reports on a link the user does not own, whatever her old manifests declare", () => {
    const host = healthyHost();
    const manifest = formerManifest(host, "user:alice", "deputy", (m) => {
      m.secrets.push({
        ...(m.secrets[0] as ManifestJson["secrets"][0]),
        name: "probe",
        path: "/root/.ssh/probe",
      });
    });
    homeManagerGeneration(host, "alice", 2, manifest, "/home/alice/.local/state/nix/profiles");
    host.symlink("/root/.ssh/probe", "/home/alice/.config/sops-nix/secrets/probe");
    expect(leftovers(check(host))).toEqual([]);
  });

  it("reads each earlier manifest once and only the newest profile generations", () => {
    const host = hostWithRemovedSecret();
    for (let n = 4; n <= 12; n++)
      systemGeneration(
        host,
        n,
        formerManifest(host, "system", `many-${n}`, () => {}),
      );
    const cache = new HistoryCache();
    const first = check(host, { historyCache: cache });
    // Generations 12..7 are read (the newest six); the removed secret of generation 2 is out of reach now.
    expect(cache.manifestReads).toBe(6);
    expect(leftovers(first)).toEqual([]);
    check(host, { historyCache: cache });
    expect(cache.manifestReads).toBe(6);
  });

  it("remembers what the agent saw before a switch, without any profile", () => {
    const host = healthyHost();
    const memory = new DeclarationMemory();
    // The agent sees a manifest with old-token, then the switch to the current one (no profile links at all).
    const withOld = formerManifest(host, "system", "memory", (m) => {
      m.secrets.push({
        ...(m.secrets[0] as ManifestJson["secrets"][0]),
        name: "old-token",
        path: "/var/lib/old/token",
      });
    });
    const current = host.scopes.get("system")?.manifestPath ?? "";
    const activate = fs.readlinkSync(host.real("/run/current-system"));
    const text = fs.readFileSync(host.real(`${activate}/activate`), "utf8");
    host.writeFile(`${activate}/activate`, text.replace(current, withOld), 0o555);
    expect(leftovers(check(host, { memory }))).toEqual([]);
    host.writeFile(`${activate}/activate`, text, 0o555);
    host.symlink("/var/lib/old/token", "/run/secrets/old-token");
    const found = leftovers(check(host, { memory }));
    expect(found.map((p) => p.subject)).toEqual(["/var/lib/old/token"]);
    expect(found[0]?.message).toContain("the generation the agent saw before the switch at");
  });
});

describe("orphan_file", () => {
  it("reports a file in the current generation that nothing declares, nested ones too", () => {
    const host = hostWithRemovedSecret();
    fs.rmSync(host.real("/var/lib/old/token"));
    host.writeFile("/run/secrets.d/1/stray", "x", 0o400);
    host.writeFile("/run/secrets.d/1/nginx/extra.conf", "x", 0o400);
    host.writeFile("/run/secrets.d/1/rendered/extra.env", "x", 0o400);
    const found = leftovers(check(host));
    expect(found.map((p) => [p.code, p.severity, p.subject])).toEqual([
      ["orphan_file", "info", "nginx/extra.conf"],
      ["orphan_file", "info", "rendered/extra.env"],
      ["orphan_file", "info", "stray"],
    ]);
    expect(found[0]?.path).toBe("/run/secrets.d/1/nginx/extra.conf");
  });

  it("reports nothing in a generation laid out as sops-install-secrets writes it", () => {
    const host = healthyHost();
    const run = check(host);
    expect(leftovers(run)).toEqual([]);
  });
});

describe("sops_orphans", () => {
  it("counts leftovers by scope and kind, zero for every scope", () => {
    const host = hostWithRemovedSecret();
    host.writeFile("/run/secrets.d/1/stray", "x", 0o400);
    const text = renderState({ run: check(host), switches: new Map() }).toString("utf8");
    expect(text).toContain('sops_orphans{scope="system",kind="link"} 1');
    expect(text).toContain('sops_orphans{scope="system",kind="file"} 1');
    expect(text).toContain('sops_orphans{scope="user:alice",kind="link"} 0');
    expect(text).toContain('sops_orphans{scope="for-users",kind="file"} 0');
  });
});
