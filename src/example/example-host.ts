// The bundled example host: a Hetzner server deployed with Colmena, in the shape of the first user's
// setup (system secrets for services, a for-users password, a home-manager user with links and an MCP
// template, the shared infrastructure age key in /root/id_infrastructure).

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { type HostLayout, type HostSpec, layoutHost } from "./layout.js";

/** The public half of the infrastructure identity; the example holds no private key material. */
const INFRASTRUCTURE_RECIPIENT = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw";

export function exampleSpec(uid: number, gid: number): HostSpec {
  // As root the example uses real service accounts; otherwise everything belongs to the current user,
  // who cannot give files away.
  const asRoot = uid === 0;
  const user = asRoot ? { name: "alice", uid: 1000, gid: 100 } : { name: "alice", uid, gid };
  const svc = (name: string, id: number) =>
    asRoot ? { owner: name, group: name, id } : { owner: null, group: null, id: uid };
  const nginx = svc("nginx", 60);
  const postgres = svc("postgres", 71);
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
      recipients: [INFRASTRUCTURE_RECIPIENT],
      secrets: [
        {
          name: "postgres/password",
          mode: "0400",
          owner: postgres.owner,
          group: postgres.group,
          uid: asRoot ? 0 : uid,
          gid: asRoot ? 0 : gid,
          sopsFile: "postgres",
        },
        {
          name: "nginx/htpasswd",
          mode: "0440",
          owner: nginx.owner,
          group: nginx.group,
          uid: asRoot ? 0 : uid,
          gid: asRoot ? 0 : gid,
          sopsFile: "nginx",
        },
        {
          name: "grafana-env",
          key: "data",
          mode: "0400",
          uid: asRoot ? 0 : uid,
          gid: asRoot ? 0 : gid,
          sopsFile: "grafana",
        },
        {
          name: "restic-password",
          mode: "0400",
          path: "/etc/restic/password",
          uid: asRoot ? 0 : uid,
          gid: asRoot ? 0 : gid,
        },
      ],
      templates: [
        {
          name: "grafana.ini",
          mode: "0440",
          group: nginx.group,
          uid: asRoot ? 0 : uid,
          gid: asRoot ? 0 : gid,
          rendered: "[security]\nadmin_password = example\n",
        },
      ],
    },
    forUsers: {
      ageKeyFile: "/root/id_infrastructure",
      recipients: [INFRASTRUCTURE_RECIPIENT],
      secrets: [
        {
          name: "alice-password-hash",
          mode: "0400",
          uid: asRoot ? 0 : uid,
          gid: asRoot ? 0 : gid,
          sopsFile: "users",
        },
      ],
    },
    homeManager: [
      {
        user: "alice",
        scope: {
          ageKeyFile: "/home/alice/.config/sops/age/keys.txt",
          recipients: [INFRASTRUCTURE_RECIPIENT],
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
  const spec = exampleSpec(uid, gid);
  const host = layoutHost(root, spec);
  const keyFile = `# created: 2026-01-01T00:00:00Z\n# public key: ${INFRASTRUCTURE_RECIPIENT}\n`;
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
