// The readiness of every sops file a scope declares, decided once per check and shared by the keys and
// sops families: a key problem is critical exactly when some file can no longer be decrypted without it.

import type { DeclaredScope, ScopeName } from "../core/model.js";
import type { ScopeKeyring } from "../sops/identities.js";
import type { SopsObservation } from "../sops/model.js";
import { viewFor } from "../sops/model.js";
import { type Readiness, readiness } from "../sops/readiness.js";

const EMPTY_KEYRING: ScopeKeyring = { sources: [], identities: [], aborts: null };

export interface ScopeReadiness {
  readonly keyring: ScopeKeyring;
  /** By sopsFile; files that are absent or do not parse have no entry (the sops family reports them). */
  readonly files: ReadonlyMap<string, Readiness>;
}

const memo = new WeakMap<SopsObservation, Map<ScopeName, ScopeReadiness>>();

export function scopeReadiness(declared: DeclaredScope, sops: SopsObservation): ScopeReadiness {
  let byScope = memo.get(sops);
  if (byScope === undefined) {
    byScope = new Map();
    memo.set(sops, byScope);
  }
  const known = byScope.get(declared.scope);
  if (known !== undefined) return known;
  const keyring = sops.keyrings.get(declared.scope) ?? EMPTY_KEYRING;
  const files = new Map<string, Readiness>();
  const seen = new Set<string>();
  let last: string | null = null;
  for (const secret of declared.secrets) {
    // Neighbours usually share a file: no set lookup for the run of them.
    if (secret.sopsFile === last) continue;
    last = secret.sopsFile;
    if (seen.has(secret.sopsFile)) continue;
    seen.add(secret.sopsFile);
    const view = viewFor(sops.files.get(secret.sopsFile), secret.format);
    if (view.state === "parsed")
      files.set(secret.sopsFile, readiness(keyring.identities, view.document.metadata));
  }
  const result = { keyring, files };
  byScope.set(declared.scope, result);
  return result;
}

/** The files that cannot be decrypted, for messages. */
export function undecryptable(r: ScopeReadiness): string[] {
  return [...r.files].filter(([, v]) => v.verdict === "cannot").map(([f]) => f);
}

/** "secrets.yaml with age1… (/var/lib/sops-nix/key.txt)", for each file that decrypts. */
export function stillDecrypting(r: ScopeReadiness): string {
  const parts: string[] = [];
  for (const [file, v] of r.files) {
    if (v.verdict !== "decrypts") continue;
    const via = v.openings.map((o) => `${short(o.recipient)} (${o.source})`).join(" and ");
    parts.push(`${file} with ${via}`);
  }
  return parts.join("; ");
}

function short(recipient: string): string {
  return recipient.length > 28 ? `${recipient.slice(0, 24)}…` : recipient;
}
