// Issue 9.5: no deputy. A user's own home-manager scope (its unit, manifest and links are hers to write)
// must not make the privileged agent report on files she could not see: her scope is observed with her
// access, names that climb out of the generation are refused, and her templates are read only when hers.

import * as fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { checkHost } from "../src/host/check-host.js";
import { RootFs } from "../src/host/rootfs.js";
import { startReadyAgent } from "./helpers/agent.js";
import { cleanupRoots, healthyHost } from "./helpers/host.js";

afterEach(cleanupRoots);

const PLACEHOLDER = `<SOPS:${"cd".repeat(32)}:PLACEHOLDER>`;
// Distinctive facts of root's files: none of them may show anywhere.
const ROOT_MTIME = 1_234_567_890;
const ROOT_GID = 4242;

/** Alice rewrites her scope: a secret named like root's key, her link at /root/.ssh, root's key as hers. */
function attack() {
  const host = healthyHost();
  const manifestPath = host.scopes.get("user:alice")?.manifestPath;
  if (manifestPath === undefined) throw new Error("no user scope");
  const manifest = JSON.parse(fs.readFileSync(host.real(manifestPath), "utf8"));
  manifest.ageKeyFile = "/root/.ssh/id_ed25519";
  manifest.secrets = [
    {
      ...manifest.secrets[0],
      name: "id_ed25519",
      key: "gh-token",
      path: "/home/alice/.config/sops-nix/secrets/id_ed25519",
    },
  ];
  manifest.templates = [
    {
      ...manifest.templates[0],
      name: "mcp.json",
      path: "/home/alice/.config/sops-nix/secrets/rendered/mcp.json",
    },
  ];
  host.writeFile(manifestPath, JSON.stringify(manifest), 0o444);
  host.symlink("/home/alice/.config/sops-nix/secrets", "/root/.ssh");
  fs.mkdirSync(host.real("/root/.ssh/rendered"), { recursive: true, mode: 0o700 });
  fs.chmodSync(host.real("/root"), 0o700);
  fs.chmodSync(host.real("/root/.ssh"), 0o700);
  host.writeFile("/root/.ssh/id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\n", 0o640, 0, ROOT_GID);
  host.writeFile("/root/.ssh/rendered/mcp.json", `{"t":"${PLACEHOLDER}"}`, 0o600);
  for (const f of ["/root/.ssh/id_ed25519", "/root/.ssh/rendered/mcp.json"])
    fs.utimesSync(host.real(f), ROOT_MTIME, ROOT_MTIME);
  return host;
}

/**
 * What of root's file shows in a /metrics or /status text: its mode, group or mtime as a label, a JSON value
 * or a word of a message. Whole tokens only: a duration such as 0.00640… or 4242.1 is not root's mode or group.
 */
function leaks(text: string): string[] {
  const found: string[] = [];
  const tokens = new Set(text.split(/[^0-9.]+/));
  if ([...tokens].some((t) => Number(t) === ROOT_MTIME || Number(t) === ROOT_MTIME * 1000))
    found.push("root's mtime");
  if (tokens.has("0640")) found.push("root's mode");
  if (tokens.has(String(ROOT_GID))) found.push("root's group");
  return found;
}

describe("a user pointing her scope at /root", () => {
  it("learns nothing of root's files from /metrics or /status", async () => {
    const host = attack();
    const agent = await startReadyAgent(host.root);
    try {
      const metrics = await agent.metrics();
      const status = await (await fetch(`${agent.base}/status`)).text();
      expect(metrics).toContain('scope="user:alice"');
      expect(leaks(metrics)).toEqual([]);
      expect(leaks(status)).toEqual([]);
      // Whether root's file holds a placeholder stays unknown.
      expect(status).not.toContain("unrendered_placeholder");
    } finally {
      await agent.stop();
    }
  }, 60_000);

  it("observes her scope with her access, and says so", () => {
    const host = attack();
    const run = checkHost({ root: host.root, manifests: null, env: {} });
    const alice = run.observed.find((o) => o.declared.scope === "user:alice");
    expect(alice?.generation?.resolution).toMatchObject({ state: "inaccessible", errno: "EACCES" });
    expect(alice?.keys[0]?.facts).toEqual({ state: "inaccessible", errno: "EACCES" });
    // The system scopes, the agent's own business, are as healthy as before.
    expect(
      run.document.problems.filter((p) => p.scope !== "user:alice" && p.severity === "critical"),
    ).toEqual([]);
  });
});

describe("names and templates of a user scope", () => {
  it("refuses a secret name that climbs out of the generation", () => {
    const host = healthyHost();
    const manifestPath = host.scopes.get("user:alice")?.manifestPath ?? "";
    const manifest = JSON.parse(fs.readFileSync(host.real(manifestPath), "utf8"));
    manifest.secrets = [{ ...manifest.secrets[0], name: "../../../../root/.bashrc" }];
    host.writeFile(manifestPath, JSON.stringify(manifest), 0o444);
    host.writeFile("/root/.bashrc", "x", 0o644);
    const run = checkHost({ root: host.root, manifests: null, env: {} });
    const file = run.observed.find((o) => o.declared.scope === "user:alice")?.files[0];
    expect(file?.facts).toEqual({ state: "inaccessible", errno: "EINVAL" });
  });

  it("reads her template only when she owns it", () => {
    const host = healthyHost();
    const rendered = "/run/user/1000/secrets.d/1/rendered/mcp.json";
    // A template she can read but root owns (a hard link she made to a world-readable root file, say).
    host.writeFile(rendered, `{"t":"${PLACEHOLDER}"}`, 0o644, 0, 0);
    const run = checkHost({ root: host.root, manifests: null, env: {} });
    const file = run.observed
      .find((o) => o.declared.scope === "user:alice")
      ?.files.find((f) => f.declared.kind === "template");
    expect(file?.facts).toMatchObject({ state: "present", uid: 0 });
    expect(file?.unrenderedPlaceholder).toBe(null);
    host.writeFile(rendered, `{"t":"${PLACEHOLDER}"}`, 0o400, 1000, 100);
    const again = checkHost({ root: host.root, manifests: null, env: {} });
    expect(again.document.problems).toContainEqual(
      expect.objectContaining({ code: "unrendered_placeholder", scope: "user:alice", subject: "mcp.json" }),
    );
  });

  it("a view walks with the account's search and read bits", () => {
    const host = healthyHost();
    host.writeFile("/srv/private/x", "x", 0o644);
    fs.chmodSync(host.real("/srv/private"), 0o750);
    const alice = new RootFs(host.root, { uid: 1000, gids: [100] });
    expect(alice.lstat("/srv/private/x")).toEqual({ state: "inaccessible", errno: "EACCES" });
    expect(alice.readText("/srv/private/x")).toEqual({ error: "EACCES" });
    fs.chownSync(host.real("/srv/private"), 0, 100);
    const bob = new RootFs(host.root, { uid: 1000, gids: [100] });
    expect(bob.readText("/srv/private/x")).toBe("x");
  });
});
