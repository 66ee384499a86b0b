// The access rule, table-driven and then compared with the kernel itself: a real directory chain with real
// modes and owners, read by a real unprivileged process (setpriv), must agree with canReadThrough.

import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import {
  type Credentials,
  canReadThrough,
  type PathStep,
  permits,
  READ,
  SEARCH,
} from "../src/core/access.js";
import { requireTool } from "./helpers/tools.js";

const step = (p: string, mode: number, uid: number, gid: number): PathStep => ({ path: p, mode, uid, gid });

describe("permits", () => {
  const alice: Credentials = { uid: 1000, gids: [100, 96] };
  it.each([
    // mode, uid, gid, want, expected — one class applies, its bits alone decide
    [0o751, 0, 96, SEARCH, true], // group keys may search root:keys 0751
    [0o700, 0, 96, SEARCH, false], // umask 077 leak: group bits cleared
    [0o751, 0, 0, SEARCH, true], // "other" may search 0751
    [0o750, 0, 0, SEARCH, false],
    [0o400, 1000, 100, READ, true],
    [0o044, 1000, 100, READ, false], // owner class matches with no read bit: denied although group may
    [0o040, 0, 100, READ, true],
    [0o004, 0, 7, READ, true],
  ])("mode %o owned %i:%i, want %i → %s", (mode, uid, gid, want, expected) => {
    expect(permits(alice, { mode, uid, gid }, want)).toBe(expected);
  });

  it("lets root read and search anything, but execute a file only with some x bit", () => {
    const root: Credentials = { uid: 0, gids: [0] };
    expect(permits(root, { mode: 0o000, uid: 5, gid: 5 }, READ, false)).toBe(true);
    expect(permits(root, { mode: 0o000, uid: 5, gid: 5 }, SEARCH, true)).toBe(true);
    expect(permits(root, { mode: 0o600, uid: 5, gid: 5 }, SEARCH, false)).toBe(false);
    expect(permits(root, { mode: 0o610, uid: 5, gid: 5 }, SEARCH, false)).toBe(true);
  });
});

describe("canReadThrough", () => {
  const svc: Credentials = { uid: 990, gids: [990] };
  it("names the first directory that refuses the search", () => {
    const dirs = [
      step("/run/secrets.d", 0o751, 0, 96),
      step("/run/secrets.d/1", 0o700, 0, 96),
      step("/run/secrets.d/1/a", 0o700, 0, 96),
    ];
    expect(canReadThrough(svc, dirs, step("/run/secrets.d/1/a/b", 0o400, 990, 990))).toEqual({
      ok: false,
      index: 1,
      path: "/run/secrets.d/1",
      need: "search",
      mode: 0o700,
      uid: 0,
      gid: 96,
    });
  });

  it("refuses the read of a file the chain lets through", () => {
    const dirs = [step("/run/secrets.d", 0o751, 0, 96)];
    const verdict = canReadThrough(svc, dirs, step("/run/secrets.d/x", 0o400, 0, 0));
    expect(verdict).toMatchObject({ ok: false, index: 1, need: "read" });
  });

  it("accepts the layout sops-install-secrets leaves under umask 022", () => {
    const dirs = [step("/run/secrets.d", 0o751, 0, 96), step("/run/secrets.d/1", 0o751, 0, 96)];
    expect(canReadThrough(svc, dirs, step("/run/secrets.d/1/x", 0o400, 990, 0))).toEqual({ ok: true });
  });
});

// The kernel is the reference: a property over random chains, each case checked by an unprivileged process.
describe("canReadThrough agrees with the kernel", () => {
  const roots: string[] = [];
  afterAll(() => {
    for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
  });

  it("for random modes, owners and groups along a three-directory chain", (ctx) => {
    requireTool(ctx, "setpriv");
    if (process.getuid?.() !== 0) return ctx.skip("needs root to chown the chain");
    const base = fs.mkdtempSync(path.join(os.tmpdir(), "access-"));
    roots.push(base);
    fs.chmodSync(base, 0o755);
    const ids = fc.constantFrom(0, 4242, 4343);
    const inode = fc.record({ mode: fc.integer({ min: 0, max: 0o777 }), uid: ids, gid: ids });
    let n = 0;
    let kernelSaid = { yes: 0, no: 0 };
    fc.assert(
      fc.property(
        fc.array(inode, { minLength: 1, maxLength: 3 }),
        inode,
        fc.constantFrom(4242, 4343),
        fc.boolean(),
        (dirs, file, uid, supplementary) => {
          const top = path.join(base, String(n++));
          const chain: PathStep[] = [];
          let dir = top;
          for (let i = 0; i < dirs.length; i++) {
            dir = path.join(dir, `d${i}`);
            chain.push({ path: dir, ...(dirs[i] as (typeof dirs)[number]) });
          }
          fs.mkdirSync(dir, { recursive: true });
          const filePath = path.join(dir, "f");
          fs.writeFileSync(filePath, "x");
          for (const s of [...chain, { path: filePath, ...file }].reverse()) {
            fs.chownSync(s.path, s.uid, s.gid);
            fs.chmodSync(s.path, s.mode);
          }
          const gid = uid;
          const groups = supplementary ? [gid, 4444] : [gid];
          // 4444 is never an owner here, so a supplementary group must change nothing: part of the property.
          const cred: Credentials = { uid, gids: groups };
          const model = canReadThrough(cred, chain, { path: filePath, ...file }).ok;
          const run = spawnSync(
            "setpriv",
            [`--reuid=${uid}`, `--regid=${gid}`, `--groups=${groups.join(",")}`, "cat", filePath],
            { stdio: ["ignore", "ignore", "ignore"] },
          );
          const kernel = run.status === 0;
          if (kernel) kernelSaid = { ...kernelSaid, yes: kernelSaid.yes + 1 };
          else kernelSaid = { ...kernelSaid, no: kernelSaid.no + 1 };
          fs.chmodSync(top, 0o755);
          execFileSync("chmod", ["-R", "u+rwx", top]);
          fs.rmSync(top, { recursive: true, force: true });
          return model === kernel;
        },
      ),
      { numRuns: 60, seed: 8 },
    );
    // Both answers occurred, so the property compared something.
    expect(kernelSaid.yes).toBeGreaterThan(0);
    expect(kernelSaid.no).toBeGreaterThan(0);
  });
});
