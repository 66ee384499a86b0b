// One full check of a host with N declared secrets, beside the floor: a bare lstat loop over the same
// files in the same process. Figures are medians of repeated runs; compare ratios, not absolute times.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { exampleIdentity } from "../example/example-host.js";
import { layoutHost } from "../example/layout.js";
import { type CheckState, checkHost, checkHostKeeping } from "../host/check-host.js";
import { DeclarationMemory, HistoryCache } from "../host/history.js";
import { ManifestCache } from "../host/load-scopes.js";
import { UsageCache } from "../host/usage.js";
import { SopsFileCache } from "../sops/reader.js";

export function benchRoot(prefix: string): string {
  const base = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
  return fs.mkdtempSync(path.join(base, prefix));
}

/**
 * A healthy host: its sops files are encrypted to the identity in its age key file. The manifest lists the
 * secrets by name, as sops-nix writes it (`builtins.attrValues secrets`, modules/sops/manifest-for.nix:34,
 * sops-nix 56b2406): a directory's secrets are neighbours.
 */
export function layoutLargeHost(root: string, secrets: number) {
  const identity = exampleIdentity();
  const declared = Array.from({ length: secrets }, (_, i) => ({
    name: `svc${i % 100}/secret-${i}`,
    mode: "0400",
    sopsFile: `file-${i % 100}`,
  }));
  declared.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const host = layoutHost(root, {
    system: {
      ageKeyFile: "/var/lib/sops-nix/key.txt",
      recipients: [identity.recipient],
      secrets: declared,
    },
  });
  host.writeFile("/var/lib/sops-nix/key.txt", identity.file, 0o600);
  return host;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

function timeMs(fn: () => void, runs: number): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    times.push(performance.now() - t);
  }
  return median(times);
}

export interface CoreFigure {
  readonly secrets: number;
  readonly checkMs: number;
  readonly lstatMs: number;
  /** A check with empty caches, as one `sops-agent status` run does: manifests and sops files parsed. */
  readonly coldMs: number;
}

export function measureCore(secrets: number, runs = 15): CoreFigure {
  const root = benchRoot("sops-agent-bench-");
  try {
    layoutLargeHost(root, secrets);
    // A running agent's warm check sees a generation written at its activation, long before. The agent
    // trusts a generation's listing only once its directories are SETTLED_MS old (host/history.ts): a
    // fresh one is listed again on every check, which a bench started at once would time instead.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2_500);
    const files = Array.from({ length: secrets }, (_, i) =>
      path.join(root, `/run/secrets.d/1/svc${i % 100}/secret-${i}`),
    );
    const cache = new SopsFileCache();
    // The agent's caches, as in a long-running agent: manifests, sops files and earlier generations are read once.
    const options = {
      root,
      manifests: null,
      env: {},
      sopsCache: cache,
      manifestCache: new ManifestCache(),
      historyCache: new HistoryCache(),
      memory: new DeclarationMemory(),
      usageCache: new UsageCache(),
    };
    // As the agent checks: each check takes over what did not change from the one before.
    let previous: CheckState | null = null;
    const agentCheck = () => {
      const { run, state } = checkHostKeeping({ ...options, previous });
      previous = state;
      return run;
    };
    const first = agentCheck();
    if (first.document.secrets.length !== secrets || first.document.problems.length > 0) {
      throw new Error(`bench host is not healthy: ${JSON.stringify(first.document.problems.slice(0, 3))}`);
    }
    // Warm both paths (ten runs each: the optimising compiler takes the check's code over only after
    // several checks, as in a running agent), then measure in blocks: a block of checks, then a block of
    // lstat loops, each after a full GC when the bench runs with --expose-gc. Alternating single runs
    // would make each side pay for the other's garbage; blocks spread machine noise over both sides.
    timeMs(agentCheck, 10);
    timeMs(() => lstatAll(files), 10);
    const checks: number[] = [];
    const lstats: number[] = [];
    const collect = (globalThis as { gc?: () => void }).gc ?? (() => {});
    for (let block = 0; block < Math.ceil(runs / 5); block++) {
      collect();
      for (let i = 0; i < 5; i++) checks.push(timeMs(agentCheck, 1));
      collect();
      for (let i = 0; i < 5; i++) lstats.push(timeMs(() => lstatAll(files), 1));
    }
    const cold = [0, 1, 2].map(() =>
      timeMs(
        () =>
          checkHost({
            root,
            manifests: null,
            env: {},
            sopsCache: new SopsFileCache(),
            manifestCache: new ManifestCache(),
          }),
        1,
      ),
    );
    return { secrets, checkMs: median(checks), lstatMs: median(lstats), coldMs: median(cold) };
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

function lstatAll(files: readonly string[]): void {
  for (const f of files) fs.lstatSync(f);
}

export function benchCore(): string {
  const small = measureCore(1_000);
  const large = measureCore(10_000);
  const row = (f: CoreFigure) =>
    `| ${f.secrets.toLocaleString("en")} | ${f.checkMs.toFixed(1)} ms | ${f.lstatMs.toFixed(1)} ms | ${(f.checkMs / f.lstatMs).toFixed(2)}x | ${f.coldMs.toFixed(1)} ms |`;
  return [
    "### Core: one full check vs a bare lstat loop",
    "",
    "| secrets | full check, agent (median) | lstat loop (median) | ratio | first check, empty caches |",
    "|---:|---:|---:|---:|---:|",
    row(small),
    row(large),
    "",
    `Scaling 1,000 → 10,000 secrets: check ×${(large.checkMs / small.checkMs).toFixed(1)}, lstat ×${(large.lstatMs / small.lstatMs).toFixed(1)} (linear = ×10).`,
    "",
  ].join("\n");
}
