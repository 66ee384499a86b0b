// `node --import ./test/helpers/record-modules.mjs …`: appends every module URL the program resolves
// (ESM imports and the packages they pull in) to the file named by SOPS_AGENT_MODULE_LOG, one per line,
// and at exit the Node builtins it loaded (`builtin:child_process`), also those loaded with require().
import { appendFileSync } from "node:fs";
import { register } from "node:module";

register("./record-modules-hooks.mjs", import.meta.url);

const log = process.env.SOPS_AGENT_MODULE_LOG;
process.on("exit", () => {
  if (!log) return;
  const builtins = process.moduleLoadList.filter((m) => m.startsWith("NativeModule "));
  appendFileSync(log, builtins.map((m) => `builtin:${m.slice("NativeModule ".length)}\n`).join(""));
});
