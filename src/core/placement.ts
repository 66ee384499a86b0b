// Where sops-install-secrets places a declared file, relative to symlinkPath (and so inside a generation).

import type { DeclaredFile } from "./model.js";

export function relativeInGeneration(declared: DeclaredFile): string {
  return declared.kind === "secret" ? declared.name : `rendered/${declared.name}`;
}
