// Can the declared owner (and group) actually read each secret and template? Every file may look right
// while a directory above it locks the service out: sops-install-secrets creates the generation directory
// and nested ones (`rendered` too) with Mkdir(0751) under its process umask, chowned root:keys
// (pkgs/sops-install-secrets/main.go:431-478, sops-nix 56b24064), and a user-mode mount point with
// MkdirAll(0751) (linux.go:24). A leaked `umask 077` (nixpkgs#260958, sops-nix#415) leaves them 0700, a 027
// leaves them 0750: then only root (and, for 0750, members of keys) can pass. A `path` link's parent
// directories are MkdirAll(0777) under the same umask (main.go:256-283).

import { type Credentials, canReadThrough, type PathStep, type WalkVerdict } from "../core/access.js";
import { credentialsOf, supplementaryGroups } from "../core/accounts.js";
import { type Accounts, type DeclaredFile, principalText } from "../core/model.js";
import type { FileObservation, ObservedScope } from "../core/observation.js";
import type { Problem } from "../core/problems.js";
import { octal, problem } from "./common.js";
import type { CheckFamily } from "./family.js";
import { expectedId, modeMatches } from "./files.js";

/** A uid no account has: a reader that is only a member of the declared group. */
const NO_UID = -1;

interface Reader {
  readonly credentials: Credentials;
  /** "the owner nginx", "alice, a member of group nginx": for the message. */
  readonly who: string;
}

/** The accounts' groups, as the checks of one run need them: built once per check. */
interface Membership {
  /** User name → the gids of the groups that list it (initgroups' supplementary groups). */
  readonly supplementary: ReadonlyMap<string, readonly number[]>;
  /** gid → the names of the users in it: by their passwd gid, then by the group's member list. */
  readonly members: ReadonlyMap<number, readonly string[]>;
}

export const accessFamily: CheckFamily = {
  name: "access",
  run: (input) => {
    const membership = membershipOf(input.host.accounts);
    return input.scopes.flatMap((s) => checkOwnerAccess(s, input.host.accounts, membership));
  },
};

function membershipOf(accounts: Accounts): Membership {
  const members = new Map<number, string[]>();
  const add = (gid: number, name: string) => {
    const list = members.get(gid);
    if (list === undefined) members.set(gid, [name]);
    else if (!list.includes(name)) list.push(name);
  };
  for (const user of accounts.users.values()) add(user.gid, user.name);
  for (const group of accounts.groups.values()) for (const name of group.members ?? []) add(group.id, name);
  return { supplementary: supplementaryGroups(accounts), members };
}

export function checkOwnerAccess(
  observed: ObservedScope,
  accounts: Accounts,
  membership: Membership = membershipOf(accounts),
): Problem[] {
  const problems: Problem[] = [];
  for (const file of observed.files) {
    const f = file.facts;
    if (f.state !== "present" || f.type !== "file" || file.generationPath === null) continue;
    for (const reader of readersOf(file.declared, observed.declared.userMode, accounts, membership)) {
      const blocked = firstRefusal(reader, file, fileMatchesDeclaration(file, accounts));
      if (blocked === null) continue;
      problems.push(cannotRead(observed, file, reader, blocked));
      break;
    }
  }
  return problems;
}

/**
 * Who is meant to read the file: its owner, and, when the declared mode lets the group read, the group's
 * members — each account in it (by passwd gid or the group's list) with its own groups, so a member that is
 * also in keys passes as the kernel lets it. A group no known account is in (a DynamicUser's
 * SupplementaryGroups, or databases read only in part) is read by a member that has only that group.
 * Root passes every check (CAP_DAC_OVERRIDE) and is left out; an unknown name is reported elsewhere.
 * No stand-in member for root's group (gid 0, sops-nix's default when no owner is set:
 * modules/sops/default.nix:121-135), and no group reader in a user scope: a home-manager manifest declares
 * no owner or group (modules/home-manager/sops.nix), the files are the user's own, her runtime dir 0700.
 */
function readersOf(d: DeclaredFile, userMode: boolean, accounts: Accounts, m: Membership): Reader[] {
  const readers: Reader[] = [];
  const owner = credentialsOf(accounts, d.owner, m.supplementary);
  if (owner !== null && owner.uid !== 0)
    readers.push({ credentials: owner, who: `the owner ${principalText(d.owner)}` });
  const gid = expectedId(d.group, accounts, "groups");
  if ((d.mode & 0o040) === 0 || gid === null || userMode) return readers;
  const group = principalText(d.group);
  const names = m.members.get(gid) ?? [];
  for (const name of names) {
    const member = credentialsOf(accounts, { kind: "name", name }, m.supplementary);
    if (member === null || member.uid === 0 || member.uid === owner?.uid) continue;
    readers.push({ credentials: member, who: `${name}, a member of group ${group}` });
  }
  const partial = accounts.partial?.users === true || accounts.partial?.groups === true;
  if ((names.length === 0 || partial) && gid !== 0)
    readers.push({ credentials: { uid: NO_UID, gids: [gid] }, who: `members of group ${group}` });
  return readers;
}

type Refusal = {
  readonly where: "generation" | "link";
  readonly verdict: Extract<WalkVerdict, { ok: false }>;
};

function firstRefusal(reader: Reader, file: FileObservation, fileAsDeclared: boolean): Refusal | null {
  const f = file.facts;
  if (f.state !== "present" || file.generationPath === null) return null;
  const target: PathStep = { path: file.generationPath, mode: f.mode, uid: f.uid, gid: f.gid };
  if (file.searchPath !== null) {
    const verdict = canReadThrough(reader.credentials, file.searchPath, target);
    // A file that is not as declared is wrong_mode/owner/group already; its directories are still checked.
    if (!verdict.ok && (verdict.need === "search" || fileAsDeclared)) return { where: "generation", verdict };
    if (!verdict.ok) return null;
  }
  const link = file.link;
  if (link?.searchPath != null && link.resolution.state === "resolved") {
    const verdict = canReadThrough(reader.credentials, link.searchPath, target);
    if (!verdict.ok && verdict.need === "search") return { where: "link", verdict };
  }
  return null;
}

function fileMatchesDeclaration(file: FileObservation, accounts: Accounts): boolean {
  const f = file.facts;
  if (f.state !== "present") return false;
  const d = file.declared;
  const owner = expectedId(d.owner, accounts, "users");
  const group = expectedId(d.group, accounts, "groups");
  return modeMatches(d, f.mode) && (owner === null || owner === f.uid) && (group === null || group === f.gid);
}

function cannotRead(
  observed: ObservedScope,
  file: FileObservation,
  reader: Reader,
  refusal: Refusal,
): Problem {
  const d = file.declared;
  const scope = observed.declared;
  const v = refusal.verdict;
  const what = `${v.path} (${octal(v.mode)}, ${v.uid}:${v.gid})`;
  const through = refusal.where === "link" ? ` through ${d.path}` : "";
  const why =
    v.need === "read"
      ? `${reader.who} may not read ${what}`
      : `${reader.who} may not enter ${what}${through}`;
  return problem(
    "owner_cannot_read",
    "critical",
    scope.scope,
    d.name,
    v.path,
    `The ${d.kind} ${d.name} cannot be read by its reader: ${why}.${umaskHint(scope.mountPoint, refusal)}`,
  );
}

/**
 * When the blocking directory is one sops-install-secrets made 0751 (or a link parent it made 0777) and
 * its mode is exactly that minus some bits, those bits were the umask it ran under. A directory above the
 * mount point (`/run/user/1000`, made 0700 by logind) is not one of them.
 */
function umaskHint(mountPoint: string, refusal: Refusal): string {
  const v = refusal.verdict;
  if (v.need !== "search") return "";
  const inMount = v.path === mountPoint || v.path.startsWith(`${mountPoint}/`);
  if (!inMount && refusal.where !== "link") return "";
  const made = inMount ? 0o751 : 0o777;
  if ((v.mode & ~made) !== 0 || v.mode === made) return "";
  const umask = made & ~v.mode;
  return ` sops-install-secrets creates it ${octal(made)} through its umask (main.go:431-457): it ran under a umask clearing ${octal(umask)} (a leaked umask, nixpkgs#260958, sops-nix#415). Run the activation with umask 022 (or \`chmod ${octal(made)} ${v.path}\` until the next switch).`;
}
