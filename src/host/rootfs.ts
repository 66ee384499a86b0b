// All file-system reads of the agent go through RootFs, so that `--root DIR` makes DIR act as `/`:
// absolute paths and absolute symlink targets are resolved inside it, never on the running host.

import * as fs from "node:fs";
import * as path from "node:path";
import { type Credentials, permits, READ, SEARCH } from "../core/access.js";
import type { FileType, PathFacts, PresentFacts, Resolution } from "../core/facts.js";

const MAX_SYMLINK_HOPS = 40;

export class RootFs {
  readonly root: string;

  /**
   * Set for a view with one account's access (a user's own home-manager scope): every path is walked
   * with that account's search and read bits, so the agent never reports on a file the account could not
   * see itself. The agent stays privileged; it just refuses to be the account's deputy.
   */
  readonly as: Credentials | null;

  constructor(root = "/", as: Credentials | null = null) {
    this.root = path.resolve(root);
    this.as = as;
  }

  /** The real path of a host path, without following any symlink. */
  real(hostPath: string): string {
    // The common case is an already clean absolute path: skip normalize, which costs on every lstat.
    const normal = isCleanAbsolute(hostPath) ? hostPath : path.posix.normalize(`/${hostPath}`);
    return this.root === "/" ? normal : this.root + normal;
  }

  /**
   * lstat, with the link text for symlinks. Never throws. Under a root other than `/`, the parent
   * directory is resolved inside the root first: the kernel would otherwise follow a symlink in a parent
   * (an absolute link to /persist, say) on the running host.
   */
  lstat(hostPath: string, stamp?: ChangeStamp, before?: PathFacts): PathFacts {
    if (this.root === "/" && this.as === null) return this.lstatReal(this.real(hostPath), stamp, before);
    const normal = path.posix.normalize(`/${hostPath}`);
    if (normal === "/") return this.lstatReal(this.root, stamp);
    const parent = this.resolveDir(path.posix.dirname(normal));
    if (parent.state === "inaccessible") return { state: "inaccessible", errno: parent.errno };
    if (parent.state !== "resolved" || parent.facts.type !== "directory") return ABSENT;
    // Looking at an entry takes search permission on its directory.
    if (this.as !== null && !permits(this.as, parent.facts, SEARCH)) return DENIED;
    return this.lstatReal(`${this.real(parent.path)}/${path.posix.basename(normal)}`, stamp, before);
  }

  /**
   * lstat of `<dir>/<name>` where `realDir` is the real path of an already resolved directory: one path
   * join per secret. A name with directories in it (`nginx/htpasswd`) or `..`/`.` takes the resolving way.
   */
  lstatUnder(realDir: string, hostDir: string, name: string, before?: PathFacts): PathFacts {
    if (this.as !== null) return this.lstat(`${hostDir}/${name}`, undefined, before);
    // Secrets are declared directory by directory: the last sub-directory is tried first, without
    // building its key (a string and a hash per secret).
    const last = this.lastSub;
    if (
      last !== null &&
      last.hostDir === hostDir &&
      name.length > last.sub.length + 1 &&
      name.charCodeAt(last.sub.length) === SLASH &&
      name.startsWith(last.sub) &&
      name.indexOf("/", last.sub.length + 1) === -1 &&
      !isDotName(name, last.sub.length + 1)
    ) {
      const dir = last.dir;
      if (typeof dir !== "string") return dir;
      // No link on the way: the real path is the directory's and the name, one concatenation.
      return this.lstatReal(
        last.prefix === null ? dir + name.slice(last.sub.length) : last.prefix + name,
        undefined,
        before,
      );
    }
    if (isPlainName(name)) return this.lstatReal(`${realDir}/${name}`, undefined, before);
    const slash = name.lastIndexOf("/");
    const sub = name.slice(0, slash);
    const base = name.slice(slash + 1);
    if (!isPlainName(base) || !isPlainRelative(sub))
      return this.lstat(`${hostDir}/${name}`, undefined, before);
    // A name like nginx/htpasswd: its sub-directory is resolved once per check, then one join per secret.
    const dir = this.realDirOf(`${hostDir}/${sub}`);
    const prefix = `${realDir}/`;
    this.lastSub = { hostDir, sub, dir, prefix: dir === `${prefix}${sub}` ? prefix : null };
    return typeof dir === "string" ? this.lstatReal(`${dir}/${base}`, undefined, before) : dir;
  }

  private lastSub: {
    readonly hostDir: string;
    readonly sub: string;
    readonly dir: string | PathFacts;
    /** `<realDir>/` when `dir` is `<realDir>/<sub>` (no link on the way). */
    readonly prefix: string | null;
  } | null = null;

  /** The real path of a host directory resolved inside the root (remembered), or why it cannot be used. */
  private realDirOf(hostDir: string): string | PathFacts {
    const known = this.realDirs.get(hostDir);
    if (known !== undefined) return known;
    const resolved = this.resolveDir(hostDir);
    const dir: string | PathFacts =
      resolved.state === "inaccessible"
        ? { state: "inaccessible", errno: resolved.errno }
        : resolved.state === "resolved" && resolved.facts.type === "directory"
          ? this.real(resolved.path)
          : ABSENT;
    this.realDirs.set(hostDir, dir);
    return dir;
  }

  private readonly realDirs = new Map<string, string | PathFacts>();

  /**
   * Directories resolved so far. A RootFs is a snapshot reader, made for one check: many secrets share a
   * directory, and a check looks at the tree as it was when the check began.
   */
  private readonly resolvedDirs = new Map<string, Resolution>();

  private resolveDir(hostDir: string): Resolution {
    const known = this.resolvedDirs.get(hostDir);
    if (known !== undefined) return known;
    const resolved = this.resolve(hostDir);
    this.resolvedDirs.set(hostDir, resolved);
    return resolved;
  }

  /**
   * `before`: what an earlier check saw there. When nothing in it changed, that same object is returned: a
   * long-running agent then keeps one facts object per file, not one more per check.
   */
  private lstatReal(real: string, stamp?: ChangeStamp, before?: PathFacts): PathFacts {
    let st: fs.Stats | undefined;
    lstatCalls++;
    try {
      st = fs.lstatSync(real, NO_THROW);
    } catch (err) {
      return errnoFacts(err);
    }
    if (st === undefined) return ABSENT;
    if (stamp !== undefined) stamp.ctimeMs = st.ctimeMs;
    const type = fileTypeOf(st);
    if (before !== undefined && type !== "symlink" && sameFacts(before, st, type)) return before;
    if (type !== "symlink") return presentFacts(st, type);
    try {
      return { ...presentFacts(st, type), linkTarget: fs.readlinkSync(real) };
    } catch (err) {
      return errnoFacts(err);
    }
  }

  /**
   * A component of a walk: directories are looked at once per RootFs (a snapshot reader, like
   * `resolvedDirs`), so the ~100 secret directories, sops files and generation listings of a check do not
   * lstat `/run`, `/run/secrets.d` and `/nix/store` again for each path. Anything else (a file, a symlink
   * whose target is read, an error) is looked at afresh every time.
   */
  private walkedDir(hostPath: string): PathFacts {
    const known = this.walkedDirs.get(hostPath);
    if (known !== undefined) return known;
    const seen = this.lstatReal(this.real(hostPath));
    if (seen.state === "present" && seen.type === "directory") this.walkedDirs.set(hostPath, seen);
    return seen;
  }

  private readonly walkedDirs = new Map<string, PathFacts>();

  /**
   * Follows every symlink of a host path inside the root, as the kernel would if the root were `/`.
   * Returns the final host path and its facts, or why it cannot be reached.
   */
  resolve(hostPath: string): Resolution {
    const pending = splitPath(hostPath);
    let current = "/";
    let hops = 0;
    let facts: PresentFacts = directoryFacts;
    // With an account's access: the facts of `current`, whose search bit each step needs.
    // The root directory counts as `/`, searchable by all (a mkdtemp'ed test tree is 0700).
    let dir: PathFacts | null = this.as === null ? null : ROOT_DIR;
    while (pending.length > 0) {
      const part = pending.shift() as string;
      if (part === "..") {
        current = path.posix.dirname(current);
        // The walk now stands in the parent: its facts are the parent's, both for the search bit of the next
        // step and for the answer when the path ends here (`d/..` is listed as the parent is, not as `d`).
        const parent = current === "/" ? null : this.walkedDir(current);
        // (It was walked through on the way here; only a race can make it gone or closed now.)
        if (parent?.state === "inaccessible")
          return { state: "inaccessible", path: current, errno: parent.errno };
        if (parent?.state === "absent") return { state: "absent", path: current };
        facts = parent === null || parent.state !== "present" ? directoryFacts : parent;
        if (this.as !== null) dir = parent ?? ROOT_DIR;
        continue;
      }
      if (this.as !== null && !(dir?.state === "present" && permits(this.as, dir, SEARCH)))
        return { state: "inaccessible", path: current, errno: "EACCES" };
      // `current` is normalised and `part` one plain name (no "", ".", ".." or "/"): a join is a concatenation.
      const next = current === "/" ? `/${part}` : `${current}/${part}`;
      // `current` is resolved already: look at the entry itself, never through a parent link.
      const seen = this.walkedDir(next);
      if (seen.state === "absent") return { state: "absent", path: next };
      if (seen.state === "inaccessible") return { state: "inaccessible", path: next, errno: seen.errno };
      if (seen.type === "symlink" && seen.linkTarget !== undefined) {
        if (++hops > MAX_SYMLINK_HOPS) return { state: "loop", path: next };
        const target = seen.linkTarget;
        pending.unshift(...splitPath(target));
        if (target.startsWith("/")) {
          current = "/";
          if (this.as !== null) dir = ROOT_DIR;
        }
        continue;
      }
      if (pending.length > 0 && seen.type !== "directory") return { state: "absent", path: next };
      current = next;
      facts = seen;
      dir = seen;
    }
    return { state: "resolved", path: current, facts };
  }

  /**
   * Reads a host path (following links inside the root). A file larger than `maxBytes` is an error
   * (EFBIG), never cut short: a truncated input would change a verdict without saying so.
   */
  readText(hostPath: string, maxBytes = 1 << 20, expect: ReadExpectation = {}): string | { error: string } {
    const resolved = this.resolve(hostPath);
    if (resolved.state !== "resolved")
      return { error: resolved.state === "inaccessible" ? resolved.errno : "ENOENT" };
    if (resolved.facts.type !== "file")
      return { error: resolved.facts.type === "directory" ? "EISDIR" : "EINVAL" };
    return this.readRealText(resolved.path, maxBytes, { ...expect, seen: resolved.facts });
  }

  /** Reads a path that is already resolved; larger than `maxBytes` is an error (EFBIG). */
  readRealText(
    hostPath: string,
    maxBytes = 1 << 20,
    expect: ReadExpectation = {},
  ): string | { error: string } {
    const read = this.readPrefix(hostPath, maxBytes, expect);
    if ("error" in read) return read;
    return read.complete ? read.text : { error: "EFBIG" };
  }

  /**
   * The first `maxBytes` of a resolved path, and whether that was all of it. For inputs that are still
   * useful in part (the passwd of an LDAP-synced host): the caller says that the rest was not read.
   */
  readPrefix(
    hostPath: string,
    maxBytes: number,
    expect: ReadExpectation = {},
  ): { readonly text: string; readonly complete: boolean } | { readonly error: string } {
    let complete = true;
    const result = this.withOpenFile(hostPath, expect, (fd, size) => {
      // The buffer is sized from fstat, not from the limit: a 16 MiB (sops files) allocation per read raised
      // glibc's mmap threshold and left the agent's resident memory that much larger. One byte more than
      // the size seen (and than the limit), so growth since, and a file over the limit, are noticed.
      const cap = maxBytes + 1;
      let buf = Buffer.allocUnsafe(Math.min(cap, size + 1));
      let total = 0;
      for (;;) {
        if (total === buf.length) {
          if (total >= cap) break;
          const bigger = Buffer.allocUnsafe(Math.min(cap, buf.length * 2));
          buf.copy(bigger, 0, 0, total);
          buf = bigger;
        }
        const n = fs.readSync(fd, buf, total, buf.length - total, null);
        if (n === 0) break;
        total += n;
      }
      if (total > maxBytes) {
        complete = false;
        total = maxBytes;
      }
      return buf.toString("utf8", 0, total);
    });
    return typeof result === "string" ? { text: result, complete } : result;
  }

  /**
   * Reads a resolved path in chunks of at most `chunkBytes` (bounded memory whatever its size), handing
   * each to `onChunk` until it returns true or `maxBytes` were read. Returns whether it was read to the end
   * (or stopped early), "too-large" when `maxBytes` were read without reaching the end.
   */
  readChunks(
    hostPath: string,
    chunkBytes: number,
    maxBytes: number,
    onChunk: (chunk: Buffer, length: number) => boolean,
    expect: ReadExpectation = {},
  ): "done" | "too-large" | { readonly error: string } {
    return this.withOpenFile(hostPath, expect, (fd, size) => {
      const buf = Buffer.allocUnsafe(Math.max(1, Math.min(chunkBytes, size + 1)));
      let total = 0;
      for (;;) {
        if (total >= maxBytes) {
          // One byte more tells "exactly the limit" from "over it".
          return fs.readSync(fd, buf, 0, 1, null) === 0 ? "done" : "too-large";
        }
        const n = fs.readSync(fd, buf, 0, Math.min(buf.length, maxBytes - total), null);
        if (n === 0) return "done";
        total += n;
        if (onChunk(buf, n)) return "done";
      }
    });
  }

  /**
   * Opens a resolved path for reading without following a final symlink and without blocking (a FIFO or
   * a device swapped in after the lstat would otherwise hang the synchronous check in open(2) for good),
   * then checks the open descriptor: a regular file, the inode that was looked at (a parent directory
   * swapped for a link since then leads elsewhere), the expected owner.
   */
  private withOpenFile<T>(
    hostPath: string,
    expect: ReadExpectation,
    read: (fd: number, size: number) => T,
  ): T | { readonly error: string } {
    if (this.as !== null) {
      // The walk to it and its read bit, with the account's access: the same answer the account would get.
      const seen = this.resolve(hostPath);
      if (seen.state === "inaccessible") return { error: seen.errno };
      if (seen.state !== "resolved") return { error: "ENOENT" };
      if (!permits(this.as, seen.facts, READ, false)) return { error: "EACCES" };
    }
    let fd: number | undefined;
    try {
      RootFs.beforeOpen?.(this.real(hostPath));
      fd = fs.openSync(this.real(hostPath), OPEN_FLAGS);
      const st = fs.fstatSync(fd);
      if (!st.isFile()) return { error: st.isDirectory() ? "EISDIR" : "EINVAL" };
      if (expect.seen !== undefined && expect.seen.ino !== 0 && st.ino !== expect.seen.ino)
        return { error: "ESTALE" };
      if (expect.ownerUid !== undefined && st.uid !== expect.ownerUid) return { error: "EPERM" };
      return read(fd, st.size);
    } catch (err) {
      return { error: errnoOf(err) };
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  /**
   * Test hook: called with the real path right before every open, so a test can swap the file (for a
   * FIFO, a symlink) exactly in the window an attacker races for. Never set outside tests.
   */
  static beforeOpen: ((realPath: string) => void) | undefined;

  /** Names in a directory (following links inside the root); empty when it cannot be read. */
  readdir(hostPath: string): string[] {
    const resolved = this.resolve(hostPath);
    if (resolved.state !== "resolved") return [];
    if (this.as !== null && !permits(this.as, resolved.facts, READ)) return [];
    try {
      return fs.readdirSync(this.real(resolved.path)).sort();
    } catch {
      return [];
    }
  }

  /** The file-system magic number of the file system holding a host path, or null. */
  fsType(hostPath: string): number | null {
    const resolved = this.resolve(hostPath);
    if (resolved.state !== "resolved") return null;
    try {
      return fs.statfsSync(this.real(resolved.path)).type;
    } catch {
      return null;
    }
  }
}

const NO_THROW = { throwIfNoEntry: false } as const;

let lstatCalls = 0;

/** lstat calls made by all RootFs readers so far: tests count work with it, never time it. */
export function lstatCount(): number {
  return lstatCalls;
}

/**
 * Filled in by an lstat that finds the path: its inode change time, which no one can set back (unlike the
 * mtime), for caches that must notice any change to a directory. Not part of PathFacts: no check needs it.
 */
export interface ChangeStamp {
  ctimeMs: number;
}

// O_NOFOLLOW: a final symlink is refused (ELOOP), never followed; O_NONBLOCK: opening a FIFO returns at once.
const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

/** What the open descriptor must be, beyond a regular file. */
export interface ReadExpectation {
  /** The facts the path was resolved with: the open file must be the same inode. */
  readonly seen?: PresentFacts;
  /** The uid that must own the file (a user scope's files are read only when the user owns them). */
  readonly ownerUid?: number;
}
const ABSENT: PathFacts = { state: "absent" };
const DENIED: PathFacts = { state: "inaccessible", errno: "EACCES" };
const ROOT_DIR: PathFacts = {
  state: "present",
  type: "directory",
  mode: 0o755,
  uid: 0,
  gid: 0,
  size: 0,
  mtimeMs: 0,
  ino: 0,
};

/** A relative path of plain names: no leading or trailing `/`, no `//`, no `.` or `..` segment. */
const UNPLAIN = /^\/|\/$|\/\/|(^|\/)\.{1,2}(\/|$)/;

function isPlainRelative(p: string): boolean {
  return p !== "" && !UNPLAIN.test(p);
}

/** Whether `name` from `at` on is `.` or `..`. */
function isDotName(name: string, at: number): boolean {
  const n = name.length - at;
  return (
    (n === 1 && name.charCodeAt(at) === DOT) ||
    (n === 2 && name.charCodeAt(at) === DOT && name.charCodeAt(at + 1) === DOT)
  );
}

const DOT = 0x2e;

/** A single entry name: no directory separator, not `.` or `..`. */
function isPlainName(p: string): boolean {
  return p !== "" && p !== "." && p !== ".." && !p.includes("/");
}

/** True for `/a/b` forms that normalize would leave unchanged: no `//`, `.` or `..` segments. */
function isCleanAbsolute(p: string): boolean {
  return (
    p.startsWith("/") &&
    !p.includes("//") &&
    !p.includes("/./") &&
    !p.includes("/../") &&
    !p.endsWith("/.") &&
    !p.endsWith("/..") &&
    (p.length === 1 || !p.endsWith("/"))
  );
}

const directoryFacts: PresentFacts = {
  type: "directory",
  mode: 0o755,
  uid: 0,
  gid: 0,
  size: 0,
  mtimeMs: 0,
  ino: 0,
};

function splitPath(p: string): string[] {
  return p.split("/").filter((s) => s !== "" && s !== ".");
}

export function fileTypeOf(st: fs.Stats): FileType {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "directory";
  if (st.isSymbolicLink()) return "symlink";
  return "other";
}

/** Whether facts seen before hold exactly what `st` says (a symlink's target is not in `st`). */
function sameFacts(before: PathFacts, st: fs.Stats, type: FileType): boolean {
  return (
    before.state === "present" &&
    before.type === type &&
    before.mode === (st.mode & 0o7777) &&
    before.uid === st.uid &&
    before.gid === st.gid &&
    before.size === st.size &&
    before.mtimeMs === st.mtimeMs &&
    before.ino === st.ino
  );
}

const SLASH = 0x2f;

/** Built as one literal, not spread: this runs once per declared secret on every check. */
function presentFacts(st: fs.Stats, type: FileType): PresentFacts & { readonly state: "present" } {
  return {
    state: "present",
    type,
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    mtimeMs: st.mtimeMs,
    ino: st.ino,
  };
}

export function errnoOf(err: unknown): string {
  return typeof err === "object" && err !== null && "code" in err && typeof err.code === "string"
    ? err.code
    : "EIO";
}

function errnoFacts(err: unknown): PathFacts {
  const errno = errnoOf(err);
  // A missing or non-directory component means the path is simply not there.
  if (errno === "ENOENT" || errno === "ENOTDIR") return { state: "absent" };
  return { state: "inaccessible", errno };
}
