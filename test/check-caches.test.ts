// What the agent remembers between checks (issue 11.4) must never make a verdict stale: each cache is
// counted to show it is used, and a change to what it was built from is seen at the next check.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { AgentMetrics, renderState } from "../src/agent/metrics.js";
import { keyLookupCount } from "../src/checks/sops.js";
import { exampleIdentity } from "../src/example/example-host.js";
import { layoutHost, sopsStorePath, sopsYaml } from "../src/example/layout.js";
import { type CheckState, checkHost, checkHostKeeping } from "../src/host/check-host.js";
import { ManifestCache } from "../src/host/load-scopes.js";
import { SopsFileCache } from "../src/sops/reader.js";

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

/** 20 secrets from two sops files, the host a recipient of both. */
function twoFileHost(secrets = 20) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "sops-agent-caches-"));
  roots.push(root);
  const identity = exampleIdentity();
  const host = layoutHost(root, {
    system: {
      ageKeyFile: "/var/lib/sops-nix/key.txt",
      recipients: [identity.recipient],
      secrets: Array.from({ length: secrets }, (_, i) => ({
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

describe("observations taken over from the last check", () => {
  it("are the same objects while nothing changed, and a changed file is seen at once", () => {
    const { host } = twoFileHost();
    const caches = { sopsCache: new SopsFileCache(), manifestCache: new ManifestCache() };
    let previous: CheckState | null = null;
    const check = () => {
      const { run, state } = checkHostKeeping({
        root: host.root,
        manifests: null,
        env: {},
        ...caches,
        previous,
      });
      previous = state;
      return run;
    };
    const system = (run: ReturnType<typeof check>) => {
      const scope = run.observed.find((o) => o.declared.scope === "system");
      if (scope === undefined) throw new Error("no system scope");
      return scope;
    };
    const first = check();
    const second = check();
    // Nothing changed: the same files array, the same status entries.
    expect(system(second).files).toBe(system(first).files);
    expect(second.document.secrets).toBe(first.document.secrets);

    const secret = "/run/secrets.d/1/svc/secret-7";
    fs.chmodSync(host.real(secret), 0o444);
    const third = check();
    expect(third.document.problems.filter((p) => p.subject === "svc/secret-7").map((p) => p.code)).toEqual([
      "wrong_mode",
    ]);
    const before = system(second).files;
    const renewed = system(third).files.filter((f, i) => f !== before[i]);
    expect(renewed.map((f) => f.generationPath)).toEqual([secret]);
    expect(
      third.document.secrets.filter((s, i) => s !== second.document.secrets[i]).map((s) => s.name),
    ).toEqual(["svc/secret-7"]);

    // Replaced by another file with the same mode, owner, size and mtime: a new inode is a change too.
    const real = host.real(secret);
    fs.chmodSync(real, 0o400);
    check();
    const st = fs.statSync(real);
    fs.copyFileSync(real, `${real}.new`);
    fs.chmodSync(`${real}.new`, 0o400);
    fs.utimesSync(`${real}.new`, st.atime, st.mtime);
    fs.renameSync(`${real}.new`, real);
    const replaced = system(check()).files.find((f) => f.generationPath === secret);
    expect(replaced?.facts.state === "present" && replaced.facts.ino).toBe(fs.statSync(real).ino);
    // And it equals what a check without the last state sees.
    expect(checkHost({ root: host.root, manifests: null, env: {} }).document).toEqual(check().document);
  });
});

describe("the /metrics state blocks", () => {
  it("render again only the blocks of a changed secret, and the text is what a full render gives", async () => {
    const { host } = twoFileHost(1000);
    const caches = { sopsCache: new SopsFileCache(), manifestCache: new ManifestCache() };
    let previous: CheckState | null = null;
    const metrics = new AgentMetrics("test", { processMetrics: false });
    const publish = async () => {
      const { run, state } = checkHostKeeping({
        root: host.root,
        manifests: null,
        env: {},
        ...caches,
        previous,
      });
      previous = state;
      await metrics.publish({ run, switches: new Map() });
      return run;
    };
    await publish();
    const full = metrics.blockRenders;
    // 1,000 secrets (and the other scopes' few) in blocks of 256, three families.
    expect(full).toBeGreaterThanOrEqual(12);

    fs.chmodSync(host.real("/run/secrets.d/1/svc/secret-500"), 0o444);
    const run = await publish();
    expect(metrics.lastPublishUnchanged).toBe(false);
    // Its sops_secret_ok block (now 0) and its sops_secret_modified_timestamp_seconds block; not its info.
    expect(metrics.blockRenders - full).toBe(2);
    const text = await metrics.render();
    const fresh = renderState({ run, switches: new Map() }).toString("utf8");
    expect(text.startsWith(fresh.slice(0, fresh.indexOf("# HELP sops_agent_check_success")))).toBe(true);
    expect(text).toContain('sops_secret_ok{scope="system",kind="secret",name="svc/secret-500"} 0');
  });
});
