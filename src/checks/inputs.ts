// Inputs the agent read only up to its limits. Said out loud, never guessed at: a passwd cut at the limit
// would invent unknown owners, a template scanned in part would hide a placeholder.

import type { Problem } from "../core/problems.js";
import { problem } from "./common.js";
import type { CheckFamily } from "./family.js";

export const inputsFamily: CheckFamily = {
  name: "inputs",
  run: (input) => {
    const problems: Problem[] = [];
    const oversized = [...(input.host.oversized ?? [])];
    for (const scope of input.scopes) for (const o of scope.oversized ?? []) oversized.push(o);
    for (const o of oversized) {
      problems.push(
        problem(
          "input_too_large",
          "warning",
          o.scope,
          o.subject,
          o.path,
          `${o.path} is larger than the ${mebibytes(o.limitBytes)} the agent reads: what lies past the limit was not checked.`,
        ),
      );
    }
    return problems;
  },
};

function mebibytes(bytes: number): string {
  return bytes % (1 << 20) === 0 ? `${bytes / (1 << 20)} MiB` : `${bytes} bytes`;
}
