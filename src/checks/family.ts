// A check family is like a node_exporter collector: one module, one pure function, run isolated and
// timed by the engine, so one failing family never hides the others.

import type { OrphanObservation } from "../core/history.js";
import type { HostObservation, ObservedScope } from "../core/observation.js";
import type { Problem } from "../core/problems.js";
import type { UsageObservation } from "../core/usage.js";
import type { SopsObservation } from "../sops/model.js";

export interface CheckInput {
  readonly scopes: readonly ObservedScope[];
  readonly host: HostObservation;
  readonly sops: SopsObservation;
  /** Earlier declarations and the current generations' listings; absent where nothing was read (tests). */
  readonly orphans?: OrphanObservation;
  /** Units, activation outcomes and generations on disk; absent where nothing was read (tests). */
  readonly usage?: UsageObservation;
}

export interface CheckFamily {
  readonly name: string;
  readonly run: (input: CheckInput) => Problem[];
}
