// The status document (`status --json`, `/status`) and the richer result of one full check run.

import type { ScopeName } from "./model.js";
import type { ObservedScope } from "./observation.js";
import type { Problem } from "./problems.js";

export interface ScopeSummary {
  readonly scope: ScopeName;
  readonly manifest: string;
  readonly symlinkPath: string;
  readonly mountPoint: string;
  readonly generation: number | null;
  readonly secrets: number;
  readonly templates: number;
}

export interface SecretStatus {
  readonly scope: ScopeName;
  readonly kind: "secret" | "template";
  readonly name: string;
  readonly path: string;
  /** False when any critical problem names this secret. */
  readonly ok: boolean;
}

/** A host identity that can decrypt: an age recipient derived from one of the scope's keys. */
export interface HostRecipient {
  readonly scope: ScopeName;
  readonly recipient: string;
  /** The key file it was derived from. */
  readonly source: string;
}

export interface StatusDocument {
  /** False when anything is critical, and when a check family failed (the verdict is incomplete). */
  readonly healthy: boolean;
  /** Check families that failed: their problems are missing from this document. Empty when complete. */
  readonly incomplete: readonly FailedCheck[];
  readonly scopes: readonly ScopeSummary[];
  readonly problems: readonly Problem[];
  readonly secrets: readonly SecretStatus[];
  readonly recipients: readonly HostRecipient[];
  /**
   * Present when the agent was refused a look at something (each is an `unreadable` problem): the verdict
   * covers only what it could see. `uid` is the agent's own; root (or CAP_DAC_READ_SEARCH) sees everything.
   */
  readonly partialView?: PartialView;
}

export interface PartialView {
  readonly uid: number;
  /** How many `unreadable` problems there are. */
  readonly unreadable: number;
}

/** The partial-view note of a document whose problems hold `unreadable` ones; undefined when none do. */
export function partialViewOf(problems: readonly Problem[], uid: number): PartialView | undefined {
  const unreadable = problems.filter((p) => p.code === "unreadable").length;
  return unreadable === 0 ? undefined : { uid, unreadable };
}

/** A check family that did not run to the end, and why (never file content). */
export interface FailedCheck {
  readonly check: string;
  readonly error: string;
}

/** One check family's outcome, like node_exporter's per-collector success and duration. */
export interface FamilyResult {
  readonly family: string;
  readonly ok: boolean;
  readonly durationSeconds: number;
  /** Why the family failed; never contains file content. */
  readonly error?: string;
}

/** Metadata of an encrypted sops file, for rotation-age and recipient metrics. */
export interface SopsFileSummary {
  readonly scope: ScopeName;
  readonly file: string;
  /** sops `lastmodified`, in seconds since the epoch; null when absent or unparseable. */
  readonly lastModifiedSeconds: number | null;
  /** Number of recipients per kind: age, pgp, kms, gcp_kms, azure_kv, hc_vault, ssh, … */
  readonly recipients: Readonly<Record<string, number>>;
}

/** The last sops-nix activation of a scope, as far as its unit, job or generation tells. */
export interface ActivationSummary {
  readonly scope: ScopeName;
  readonly succeeded: boolean;
}

/** A unit that reads a secret and runs since before the secret's declaration changed. */
export interface StaleConsumerSummary {
  readonly scope: ScopeName;
  readonly name: string;
  readonly unit: string;
}

export interface CheckRun {
  readonly document: StatusDocument;
  readonly families: readonly FamilyResult[];
  /** Scopes whose manifest parsed, with what was seen on disk. */
  readonly observed: readonly ObservedScope[];
  readonly sopsFiles: readonly SopsFileSummary[];
  /** The users' home directories the check read from passwd (where home-manager scopes may appear). */
  readonly homes: readonly string[];
  /** Scopes whose last activation could be judged (absent when nothing tells). */
  readonly activations?: readonly ActivationSummary[];
  readonly staleConsumers?: readonly StaleConsumerSummary[];
  /** Unix time in seconds when the run started. */
  readonly startedAt: number;
  readonly durationSeconds: number;
}
