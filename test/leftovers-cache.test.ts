// The agent keeps each current generation's listing (for orphan_file) between checks and lists it again only
// when a directory in it changed (issue 11.4): the cache must never hide a file added since.

import * as fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import type { HostLayout } from "../src/example/layout.js";
import { checkHost } from "../src/host/check-host.js";
import { HistoryCache } from "../src/host/history.js";
import { ManifestCache } from "../src/host/load-scopes.js";
import { cleanupRoots, healthyHost } from "./helpers/host.js";

afterEach(cleanupRoots);

/** As the agent checks: the manifest cache hands out the same declarations while a manifest is unchanged. */
const manifestCache = new ManifestCache();

function orphanFiles(host: HostLayout, cache: HistoryCache): string[] {
  const run = checkHost({ root: host.root, manifests: null, env: {}, historyCache: cache, manifestCache });
  return run.document.problems.filter((p) => p.code === "orphan_file").map((p) => p.subject);
}

/** A cache whose clock runs an hour ahead: the host's fresh generations look settled to it. */
const settledCache = () => new HistoryCache({ now: () => Date.now() + 3_600_000 });

describe("the generation listing cache", () => {
  it("reuses a settled generation's listing and still sees a file added to one of its directories", () => {
    const host = healthyHost();
    const cache = settledCache();
    expect(orphanFiles(host, cache)).toEqual([]);
    const first = cache.directoryListings;
    expect(first).toBeGreaterThan(1);
    expect(orphanFiles(host, cache)).toEqual([]);
    expect(cache.directoryListings).toBe(first);

    host.writeFile("/run/secrets.d/1/nginx/extra.conf", "x", 0o400);
    expect(orphanFiles(host, cache)).toEqual(["nginx/extra.conf"]);
    // Only the changed scope's generation is listed again.
    expect(cache.directoryListings).toBeGreaterThan(first);
    expect(cache.directoryListings).toBeLessThan(2 * first);

    fs.rmSync(host.real("/run/secrets.d/1/nginx/extra.conf"));
    host.writeFile("/run/secrets.d/1/stray", "x", 0o400);
    expect(orphanFiles(host, cache)).toEqual(["stray"]);
  });

  it("lists again a generation changed too recently to trust its mtime, every time", () => {
    const host = healthyHost();
    const cache = new HistoryCache();
    expect(orphanFiles(host, cache)).toEqual([]);
    const first = cache.directoryListings;
    expect(orphanFiles(host, cache)).toEqual([]);
    expect(cache.directoryListings).toBe(2 * first);
  });

  it("sees a file added within the same mtime the listing saw (the timestamp restored)", () => {
    const host = healthyHost();
    const dir = host.real("/run/secrets.d/1");
    const cache = settledCache();
    expect(orphanFiles(host, cache)).toEqual([]);
    // A change the directory's mtime does not show (restored by hand): its ctime moved, its size may not have.
    const before = fs.statSync(dir);
    host.writeFile("/run/secrets.d/1/stray", "x", 0o400);
    fs.utimesSync(dir, before.atime, before.mtime);
    expect(orphanFiles(host, cache)).toEqual(["stray"]);
  });
});
