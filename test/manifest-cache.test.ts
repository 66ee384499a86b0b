// The agent's manifest cache: a manifest is parsed once per content, and a changed one is parsed again.

import * as fs from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { checkHost } from "../src/host/check-host.js";
import { ManifestCache } from "../src/host/load-scopes.js";
import { cleanupRoots, healthyHost } from "./helpers/host.js";

afterAll(() => cleanupRoots());

describe("ManifestCache", () => {
  it("parses each manifest once, shares its scopes between runs, and re-parses a changed one", () => {
    const host = healthyHost();
    const cache = new ManifestCache();
    const opts = { root: host.root, manifests: null, env: {}, manifestCache: cache };
    const first = checkHost(opts);
    const parsed = cache.parseCount;
    expect(parsed).toBeGreaterThan(0);
    const second = checkHost(opts);
    expect(cache.parseCount).toBe(parsed);
    expect(second.document).toEqual(first.document);
    expect(second.observed[0]?.declared.secrets).toBe(first.observed[0]?.declared.secrets);

    const manifest = first.observed[0]?.declared.manifestPath ?? "";
    const real = host.real(manifest);
    fs.chmodSync(real, 0o644);
    fs.writeFileSync(real, "{ not json");
    const broken = checkHost(opts);
    expect(cache.parseCount).toBe(parsed + 1);
    expect(broken.document.problems.map((p) => p.code)).toContain("manifest_invalid");
  });
});
