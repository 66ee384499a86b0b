// Test host trees: real directories with real modes and owners (tests run as root), laid out by the same
// code as the bundled example host. They live on tmpfs when there is one, so a healthy system scope is
// healthy there too (mount_not_ramfs looks at the real file system).

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { type HostLayout, type HostSpec, layoutHost } from "../../src/example/layout.js";

const created: string[] = [];

export function tempRoot(prefix = "sops-agent-test-"): string {
  const base = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
  const dir = fs.mkdtempSync(path.join(base, prefix));
  created.push(dir);
  return dir;
}

export function cleanupRoots(): void {
  for (const dir of created.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

export function makeHost(spec: HostSpec): HostLayout {
  return layoutHost(tempRoot(), spec);
}

/** The test age identity of sops-nix's test assets (public test material, MIT). */
export const TEST_AGE_RECIPIENT = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw";
export const TEST_AGE_KEYS = fs.readFileSync(
  new URL("../fixtures/sops-nix/test-assets/age-keys.txt", import.meta.url),
  "utf8",
);

/** A healthy host with every kind of scope: system, for-users and one home-manager user. */
export function healthySpec(): HostSpec {
  return {
    users: [
      { name: "alice", uid: 1000, gid: 100, home: "/home/alice" },
      { name: "nginx", uid: 60, gid: 60, home: "/var/empty" },
    ],
    groups: [
      { name: "users", gid: 100 },
      { name: "nginx", gid: 60 },
    ],
    system: {
      ageKeyFile: "/var/lib/sops-nix/key.txt",
      recipients: [TEST_AGE_RECIPIENT],
      secrets: [
        { name: "db-password", value: "PLANTED-db-password-7f3a", mode: "0400" },
        {
          name: "nginx/htpasswd",
          value: "PLANTED-htpasswd-91bc",
          mode: "0440",
          owner: "nginx",
          group: "nginx",
        },
        {
          name: "api-token",
          value: "PLANTED-api-token-5521",
          mode: "0664",
          owner: "nginx",
          path: "/var/lib/app/token",
        },
      ],
      templates: [
        { name: "app.env", rendered: "TOKEN=PLANTED-template-c0de\n", mode: "0440", group: "nginx" },
      ],
    },
    forUsers: {
      ageKeyFile: "/var/lib/sops-nix/key.txt",
      recipients: [TEST_AGE_RECIPIENT],
      secrets: [{ name: "alice-password", value: "PLANTED-hashed-password-aa11", mode: "0400" }],
    },
    homeManager: [
      {
        user: "alice",
        scope: {
          ageKeyFile: "/home/alice/.config/sops/age/keys.txt",
          recipients: [TEST_AGE_RECIPIENT],
          secrets: [
            { name: "gh-token", value: "PLANTED-gh-token-77aa", mode: "0400" },
            {
              name: "ssh-key",
              value: "PLANTED-ssh-key-3b3b",
              mode: "0400",
              path: "/home/alice/.ssh/id_work",
            },
          ],
          templates: [
            {
              name: "mcp.json",
              rendered: '{"token":"PLANTED-mcp-token-ee01"}',
              mode: "0400",
              path: "/home/alice/mcp/service.json",
            },
          ],
        },
      },
    ],
  };
}

/** Installs the age key files the healthy spec names, with safe modes. */
export function installKeys(host: HostLayout): void {
  host.writeFile("/var/lib/sops-nix/key.txt", TEST_AGE_KEYS, 0o600);
  host.writeFile("/home/alice/.config/sops/age/keys.txt", TEST_AGE_KEYS, 0o600, 1000, 100);
}

export function healthyHost(): HostLayout {
  const host = makeHost(healthySpec());
  installKeys(host);
  return host;
}

export const PLANTED = /PLANTED-[a-z-]+-[0-9a-f]{4}/;

/**
 * Rewrites a laid-out scope's manifest in place, for declarations no sops-nix module writes on its own
 * (a bad mode) or writes only in some versions (null ids, unknown formats).
 */
export function editManifest(
  host: HostLayout,
  scopeName: string,
  edit: (manifest: ManifestJson) => void,
): void {
  const laid = host.scopes.get(scopeName);
  if (laid === undefined) throw new Error(`no scope ${scopeName}`);
  const manifest = JSON.parse(fs.readFileSync(host.real(laid.manifestPath), "utf8")) as ManifestJson;
  edit(manifest);
  host.writeFile(laid.manifestPath, JSON.stringify(manifest), 0o444);
}

export interface ManifestJson {
  secrets: Record<string, unknown>[];
  templates: Record<string, unknown>[];
  [field: string]: unknown;
}
