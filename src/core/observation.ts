// A snapshot of what is on disk for each declared scope. The host layer (src/host/observe.ts) fills it
// in; the checks (src/checks/) are pure functions over it.

import type { PathStep } from "./access.js";
import type { PathFacts, Resolution } from "./facts.js";
import type { Accounts, DeclaredFile, DeclaredKey, DeclaredScope, ScopeName } from "./model.js";

export interface FileObservation {
  readonly declared: DeclaredFile;
  /** Where the file should be inside the current generation (a host path), null when there is none. */
  readonly generationPath: string | null;
  /** lstat of generationPath. */
  readonly facts: PathFacts;
  /** Templates only: the agent was refused reading the rendered file (EACCES, EPERM). */
  readonly contentDenied?: string;
  /** Templates only: whether the rendered file still holds a `<SOPS:…:PLACEHOLDER>`; null when not read. */
  readonly unrenderedPlaceholder: boolean | null;
  /**
   * The directories a process searches to open generationPath, outermost first, the file's own directory
   * last ("/" left out); shared by the files of one directory. null when one could not be looked at.
   */
  readonly searchPath: readonly PathStep[] | null;
  /** Set when the declared path lies outside symlinkPath: what is at that path. */
  readonly link: {
    readonly facts: PathFacts;
    readonly resolution: Resolution;
    /** The directories searched to open the declared path, through its links (null: not all seen). */
    readonly searchPath: readonly PathStep[] | null;
  } | null;
}

export interface KeyObservation {
  readonly key: DeclaredKey;
  readonly facts: PathFacts;
  readonly resolution: Resolution;
}

export interface GenerationObservation {
  /** The link's target with the root applied, as a host path (absolute, normalised). */
  readonly target: string;
  /** The number N of `<mountPoint>/N`, null when the target is not a numbered directory of the mount point. */
  readonly number: number | null;
  readonly insideMount: boolean;
  readonly resolution: Resolution;
}

/**
 * An input larger than the agent reads: what lies past the limit is unknown, and is reported as such
 * (input_too_large) instead of being guessed at.
 */
export interface OversizedInput {
  readonly scope: ScopeName | "host";
  /** The secret or template name, or the path for host files. */
  readonly subject: string;
  readonly path: string;
  readonly limitBytes: number;
}

export type SessionState = "not-applicable" | "active" | "inactive" | "unknown";

export interface ObservedScope {
  readonly declared: DeclaredScope;
  /** User scopes: whether the runtime directory exists. */
  readonly session: SessionState;
  /** lstat of symlinkPath. */
  readonly link: PathFacts;
  readonly generation: GenerationObservation | null;
  /** statfs magic of the mount point, null when unknown. */
  readonly mountFsType: number | null;
  readonly files: readonly FileObservation[];
  readonly keys: readonly KeyObservation[];
  /** Files of the scope read only up to a limit (templates scanned for placeholders); absent: none. */
  readonly oversized?: readonly OversizedInput[];
}

export interface StrayKeyLink {
  readonly path: string;
  readonly facts: PathFacts;
  readonly resolution: Resolution;
}

export interface HostObservation {
  readonly accounts: Accounts;
  /** `id_infrastructure` links found in the usual places, whether or not a manifest names them. */
  readonly strayKeyLinks: readonly StrayKeyLink[];
  /** Host files read only up to a limit (passwd, group); absent: none. */
  readonly oversized?: readonly OversizedInput[];
}
