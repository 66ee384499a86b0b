// The generation listing for orphan_file looks declared names up by directory, as readdir hands them out
// (no path string per entry): every undeclared regular file is still found, at any depth, beside declared
// secrets, in declared and undeclared directories and among the rendered templates; nothing declared is.

import * as fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { checkHost } from "../src/host/check-host.js";
import { cleanupRoots, healthyHost } from "./helpers/host.js";

afterEach(cleanupRoots);

describe("the generation listing", () => {
  it("finds each undeclared file and no declared one", () => {
    const host = healthyHost();
    const gen = "/run/secrets.d/1";
    const declared = fs.readdirSync(host.real(gen), { recursive: true, encoding: "utf8" });
    // The host has nested declarations (a directory of secrets) and rendered templates.
    expect(declared.some((n) => n.startsWith("rendered/"))).toBe(true);
    const nested = declared.find((n) => n.includes("/") && !n.startsWith("rendered/"));
    expect(nested).toBeDefined();
    const dir = (nested as string).slice(0, (nested as string).lastIndexOf("/"));
    const added = [
      "stray",
      `${dir}/extra`,
      `${dir}/deeper/still`,
      "undeclared-dir/x",
      "rendered/extra.conf",
      // Same base names as declared files, in other directories.
      `other/${(nested as string).slice(dir.length + 1)}`,
      `${dir}/${dir}`,
    ];
    for (const rel of added) {
      fs.mkdirSync(host.real(`${gen}/${rel}`).replace(/\/[^/]+$/, ""), { recursive: true });
      host.writeFile(`${gen}/${rel}`, "x", 0o400);
    }
    // Not regular files: never reported.
    fs.symlinkSync("stray", host.real(`${gen}/a-link`));
    const run = checkHost({ root: host.root, manifests: null, env: {} });
    const orphans = run.document.problems.filter((p) => p.code === "orphan_file").map((p) => p.subject);
    expect(orphans.sort()).toEqual([...added].sort());
  });
});
