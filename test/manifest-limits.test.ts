// A manifest too large to parse with bounded memory is refused by its size, with an error naming the file
// and the limit; it is never read into memory (issue 9.10).

import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { checkHost } from "../src/host/check-host.js";
import { cleanupRoots, healthyHost } from "./helpers/host.js";

afterEach(() => cleanupRoots());

describe("manifest size", () => {
  it("refuses a manifest over 16 MiB by its size, naming the file and the limit", () => {
    const host = healthyHost();
    const big = "/etc/sops-agent/huge-manifest.json";
    fs.mkdirSync(path.dirname(host.real(big)), { recursive: true });
    // Sparse: 17 MiB by its size, no memory or disk spent.
    fs.writeFileSync(host.real(big), "");
    fs.truncateSync(host.real(big), 17 << 20);
    const run = checkHost({ root: host.root, manifests: [big], env: {} });
    expect(run.document.problems).toContainEqual(
      expect.objectContaining({
        code: "manifest_invalid",
        path: big,
        message: expect.stringMatching(/huge-manifest\.json.*larger than 16 MiB/),
      }),
    );
  });
});
