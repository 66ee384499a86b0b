// Loader hooks for record-modules.mjs: they run on the loader thread, so they write the log themselves.
import { appendFileSync } from "node:fs";

const log = process.env.SOPS_AGENT_MODULE_LOG;

export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context);
  if (log) appendFileSync(log, `${result.url}\n`);
  return result;
}
