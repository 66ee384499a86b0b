// Parsing of /etc/passwd and /etc/group. Pure: the host layer reads the files and passes the text.
// The files are hand-edited on some hosts, so a broken line is skipped instead of failing the whole parse.

import type { Accounts, GroupEntry, PasswdEntry } from "./model.js";

const DECIMAL_ID = /^[0-9]{1,10}$/;

/** `name:password:uid:gid:gecos:home:shell`, one entry a line. The first entry for a name wins, as with getpwnam. */
export function parsePasswd(text: string): Map<string, PasswdEntry> {
  const users = new Map<string, PasswdEntry>();
  for (const fields of entryLines(text)) {
    const [name, , uidText, gidText, , home] = fields;
    if (fields.length < 6 || !isAccountName(name) || home === undefined) continue;
    const uid = parseId(uidText);
    const gid = parseId(gidText);
    if (uid === null || gid === null || users.has(name)) continue;
    users.set(name, { name, id: uid, gid, home });
  }
  return users;
}

/** `name:password:gid:members`, one entry a line. The first entry for a name wins, as with getgrnam. */
export function parseGroup(text: string): Map<string, GroupEntry> {
  const groups = new Map<string, GroupEntry>();
  for (const fields of entryLines(text)) {
    const [name, , gidText, memberText] = fields;
    if (fields.length < 3 || !isAccountName(name)) continue;
    const gid = parseId(gidText);
    if (gid === null || groups.has(name)) continue;
    const members = (memberText ?? "").split(",").filter((m) => m.trim() !== "");
    groups.set(name, { name, id: gid, members: members.map((m) => m.trim()) });
  }
  return groups;
}

/**
 * Who a principal is when it opens a file: its uid, primary gid (passwd) and supplementary gids (every
 * group listing it, as initgroups does). null when a named user is unknown: that is reported elsewhere.
 * A bare uid without a passwd entry has no groups: only the owner and "other" classes apply to it.
 */
export function credentialsOf(
  accounts: Accounts,
  owner: { readonly kind: "name"; readonly name: string } | { readonly kind: "id"; readonly id: number },
  supplementary: ReadonlyMap<string, readonly number[]> = supplementaryGroups(accounts),
): { readonly uid: number; readonly gids: readonly number[] } | null {
  const entry = owner.kind === "name" ? accounts.users.get(owner.name) : userById(accounts, owner.id);
  if (entry === undefined || entry === null) return owner.kind === "id" ? { uid: owner.id, gids: [] } : null;
  return { uid: entry.id, gids: [entry.gid, ...(supplementary.get(entry.name) ?? [])] };
}

/** User name → the gids of the groups that list it as a member. Built once per check. */
export function supplementaryGroups(accounts: Accounts): Map<string, number[]> {
  const byUser = new Map<string, number[]>();
  for (const group of accounts.groups.values()) {
    for (const member of group.members ?? []) {
      const gids = byUser.get(member);
      if (gids === undefined) byUser.set(member, [group.id]);
      else gids.push(group.id);
    }
  }
  return byUser;
}

/** Accounts of a host whose passwd and group files cannot be read. */
export function emptyAccounts(): Accounts {
  return { users: new Map(), groups: new Map() };
}

/** The first passwd entry with this uid (file order), as getpwuid would return it. */
export function userById(accounts: Accounts, uid: number): PasswdEntry | null {
  for (const entry of accounts.users.values()) {
    if (entry.id === uid) return entry;
  }
  return null;
}

/** Non-blank, non-comment lines split on `:`. */
function* entryLines(text: string): Generator<string[]> {
  for (const raw of text.split("\n")) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (line.trim() === "" || line.startsWith("#")) continue;
    yield line.split(":");
  }
}

// NIS compat lines (`+name`, `-name`, `+`) are not accounts of their own.
function isAccountName(name: string | undefined): name is string {
  return name !== undefined && name !== "" && !name.startsWith("+") && !name.startsWith("-");
}

function parseId(text: string | undefined): number | null {
  if (text === undefined || !DECIMAL_ID.test(text)) return null;
  const id = Number(text);
  return id <= 0xffffffff ? id : null;
}

/** Home directories worth looking into: absolute, and not the placeholders system accounts use. */
export function userHomes(accounts: Accounts): string[] {
  const homes = new Set<string>();
  for (const user of accounts.users.values()) {
    if (user.home.startsWith("/") && !PLACEHOLDER_HOMES.has(user.home)) homes.add(user.home);
  }
  return [...homes].sort();
}

const PLACEHOLDER_HOMES = new Set(["/", "/var/empty", "/nonexistent", "/dev/null"]);
