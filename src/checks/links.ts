// Declared paths outside symlinkPath must be links to `<symlinkPath>/<name>`, never into a generation.

import * as path from "node:path";
import type { ObservedScope } from "../core/observation.js";
import { absoluteLinkTarget, relativeInGeneration } from "../core/placement.js";
import type { Problem } from "../core/problems.js";
import { describeFacts, problem } from "./common.js";
import type { CheckFamily } from "./family.js";

export const linksFamily: CheckFamily = {
  name: "links",
  run: (input) => input.scopes.flatMap(checkLinks),
};

export function checkLinks(observed: ObservedScope): Problem[] {
  const problems: Problem[] = [];
  const scope = observed.declared;
  for (const file of observed.files) {
    if (file.link === null) continue;
    const d = file.declared;
    const expected = path.posix.join(scope.symlinkPath, relativeInGeneration(d));
    const at = (code: Parameters<typeof problem>[0], message: string) =>
      problem(code, "critical", scope.scope, d.name, d.path, message);
    const unreadable = (message: string) =>
      problem("unreadable", "warning", scope.scope, d.name, d.path, message);
    const f = file.link.facts;
    if (f.state === "absent") {
      problems.push(
        at(
          "link_missing",
          `${d.path} does not exist; it should be a link to ${expected}. Run the switch again.`,
        ),
      );
      continue;
    }
    if (f.state === "inaccessible") {
      problems.push(unreadable(`The agent may not look at ${d.path} (${f.errno}).`));
      continue;
    }
    const target =
      f.type === "symlink" && f.linkTarget !== undefined ? absoluteLinkTarget(d.path, f.linkTarget) : null;
    if (target !== expected) {
      problems.push(
        at(
          "link_wrong_target",
          `${d.path} is ${describeFacts(f)}, not a link to ${expected}${target?.startsWith(`${scope.mountPoint}/`) ? ": it points straight into a generation and breaks at the next switch" : ""}. Remove it and run the switch again.`,
        ),
      );
      continue;
    }
    if (file.link.resolution.state === "inaccessible") {
      problems.push(
        unreadable(
          `The agent may not follow ${d.path} to its end (${file.link.resolution.errno} at ${file.link.resolution.path}): whether it resolves is unknown.`,
        ),
      );
    } else if (file.link.resolution.state !== "resolved") {
      problems.push(
        at(
          "link_dangling",
          `${d.path} links to ${expected}, which does not resolve: the secret is not installed. Run the switch again.`,
        ),
      );
    }
  }
  return problems;
}
