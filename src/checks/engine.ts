// Runs every check family isolated and timed: a family that throws is reported as failed and the
// others still run, as node_exporter does for collectors.

import { performance } from "node:perf_hooks";
import type { Problem } from "../core/problems.js";
import type { FamilyResult } from "../core/report.js";
import type { CheckFamily, CheckInput } from "./family.js";

export interface EngineResult {
  readonly problems: Problem[];
  readonly families: FamilyResult[];
}

export function runFamilies(families: readonly CheckFamily[], input: CheckInput): EngineResult {
  const problems: Problem[] = [];
  const results: FamilyResult[] = [];
  for (const family of families) {
    const started = performance.now();
    try {
      // One by one: spreading into push() throws RangeError past ~125k problems, which dropped the family's
      // problems and reported a broken host healthy.
      for (const p of family.run(input)) problems.push(p);
      results.push({ family: family.name, ok: true, durationSeconds: (performance.now() - started) / 1000 });
    } catch (err) {
      results.push({
        family: family.name,
        ok: false,
        durationSeconds: (performance.now() - started) / 1000,
        error: err instanceof Error ? err.message : "unknown error",
      });
    }
  }
  return { problems, families: results };
}
