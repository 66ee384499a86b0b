// `--root DIR` (and the config's `root:`) must name a directory: a typo would otherwise find no manifest,
// and a host where nothing was checked must never pass as healthy.

import * as fs from "node:fs";
import { errnoOf } from "../host/rootfs.js";

/** Why `root` cannot be used as the host's `/`, or null when it is a directory (symlinks followed). */
export function rootDirProblem(root: string): string | null {
  try {
    return fs.statSync(root).isDirectory() ? null : `${root} is not a directory`;
  } catch (err) {
    const errno = errnoOf(err);
    return errno === "ENOENT" || errno === "ENOTDIR"
      ? `${root} does not exist`
      : `${root} cannot be read (${errno})`;
  }
}
