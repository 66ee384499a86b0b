// The user and group names a new NixOS generation will have once its activation ran. Pure: the host layer
// finds and reads the definitions and passes the text.
//
// Three ways NixOS applies users, one rule each:
// - update-users-groups.pl (classic activation) reads a `users-groups.json` named in the activate script.
//   Declared users and groups are written; an existing one not declared survives only with `mutableUsers`
//   and when it was not declared before (/var/lib/nixos/declarative-users and -groups)
//   (nixpkgs 03fa53d, nixos/modules/config/update-users-groups.pl:151-161, 238-247).
// - userborn reads a `userborn.json` named in userborn.service (nixpkgs 2673362,
//   nixos/modules/services/system/userborn.nix:14-35). It is taken to keep existing accounts (inferred).
// - systemd-sysusers reads `etc/sysusers.d/*.conf`; it only ever adds accounts (sysusers.d(5)).

import type { Account, Accounts, PasswdEntry } from "./model.js";

export interface DeclaredAccounts {
  readonly users: readonly string[];
  readonly groups: readonly string[];
  /** users-groups.json only: whether undeclared existing accounts survive. */
  readonly mutableUsers: boolean;
}

export type AccountsSpec =
  | { readonly kind: "users-groups"; readonly file: string; readonly declared: DeclaredAccounts }
  | { readonly kind: "userborn"; readonly file: string; readonly declared: DeclaredAccounts }
  | { readonly kind: "sysusers"; readonly file: string; readonly declared: DeclaredAccounts };

/** `{users: [{name}], groups: [{name}], mutableUsers}`; null when the text is not that shape. */
export function parseAccountsJson(text: string): DeclaredAccounts | null {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) return null;
  const doc = json as Record<string, unknown>;
  const users = names(doc.users);
  const groups = names(doc.groups);
  if (users === null || groups === null) return null;
  return { users, groups, mutableUsers: doc.mutableUsers !== false };
}

function names(list: unknown): string[] | null {
  if (!Array.isArray(list)) return null;
  const out: string[] = [];
  for (const item of list) {
    if (typeof item === "object" && item !== null && typeof (item as { name?: unknown }).name === "string") {
      out.push((item as { name: string }).name);
    }
  }
  return out;
}

/** sysusers.d(5): `u NAME ID …` creates a user and its group, `g NAME ID` a group. */
export function parseSysusers(text: string): DeclaredAccounts {
  const users: string[] = [];
  const groups: string[] = [];
  for (const raw of text.split("\n")) {
    const [type, name] = raw.trim().split(/\s+/);
    if (name === undefined || name.startsWith("#")) continue;
    if (type === "u" || type === "u!") {
      users.push(name);
      groups.push(name);
    } else if (type === "g") groups.push(name);
  }
  return { users, groups, mutableUsers: true };
}

/** Previously declared names, as update-users-groups.pl keeps them: space-separated. */
export function parseDeclarativeNames(text: string | null): Set<string> {
  return new Set((text ?? "").split(/\s+/).filter((n) => n !== ""));
}

/**
 * The accounts after the new activation: declared names first (ids unknown until allocated: -1), then the
 * current accounts that survive by the spec's rule.
 */
export function accountsAfter(
  spec: AccountsSpec,
  current: Accounts,
  previouslyDeclared: { readonly users: ReadonlySet<string>; readonly groups: ReadonlySet<string> },
): Accounts {
  const users = new Map<string, PasswdEntry>();
  const groups = new Map<string, Account>();
  for (const name of spec.declared.users) {
    users.set(name, current.users.get(name) ?? { name, id: -1, gid: -1, home: "" });
  }
  for (const name of spec.declared.groups) groups.set(name, current.groups.get(name) ?? { name, id: -1 });
  const keeps = (name: string, before: ReadonlySet<string>): boolean =>
    spec.kind !== "users-groups" || (spec.declared.mutableUsers && !before.has(name));
  for (const [name, entry] of current.users) {
    if (!users.has(name) && keeps(name, previouslyDeclared.users)) users.set(name, entry);
  }
  for (const [name, entry] of current.groups) {
    if (!groups.has(name) && keeps(name, previouslyDeclared.groups)) groups.set(name, entry);
  }
  return { users, groups };
}
