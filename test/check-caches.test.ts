// What the agent remembers between checks (issue 11.4) must never make a verdict stale: each cache is
// counted to show it is used, and a change to what it was built from is seen at the next check.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { keyLookupCount } from "../src/checks/sops.js";
import { exampleIdentity } from "../src/example/example-host.js";
import { layoutHost, sopsStorePath, sopsYaml } from "../src/example/layout.js";
import { checkHost } from "../src/host/check-host.js";
import { ManifestCache } from "../src/host/load-scopes.js";
import { SopsFileCache } from "../src/sops/reader.js";

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

/** 20 secrets from two sops files, the host a recipient of both. */
function twoFileHost() {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "sops-agent-caches-"));
  roots.push(root);
  const identity = exampleIdentity();
  const host = layoutHost(root, {
    system: {
      ageKeyFile: "/var/lib/sops-nix/key.txt",
      recipients: [identity.recipient],
      secrets: Array.from({ length: 20 }, (_, i) => ({
        name: `svc/secret-${i}`,
        mode: "0400",
        sopsFile: `file-${i % 2}`,
      })),
    },
  });
  host.writeFile("/var/lib/sops-nix/key.txt", identity.file, 0o600);
  return { host, identity };
}

describe("the sops key verdicts", () => {
  it("are looked up once per unchanged sops file, and again when the file is re-keyed", () => {
    const { host, identity } = twoFileHost();
    const opts = {
      root: host.root,
      manifests: null,
      env: {},
      sopsCache: new SopsFileCache(),
      manifestCache: new ManifestCache(),
    };
    const absent = () =>
      checkHost(opts)
        .document.problems.filter((p) => p.code === "sops_key_absent")
        .map((p) => p.subject);
    const start = keyLookupCount();
    expect(absent()).toEqual([]);
    expect(keyLookupCount() - start).toBe(20);
    expect(absent()).toEqual([]);
    expect(keyLookupCount() - start).toBe(20);

    // file-1 re-encrypted without secret-3's key (sops keeps no size or mtime promise: both change here).
    const keys = Array.from({ length: 10 }, (_, k) => `svc/secret-${2 * k + 1}`).filter(
      (k) => k !== "svc/secret-3",
    );
    host.writeFile(sopsStorePath("file-1"), sopsYaml(keys, [identity.recipient]), 0o444);
    expect(absent()).toEqual(["svc/secret-3"]);
    // Only file-1's ten secrets were looked up again.
    expect(keyLookupCount() - start).toBe(30);
  });
});
