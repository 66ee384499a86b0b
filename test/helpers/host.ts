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

/**
 * One run of sops-install-secrets over a scope laid out with `generation: 0`, step for step as
 * installSecrets does it (sops-nix 56b24064, pkgs/sops-install-secrets/main.go:1320-1480 and linux.go:24-63),
 * under a real process umask: every mkdir, create and write below goes through the kernel's umask exactly
 * as Go's os.Mkdir/os.MkdirAll/os.OpenFile do, instead of computing modes the way the layout helper does.
 * It reads the scope's manifest and the tree's /etc/passwd and /etc/group, like the real tool. The one step
 * it cannot take is the mount: the mount point gets the mount's exact `mode=0751` by a chmod instead.
 * In user mode the real process runs as the user: everything it creates is chowned to her here.
 * Returns the generation directory (a host path).
 */
export function installSecrets(
  host: HostLayout,
  scopeName: string,
  opts: { readonly umask: number; readonly ignorePasswd: boolean },
): string {
  const laid = host.scopes.get(scopeName);
  if (laid === undefined) throw new Error(`no scope ${scopeName}`);
  const m = JSON.parse(fs.readFileSync(host.real(laid.manifestPath), "utf8")) as InstallManifest;
  const real = (p: string) => host.real(p);
  const userMode = m.userMode === true;
  // The process's own ids: root for system scopes, the user in user mode.
  const proc = laid.owner ?? { uid: 0, gid: 0 };
  const own = (p: string) => fs.lchownSync(real(p), proc.uid, proc.gid);
  const runtime = laid.owner === null ? "" : `/run/user/${laid.owner.uid}`;
  // main.go:1249-1260: %r and %% in user mode only.
  const expand = (p: string) =>
    userMode
      ? p
          .split("%%")
          .map((s) => s.replaceAll("%r", runtime))
          .join("%")
      : p;
  const mountPoint = expand(m.secretsMountPoint);
  const symlinkPath = expand(m.symlinkPath);
  const passwd = accountTable(fs.readFileSync(real("/etc/passwd"), "utf8"), 2);
  const groups = accountTable(fs.readFileSync(real("/etc/group"), "utf8"), 2);
  // main.go:1371-1378 and :490-500: keys (or nogroup), 0 with -ignore-passwd.
  const keysGid = opts.ignorePasswd ? 0 : (groups.get("keys") ?? groups.get("nogroup") ?? 0);
  // validateSecret / validateTemplate (main.go:599-629, :669-697): -ignore-passwd owns everything by 0:0.
  const ids = (f: InstallFile): [number, number] => {
    if (opts.ignorePasswd) return [0, 0];
    const uid = f.owner == null ? (f.uid ?? 0) : passwd.get(f.owner);
    const gid = f.group == null ? (f.gid ?? 0) : groups.get(f.group);
    if (uid === undefined || gid === undefined) throw new Error(`unknown owner or group of ${f.name}`);
    return [uid, gid];
  };
  // os.FileMode(ParseUint(mode, 8, 16)) (main.go:567-573): only the permission bits reach the syscall.
  const perm = (mode: string) => Number.parseInt(mode, 8) & 0o777;
  // os.MkdirAll: each missing directory is created with `mode` through the umask, owned by the process.
  const mkdirAll = (p: string, mode: number) => {
    const missing: string[] = [];
    for (let d = p; d !== "/" && !fs.existsSync(real(d)); d = path.posix.dirname(d)) missing.unshift(d);
    for (const d of missing) {
      fs.mkdirSync(real(d), { mode });
      own(d);
    }
  };
  // main.go:442-457 createParentDirs: every component of the name's directory, from `parent` on (the
  // parent itself for a plain name: filepath.Join(parent, ".")), MkdirAll(0751) and chowned 0:keys.
  const createParentDirs = (parent: string, name: string) => {
    let soFar = parent;
    for (const dir of path.posix.dirname(name).split("/")) {
      soFar = path.posix.join(soFar, dir);
      mkdirAll(soFar, 0o751);
      if (!userMode) fs.chownSync(real(soFar), 0, keysGid);
    }
  };

  const previous = process.umask(opts.umask);
  try {
    // linux.go:24-63 MountSecretFs: MkdirAll(0751); system mode mounts ramfs with mode=0751, chown 0:keys.
    mkdirAll(mountPoint, 0o751);
    if (!userMode) {
      fs.chmodSync(real(mountPoint), 0o751);
      fs.chownSync(real(mountPoint), 0, keysGid);
    }
    // main.go:1399-1436: one combined key file, OpenFile(0600) through the umask, the ageKeyFile appended.
    if (m.ageKeyFile != null || (m.ageSshKeyPaths ?? []).length > 0) {
      if ((m.ageSshKeyPaths ?? []).length > 0) throw new Error("installSecrets: ssh-to-age is not ported");
      const keyFile = `${mountPoint}/age-keys.txt`;
      const fd = fs.openSync(real(keyFile), "w", 0o600);
      fs.writeSync(fd, `# generated by sops-nix at ${new Date().toISOString()}\n`);
      if (m.ageKeyFile != null) fs.writeSync(fd, `${fs.readFileSync(real(m.ageKeyFile), "utf8")}\n`);
      fs.closeSync(fd);
      own(keyFile);
    }
    // main.go:404-440 prepareSecretsDir: the next generation after the one the link points to.
    let generation = 0;
    try {
      const target = fs.readlinkSync(real(symlinkPath));
      if (target.startsWith(mountPoint)) generation = Number(path.posix.basename(target));
    } catch {
      // no link yet: generation 1
    }
    generation++;
    const dir = `${mountPoint}/${generation}`;
    fs.rmSync(real(dir), { recursive: true, force: true });
    fs.mkdirSync(real(dir), { mode: 0o751 });
    own(dir);
    if (!userMode) fs.chownSync(real(dir), 0, keysGid);
    // main.go:459-476 writeSecrets: os.WriteFile(mode) through the umask, then chown.
    for (const s of m.secrets) {
      createParentDirs(dir, s.name);
      const value = laid.spec.secrets.find((x) => x.name === s.name)?.value ?? `value-of-${s.name}`;
      fs.writeFileSync(real(`${dir}/${s.name}`), value, { mode: perm(s.mode) });
      own(`${dir}/${s.name}`);
      if (!userMode) fs.chownSync(real(`${dir}/${s.name}`), ...ids(s));
    }
    // main.go:1262-1318 writeTemplate: CreateTemp, write, fchmod to the exact mode, fchown, rename.
    for (const t of m.templates) {
      const rendered = `${dir}/rendered`;
      createParentDirs(rendered, t.name);
      const tmp = `${path.posix.dirname(`${rendered}/${t.name}`)}/sops-${process.pid}`;
      const fd = fs.openSync(real(tmp), "wx", 0o600);
      fs.writeSync(
        fd,
        laid.spec.templates?.find((x) => x.name === t.name)?.rendered ?? `rendered ${t.name}\n`,
      );
      fs.fchmodSync(fd, perm(t.mode));
      if (!userMode) fs.fchownSync(fd, ...ids(t));
      else fs.fchownSync(fd, proc.uid, proc.gid);
      fs.closeSync(fd);
      fs.renameSync(real(tmp), real(`${rendered}/${t.name}`));
    }
    // main.go:759-790 atomicSymlink: MkdirAll(dir, 0755), then a link renamed over the old one.
    mkdirAll(path.posix.dirname(symlinkPath), 0o755);
    const tmpLink = `${symlinkPath}.tmp-${process.pid}`;
    fs.symlinkSync(dir, real(tmpLink));
    own(tmpLink);
    fs.renameSync(real(tmpLink), real(symlinkPath));
    // main.go:254-289 symlinkSecretsAndTemplates: MkdirAll(parent, 0777) through the umask, then a link
    // to `<symlinkPath>/<name>`; in system mode created in a temporary directory, lchowned to the file's
    // owner and renamed into place (main.go:189-252).
    const links = [
      ...m.secrets.map((s) => ({ f: s, target: `${symlinkPath}/${s.name}` })),
      ...m.templates.map((t) => ({ f: t, target: `${symlinkPath}/rendered/${t.name}` })),
    ];
    for (const { f, target } of links) {
      const at = expand(f.path);
      if (at === target) continue;
      mkdirAll(path.posix.dirname(at), 0o777);
      // linksAreEqual (main.go:178-187): the same target and owner is left alone, anything else replaced.
      const [uid, gid] = ids(f);
      const was = fs.lstatSync(real(at), { throwIfNoEntry: false });
      if (was?.isSymbolicLink() && fs.readlinkSync(real(at)) === target && was.uid === uid && was.gid === gid)
        continue;
      fs.rmSync(real(at), { force: true });
      fs.symlinkSync(target, real(at));
      own(at);
      if (!userMode) fs.lchownSync(real(at), uid, gid);
    }
    // main.go:792-834 pruneGenerations: keepGenerations back from the new one.
    const keep = m.keepGenerations ?? 1;
    for (const name of keep === 0 ? [] : fs.readdirSync(real(mountPoint))) {
      const n = Number(name);
      if (Number.isInteger(n) && n !== generation && generation - keep >= n)
        fs.rmSync(real(`${mountPoint}/${name}`), { recursive: true, force: true });
    }
    return dir;
  } finally {
    process.umask(previous);
  }
}

interface InstallFile {
  readonly name: string;
  readonly path: string;
  readonly mode: string;
  readonly owner?: string | null;
  readonly uid?: number | null;
  readonly group?: string | null;
  readonly gid?: number | null;
}

interface InstallManifest {
  readonly secrets: readonly InstallFile[];
  readonly templates: readonly InstallFile[];
  readonly secretsMountPoint: string;
  readonly symlinkPath: string;
  readonly userMode?: boolean;
  readonly ageKeyFile?: string | null;
  readonly ageSshKeyPaths?: readonly string[];
  readonly keepGenerations?: number;
}

/** name → the numeric field `field` of a passwd/group text (uid for passwd, gid for group: field 2). */
function accountTable(text: string, field: number): Map<string, number> {
  const table = new Map<string, number>();
  for (const line of text.split("\n")) {
    const parts = line.split(":");
    const id = Number(parts[field]);
    if (parts[0] && Number.isInteger(id) && !table.has(parts[0])) table.set(parts[0], id);
  }
  return table;
}
