// Rendered templates must not contain a placeholder left behind (sops-nix #583).

import type { Problem } from "../core/problems.js";
import { problem } from "./common.js";
import type { CheckFamily } from "./family.js";

export const templatesFamily: CheckFamily = {
  name: "templates",
  run: (input) => [
    ...input.scopes.flatMap((observed): Problem[] =>
      observed.files
        .filter((f) => f.declared.kind === "template" && f.contentDenied !== undefined)
        .map((f) =>
          problem(
            "unreadable",
            "warning",
            observed.declared.scope,
            f.declared.name,
            f.generationPath ?? f.declared.path,
            `The agent may not read the rendered template ${f.declared.name} (${f.contentDenied ?? "EACCES"}) to look for an unrendered <SOPS:…:PLACEHOLDER>: it is not known to be healthy. Run the agent as root, or as a member of the template's group.`,
          ),
        ),
    ),
    ...input.scopes.flatMap((observed): Problem[] =>
      observed.files
        .filter((f) => f.declared.kind === "template" && f.unrenderedPlaceholder === true)
        .map((f) =>
          problem(
            "unrendered_placeholder",
            "critical",
            observed.declared.scope,
            f.declared.name,
            f.generationPath ?? f.declared.path,
            `The rendered template ${f.declared.name} still contains a <SOPS:…:PLACEHOLDER>: a config.sops.placeholder names a secret that is not declared in this scope. Declare the secret in sops.secrets or fix the reference.`,
          ),
        ),
    ),
  ],
};
