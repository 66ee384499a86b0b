// Can a given account reach and read a path? Pure: the host layer lstat's each component and passes the
// chain of (mode, uid, gid); this module applies the kernel's discretionary access rule to it.
//
// Why it exists: sops-install-secrets creates the mount point, each generation directory and nested
// directories 0751 *through the process umask* (main.go:431-457, linux.go:34, sops-nix 56b24064). A leaked
// `umask 077` (nixpkgs#260958, sops-nix#415) leaves them 0700, and then every non-root owner is locked out
// although each file's own mode, owner and group look right. Only walking the whole chain shows it.
//
// The rule is POSIX's (Linux fs/namei.c generic_permission, macOS the same without ACLs): exactly one
// class applies — owner if the uid matches, else group if any of the account's groups matches, else
// other — and the bits of that class alone decide; a matching owner class with fewer bits than "other"
// is still denied. Root (uid 0) has CAP_DAC_OVERRIDE: it may read and search anything. POSIX ACLs are not
// modelled: sops-install-secrets never sets any, and ramfs does not support them.

/** Who is asking: a uid with its primary and supplementary gids. */
export interface Credentials {
  readonly uid: number;
  readonly gids: readonly number[];
}

/** The permission-relevant part of one inode. */
export interface Inode {
  /** Permission bits (mode & 0o7777); higher bits are ignored. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

/** One component of a path walk: the host path it was observed at and its inode. */
export interface PathStep extends Inode {
  readonly path: string;
}

export const READ = 4;
export const WRITE = 2;
/** Execute on a file, search (traverse) on a directory. */
export const SEARCH = 1;

/** The permission class that applies to `cred` for `inode`: its three bits, shifted down to 0o7. */
export function classBits(cred: Credentials, inode: Inode): number {
  if (cred.uid === inode.uid) return (inode.mode >> 6) & 0o7;
  if (cred.gids.includes(inode.gid)) return (inode.mode >> 3) & 0o7;
  return inode.mode & 0o7;
}

/**
 * Whether `cred` may access `inode` with every bit of `want` (READ | WRITE | SEARCH). Root passes for read,
 * write and directory search; `isDirectory` matters only for root's execute, which needs some x bit on a file.
 */
export function permits(cred: Credentials, inode: Inode, want: number, isDirectory = true): boolean {
  if (cred.uid === 0) {
    if ((want & SEARCH) === 0 || isDirectory) return true;
    return (inode.mode & 0o111) !== 0;
  }
  return (classBits(cred, inode) & want) === want;
}

export type WalkVerdict =
  | { readonly ok: true }
  /** `index` into the chain; `need` is what was refused there. */
  | {
      readonly ok: false;
      readonly index: number;
      readonly path: string;
      readonly need: "search" | "read";
      readonly mode: number;
      readonly uid: number;
      readonly gid: number;
    };

/**
 * Whether `cred` can search every directory of `dirs` (in order, outermost first) and then read `file`.
 * The first refusal is reported: the directory (or file) that blocks, so a message can name it.
 * Symlinks are not part of a chain: their own mode is never checked (Linux and macOS alike); the caller
 * puts the directories of the link's resolved path in instead.
 */
export function canReadThrough(cred: Credentials, dirs: readonly PathStep[], file: PathStep): WalkVerdict {
  for (let i = 0; i < dirs.length; i++) {
    const dir = dirs[i] as PathStep;
    if (!permits(cred, dir, SEARCH, true)) return refused(i, dir, "search");
  }
  if (!permits(cred, file, READ, false)) return refused(dirs.length, file, "read");
  return { ok: true };
}

function refused(index: number, step: PathStep, need: "search" | "read"): WalkVerdict {
  return { ok: false, index, path: step.path, need, mode: step.mode & 0o7777, uid: step.uid, gid: step.gid };
}
