// The host's passwd and group databases, read through RootFs. A host without them (a partial image)
// gets empty ones: every declared name is then unknown, which the checks report.

import { emptyAccounts, parseGroup, parsePasswd } from "../core/accounts.js";
import type { Accounts, DeclaredScope } from "../core/model.js";
import type { OversizedInput } from "../core/observation.js";
import type { DirectoryService } from "./directory-service.js";
import type { RootFs } from "./rootfs.js";

/**
 * LDAP- or SSSD-synced hosts keep passwd files of many megabytes (100,000 accounts are ~8 MiB). Past this,
 * the entries read are used and the file is reported as too large: a name missing from it is not unknown.
 */
export const MAX_ACCOUNTS_BYTES = 64 << 20;

export const PASSWD = "/etc/passwd";
export const GROUP = "/etc/group";

/**
 * nix-darwin scopes: declared names absent from /etc/passwd and /etc/group are asked of Directory Services
 * when the agent runs on the Mac itself (`directory`); otherwise, or when it does not answer, they are
 * unverifiable. A name it says does not exist stays unknown: sops-install-secrets would abort on it too.
 */
export function withDarwinAccounts(
  accounts: Accounts,
  scopes: readonly DeclaredScope[],
  directory: DirectoryService | null,
): Accounts {
  const users = new Map(accounts.users);
  const groups = new Map(accounts.groups);
  const unverifiable = { users: new Set<string>(), groups: new Set<string>() };
  let changed = false;
  for (const scope of scopes) {
    if (scope.platform !== "darwin") continue;
    for (const d of [...scope.secrets, ...scope.templates]) {
      if (d.owner.kind === "name" && !users.has(d.owner.name) && !unverifiable.users.has(d.owner.name)) {
        changed = true;
        const found = directory?.user(d.owner.name) ?? null;
        if (found === null || found.state === "unknown") unverifiable.users.add(d.owner.name);
        else if (found.state === "found")
          users.set(d.owner.name, {
            name: d.owner.name,
            id: found.value.uid,
            gid: found.value.gid,
            home: "",
          });
      }
      if (d.group.kind === "name" && !groups.has(d.group.name) && !unverifiable.groups.has(d.group.name)) {
        changed = true;
        const found = directory?.group(d.group.name) ?? null;
        if (found === null || found.state === "unknown") unverifiable.groups.add(d.group.name);
        else if (found.state === "found") groups.set(d.group.name, { name: d.group.name, id: found.value });
      }
    }
  }
  if (!changed) return accounts;
  return unverifiable.users.size + unverifiable.groups.size === 0
    ? { ...accounts, users, groups }
    : { ...accounts, users, groups, unverifiable };
}

export function readAccounts(fs: RootFs, limitBytes = MAX_ACCOUNTS_BYTES): Accounts {
  const passwd = readDatabase(fs, PASSWD, limitBytes);
  const group = readDatabase(fs, GROUP, limitBytes);
  const empty = emptyAccounts();
  const accounts = {
    users: passwd === null ? empty.users : parsePasswd(passwd.text),
    groups: group === null ? empty.groups : parseGroup(group.text),
  };
  const partial = { users: passwd?.complete === false, groups: group?.complete === false, limitBytes };
  return partial.users || partial.groups ? { ...accounts, partial } : accounts;
}

/** The passwd and group files read only in part, for input_too_large. */
export function oversizedAccounts(accounts: Accounts): OversizedInput[] {
  const partial = accounts.partial;
  if (partial === undefined) return [];
  const out: OversizedInput[] = [];
  for (const [file, cut] of [
    [PASSWD, partial.users],
    [GROUP, partial.groups],
  ] as const) {
    if (cut) out.push({ scope: "host", subject: file, path: file, limitBytes: partial.limitBytes });
  }
  return out;
}

function readDatabase(
  fs: RootFs,
  file: string,
  limitBytes: number,
): { text: string; complete: boolean } | null {
  const resolved = fs.resolve(file);
  if (resolved.state !== "resolved" || resolved.facts.type !== "file") return null;
  const read = fs.readPrefix(resolved.path, limitBytes, { seen: resolved.facts });
  if ("error" in read) return null;
  if (read.complete) return read;
  // The last line was cut at the limit: a half entry must not stand for a whole one.
  return { text: read.text.slice(0, read.text.lastIndexOf("\n") + 1), complete: false };
}
