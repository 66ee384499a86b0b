// Parsing of /etc/passwd and /etc/group. Pure: the host layer reads the files and passes the text.
// The files are hand-edited on some hosts, so a broken line is skipped instead of failing the whole parse.

import type { Account, Accounts, PasswdEntry } from "./model.js";

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
export function parseGroup(text: string): Map<string, Account> {
  const groups = new Map<string, Account>();
  for (const fields of entryLines(text)) {
    const [name, , gidText] = fields;
    if (fields.length < 3 || !isAccountName(name)) continue;
    const gid = parseId(gidText);
    if (gid === null || groups.has(name)) continue;
    groups.set(name, { name, id: gid });
  }
  return groups;
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
