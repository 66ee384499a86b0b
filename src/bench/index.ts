// `npm run bench`: every benchmark of the project, printed as the markdown recorded in BENCHMARKS.md.
// Run on an otherwise idle machine; the figures that matter are ratios taken within one run. Everything
// runs on Node's default flags, as the bin does; the start-up and agent benchmarks start the bin itself.
// The machine's load is printed first: on a shared machine, compare ratios within one run.

import * as os from "node:os";
import { benchAgent } from "./agent.js";
import { benchCore } from "./core.js";
import { benchHardening } from "./hardening.js";
import { benchSops } from "./sops.js";
import { benchStartup } from "./startup.js";

const only = process.argv.slice(2);
const want = (name: string) => only.length === 0 || only.includes(name);

const out: string[] = [
  `Load average at start: ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}.`,
  "",
  `Measured ${new Date().toISOString().slice(0, 10)} on ${os.cpus().length} × ${os.cpus()[0]?.model ?? "?"}, Node ${process.version}, ${os.platform()} ${os.release()}, V8 flags: ${process.execArgv.join(" ") || "none"}.`,
  "",
];
if (want("startup")) out.push(await benchStartup());
if (want("core")) out.push(benchCore());
if (want("sops")) out.push(await benchSops());
if (want("agent")) out.push(await benchAgent());
if (want("hardening")) out.push(await benchHardening());
out.push(
  "",
  `Load average at end: ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}.`,
);
process.stdout.write(`${out.join("\n")}\n`);
