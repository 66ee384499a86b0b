// The `yaml` package, loaded on first need. Loading it costs ~20 ms (its 72 CommonJS modules), a tenth
// of a whole `status` run at 1k secrets: sops files take the fast path (sops/yaml-fast.ts) and most
// hosts have no agent config file, so a `status` run usually never needs it. `require`, not `import()`,
// keeps its callers synchronous.

import { createRequire } from "node:module";

let lib: typeof import("yaml") | null = null;

export function yamlLib(): typeof import("yaml") {
  lib ??= createRequire(import.meta.url)("yaml") as typeof import("yaml");
  return lib;
}
