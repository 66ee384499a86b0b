// What the agent knows about encrypted sops files and the host's identities, without decrypting anything.
// The check engine relies on `files` and `identities`; the sops check family reads the rest.

import type { ScopeName, SecretFormat } from "../core/model.js";
import type { HostRecipient } from "../core/report.js";
import type { ScopeKeyring } from "./identities.js";
import type { SopsDocument, SopsParse } from "./parse.js";

export interface SopsObservation {
  /** Keyed by the sopsFile host path as the manifest declares it. */
  readonly files: ReadonlyMap<string, SopsFileObservation>;
  /** The age recipients each scope can decrypt for, derived from its keys. */
  readonly identities: ReadonlyMap<ScopeName, readonly HostRecipient[]>;
  /** The identities sops will hold for each scope, source by source (see identities.ts). */
  readonly keyrings: ReadonlyMap<ScopeName, ScopeKeyring>;
}

/**
 * One sops file. How it parses depends on the declared format (one file may be declared as yaml by one
 * secret and as binary by another), so a present file holds one parse per format it was declared with.
 */
export type SopsFileObservation =
  | { readonly state: "absent" }
  /** Present but not readable, or too large: no format can parse it. `reason` never holds file content. */
  | { readonly state: "unreadable"; readonly reason: string }
  | { readonly state: "present"; readonly parses: ReadonlyMap<SecretFormat, SopsParse> };

/** The view a single secret needs: its file under its declared format. */
export type SopsFileView =
  | { readonly state: "absent" }
  | { readonly state: "unparseable"; readonly reason: string }
  | { readonly state: "parsed"; readonly document: SopsDocument };

export function viewFor(file: SopsFileObservation | undefined, format: SecretFormat): SopsFileView {
  if (file === undefined || file.state === "absent") return { state: "absent" };
  if (file.state === "unreadable") return { state: "unparseable", reason: file.reason };
  const parse = file.parses.get(format);
  if (parse === undefined) return { state: "unparseable", reason: `not parsed as ${format}` };
  return parse.ok
    ? { state: "parsed", document: parse.document }
    : { state: "unparseable", reason: parse.reason };
}
