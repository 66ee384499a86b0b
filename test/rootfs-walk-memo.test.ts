// A RootFs looks at each directory of its walks once (a snapshot reader, made for one check): the
// secret directories, sops files and generation listings of a check share /run, /run/secrets.d and
// /nix/store. Counted in lstat calls, never timed; and a shared reader answers exactly as a fresh one
// per path does, through links, `..`, loops, files used as directories and an account's access.

import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { lstatCount, RootFs } from "../src/host/rootfs.js";
import { cleanupRoots, tempRoot } from "./helpers/host.js";

afterAll(cleanupRoots);

function tree(): string {
  const root = tempRoot("sops-agent-walk-");
  fs.mkdirSync(path.join(root, "d1/d2/d3"), { recursive: true });
  for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(root, `d1/d2/d3/f${i}`), "x");
  fs.writeFileSync(path.join(root, "d1/d2/notdir"), "x");
  fs.symlinkSync("/d1", path.join(root, "abs"));
  fs.symlinkSync("d1/d2", path.join(root, "rel"));
  fs.symlinkSync("d1/d2/d3/..", path.join(root, "up"));
  fs.symlinkSync("loop2", path.join(root, "loop1"));
  fs.symlinkSync("loop1", path.join(root, "loop2"));
  fs.symlinkSync("f0", path.join(root, "d1/d2/d3/link-to-f0"));
  fs.mkdirSync(path.join(root, "d1/locked"), { mode: 0o700 });
  fs.writeFileSync(path.join(root, "d1/locked/f"), "x");
  fs.chmodSync(path.join(root, "d1/locked"), 0o700);
  fs.mkdirSync(path.join(root, "d1/open"), { mode: 0o755 });
  fs.chownSync(path.join(root, "d1/open"), 1000, 1000);
  fs.writeFileSync(path.join(root, "d1/open/f"), "x");
  return root;
}

const PATHS = [
  "/",
  "/d1",
  "/d1/d2/d3/f0",
  "/d1/d2/d3/f4",
  "/d1/d2/d3/missing",
  "/d1/d2/notdir/below",
  "/d1/d2/d3/link-to-f0",
  "/abs/d2/d3/f1",
  "/rel/d3/f2",
  "/rel/notdir",
  "/up/d3/f3",
  "/up",
  "/loop1/x",
  "/loop1",
  "/d1/locked/f",
  "/d1/locked",
  "/d1/open/f",
  "/d1//d2/./d3/../d3/f0",
  "/nothing/at/all",
];

describe("RootFs walks", () => {
  it("look at a directory once per reader, at files every time", () => {
    const root = tree();
    const reader = new RootFs(root);
    const start = lstatCount();
    for (let i = 0; i < 5; i++) expect(reader.resolve(`/d1/d2/d3/f${i}`).state).toBe("resolved");
    // d1, d2, d3 once, and each file: 8 (every walk from the root: 20).
    expect(lstatCount() - start).toBe(8);
    // A file is looked at again, its directories are not.
    reader.resolve("/d1/d2/d3/f0");
    expect(lstatCount() - start).toBe(9);
  });

  it("follow a symlink on the way every time (its target is read afresh)", () => {
    const root = tree();
    const reader = new RootFs(root);
    reader.resolve("/abs/d2/d3/f0");
    const start = lstatCount();
    expect(reader.resolve("/abs/d2/d3/f1")).toMatchObject({ state: "resolved", path: "/d1/d2/d3/f1" });
    // The link `abs` and the file; d1, d2 and d3 are known.
    expect(lstatCount() - start).toBe(2);
  });

  it.each([
    ["the agent", null],
    ["an account", { uid: 1000, gids: [1000] }],
  ])("answer as a fresh reader per path does, as %s", (_, as) => {
    const root = tree();
    const fresh = (p: string) => new RootFs(root, as).resolve(p);
    const shared = new RootFs(root, as);
    // Twice over, forwards and backwards: what one walk remembered never changes another's answer.
    for (const order of [PATHS, [...PATHS].reverse()])
      for (const p of order) expect({ p, r: shared.resolve(p) }).toEqual({ p, r: fresh(p) });
    // The account cannot pass the root-only directory; the agent can.
    expect(shared.resolve("/d1/locked/f").state).toBe(as === null ? "resolved" : "inaccessible");
  });
});

describe("a walk that ends on `..`", () => {
  // The facts of a resolved path are those of the path it names: `/d1/locked/..` is `/d1`, not `locked`.
  // A reader acting for an account decides its read and search rights from them.
  it("answers with the facts of the directory it ends in, as the kernel would", () => {
    const root = tree();
    const fsr = new RootFs(root);
    const up = fsr.resolve("/d1/locked/..");
    const d1 = fsr.resolve("/d1");
    expect(up.state).toBe("resolved");
    if (up.state !== "resolved" || d1.state !== "resolved") return;
    expect(up.path).toBe("/d1");
    expect(up.facts).toEqual(d1.facts);
    const viaLink = fsr.resolve("/up");
    const d2 = fsr.resolve("/d1/d2");
    expect(viaLink.state === "resolved" && d2.state === "resolved" && viaLink.facts).toEqual(
      d2.state === "resolved" ? d2.facts : null,
    );
    const top = fsr.resolve("/d1/..");
    expect(top.state === "resolved" && top.path).toBe("/");
    expect(top.state === "resolved" && top.facts.type).toBe("directory");
  });

  it("lists `d/..` for an account as the account may list the parent, not `d`", () => {
    const root = tree();
    // d1/open is the account's and open to it; d1 itself is root's and may not be read by others.
    fs.chmodSync(path.join(root, "d1"), 0o711);
    const as = { uid: 1000, gids: [1000] };
    const fsr = new RootFs(root, as);
    expect(fsr.readdir("/d1")).toEqual([]);
    expect(fsr.readdir("/d1/open/..")).toEqual([]);
  });
});
