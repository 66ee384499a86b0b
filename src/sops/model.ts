// What the agent knows about encrypted sops files and the host's identities, without decrypting anything.
// (Issue 4 owns this module; the shape below is the contract the check engine relies on.)

import type { HostRecipient } from "../core/report.js";
import type { ScopeName } from "../core/model.js";

export interface SopsObservation {
  /** Keyed by the sopsFile host path as the manifest declares it. */
  readonly files: ReadonlyMap<string, SopsFileObservation>;
  /** The age recipients each scope can decrypt for, derived from its keys. */
  readonly identities: ReadonlyMap<ScopeName, readonly HostRecipient[]>;
}

export type SopsFileObservation =
  | { readonly state: "absent" }
  | { readonly state: "unparseable"; readonly reason: string }
  | { readonly state: "parsed"; readonly document: unknown };
