import { describe, expect, it } from "vitest";
import { credentialsOf, emptyAccounts, parseGroup, parsePasswd, userById } from "../src/core/accounts.js";

const PASSWD = [
  "# /etc/passwd, hand-edited",
  "root:x:0:0:System administrator:/root:/run/current-system/sw/bin/bash",
  "",
  "   ",
  "alice:x:1000:100:Alice:/home/alice:/bin/zsh\r",
  "broken-line-without-fields",
  "baduid:x:12a:100::/home/baduid:/bin/sh",
  "negative:x:-1:100::/home/negative:/bin/sh",
  "short:x:1002:100",
  "+nisuser::::::",
  "-excluded::::::",
  ":x:1003:100::/home/noname:/bin/sh",
  "alice:x:2000:200:Duplicate:/home/other:/bin/sh",
  "aliceagain:x:1000:100::/home/aliceagain:/bin/sh",
  "nobody:x:65534:65534:Unprivileged account:/var/empty:/run/current-system/sw/bin/nologin",
].join("\n");

const GROUP = [
  "# groups",
  "root:x:0:",
  "keys:x:96:",
  "users:x:100:alice,bob",
  "",
  "broken",
  "badgid:x:abc:",
  "+:::",
  "keys:x:999:",
].join("\n");

describe("parsePasswd", () => {
  const users = parsePasswd(PASSWD);

  it("keeps well-formed entries with uid, gid and home", () => {
    expect(users.get("root")).toEqual({ name: "root", id: 0, gid: 0, home: "/root" });
    expect(users.get("alice")).toEqual({ name: "alice", id: 1000, gid: 100, home: "/home/alice" });
    expect(users.get("nobody")).toEqual({ name: "nobody", id: 65534, gid: 65534, home: "/var/empty" });
  });

  it.each(["broken-line-without-fields", "baduid", "negative", "short", "+nisuser", "-excluded", ""])(
    "skips the malformed or NIS line %j",
    (name) => {
      expect(users.has(name)).toBe(false);
    },
  );

  it("keeps the first entry of a duplicated name, as getpwnam does", () => {
    expect(users.get("alice")?.id).toBe(1000);
  });

  it("lists entries in file order", () => {
    expect([...users.keys()]).toEqual(["root", "alice", "aliceagain", "nobody"]);
  });

  it("parses an empty file to no entries", () => {
    expect(parsePasswd("").size).toBe(0);
  });
});

describe("parseGroup", () => {
  const groups = parseGroup(GROUP);

  it("keeps well-formed entries, the first of a duplicated name", () => {
    expect([...groups.values()]).toEqual([
      { name: "root", id: 0, members: [] },
      { name: "keys", id: 96, members: [] },
      { name: "users", id: 100, members: ["alice", "bob"] },
    ]);
  });
});

describe("credentialsOf", () => {
  const accounts = { users: parsePasswd(PASSWD), groups: parseGroup(GROUP) };

  it("gives a named user its primary gid and every group listing it", () => {
    expect(credentialsOf(accounts, { kind: "name", name: "alice" })).toEqual({ uid: 1000, gids: [100, 100] });
    expect(credentialsOf(accounts, { kind: "name", name: "nobody" })).toEqual({ uid: 65534, gids: [65534] });
  });

  it("looks a bare uid up in passwd, and gives an unknown one no groups", () => {
    expect(credentialsOf(accounts, { kind: "id", id: 1000 })?.gids).toEqual([100, 100]);
    expect(credentialsOf(accounts, { kind: "id", id: 4242 })).toEqual({ uid: 4242, gids: [] });
  });

  it("knows no credentials for an unknown name", () => {
    expect(credentialsOf(accounts, { kind: "name", name: "ghost" })).toBeNull();
  });
});

describe("userById", () => {
  const accounts = { users: parsePasswd(PASSWD), groups: parseGroup(GROUP) };

  it("returns the first entry with the uid, in file order", () => {
    expect(userById(accounts, 1000)?.name).toBe("alice");
    expect(userById(accounts, 0)?.name).toBe("root");
  });

  it("returns null for an unknown uid", () => {
    expect(userById(accounts, 4242)).toBeNull();
    expect(userById(emptyAccounts(), 0)).toBeNull();
  });
});

describe("emptyAccounts", () => {
  it("has no users and no groups", () => {
    const accounts = emptyAccounts();
    expect(accounts.users.size).toBe(0);
    expect(accounts.groups.size).toBe(0);
  });
});
