// What earlier generations declared, as far as leftovers need it: the `path` links sops-install-secrets made
// outside symlinkPath, which it never removes when a secret is dropped (sops-nix #574, #605). Data only.

import type { PathFacts } from "./facts.js";
import type { ScopeName } from "./model.js";
import type { Fingerprint } from "./usage.js";

/** A secret or template an earlier generation placed at a path outside its symlinkPath. */
export interface FormerLink {
  readonly kind: "secret" | "template";
  readonly name: string;
  readonly path: string;
}

/** One earlier declaration of a scope: from a profile generation, or remembered by the agent across a switch. */
export interface FormerDeclaration {
  readonly scope: ScopeName;
  /** How users name the generation: "system generation 41 (/nix/var/nix/profiles/system-41-link)". */
  readonly generation: string;
  readonly manifestPath: string;
  readonly links: readonly FormerLink[];
  /** The agent's newest memory of a scope also keeps each file's declaration fingerprint (stale consumers). */
  readonly fingerprints?: ReadonlyMap<string, Fingerprint>;
}

export interface OrphanObservation {
  /** Newest first: the first declaration naming a path is the one that last declared it. */
  readonly former: readonly FormerDeclaration[];
  /** lstat of every former link path that no current manifest declares. */
  readonly linkFacts: ReadonlyMap<string, PathFacts>;
  /** Regular files in each scope's current generation, relative to it; absent when it was not listed. */
  readonly generationFiles: ReadonlyMap<ScopeName, readonly string[]>;
}

export const NO_ORPHAN_OBSERVATION: OrphanObservation = {
  former: [],
  linkFacts: new Map(),
  generationFiles: new Map(),
};
