// `npm run bench`: every benchmark of the project, printed as the markdown recorded in BENCHMARKS.md.
// Run on an otherwise idle machine; the figures that matter are ratios taken within one run. `npm run bench`
// runs this process with the V8 flags of the installed bin (src/cli.ts), so in-process figures are the
// agent's; the agent benchmark starts the bin itself.

import * as os from "node:os";
import { benchAgent } from "./agent.js";
import { benchCore } from "./core.js";
import { benchHardening } from "./hardening.js";
import { benchSops } from "./sops.js";

const only = process.argv.slice(2);
const want = (name: string) => only.length === 0 || only.includes(name);

const out: string[] = [
  `Measured ${new Date().toISOString().slice(0, 10)} on ${os.cpus().length} × ${os.cpus()[0]?.model ?? "?"}, Node ${process.version}, ${os.platform()} ${os.release()}, V8 flags: ${process.execArgv.join(" ") || "none"}.`,
  "",
];
if (want("core")) out.push(benchCore());
if (want("sops")) out.push(await benchSops());
if (want("agent")) out.push(await benchAgent());
if (want("hardening")) out.push(await benchHardening());
process.stdout.write(`${out.join("\n")}\n`);
