// Issue 8's property: a host laid out as sops-install-secrets lays it out, under umask 022 or 027, with any
// mix of owners, groups, nested names, templates and `path` links, gets exactly the verdict the kernel gives.
//
// Each case is generated (fast-check, fixed seed, bounded runs), laid out by installSecrets — a step-for-step
// port of sops-install-secrets' write path run under a real process umask (test/helpers/host.ts, citing
// main.go and linux.go of sops-nix 56b24064) — and then checked by the real checkHost. The expected verdict
// does not come from sops-agent's rules: for every file, its owner (when not root) and, when the declared
// mode lets the group read, a member of its group (when not root's group) try to read it as the kernel
// decides, through an unprivileged process (setpriv), via the generation and via the declared `path` link.
// - umask 022: the generation directories are 0751 root:keys and every reader gets through, so the host is
//   healthy: no problem at all (the wording).
// - umask 027: they are 0750 root:keys (main.go:431-457 through the umask), so only root and members of
//   `keys` get through, and a link's fresh parent directories are 0750 root:root (main.go:261, os.ModePerm
//   through the umask); so is `rendered` when every template name is nested (createParentDirs chowns only
//   the name's own directories, main.go:442-457). The host gets `owner_cannot_read` exactly for the files some reader cannot read,
//   each naming the umask, and `wrong_mode` naming the umask exactly for the secrets whose declared
//   "other" bits the umask cleared (os.WriteFile through the umask, main.go:466); nothing else.
// Both directions fail the property: a false alarm and a miss alike.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import type { HostLayout, HostSpec, SecretSpec, TemplateSpec } from "../src/example/layout.js";
import { checkHost } from "../src/host/check-host.js";
import { cleanupRoots, installSecrets, makeHost, TEST_AGE_KEYS, TEST_AGE_RECIPIENT } from "./helpers/host.js";
import { requireTool } from "./helpers/tools.js";

afterAll(cleanupRoots);

const KEYS_GID = 62; // the layout's keys group
const SHARED_GID = 450;
const NOBODY_UID = 4999; // a uid no account has: a plain member of a group
const STRANGER = 5000; // a uid and gid no account or group has
const SERVICES = ["svc1", "svc2", "svc3"] as const;
const uidOf = (svc: string) => 401 + SERVICES.indexOf(svc as (typeof SERVICES)[number]);

// "stranger": a uid no account has (the manifest's uid is applied even so: modules/sops/default.nix:114-120).
type Owner =
  | { kind: "default" }
  | { kind: "name"; svc: string }
  | { kind: "uid"; svc: string }
  | { kind: "stranger" };
// "module": sops-nix's default, the owner's primary group when an owner name is set (modules/sops/default.nix:121-128).
type Group = "module" | "shared" | "keys" | "own-gid" | "shared-gid" | "stranger-gid";
type Link = "none" | "etc" | "srv" | "deep";

interface FileCase {
  readonly name: string;
  readonly mode: string;
  readonly owner: Owner;
  readonly group: Group;
  readonly link: Link;
}

interface HostCase {
  readonly umask: 0o022 | 0o027;
  /** How many times sops-install-secrets ran: the second run is generation 2, the first one pruned. */
  readonly activations: 1 | 2;
  readonly activation: "classic" | "systemd";
  readonly inKeys: readonly boolean[];
  readonly inShared: readonly boolean[];
  readonly secrets: readonly FileCase[];
  readonly templates: readonly FileCase[];
  readonly forUsers: readonly FileCase[];
  readonly homeManager: readonly FileCase[] | null;
}

/** Names with `/` are nested directories; a name that is another's directory cannot exist (mkdir would fail). */
function names(segments: readonly string[], max: number) {
  return fc
    .uniqueArray(
      fc.array(fc.constantFrom(...segments), { minLength: 1, maxLength: 3 }).map((p) => p.join("/")),
      { minLength: 1, maxLength: max },
    )
    .map((all) =>
      all.filter((n) => !all.some((o) => o !== n && (o.startsWith(`${n}/`) || n.startsWith(`${o}/`)))),
    )
    .filter((all) => all.length > 0);
}

const mode = fc.constantFrom(
  "0400",
  "0440",
  "0444",
  "0600",
  "0640",
  "0644",
  "0660",
  "0664",
  "0750",
  "00440", // any length ParseUint accepts
  "2750", // setgid is dropped: only permission bits reach the file (main.go:567-573)
);
const svc = fc.constantFrom(...SERVICES);
const owner: fc.Arbitrary<Owner> = fc.oneof(
  fc.constant<Owner>({ kind: "default" }),
  svc.map((s): Owner => ({ kind: "name", svc: s })),
  svc.map((s): Owner => ({ kind: "uid", svc: s })),
  fc.constant<Owner>({ kind: "stranger" }),
);
const group = fc.constantFrom<Group>("module", "shared", "keys", "own-gid", "shared-gid", "stranger-gid");
const link = fc.constantFrom<Link>("none", "none", "etc", "srv", "deep");

function files(segments: readonly string[], max: number, withOwners: boolean): fc.Arbitrary<FileCase[]> {
  return names(segments, max).chain((ns) =>
    fc.tuple(
      ...ns.map((name) =>
        fc.record({
          name: fc.constant(name),
          mode,
          owner: withOwners ? owner : fc.constant<Owner>({ kind: "default" }),
          group: withOwners ? group : fc.constant<Group>("module"),
          link,
        }),
      ),
    ),
  );
}

const hostCase: fc.Arbitrary<HostCase> = fc.record({
  umask: fc.constantFrom<0o022 | 0o027>(0o022, 0o027),
  activations: fc.constantFrom<1 | 2>(1, 2),
  activation: fc.constantFrom<"classic" | "systemd">("classic", "systemd"),
  inKeys: fc.tuple(fc.boolean(), fc.boolean(), fc.boolean()),
  inShared: fc.tuple(fc.boolean(), fc.boolean(), fc.boolean()),
  secrets: files(["db", "api", "nginx", "token"], 6, true),
  templates: fc.oneof(fc.constant([]), files(["app.env", "conf", "x"], 3, true)),
  forUsers: fc.oneof(fc.constant([]), files(["alice-password", "hashed"], 2, false)),
  homeManager: fc.oneof(fc.constant(null), files(["gh", "ssh", "mcp"], 3, false)),
});

// --- laying the case out -------------------------------------------------------------------------------------

function ownerSpec(f: FileCase): Pick<SecretSpec, "owner" | "uid" | "group" | "gid"> {
  const o = f.owner;
  const who =
    o.kind === "name"
      ? { owner: o.svc }
      : o.kind === "uid"
        ? { uid: uidOf(o.svc) }
        : o.kind === "stranger"
          ? { uid: STRANGER }
          : {};
  const primary = o.kind === "name" || o.kind === "uid" ? o.svc : null;
  switch (f.group) {
    case "module":
      return o.kind === "name" ? { ...who, group: o.svc } : who;
    case "shared":
      return { ...who, group: "shared" };
    case "keys":
      return { ...who, group: "keys" };
    case "own-gid":
      return primary === null ? who : { ...who, gid: uidOf(primary) };
    case "shared-gid":
      return { ...who, gid: SHARED_GID };
    case "stranger-gid":
      return { ...who, gid: STRANGER };
  }
}

function linkPath(f: FileCase, i: number, home: string | null): string | undefined {
  const base = f.name.replaceAll("/", "-");
  if (home !== null) return f.link === "none" ? undefined : `${home}/.local/share/app-${i}/${base}`;
  switch (f.link) {
    case "none":
      return undefined;
    case "etc": // a fresh directory: MkdirAll(0777) through the umask (main.go:261)
      return `/etc/app-${i}/${base}`;
    case "srv": // a directory the host already has, 0755
      return `/srv/${base}-${i}`;
    case "deep":
      return `/var/lib/app-${i}/sub/${base}`;
  }
}

function specOf(c: HostCase): HostSpec {
  // Generation 0: the manifests and entry points only; the generations are written afterwards.
  const keyed = {
    ageKeyFile: "/var/lib/sops-nix/key.txt",
    recipients: [TEST_AGE_RECIPIENT],
    generation: 0,
    umask: c.umask,
  };
  const secret =
    (home: string | null, owners: boolean) =>
    (f: FileCase, i: number): SecretSpec => {
      const p = linkPath(f, i, home);
      return {
        name: f.name,
        mode: f.mode,
        ...(owners ? ownerSpec(f) : {}),
        ...(p === undefined ? {} : { path: p }),
      };
    };
  const template = (f: FileCase, i: number): TemplateSpec => secret(null, true)(f, 100 + i);
  return {
    activation: c.activation,
    users: [
      ...SERVICES.map((s) => ({ name: s, uid: uidOf(s), gid: uidOf(s), home: "/var/empty" })),
      { name: "alice", uid: 1000, gid: 100, home: "/home/alice" },
    ],
    groups: [
      ...SERVICES.map((s) => ({ name: s, gid: uidOf(s) })),
      { name: "users", gid: 100 },
      { name: "keys", gid: KEYS_GID, members: SERVICES.filter((_, i) => c.inKeys[i]) },
      { name: "shared", gid: SHARED_GID, members: SERVICES.filter((_, i) => c.inShared[i]) },
    ],
    system: { ...keyed, secrets: c.secrets.map(secret(null, true)), templates: c.templates.map(template) },
    ...(c.forUsers.length === 0
      ? {}
      : { forUsers: { ...keyed, secrets: c.forUsers.map(secret(null, false)) } }),
    ...(c.homeManager === null
      ? {}
      : {
          homeManager: [
            {
              user: "alice",
              scope: {
                ...keyed,
                ageKeyFile: "/home/alice/.config/sops/age/keys.txt",
                secrets: c.homeManager.map(secret("/home/alice", false)),
              },
            },
          ],
        }),
  };
}

/** The host as it stands before activation: what NixOS, logind and the admin made, at umask 022. */
function beforeActivation(c: HostCase): HostLayout {
  const host = makeHost(specOf(c));
  fs.chmodSync(host.root, 0o755);
  for (const d of ["/run", "/srv", "/var/lib", "/etc"]) {
    fs.mkdirSync(host.real(d), { recursive: true, mode: 0o755 });
    fs.chmodSync(host.real(d), 0o755);
  }
  host.writeFile("/var/lib/sops-nix/key.txt", TEST_AGE_KEYS, 0o600);
  if (c.homeManager !== null) {
    // users.users.alice.homeMode "700"; logind makes /run/user/1000 0700 alice.
    for (const d of ["/home/alice", "/run/user/1000"]) {
      fs.mkdirSync(host.real(d), { recursive: true });
      fs.chownSync(host.real(d), 1000, 100);
      fs.chmodSync(host.real(d), 0o700);
    }
    fs.mkdirSync(host.real("/home/alice/.config/sops/age"), { recursive: true });
    for (const d of ["/home/alice/.config", "/home/alice/.config/sops", "/home/alice/.config/sops/age"])
      fs.chownSync(host.real(d), 1000, 100);
    host.writeFile("/home/alice/.config/sops/age/keys.txt", TEST_AGE_KEYS, 0o600, 1000, 100);
  }
  return host;
}

function scopesOf(c: HostCase): string[] {
  return [
    "system",
    ...(c.forUsers.length > 0 ? ["for-users"] : []),
    ...(c.homeManager === null ? [] : ["user:alice"]),
  ];
}

/** Laid out by the port of sops-install-secrets, run `activations` times. */
function layOut(c: HostCase): HostLayout {
  const host = beforeActivation(c);
  for (let n = 0; n < c.activations; n++) {
    installSecrets(host, "system", { umask: c.umask, ignorePasswd: false });
    if (c.forUsers.length > 0) installSecrets(host, "for-users", { umask: c.umask, ignorePasswd: true });
    if (c.homeManager !== null) installSecrets(host, "user:alice", { umask: c.umask, ignorePasswd: true });
  }
  return host;
}

// --- what the kernel says ------------------------------------------------------------------------------------

interface Reader {
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
}

interface Expectation {
  readonly scope: string;
  readonly subject: string;
  readonly kind: "secret" | "template";
  readonly generationPath: string;
  readonly link: string | null;
  readonly readers: readonly Reader[];
  /** Whether the link's parent directory was created by sops-install-secrets (through the umask). */
  readonly freshLinkParent: boolean;
  /**
   * A template when every template name is nested: createParentDirs chowns only the directories of the
   * name (main.go:442-457), so `rendered` itself, made on the way by MkdirAll, stays root:root.
   */
  readonly renderedRootOwned: boolean;
  /** Group-readable, its group neither root's nor keys, and every known member of it in keys. */
  readonly groupMembersInKeys: boolean;
  readonly declaredPerm: number;
}

/** The services in a group (root, the only member of gid 0, passes anyway): by primary gid or member list. */
function membersOf(c: HostCase, gid: number): string[] {
  return SERVICES.filter((s) => uidOf(s) === gid || memberships(c, s).slice(1).includes(gid));
}

function memberships(c: HostCase, s: string): number[] {
  const i = SERVICES.indexOf(s as (typeof SERVICES)[number]);
  return [uidOf(s), ...(c.inKeys[i] ? [KEYS_GID] : []), ...(c.inShared[i] ? [SHARED_GID] : [])];
}

function expectations(c: HostCase): Expectation[] {
  const out: Expectation[] = [];
  const system = (f: FileCase, i: number, kind: "secret" | "template") => {
    const spec = ownerSpec(f);
    const ownerSvc = f.owner.kind === "name" || f.owner.kind === "uid" ? f.owner.svc : null;
    const gid =
      spec.group === undefined || spec.group === null
        ? (spec.gid ?? 0)
        : spec.group === "shared"
          ? SHARED_GID
          : spec.group === "keys"
            ? KEYS_GID
            : uidOf(spec.group);
    const perm = Number.parseInt(f.mode, 8) & 0o777;
    const readers: Reader[] = [];
    if (ownerSvc !== null)
      readers.push({ uid: uidOf(ownerSvc), gid: uidOf(ownerSvc), groups: memberships(c, ownerSvc) });
    // An account-less uid has no groups to speak of: the owner and "other" classes decide.
    if (f.owner.kind === "stranger") readers.push({ uid: STRANGER, gid: STRANGER, groups: [] });
    // The group's members, each with its own groups; a group no account is in, a stand-in member.
    if ((perm & 0o040) !== 0) {
      const owned = readers[0]?.uid;
      const members = membersOf(c, gid);
      for (const s of members)
        if (uidOf(s) !== owned) readers.push({ uid: uidOf(s), gid: uidOf(s), groups: memberships(c, s) });
      if (members.length === 0 && gid !== 0) readers.push({ uid: NOBODY_UID, gid, groups: [gid] });
    }
    const p = linkPath(f, kind === "template" ? 100 + i : i, null);
    out.push({
      scope: "system",
      subject: f.name,
      kind,
      generationPath:
        kind === "secret"
          ? `/run/secrets.d/${c.activations}/${f.name}`
          : `/run/secrets.d/${c.activations}/rendered/${f.name}`,
      link: p ?? null,
      readers,
      freshLinkParent: f.link === "etc" || f.link === "deep",
      renderedRootOwned: kind === "template" && c.templates.every((t) => t.name.includes("/")),
      groupMembersInKeys:
        (perm & 0o040) !== 0 &&
        gid !== 0 &&
        gid !== KEYS_GID &&
        membersOf(c, gid).length > 0 &&
        membersOf(c, gid).every((s) => memberships(c, s).includes(KEYS_GID)),
      declaredPerm: perm,
    });
  };
  for (const [i, f] of c.secrets.entries()) system(f, i, "secret");
  for (const [i, f] of c.templates.entries()) system(f, i, "template");
  for (const f of c.forUsers)
    out.push({
      scope: "for-users",
      subject: f.name,
      kind: "secret",
      generationPath: `/run/secrets-for-users.d/${c.activations}/${f.name}`,
      link: null,
      readers: [],
      freshLinkParent: false,
      renderedRootOwned: false,
      groupMembersInKeys: false,
      declaredPerm: Number.parseInt(f.mode, 8) & 0o777,
    });
  (c.homeManager ?? []).forEach((f, i) => {
    const p = linkPath(f, i, "/home/alice");
    out.push({
      scope: "user:alice",
      subject: f.name,
      kind: "secret",
      generationPath: `/run/user/1000/secrets.d/${c.activations}/${f.name}`,
      link: p ?? null,
      readers: [{ uid: 1000, gid: 100, groups: [100] }],
      freshLinkParent: false,
      renderedRootOwned: false,
      groupMembersInKeys: false,
      declaredPerm: Number.parseInt(f.mode, 8) & 0o777,
    });
  });
  return out;
}

/**
 * For each expectation, whether every reader can read it as the kernel decides: `cat` of the file in the
 * generation, and `stat` (an lstat: a search of every parent) of its link. The link's absolute target would
 * resolve on this machine, not in the tree, so its two halves are asked separately; one process per reader.
 */
function kernelRefuses(host: HostLayout, exps: readonly Expectation[]): Set<Expectation> {
  const refused = new Set<Expectation>();
  const byReader = new Map<
    string,
    { reader: Reader; asks: { e: Expectation; op: string; path: string }[] }
  >();
  for (const e of exps) {
    for (const r of e.readers) {
      const key = `${r.uid}:${r.gid}:${r.groups.join(",")}`;
      const entry = byReader.get(key) ?? { reader: r, asks: [] };
      entry.asks.push({ e, op: "cat", path: host.real(e.generationPath) });
      if (e.link !== null) entry.asks.push({ e, op: "stat", path: host.real(e.link) });
      byReader.set(key, entry);
    }
  }
  for (const { reader, asks } of byReader.values()) {
    const script =
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a JS template
      'for a; do op=${a%%:*}; p=${a#*:}; if $op -- "$p" >/dev/null 2>&1; then echo 1; else echo 0; fi; done';
    const run = spawnSync(
      "setpriv",
      [
        `--reuid=${reader.uid}`,
        `--regid=${reader.gid}`,
        reader.groups.length === 0 ? "--clear-groups" : `--groups=${reader.groups.join(",")}`,
        "sh",
        "-c",
        script,
        "sh",
        ...asks.map((a) => `${a.op}:${a.path}`),
      ],
      { cwd: "/", encoding: "utf8" },
    );
    expect(run.status, run.stderr).toBe(0);
    const answers = run.stdout.trim().split("\n");
    expect(answers).toHaveLength(asks.length);
    asks.forEach((a, i) => {
      if (answers[i] !== "1") refused.add(a.e);
    });
  }
  return refused;
}

// --- the property --------------------------------------------------------------------------------------------

const key = (p: { scope: string; subject: string }) => `${p.scope} ${p.subject}`;

describe("a host as sops-install-secrets lays it out (generated)", () => {
  it("under umask 022 or 027 gets exactly the verdict the kernel gives, and is healthy under 022", (ctx) => {
    requireTool(ctx, "setpriv");
    if (process.getuid?.() !== 0)
      return ctx.skip("needs root to chown the tree as sops-install-secrets does");
    const seen = {
      inKeysGroupReaders: 0,
      secondRun: 0,
      rootOwnedRendered: 0,
      cases: 0,
      healthy022: 0,
      blocked027: 0,
      passed027: 0,
      wrongMode: 0,
      links: 0,
      nested: 0,
    };
    fc.assert(
      fc.property(hostCase, (c) => {
        const host = layOut(c);
        const exps = expectations(c);
        const refused = kernelRefuses(host, exps);
        const got = checkHost({ root: host.root, manifests: null, env: {} }).document.problems;

        // The kernel's verdict, pinned to the wording so the oracle itself cannot drift: under 022
        // everyone reads; under 027 a system file is refused exactly when one of its readers is outside
        // keys (or must pass a root:root directory); for-users files have no reader but root, and a
        // home-manager user reads her own.
        for (const e of exps) {
          if (c.umask === 0o022 || e.scope !== "system")
            expect(refused.has(e), `${key(e)} under ${c.umask.toString(8)}`).toBe(false);
          else if (!e.freshLinkParent)
            expect(refused.has(e), `${key(e)} under 027`).toBe(
              e.readers.some((r) => e.renderedRootOwned || !r.groups.includes(KEYS_GID)),
            );
        }

        const cannotRead = got.filter((p) => p.code === "owner_cannot_read");
        const expected = new Set(exps.filter((e) => refused.has(e)).map(key));
        expect(cannotRead.filter((p) => !expected.has(key(p))).map((p) => `${key(p)}: ${p.message}`)).toEqual(
          [],
        );
        expect(cannotRead.map(key).sort()).toEqual([...expected].sort());
        for (const p of cannotRead) {
          expect(p.severity).toBe("critical");
          expect(p.message).toContain("umask");
        }
        // os.WriteFile through the umask (main.go:466): 027 clears the "other" bits 022 leaves.
        const lost = exps.filter((e) => e.kind === "secret" && (e.declaredPerm & c.umask & ~0o022) !== 0);
        const wrongMode = got.filter((p) => p.code === "wrong_mode");
        expect(wrongMode.map(key).sort()).toEqual(lost.map(key).sort());
        for (const p of wrongMode) expect(p.message).toContain("the umask sops-install-secrets ran under");
        const rest = got.filter((p) => p.code !== "owner_cannot_read" && p.code !== "wrong_mode");
        expect(rest.map((p) => `${p.scope} ${p.code} ${p.subject}: ${p.message}`)).toEqual([]);

        seen.cases++;
        if (c.activations === 2) seen.secondRun++;
        // A group-readable file whose group members (beside the owner) are all in keys: a stand-in member
        // with only that group would be refused, the real ones are not.
        if (c.umask === 0o027)
          seen.inKeysGroupReaders += exps.filter(
            (e) => e.groupMembersInKeys && e.scope === "system" && !refused.has(e),
          ).length;
        seen.rootOwnedRendered += exps.filter((e) => e.renderedRootOwned && refused.has(e)).length;
        if (c.umask === 0o022 && got.length === 0) seen.healthy022++;
        if (c.umask === 0o027) {
          seen.blocked027 += refused.size;
          seen.passed027 += exps.filter((e) => e.readers.length > 0 && !refused.has(e)).length;
        }
        seen.wrongMode += wrongMode.length;
        seen.links += exps.filter((e) => e.link !== null).length;
        seen.nested += exps.filter((e) => e.subject.includes("/")).length;
        fs.rmSync(host.root, { recursive: true, force: true });
      }),
      { numRuns: 32, seed: 11, endOnFailure: true },
    );
    // The generated cases covered both verdicts of each kind, so the property compared something.
    expect(seen.cases).toBe(32);
    expect(seen.healthy022).toBeGreaterThan(0);
    expect(seen.blocked027).toBeGreaterThan(0);
    expect(seen.passed027).toBeGreaterThan(0);
    expect(seen.wrongMode).toBeGreaterThan(0);
    expect(seen.links).toBeGreaterThan(0);
    expect(seen.nested).toBeGreaterThan(0);
    expect(seen.secondRun).toBeGreaterThan(0);
    expect(seen.inKeysGroupReaders).toBeGreaterThan(0);
    expect(seen.rootOwnedRendered).toBeGreaterThan(0);
  });
});

// The layout helper (src/example/layout.ts) lays out the host trees of every other test: it must leave
// what the port leaves — every directory, file and link with its type, mode, owner and group.
describe("the layout helper agrees with the port of sops-install-secrets", () => {
  function snapshot(host: HostLayout, c: HostCase): string[] {
    const out: string[] = [];
    const one = (p: string): fs.Stats => {
      const st = fs.lstatSync(host.real(p));
      const kind = st.isSymbolicLink()
        ? `link -> ${fs.readlinkSync(host.real(p))}`
        : st.isDirectory()
          ? "dir"
          : "file";
      out.push(`${p} ${kind} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`);
      return st;
    };
    const all = (p: string) => {
      if (!one(p).isDirectory()) return;
      // The combined key file is the port's alone: the layout helper has no key material to write.
      for (const name of fs.readdirSync(host.real(p)).sort())
        if (name !== "age-keys.txt") all(`${p}/${name}`);
    };
    for (const scope of scopesOf(c)) {
      const laid = host.scopes.get(scope);
      if (laid === undefined) throw new Error(scope);
      all(laid.mountPoint);
      one(laid.symlinkPath);
      one(path.posix.dirname(laid.symlinkPath));
    }
    // Each link and the directories made for it, up to the ones the host had.
    const had = ["/etc", "/srv", "/var/lib", "/home/alice", "/"];
    for (const e of expectations(c))
      for (let p = e.link; p !== null && !had.includes(p); p = path.posix.dirname(p)) one(p);
    return out.sort();
  }

  it("for generated hosts, under umask 022 and 027, after one or two activations", (ctx) => {
    if (process.getuid?.() !== 0)
      return ctx.skip("needs root to chown the tree as sops-install-secrets does");
    let compared = 0;
    fc.assert(
      fc.property(hostCase, (c) => {
        const ported = layOut(c);
        const helper = beforeActivation(c);
        for (const scope of scopesOf(c)) {
          const laid = helper.scopes.get(scope);
          if (laid === undefined) throw new Error(scope);
          helper.layGeneration(laid, 1);
          if (c.activations === 2) helper.switchGeneration(scope);
        }
        const want = snapshot(ported, c);
        expect(snapshot(helper, c)).toEqual(want);
        compared += want.length;
        fs.rmSync(ported.root, { recursive: true, force: true });
        fs.rmSync(helper.root, { recursive: true, force: true });
      }),
      { numRuns: 16, seed: 8, endOnFailure: true },
    );
    expect(compared).toBeGreaterThan(100);
  });
});
