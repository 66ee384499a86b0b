// Where sops-install-secrets places a declared file, relative to symlinkPath (and so inside a generation).

import * as path from "node:path";
import type { DeclaredFile } from "./model.js";

export function relativeInGeneration(declared: DeclaredFile): string {
  return declared.kind === "secret" ? declared.name : `rendered/${declared.name}`;
}

/** A symlink's target as an absolute, normalised path: a relative target counts from the link's directory. */
export function absoluteLinkTarget(linkPath: string, raw: string): string {
  return path.posix.normalize(raw.startsWith("/") ? raw : path.posix.join(path.posix.dirname(linkPath), raw));
}
