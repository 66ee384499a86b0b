// The bundled example host: a Hetzner server deployed with Colmena, in the shape of the first user's
// setup (system secrets for services, a for-users password, a home-manager user with links and an MCP
// template, the shared infrastructure age key in /root/id_infrastructure).

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { x25519 } from "@noble/curves/ed25519.js";
import { bech32 } from "@scure/base";
import { x25519PublicToAge } from "../sops/age.js";
import { type HostLayout, type HostSpec, layoutHost } from "./layout.js";

/**
 * A throwaway age identity made for this example host alone, like `age-keygen` would: the agent derives
 * the host's recipient from it, as it does from a real /root/id_infrastructure.
 */
export function exampleIdentity(): { readonly recipient: string; readonly file: string } {
  const secret = x25519.utils.randomSecretKey();
  const recipient = x25519PublicToAge(x25519.getPublicKey(secret));
  const encoded = bech32.encode("age-secret-key-", bech32.toWords(secret), false).toUpperCase();
  return { recipient, file: `# created: 2026-01-01T00:00:00Z\n# public key: ${recipient}\n${encoded}\n` };
}

export function exampleSpec(uid: number, gid: number, recipient: string): HostSpec {
  // As root the example uses real service accounts; otherwise everything belongs to the current user,
  // who cannot give files away.
  const asRoot = uid === 0;
  const user = asRoot ? { name: "alice", uid: 1000, gid: 100 } : { name: "alice", uid, gid };
  const svc = (name: string) => (asRoot ? { owner: name, group: name } : { owner: null, group: null });
  // Numeric ids of files declared without an owner name: root's, or the current user's.
  const ids = asRoot ? { uid: 0, gid: 0 } : { uid, gid };
  const nginx = svc("nginx");
  const postgres = svc("postgres");
  return {
    users: [
      { ...user, home: "/home/alice" },
      { name: "nginx", uid: 60, gid: 60, home: "/var/empty" },
      { name: "postgres", uid: 71, gid: 71, home: "/var/lib/postgresql" },
    ],
    groups: [
      { name: "users", gid: 100 },
      { name: "nginx", gid: 60 },
      { name: "postgres", gid: 71 },
    ],
    system: {
      ageKeyFile: "/root/id_infrastructure",
      recipients: [recipient],
      secrets: [
        {
          name: "postgres/password",
          mode: "0400",
          owner: postgres.owner,
          group: postgres.group,
          ...ids,
          sopsFile: "postgres",
        },
        {
          name: "nginx/htpasswd",
          mode: "0440",
          owner: nginx.owner,
          group: nginx.group,
          ...ids,
          sopsFile: "nginx",
        },
        {
          name: "grafana-env",
          key: "data",
          mode: "0400",
          ...ids,
          sopsFile: "grafana",
        },
        {
          name: "restic-password",
          mode: "0400",
          path: "/etc/restic/password",
          ...ids,
        },
      ],
      templates: [
        {
          name: "grafana.ini",
          mode: "0440",
          group: nginx.group,
          ...ids,
          rendered: "[security]\nadmin_password = example\n",
        },
      ],
    },
    // for-users secrets always belong to root (sops-nix runs it with -ignore-passwd): only root can lay it out.
    ...(asRoot
      ? {
          forUsers: {
            ageKeyFile: "/root/id_infrastructure",
            recipients: [recipient],
            secrets: [
              {
                name: "alice-password-hash",
                mode: "0400",
                ...ids,
                sopsFile: "users",
              },
            ],
          },
        }
      : {}),
    homeManager: [
      {
        user: "alice",
        scope: {
          ageKeyFile: "/home/alice/.config/sops/age/keys.txt",
          recipients: [recipient],
          secrets: [
            { name: "github-token", mode: "0400", sopsFile: "workstation" },
            { name: "ssh-work-key", mode: "0400", path: "/home/alice/.ssh/id_work", sopsFile: "workstation" },
          ],
          templates: [
            {
              name: "mcp-github",
              mode: "0400",
              path: "/home/alice/mcp/github.json",
              rendered: '{"mcpServers":{}}\n',
            },
          ],
        },
      },
    ],
  };
}

/** Where the example host lives: on tmpfs when there is one, like /run on a real host. */
export function exampleRoot(): string {
  const base = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
  return path.join(base, `sops-agent-example-${process.getuid?.() ?? 0}`);
}

export function layoutExampleHost(root = exampleRoot()): HostLayout {
  fs.rmSync(root, { recursive: true, force: true });
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const identity = exampleIdentity();
  const spec = exampleSpec(uid, gid, identity.recipient);
  const host = layoutHost(root, spec);
  const keyFile = identity.file;
  host.writeFile("/root/id_infrastructure", keyFile, 0o600, uid === 0 ? 0 : uid, uid === 0 ? 0 : gid);
  const alice = spec.users?.find((u) => u.name === "alice");
  host.writeFile(
    "/home/alice/.config/sops/age/keys.txt",
    keyFile,
    0o600,
    alice?.uid ?? uid,
    alice?.gid ?? gid,
  );
  return host;
}
