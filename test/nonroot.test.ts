// What the agent cannot see is never reported as broken: the real CLI, run as an unprivileged user
// (setpriv, util-linux) on a host tree laid out as sops-install-secrets leaves it, reports `unreadable`
// warnings, never missing/generation_missing/link_dangling, and says once at the top that its view is partial.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import type { StatusDocument } from "../src/core/report.js";
import { cleanupRoots, healthyHost } from "./helpers/host.js";
import { requireTool } from "./helpers/tools.js";

afterEach(cleanupRoots);

const CLI = path.join(fileURLToPath(new URL("..", import.meta.url)), "dist/cli.js");
const NOBODY = ["--reuid=65534", "--regid=65534", "--clear-groups"];

function statusAsNobody(root: string, json: boolean) {
  fs.chmodSync(root, 0o755);
  return spawnSync(
    "setpriv",
    [...NOBODY, process.execPath, CLI, "status", "--root", root, ...(json ? ["--json"] : [])],
    { encoding: "utf8", env: { PATH: process.env.PATH ?? "/usr/bin:/bin", NO_COLOR: "1" } },
  );
}

describe("status without root", () => {
  it("reports what it may not see as unreadable, never as broken, and says so once", (ctx) => {
    requireTool(ctx, "setpriv");
    if (!fs.existsSync(CLI)) return ctx.skip("dist/cli.js is not built: npm run build");
    const host = healthyHost();
    // A generation directory left 0700 by a leaked umask, and the link into it: the agent cannot see in.
    fs.chmodSync(host.real("/run/secrets.d/1"), 0o700);
    const run = statusAsNobody(host.root, true);
    const doc = JSON.parse(run.stdout) as StatusDocument;
    const codes = doc.problems.map((p) => p.code);
    for (const broken of ["missing", "generation_missing", "link_dangling", "link_missing"])
      expect(codes, JSON.stringify(doc.problems, null, 1)).not.toContain(broken);
    const unreadable = doc.problems.filter((p) => p.code === "unreadable");
    expect(unreadable.every((p) => p.severity === "warning")).toBe(true);
    // The template (0440 root:nginx) and the system secrets behind the 0700 directory are unreadable.
    expect(unreadable.map((p) => p.subject)).toEqual(expect.arrayContaining(["app.env", "db-password"]));
    expect(doc.partialView).toEqual({ uid: 65534, unreadable: unreadable.length });
    // And the root-run verdict on the same tree names the real fault: nobody but root reads through 0700.
    const human = statusAsNobody(host.root, false).stdout;
    expect(human.split("\n")[0]).toMatch(/^Partial view: as uid 65534 .* run it as root/);
    expect(human.match(/Partial view/g)).toHaveLength(1);
  });

  it("a template the agent may not read is unreadable, not healthy", (ctx) => {
    requireTool(ctx, "setpriv");
    if (!fs.existsSync(CLI)) return ctx.skip("dist/cli.js is not built: npm run build");
    const host = healthyHost();
    const doc = JSON.parse(statusAsNobody(host.root, true).stdout) as StatusDocument;
    const template = doc.problems.find((p) => p.subject === "app.env");
    expect(template).toMatchObject({ code: "unreadable", severity: "warning", scope: "system" });
  });
});
