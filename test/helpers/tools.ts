// External tools some tests call (promtool, nix-instantiate, systemd-analyze, prometheus). Outside CI a
// missing tool skips the test with the package to install; in CI (CI=true) it fails the test, so a
// broken .ci/run never turns into silently skipped checks.

import * as fs from "node:fs";
import * as path from "node:path";
import type { TestContext } from "vitest";

/** The Debian package of each tool, as .ci/run installs them. */
const DEBIAN_PACKAGE: Record<string, string> = {
  promtool: "prometheus",
  prometheus: "prometheus",
  amtool: "prometheus-alertmanager",
  "nix-instantiate": "nix-bin",
  "systemd-analyze": "systemd",
  openssl: "openssl",
  "ssh-keygen": "openssh-client",
  strace: "strace",
  setpriv: "util-linux",
  "age-keygen": "age",
};

export function findTool(name: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir === "") continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not in this directory
    }
  }
  return null;
}

/** The tool's path; skips the test (outside CI) or fails it (CI=true) when the tool is missing. */
export function requireTool(ctx: TestContext, name: string): string {
  const found = findTool(name);
  if (found !== null) return found;
  const pkg = DEBIAN_PACKAGE[name] ?? name;
  const message = `${name} is not installed: apt-get install ${pkg} (.ci/run installs it)`;
  if (process.env.CI === "true") throw new Error(`${message}; CI=true requires it`);
  return ctx.skip(message);
}
