// Complete output to a pipe (issue 10.1): a multi-megabyte `status --json` read by a slow reader arrives
// whole and parses. Exiting right after the write cut it at the pipe's 64 KiB.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { CLI, ensureBuilt } from "./helpers/agent.js";
import { cleanupRoots, tempRoot } from "./helpers/host.js";

const SECRETS = 20_000;

// Reads stdin slowly (a pause after each chunk), then reports what it got.
const SLOW_READER = `
const chunks = [];
for await (const chunk of process.stdin) {
  chunks.push(chunk);
  await new Promise((r) => setTimeout(r, 3));
}
const text = Buffer.concat(chunks).toString("utf8");
let parsed = null;
try { const doc = JSON.parse(text); parsed = { secrets: doc.secrets.length, healthy: doc.healthy }; } catch {}
process.stdout.write(JSON.stringify({ bytes: text.length, parsed }));
`;

let dir: string;
beforeAll(() => {
  ensureBuilt();
  dir = tempRoot("sops-agent-pipe-");
  // A host whose scope has never been activated: every declared secret is listed as not ok.
  const secrets = Array.from({ length: SECRETS }, (_, i) => ({
    name: `service-${String(i).padStart(5, "0")}/a-rather-long-secret-name-as-real-hosts-have`,
    key: `service/${i}`,
    sopsFile: "/nix/store/00000000000000000000000000000000-secrets.yaml",
    mode: "0400",
    owner: null,
    uid: 0,
    group: null,
    gid: 0,
    format: "yaml",
  }));
  fs.writeFileSync(
    path.join(dir, "manifest.json"),
    JSON.stringify({
      secrets,
      templates: [],
      secretsMountPoint: "/run/secrets.d",
      symlinkPath: "/run/secrets",
    }),
  );
  fs.writeFileSync(path.join(dir, "reader.mjs"), SLOW_READER);
});
afterAll(cleanupRoots);

it("a multi-megabyte status --json reaches a slow reader whole", () => {
  const out = execFileSync(
    "bash",
    [
      "-c",
      `"$NODE" "$CLI" status --json --root "$ROOT" --manifest /manifest.json | "$NODE" "$ROOT/reader.mjs"; echo " \${PIPESTATUS[0]}"`,
    ],
    {
      env: { PATH: process.env.PATH ?? "", HOME: "/nonexistent", NODE: process.execPath, CLI, ROOT: dir },
      encoding: "utf8",
      maxBuffer: 1 << 20,
    },
  );
  const [report, code] = out.trim().split(" ");
  const got = JSON.parse(report ?? "") as {
    bytes: number;
    parsed: { secrets: number; healthy: boolean } | null;
  };
  expect(got.bytes).toBeGreaterThan(4 << 20);
  expect(got.parsed).toEqual({ secrets: SECRETS, healthy: false });
  expect(code).toBe("1");
});
