// Lays out a host tree the way sops-nix leaves one: manifests in a fake Nix store, the activation entry
// points that name them, generation directories behind an absolute symlink, files with real modes and
// owners, links for paths outside symlinkPath, and encrypted-looking sops files. Used by the tests, the
// benchmarks and the bundled example host (modes and owners cannot live in git).

import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

/** What secrets and templates share in a spec: the manifest's file fields, all optional. */
interface FileSpec {
  readonly name: string;
  readonly mode?: string;
  readonly owner?: string | null;
  readonly uid?: number;
  readonly group?: string | null;
  readonly gid?: number;
  /** A path outside symlinkPath; a link to where sops-nix puts the file is created there. */
  readonly path?: string;
}

export interface SecretSpec extends FileSpec {
  /** The decrypted value written into the generation. */
  readonly value?: string;
  readonly key?: string;
  readonly format?: "yaml" | "json" | "binary" | "dotenv" | "ini";
  /** Which sops file (by short name) holds it; default "secrets". */
  readonly sopsFile?: string;
}

export interface TemplateSpec extends FileSpec {
  /** The rendered content written into the generation. */
  readonly rendered?: string;
}

export interface ScopeSpec {
  readonly secrets: readonly SecretSpec[];
  readonly templates?: readonly TemplateSpec[];
  readonly ageKeyFile?: string | null;
  readonly ageSshKeyPaths?: readonly string[];
  readonly sshKeyPaths?: readonly string[];
  /** Generation number to lay out; 0 lays out nothing (sops-nix never ran). */
  readonly generation?: number;
  /** Age recipients written into this scope's sops files. */
  readonly recipients?: readonly string[];
  /**
   * The umask sops-install-secrets ran under (default 022). It shapes what it creates: generation and
   * nested directories (0751), secret files (their mode), a `path` link's parent directories (0777).
   * A leaked 077 (nixpkgs#260958, sops-nix#415) leaves the directories 0700.
   */
  readonly umask?: number;
  /** The manifest's symlinkPath / secretsMountPoint as written (`%r` allowed in user mode); defaults otherwise. */
  readonly symlinkPath?: string;
  readonly secretsMountPoint?: string;
}

export interface UserSpec {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

export interface GroupSpec {
  readonly name: string;
  readonly gid: number;
  readonly members?: readonly string[];
}

export interface HostSpec {
  readonly users?: readonly UserSpec[];
  /** Groups beyond root and keys; `members` are the supplementary members listed in /etc/group. */
  readonly groups?: readonly GroupSpec[];
  readonly activation?: "classic" | "systemd" | "nix-darwin";
  /**
   * macOS accounts that live in Directory Services, not /etc/passwd or /etc/group (nix-darwin): files are
   * laid out with their ids, the databases do not list them.
   */
  readonly directoryUsers?: readonly UserSpec[];
  readonly directoryGroups?: readonly GroupSpec[];
  readonly system?: ScopeSpec;
  readonly forUsers?: ScopeSpec;
  /** home-manager scopes by user name; the runtime directory exists unless `loggedIn` is false. */
  readonly homeManager?: readonly {
    readonly user: string;
    readonly scope: ScopeSpec;
    readonly loggedIn?: boolean;
  }[];
}

export interface LaidScope {
  readonly scopeName: string;
  readonly manifestPath: string;
  readonly symlinkPath: string;
  readonly mountPoint: string;
  readonly userMode: boolean;
  readonly owner: { uid: number; gid: number } | null;
  readonly spec: ScopeSpec;
}

const ROOT_USER: UserSpec = { name: "root", uid: 0, gid: 0, home: "/root" };
const KEYS_GID = 62;

export class HostLayout {
  readonly root: string;
  readonly scopes = new Map<string, LaidScope>();
  private readonly users: UserSpec[];
  private readonly groups: GroupSpec[];
  private readonly directoryUsers: readonly UserSpec[];
  private readonly directoryGroups: readonly GroupSpec[];
  private readonly sopsFiles = new Map<string, { keys: Set<string>; recipients: Set<string> }>();

  constructor(root: string, spec: HostSpec) {
    this.root = root;
    this.users = [ROOT_USER, ...(spec.users ?? [])];
    // A spec may list root or keys itself, to give them members.
    const builtIn = [
      { name: "root", gid: 0 },
      { name: "keys", gid: KEYS_GID },
    ].filter((g) => !(spec.groups ?? []).some((s) => s.name === g.name));
    this.groups = [...builtIn, ...(spec.groups ?? [])];
    this.directoryUsers = spec.directoryUsers ?? [];
    this.directoryGroups = spec.directoryGroups ?? [];
  }

  /** The real path of a host path inside the layout. */
  real(hostPath: string): string {
    return path.join(this.root, hostPath);
  }

  user(name: string): UserSpec {
    const found = this.users.find((u) => u.name === name);
    if (found === undefined) throw new Error(`layout: no user ${name}`);
    return found;
  }

  writeFile(hostPath: string, content: string | Buffer, mode = 0o644, uid = 0, gid = 0): void {
    const real = this.real(hostPath);
    fs.mkdirSync(path.dirname(real), { recursive: true });
    // Replace rather than overwrite: read-only files (store paths are 0444) can be rewritten by non-root too.
    fs.rmSync(real, { force: true });
    fs.writeFileSync(real, content);
    fs.chmodSync(real, mode);
    chownIfRoot(real, uid, gid);
  }

  /** Creates or atomically replaces a symlink, the way sops-install-secrets swaps links. */
  symlink(hostPath: string, target: string): void {
    const real = this.real(hostPath);
    fs.mkdirSync(path.dirname(real), { recursive: true });
    const tmp = `${real}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
    fs.symlinkSync(target, tmp);
    fs.renameSync(tmp, real);
  }

  writeAccounts(): void {
    const passwd = this.users.map((u) => `${u.name}:x:${u.uid}:${u.gid}::${u.home}:/bin/sh`).join("\n");
    const group = this.groups.map((g) => `${g.name}:x:${g.gid}:${(g.members ?? []).join(",")}`).join("\n");
    this.writeFile("/etc/passwd", `${passwd}\n`);
    this.writeFile("/etc/group", `${group}\n`);
    for (const u of this.users) fs.mkdirSync(this.real(u.home), { recursive: true });
  }

  /** Looks a name up the way sops-install-secrets does, for laying files out with numeric ids. */
  private ownerOf(
    name: string | null | undefined,
    id: number | undefined,
    table: "users" | "groups",
  ): number {
    if (name === null || name === undefined || name === "") return id ?? 0;
    const entry =
      table === "users"
        ? [...this.users, ...this.directoryUsers].find((u) => u.name === name)?.uid
        : [...this.groups, ...this.directoryGroups].find((g) => g.name === name)?.gid;
    // An unknown name: sops-nix would abort; lay the file out as root so the test sees the declared name fail.
    return entry ?? 0;
  }

  /** Writes the manifest and lays out one generation of a scope. */
  addScope(scopeName: string, scope: ScopeSpec, user: UserSpec | null): LaidScope {
    const userMode = user !== null;
    const runtime = user === null ? null : `/run/user/${user.uid}`;
    // sops-install-secrets expands %r (and %%) in user mode only (main.go:1249-1260, 1331-1351).
    const expand = (p: string) =>
      runtime === null
        ? p
        : p
            .split("%%")
            .map((part) => part.replaceAll("%r", runtime))
            .join("%");
    const symlinkText =
      scope.symlinkPath ??
      (user !== null
        ? `${user.home}/.config/sops-nix/secrets`
        : scopeName === "for-users"
          ? "/run/secrets-for-users"
          : "/run/secrets");
    const mountText = scope.secretsMountPoint ?? (user !== null ? "%r/secrets.d" : `${symlinkText}.d`);
    const symlinkPath = expand(symlinkText);
    const mountPoint = expand(mountText);
    const manifestPath = `/nix/store/${storeHash(`manifest-${scopeName}`)}-manifest${scopeName === "for-users" ? "-for-users" : ""}.json`;
    const manifest = this.manifestJson(scope, symlinkPath, mountText, userMode);
    this.writeFile(manifestPath, JSON.stringify(manifest));
    this.writeSopsFiles(scope);
    const laid: LaidScope = {
      scopeName,
      manifestPath,
      symlinkPath,
      mountPoint,
      userMode,
      owner: user === null ? null : { uid: user.uid, gid: user.gid },
      spec: scope,
    };
    this.scopes.set(scopeName, laid);
    const generation = scope.generation ?? 1;
    if (generation > 0) this.layGeneration(laid, generation);
    return laid;
  }

  private manifestJson(scope: ScopeSpec, symlinkPath: string, mountPoint: string, userMode: boolean): object {
    const secrets = scope.secrets.map((s) => ({
      name: s.name,
      key: s.key ?? s.name,
      path: s.path ?? `${symlinkPath}/${s.name}`,
      format: s.format ?? "yaml",
      mode: s.mode ?? "0400",
      sopsFile: sopsStorePath(s.sopsFile ?? "secrets"),
      ...(userMode
        ? {}
        : {
            owner: s.owner ?? null,
            uid: s.uid ?? 0,
            group: s.group ?? null,
            gid: s.gid ?? 0,
            neededForUsers: false,
            restartUnits: [],
            reloadUnits: [],
            sopsFileHash: "",
          }),
    }));
    const templates = (scope.templates ?? []).map((t) => ({
      name: t.name,
      path: t.path ?? `${symlinkPath}/rendered/${t.name}`,
      content: "",
      file: `/nix/store/${storeHash(`template-${t.name}`)}-${t.name}`,
      mode: t.mode ?? "0400",
      ...(userMode
        ? {}
        : { owner: t.owner ?? null, uid: t.uid ?? 0, group: t.group ?? null, gid: t.gid ?? 0 }),
    }));
    return {
      secrets,
      templates,
      placeholderBySecretName: {},
      secretsMountPoint: mountPoint,
      symlinkPath,
      keepGenerations: 1,
      sshKeyPaths: scope.sshKeyPaths ?? [],
      gnupgHome: null,
      ageKeyFile: scope.ageKeyFile ?? null,
      ageSshKeyPaths: scope.ageSshKeyPaths ?? [],
      ...(userMode ? {} : { useTmpfs: false }),
      userMode,
      logging: { keyImport: true, secretChanges: true },
    };
  }

  /**
   * Encrypted-looking sops files: plaintext keys, ENC[…] leaves of random bytes, age recipients. Scopes
   * may share a file, as hosts share one secrets.yaml: it holds the union of their keys and recipients.
   */
  private writeSopsFiles(scope: ScopeSpec): void {
    for (const s of scope.secrets) {
      const file = s.sopsFile ?? "secrets";
      const entry = this.sopsFiles.get(file) ?? { keys: new Set<string>(), recipients: new Set<string>() };
      entry.keys.add(s.key ?? s.name);
      for (const r of scope.recipients ?? []) entry.recipients.add(r);
      this.sopsFiles.set(file, entry);
    }
    for (const [file, entry] of this.sopsFiles) {
      this.writeFile(sopsStorePath(file), sopsYaml([...entry.keys], [...entry.recipients]), 0o444);
    }
  }

  /**
   * Lays out generation N of a scope and points symlinkPath at it, as one sops-install-secrets run does
   * (sops-nix 56b24064, pkgs/sops-install-secrets/): the system mount point is mounted `mode=0751`, exact
   * (linux.go:34-52), a user-mode one is a MkdirAll(0751) under the umask; the generation directory and
   * every nested directory (`rendered` too) are Mkdir(0751) under the umask and chowned root:keys
   * (main.go:431-478); secrets are os.WriteFile(mode) under the umask, permission bits only (main.go:466);
   * templates are fchmod'ed to the exact mode (main.go:1290); a `path` link's parent directories are
   * MkdirAll(0777) under the umask (main.go:256-283).
   */
  layGeneration(laid: LaidScope, generation: number): string {
    const genDir = `${laid.mountPoint}/${generation}`;
    const umask = laid.spec.umask ?? 0o022;
    const dirMode = 0o751 & ~umask;
    const ids = (uid: number, gid: number): [number, number] =>
      laid.owner === null ? [uid, gid] : [laid.owner.uid, laid.owner.gid];
    // -ignore-passwd (for-users) chowns to gid 0 instead of keys (main.go:1371-1378).
    const dirGid = laid.owner === null ? (laid.scopeName === "for-users" ? 0 : KEYS_GID) : laid.owner.gid;
    const dirUid = laid.owner === null ? 0 : laid.owner.uid;
    // The process's own ids: what it creates without a chown (root, or the user in user mode).
    const proc = laid.owner ?? { uid: 0, gid: 0 };
    this.mkdir(laid.mountPoint, laid.userMode ? dirMode : 0o751, dirUid, dirGid);
    this.mkdir(genDir, dirMode, dirUid, dirGid);
    for (const s of laid.spec.secrets) {
      this.mkdirParents(genDir, s.name, dirUid, dirGid, dirMode);
      const [uid, gid] = ids(this.ownerOf(s.owner, s.uid, "users"), this.ownerOf(s.group, s.gid, "groups"));
      this.writeFile(
        `${genDir}/${s.name}`,
        s.value ?? `value-of-${s.name}`,
        parseInt(s.mode ?? "0400", 8) & 0o777 & ~umask,
        uid,
        gid,
      );
    }
    // createParentDirs chowns only the directories of a name (main.go:442-457): `rendered` itself gets
    // keys only through a template whose name has no `/`; otherwise MkdirAll made it, the process's own.
    const templates = laid.spec.templates ?? [];
    const renderedGid = templates.some((t) => !t.name.includes("/")) ? dirGid : proc.gid;
    if (templates.length > 0) this.mkdir(`${genDir}/rendered`, dirMode, dirUid, renderedGid);
    for (const t of laid.spec.templates ?? []) {
      this.mkdirParents(`${genDir}/rendered`, t.name, dirUid, dirGid, dirMode);
      const [uid, gid] = ids(this.ownerOf(t.owner, t.uid, "users"), this.ownerOf(t.group, t.gid, "groups"));
      this.writeFile(
        `${genDir}/rendered/${t.name}`,
        t.rendered ?? `rendered ${t.name}\n`,
        parseInt(t.mode ?? "0400", 8) & 0o777,
        uid,
        gid,
      );
    }
    // atomicSymlink (main.go:759-790): MkdirAll(0755) of its directory, the link the process's own.
    this.mkdirAll(path.posix.dirname(laid.symlinkPath), 0o755 & ~umask, proc);
    this.symlink(laid.symlinkPath, genDir);
    chownIfRoot(this.real(laid.symlinkPath), proc.uid, proc.gid);
    // A link is lchowned to its file's owner in system mode (main.go:189-221); its parents are the process's.
    for (const s of laid.spec.secrets) {
      if (s.path !== undefined && s.path !== `${laid.symlinkPath}/${s.name}`) {
        this.mkdirAll(path.posix.dirname(s.path), 0o777 & ~umask, proc);
        this.symlink(s.path, `${laid.symlinkPath}/${s.name}`);
        const [uid, gid] = ids(this.ownerOf(s.owner, s.uid, "users"), this.ownerOf(s.group, s.gid, "groups"));
        chownIfRoot(this.real(s.path), uid, gid);
      }
    }
    for (const t of templates) {
      if (t.path !== undefined && t.path !== `${laid.symlinkPath}/rendered/${t.name}`) {
        this.mkdirAll(path.posix.dirname(t.path), 0o777 & ~umask, proc);
        this.symlink(t.path, `${laid.symlinkPath}/rendered/${t.name}`);
        const [uid, gid] = ids(this.ownerOf(t.owner, t.uid, "users"), this.ownerOf(t.group, t.gid, "groups"));
        chownIfRoot(this.real(t.path), uid, gid);
      }
    }
    return genDir;
  }

  /** os.MkdirAll: only the directories that do not exist yet are created, with `mode`, owned by the process. */
  private mkdirAll(hostPath: string, mode: number, owner: { uid: number; gid: number }): void {
    const missing: string[] = [];
    for (let p = hostPath; p !== "/" && !fs.existsSync(this.real(p)); p = path.posix.dirname(p))
      missing.unshift(p);
    for (const p of missing) {
      fs.mkdirSync(this.real(p));
      fs.chmodSync(this.real(p), mode);
      chownIfRoot(this.real(p), owner.uid, owner.gid);
    }
  }

  /**
   * The next generation, exactly as sops-install-secrets switches: write N+1, swap the link by a rename,
   * then delete the old generation at once (keepGenerations = 1).
   */
  switchGeneration(scopeName: string): number {
    const laid = this.scopes.get(scopeName);
    if (laid === undefined) throw new Error(`layout: no scope ${scopeName}`);
    const current = fs.readlinkSync(this.real(laid.symlinkPath));
    const n = Number(path.basename(current));
    this.layGeneration(laid, n + 1);
    fs.rmSync(this.real(current), { recursive: true, force: true });
    return n + 1;
  }

  private mkdir(hostPath: string, mode: number, uid: number, gid: number): void {
    const real = this.real(hostPath);
    fs.mkdirSync(real, { recursive: true });
    fs.chmodSync(real, mode);
    chownIfRoot(real, uid, gid);
  }

  private mkdirParents(base: string, name: string, uid: number, gid: number, mode: number): void {
    const parts = name.split("/").slice(0, -1);
    let dir = base;
    for (const p of parts) {
      dir = `${dir}/${p}`;
      this.mkdir(dir, mode, uid, gid);
    }
  }
}

/** Only root may give files away; an unprivileged user's example host keeps its own ids (and declares them). */
function chownIfRoot(real: string, uid: number, gid: number): void {
  if (process.getuid?.() === 0) fs.lchownSync(real, uid, gid);
}

/** A deterministic fake store hash: 32 characters of Nix's base32 alphabet. */
export function storeHash(seed: string): string {
  const alphabet = "0123456789abcdfghijklmnpqrsvwxyz";
  const digest = createHash("sha256").update(seed).digest();
  let out = "";
  for (let i = 0; i < 32; i++) out += alphabet[(digest[i] ?? 0) % 32];
  return out;
}

export function sopsStorePath(shortName: string): string {
  return `/nix/store/${storeHash(`sops-${shortName}`)}-${shortName}.yaml`;
}

function encBlob(type: string): string {
  const b64 = (n: number) => randomBytes(n).toString("base64");
  return `ENC[AES256_GCM,data:${b64(12)},iv:${b64(32)},tag:${b64(16)},type:${type}]`;
}

/** A YAML sops document whose keys are the given `/`-separated paths. */
/** One `- recipient:` entry of a sops file's age list, at `indent`, its wrapped data key random. */
export function ageStanza(recipient: string, indent: string): string[] {
  return [
    `${indent}- recipient: ${recipient}`,
    `${indent}  enc: |`,
    `${indent}    -----BEGIN AGE ENCRYPTED FILE-----`,
    `${indent}    ${randomBytes(48).toString("base64")}`,
    `${indent}    -----END AGE ENCRYPTED FILE-----`,
  ];
}

export function sopsYaml(keys: readonly string[], recipients: readonly string[]): string {
  const tree: Record<string, unknown> = {};
  for (const key of keys) {
    const parts = key === "" ? ["data"] : key.split("/");
    let node = tree;
    for (const [i, part] of parts.entries()) {
      if (i === parts.length - 1) node[part] = encBlob("str");
      else {
        node[part] ??= {};
        node = node[part] as Record<string, unknown>;
      }
    }
  }
  const lines: string[] = [];
  const emit = (node: Record<string, unknown>, indent: string) => {
    for (const [k, v] of Object.entries(node)) {
      if (typeof v === "string") lines.push(`${indent}${k}: ${v}`);
      else {
        lines.push(`${indent}${k}:`);
        emit(v as Record<string, unknown>, `${indent}    `);
      }
    }
  };
  emit(tree, "");
  lines.push("sops:", "    age:");
  for (const r of recipients) lines.push(...ageStanza(r, "        "));
  lines.push(
    '    lastmodified: "2026-11-01T10:00:00Z"',
    `    mac: ${encBlob("str")}`,
    "    unencrypted_suffix: _unencrypted",
    "    version: 3.9.4",
  );
  return `${lines.join("\n")}\n`;
}

/** Lays out a whole host: accounts, scopes, and the entry points discovery reads. */
export function layoutHost(root: string, spec: HostSpec): HostLayout {
  const host = new HostLayout(root, spec);
  host.writeAccounts();
  const systemManifests: string[] = [];
  if (spec.system !== undefined)
    systemManifests.push(host.addScope("system", spec.system, null).manifestPath);
  if (spec.forUsers !== undefined)
    systemManifests.push(host.addScope("for-users", spec.forUsers, null).manifestPath);
  if (systemManifests.length > 0) writeSystemEntryPoints(host, systemManifests, spec.activation ?? "classic");
  for (const hm of spec.homeManager ?? []) {
    const user = host.user(hm.user);
    const laid = host.addScope(`user:${hm.user}`, hm.scope, user);
    writeHomeManagerUnit(host, user, laid.manifestPath);
    if (hm.loggedIn !== false) fs.mkdirSync(host.real(`/run/user/${user.uid}`), { recursive: true });
    if (hm.loggedIn === false)
      fs.rmSync(host.real(`/run/user/${user.uid}`), { recursive: true, force: true });
  }
  return host;
}

const INSTALL = `/nix/store/${storeHash("sops-install-secrets")}-sops-install-secrets-0.0.1/bin/sops-install-secrets`;

function writeSystemEntryPoints(
  host: HostLayout,
  manifests: readonly string[],
  activation: "classic" | "systemd" | "nix-darwin",
): void {
  if (activation === "nix-darwin") {
    // modules/nix-darwin: a LaunchDaemon per manifest runs sops-install-secrets once the store is there.
    for (const m of manifests) {
      const forUsers = m.endsWith("-for-users.json");
      const label = `org.nixos.sops-install-secrets${forUsers ? "-for-users" : ""}`;
      host.writeFile(
        `/Library/LaunchDaemons/${label}.plist`,
        `<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0"><dict><key>Label</key><string>${label}</string><key>ProgramArguments</key><array><string>/bin/sh</string><string>-c</string><string>/bin/wait4path /nix/store &amp;&amp; exec ${INSTALL}${forUsers ? " -ignore-passwd" : ""} ${m}</string></array><key>RunAtLoad</key><true/></dict></plist>\n`,
      );
    }
    return;
  }
  const system = `/nix/store/${storeHash("system")}-nixos-system-example-26.05`;
  if (activation === "classic") {
    const snippets = manifests.map((m) => {
      const forUsers = m.endsWith("-for-users.json");
      return [
        `#### Activation script snippet setupSecrets${forUsers ? "ForUsers" : ""}:`,
        `_localstatus=0`,
        `echo setting up secrets...`,
        `${INSTALL}${forUsers ? " -ignore-passwd" : ""} ${m}`,
      ].join("\n");
    });
    host.writeFile(`${system}/activate`, `#!/bin/sh\n${snippets.join("\n\n")}\n`, 0o555);
  } else {
    for (const m of manifests) {
      const forUsers = m.endsWith("-for-users.json");
      const unit = `sops-install-secrets${forUsers ? "-for-users" : ""}.service`;
      const storeUnit = `/nix/store/${storeHash(unit)}-unit-${unit}/${unit}`;
      host.writeFile(
        storeUnit,
        `[Unit]\nDescription=Setup secrets\n\n[Service]\nType=oneshot\nExecStart=${INSTALL}${forUsers ? " -ignore-passwd" : ""} ${m}\n`,
      );
      host.symlink(`/etc/systemd/system/${unit}`, storeUnit);
    }
    host.writeFile(`${system}/activate`, "#!/bin/sh\n# systemd-based activation\n", 0o555);
  }
  host.symlink("/run/current-system", system);
}

function writeHomeManagerUnit(host: HostLayout, user: UserSpec, manifest: string): void {
  const script = `/nix/store/${storeHash(`sops-nix-user-${user.name}`)}-sops-nix-user`;
  host.writeFile(script, `#!/bin/sh\nset -eu\n${INSTALL} -ignore-passwd ${manifest}\n`, 0o555);
  const unit = `/nix/store/${storeHash(`hm-unit-${user.name}`)}-sops-nix.service`;
  host.writeFile(
    unit,
    `[Unit]\nDescription=sops-nix activation\n\n[Service]\nType=oneshot\nExecStart=${script}\n\n[Install]\nWantedBy=default.target\n`,
  );
  host.symlink(`${user.home}/.config/systemd/user/sops-nix.service`, unit);
}
