// What a user waits for (issue 11): `--version` and `status` as whole processes beside `node -e 0` and
// `find`, cold and answered by the running agent, and the sops YAML parsers side by side. Each process is
// run many times interleaved with its baseline; the minimum is the figure (least disturbed by the other
// work on a shared machine), CPU time (user + system, from the children's rusage) is printed beside it.

import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { yamlTreeForTest } from "../sops/parse.js";
import { parseSopsYamlFast } from "../sops/yaml-fast.js";
import { benchRoot, layoutLargeHost, median } from "./core.js";

const CLI = fileURLToPath(new URL("../cli.js", import.meta.url));
const FLOOR = fileURLToPath(new URL("./floor.js", import.meta.url));
const CLOCK_TICKS = 100;

interface ProcFigure {
  /** Minimum wall time over the runs, ms. */
  readonly minMs: number;
  readonly medianMs: number;
  /** Mean CPU time (user + system) per run, ms: 10 ms ticks summed over all runs. */
  readonly cpuMs: number;
}

/** The CPU time of this process' waited-for children so far, in clock ticks. */
function childTicks(): number {
  const stat = fs.readFileSync("/proc/self/stat", "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // cutime and cstime are the 16th and 17th fields of the whole line.
  return Number(f[13]) + Number(f[14]);
}

/** Runs each command `runs` times, interleaved, so machine noise falls on all of them alike. */
function timeProcesses(cmds: Record<string, readonly string[]>, runs: number): Record<string, ProcFigure> {
  const times: Record<string, number[]> = {};
  const ticks: Record<string, number> = {};
  for (const name of Object.keys(cmds)) {
    times[name] = [];
    ticks[name] = 0;
  }
  for (let i = 0; i < runs; i++) {
    for (const [name, [cmd, ...args]] of Object.entries(cmds)) {
      const t0 = childTicks();
      const t = performance.now();
      const r = spawnSync(cmd as string, args, { stdio: ["ignore", "ignore", "pipe"] });
      times[name]?.push(performance.now() - t);
      ticks[name] = (ticks[name] ?? 0) + childTicks() - t0;
      if (r.status !== 0 && r.status !== 1) throw new Error(`${name} failed (${r.status}): ${r.stderr}`);
    }
  }
  const out: Record<string, ProcFigure> = {};
  for (const name of Object.keys(cmds)) {
    const xs = times[name] ?? [];
    out[name] = {
      minMs: Math.min(...xs),
      medianMs: median(xs),
      cpuMs: (((ticks[name] ?? 0) / CLOCK_TICKS) * 1000) / runs,
    };
  }
  return out;
}

/** A host as sops-nix lays it out, with an ssh host key beside the age key file, as most hosts have. */
function realisticHost(secrets: number): { root: string; secretsDir: string } {
  const root = benchRoot("sops-agent-bench-startup-");
  layoutLargeHost(root, secrets);
  const ssh = path.join(root, "etc/ssh");
  fs.mkdirSync(ssh, { recursive: true });
  spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(ssh, "ssh_host_ed25519_key")]);
  return { root, secretsDir: path.join(root, "run/secrets.d/1") };
}

/** Starts the agent on `root` with its status socket, resolves once the socket answers. */
async function agentWithSocket(root: string, socket: string): Promise<() => Promise<void>> {
  const child = spawn(
    process.execPath,
    [CLI, "run", "--root", root, "--listen", "127.0.0.1:0", "--status-socket", socket],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  for (;;) {
    const r = spawnSync(process.execPath, [CLI, "status", "--root", root, "--status-socket", socket], {
      encoding: "utf8",
    });
    if (r.stderr.includes("answered by the running agent")) break;
    if (child.exitCode !== null) throw new Error("the agent exited");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return () =>
    new Promise((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
    });
}

const ms = (x: number) => `${x.toFixed(1)} ms`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
/** Whether a ratio meets its goal (at most `goal` times the baseline), as the table's last column. */
const met = (a: number, b: number, goal: number) =>
  a / b <= goal ? "yes" : `no (${(a / b / goal).toFixed(2)}x over)`;

export async function benchStartup(): Promise<string> {
  const node = [process.execPath, "-e", "0"];
  const lines: string[] = ["### Start-up and `status` (whole processes, min of interleaved runs)", ""];

  const v = timeProcesses({ node, version: [process.execPath, CLI, "--version"] }, 30);
  const nodeMin = v.node?.minMs ?? Number.NaN;
  lines.push(
    "| measure | figure | CPU per run | ratio | goal | met? |",
    "|---|---:|---:|---:|---|---|",
    `| \`node -e 0\` | ${ms(nodeMin)} | ${ms(v.node?.cpuMs ?? 0)} | | | |`,
    `| \`--version\` | ${ms(v.version?.minMs ?? 0)} | ${ms(v.version?.cpuMs ?? 0)} | ${ratio(v.version?.minMs ?? 0, nodeMin)} of \`node -e 0\` | ≤ 1.3x | ${met(v.version?.minMs ?? 0, nodeMin, 1.3)} |`,
  );

  const small = realisticHost(1_000);
  try {
    const s = timeProcesses(
      {
        node,
        status: [process.execPath, CLI, "status", "--root", small.root, "--fresh"],
        floor: [process.execPath, FLOOR, small.root, small.secretsDir],
        modules: [process.execPath, FLOOR, "--modules"],
      },
      15,
    );
    const n = s.node?.minMs ?? 1;
    lines.push(
      `| \`status\` at 1,000 secrets, total | ${ms(s.status?.minMs ?? 0)} | ${ms(s.status?.cpuMs ?? 0)} | ${ratio(s.status?.minMs ?? 0, n)} of \`node -e 0\` (${ms(s.node?.minMs ?? 0)} in this block) | ≤ 2x | ${met(s.status?.minMs ?? 0, n, 2)} |`,
      `| floor at 1,000 (src/bench/floor.ts), total | ${ms(s.floor?.minMs ?? 0)} | ${ms(s.floor?.cpuMs ?? 0)} | ${ratio(s.floor?.minMs ?? 0, n)} of \`node -e 0\` | | |`,
      `| loading status' check modules, nothing run, total | ${ms(s.modules?.minMs ?? 0)} | ${ms(s.modules?.cpuMs ?? 0)} | ${ratio(s.modules?.minMs ?? 0, n)} of \`node -e 0\` | | |`,
    );
  } finally {
    fs.rmSync(small.root, { recursive: true, force: true });
  }

  const large = realisticHost(10_000);
  const socket = path.join(large.root, "status.sock");
  try {
    const stop = await agentWithSocket(large.root, socket);
    try {
      const s = timeProcesses(
        {
          node,
          find: ["find", large.secretsDir, "-printf", "%m %U %G %p\n"],
          cold: [process.execPath, CLI, "status", "--root", large.root, "--fresh"],
          floor: [process.execPath, FLOOR, large.root, large.secretsDir],
          modules: [process.execPath, FLOOR, "--modules"],
          agent: [process.execPath, CLI, "status", "--root", large.root, "--status-socket", socket],
        },
        10,
      );
      const n = s.node?.minMs ?? 0;
      const find = s.find?.minMs ?? 1;
      const cold = (s.cold?.minMs ?? 0) - n;
      const agent = (s.agent?.minMs ?? 0) - n;
      lines.push(
        `| \`find -printf '%m %U %G %p'\` over the 10,000 secrets | ${ms(find)} | ${ms(s.find?.cpuMs ?? 0)} | | | |`,
        `| \`status\` at 10,000, cold: work (total ${ms(s.cold?.minMs ?? 0)} − node ${ms(n)}) | ${ms(cold)} | ${ms(s.cold?.cpuMs ?? 0)} | ${ratio(cold, find)} of find | ≤ 5x | ${met(cold, find, 5)} |`,
        `| floor: JSON.parse of the manifest, one lstat per secret, the sops files read (src/bench/floor.ts): work (total ${ms(s.floor?.minMs ?? 0)} − node) | ${ms((s.floor?.minMs ?? 0) - n)} | ${ms(s.floor?.cpuMs ?? 0)} | ${ratio((s.floor?.minMs ?? 0) - n, find)} of find | | |`,
        `| loading status' check modules, nothing run: work (total ${ms(s.modules?.minMs ?? 0)} − node) | ${ms((s.modules?.minMs ?? 0) - n)} | ${ms(s.modules?.cpuMs ?? 0)} | ${ratio((s.modules?.minMs ?? 0) - n, find)} of find | | |`,
        `| \`status\` at 10,000, answered by the agent: work (total ${ms(s.agent?.minMs ?? 0)} − node) | ${ms(agent)} | ${ms(s.agent?.cpuMs ?? 0)} | ${ratio(agent, find)} of find | ≤ 1.5x | ${met(agent, find, 1.5)} |`,
      );
    } finally {
      await stop();
    }
    lines.push("", ...parserTable(large.root));
  } finally {
    fs.rmSync(large.root, { recursive: true, force: true });
  }
  return `${lines.join("\n")}\n`;
}

/** The sops YAML parsers side by side on the host's own sops files (100 secrets each, ~15 KB). */
function parserTable(root: string): string[] {
  const store = path.join(root, "nix/store");
  const files = fs
    .readdirSync(store)
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => fs.readFileSync(path.join(store, f), "utf8"));
  const size = median(files.map((f) => Buffer.byteLength(f)));
  const candidates: [string, (t: string) => unknown][] = [
    ["sops-agent fast path (src/sops/yaml-fast.ts)", (t) => parseSopsYamlFast(t, 64)],
    ["yaml (full parser, the fallback)", (t) => yamlTreeForTest(t, "full")],
  ];
  const jsYaml = loadJsYaml();
  if (jsYaml !== null) candidates.push(["js-yaml (CORE_SCHEMA), for comparison", jsYaml]);
  const rows = candidates.map(([name, parse]) => {
    // First pass over all files: what one `status` run pays, unoptimised code included.
    const t0 = performance.now();
    for (const f of files) if (parse(f) === null) throw new Error(`${name} did not parse a bench file`);
    const firstPass = performance.now() - t0;
    const per: number[] = [];
    for (let round = 0; round < 5; round++) {
      const t = performance.now();
      for (const f of files) parse(f);
      per.push((performance.now() - t) / files.length);
    }
    const warm = median(per);
    return `| ${name} | ${ms(firstPass)} | ${(warm * 1000).toFixed(0)} µs | ${(size / 1024 / (warm / 1000) / 1024).toFixed(1)} MiB/s |`;
  });
  return [
    `Sops YAML parsers on this host's ${files.length} sops files (median ${(size / 1024).toFixed(1)} KiB):`,
    "",
    "| parser | first pass, all files | per file, warm (median) | throughput |",
    "|---|---:|---:|---:|",
    ...rows,
    ...(jsYaml === null
      ? ["", "(js-yaml is not a dependency: `npm i --no-save js-yaml` adds it to this table.)"]
      : []),
  ];
}

/** js-yaml, when someone installed it to compare; never a dependency of the project. */
function loadJsYaml(): ((t: string) => unknown) | null {
  try {
    const lib = createRequire(import.meta.url)("js-yaml") as {
      load: (t: string, o: unknown) => unknown;
      CORE_SCHEMA: unknown;
    };
    return (t) => lib.load(t, { schema: lib.CORE_SCHEMA });
  } catch {
    return null;
  }
}
