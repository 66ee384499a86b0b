// Nothing checked is not healthy: a --root that is not a directory is a usage error, and a host where no
// manifest was found fails `status` unless told that it runs no sops-nix on purpose.

import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../src/agent/config.js";
import { runCli } from "./helpers/cli.js";
import { cleanupRoots, healthyHost, tempRoot } from "./helpers/host.js";

afterEach(cleanupRoots);

describe("--root", () => {
  it.each([
    ["status", "does not exist"],
    ["recipient", "does not exist"],
    ["run", "does not exist"],
  ])("%s with a root that does not exist is a usage error (exit 2)", async (command, why) => {
    const missing = path.join(tempRoot(), "no-such-dir");
    const r = await runCli([command, "--root", missing, ...(command === "run" ? ["--check-config"] : [])]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${missing} ${why}`);
    expect(r.stdout).toBe("");
  });

  it("status with a root that is a file is a usage error (exit 2)", async () => {
    const file = path.join(tempRoot(), "a-file");
    fs.writeFileSync(file, "");
    const r = await runCli(["status", "--root", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file} is not a directory`);
  });

  it("status on a healthy host still passes (exit 0)", async () => {
    expect((await runCli(["status", "--root", healthyHost().root])).code).toBe(0);
  });
});

describe("no manifest found", () => {
  it("is critical: status exits 1", async () => {
    const r = await runCli(["status", "--root", tempRoot(), "--json"]);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout) as { healthy: boolean; problems: { code: string; severity: string }[] };
    expect(doc.healthy).toBe(false);
    expect(doc.problems).toEqual([expect.objectContaining({ code: "no_manifests", severity: "critical" })]);
  });

  it("is info with --allow-no-manifests: status exits 0", async () => {
    const r = await runCli(["status", "--root", tempRoot(), "--allow-no-manifests", "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).problems).toEqual([
      expect.objectContaining({ code: "no_manifests", severity: "info" }),
    ]);
  });

  it("the agent's config says the same with allow_no_manifests", () => {
    expect(
      parseConfig("allow_no_manifests: true\n", "/etc/sops-agent/config.yaml", { schedule: () => true }),
    ).toEqual({
      allowNoManifests: true,
    });
    expect(() =>
      parseConfig("allow_no_manifests: yes-please\n", "/etc/sops-agent/config.yaml", {
        schedule: () => true,
      }),
    ).toThrow(/config.yaml:1:.*allow_no_manifests/);
  });
});
