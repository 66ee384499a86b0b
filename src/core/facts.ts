// What the agent observed about one path. Data only: the host layer fills it in, the checks read it.

export type FileType = "file" | "directory" | "symlink" | "other";

export interface PresentFacts {
  readonly type: FileType;
  /** Permission bits only (mode & 0o7777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
  /** For symlinks: the raw link text, as readlink returns it. */
  readonly linkTarget?: string;
}

export type PathFacts =
  | ({ readonly state: "present" } & PresentFacts)
  | { readonly state: "absent" }
  /** The agent may not look (EACCES, EPERM) or the read failed otherwise; errno says which. */
  | { readonly state: "inaccessible"; readonly errno: string };

/** Where a chain of symlinks ends, followed inside the agent's root. */
export type Resolution =
  | { readonly state: "resolved"; readonly path: string; readonly facts: PresentFacts }
  /** A component is missing: a dangling link, or a plain absent path. */
  | { readonly state: "absent"; readonly path: string }
  | { readonly state: "loop"; readonly path: string }
  | { readonly state: "inaccessible"; readonly path: string; readonly errno: string };
