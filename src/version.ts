// The version comes from package.json and the revision from dist/REVISION (written by the build), each read
// once; `--version` and sops_agent_build_info use them.

import { readFileSync } from "node:fs";

function readVersion(): string {
  try {
    const pkg: unknown = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
    if (typeof pkg === "object" && pkg !== null && "version" in pkg && typeof pkg.version === "string")
      return pkg.version;
  } catch {
    // Fall through: a build without its package.json still runs.
  }
  return "0.0.0-unknown";
}

/** The source revision the build recorded (scripts/write-revision.mjs), else "unknown". */
function readRevision(): string {
  try {
    const text = readFileSync(new URL("./REVISION", import.meta.url), "utf8").trim();
    // A short printable token only: it becomes a metric label and a line on a terminal.
    if (/^[0-9A-Za-z._+-]{1,64}$/.test(text)) return text;
  } catch {
    // No file: a build outside git (a tarball, Nix without SOPS_AGENT_REVISION) or running from src.
  }
  return "unknown";
}

export const VERSION = readVersion();
export const REVISION = readRevision();
/** The Node.js the program runs on, as `process.version` spells it (v20.19.0). */
export const NODEJS = process.version;

/** `--version`, in the shape Prometheus exporters print it. */
export function versionText(): string {
  return `sops-agent, version ${VERSION} (revision: ${REVISION})\n  node version: ${NODEJS}\n  platform: ${process.platform}/${process.arch}\n`;
}
