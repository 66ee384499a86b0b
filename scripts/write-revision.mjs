// Run by `npm run build` after tsc: records the source revision in dist/REVISION for `--version` and
// sops_agent_build_info. SOPS_AGENT_REVISION wins (a Nix build has no .git: pass the flake's rev there);
// else `git rev-parse HEAD`; else no file, and the program says "unknown".

import { execFileSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";

const target = new URL("../dist/REVISION", import.meta.url);

function gitRevision() {
  try {
    const out = execFileSync("git", ["rev-parse", "HEAD"], {
      cwd: new URL("..", import.meta.url),
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
    return /^[0-9a-f]{7,64}$/.test(out) ? out : null;
  } catch {
    return null;
  }
}

const revision = process.env.SOPS_AGENT_REVISION?.trim() || gitRevision();
if (revision) writeFileSync(target, `${revision}\n`);
else rmSync(target, { force: true });
