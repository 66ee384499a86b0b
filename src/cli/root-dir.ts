// `--root DIR` (and the config's `root:`) must name a directory: a typo would otherwise find no manifest,
// and a host where nothing was checked must never pass as healthy.

import * as fs from "node:fs";

/** Why `root` cannot be used as the host's `/`, or null when it is a directory (symlinks followed). */
export function rootDirProblem(root: string): string | null {
  try {
    return fs.statSync(root).isDirectory() ? null : `${root} is not a directory`;
  } catch (err) {
    // Not host/rootfs.js' errnoOf: an answered `status` loads nothing of the checking code.
    const errno = (err as NodeJS.ErrnoException).code ?? "EIO";
    return errno === "ENOENT" || errno === "ENOTDIR"
      ? `${root} does not exist`
      : `${root} cannot be read (${errno})`;
  }
}
