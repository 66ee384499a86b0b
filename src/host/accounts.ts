// The host's passwd and group databases, read through RootFs. A host without them (a partial image)
// gets empty ones: every declared name is then unknown, which the checks report.

import { emptyAccounts, parseGroup, parsePasswd } from "../core/accounts.js";
import type { Accounts } from "../core/model.js";
import type { RootFs } from "./rootfs.js";

export function readAccounts(fs: RootFs): Accounts {
  const passwd = fs.readText("/etc/passwd");
  const group = fs.readText("/etc/group");
  const empty = emptyAccounts();
  return {
    users: typeof passwd === "string" ? parsePasswd(passwd) : empty.users,
    groups: typeof group === "string" ? parseGroup(group) : empty.groups,
  };
}
