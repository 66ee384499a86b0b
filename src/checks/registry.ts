// The check families, in the order their problems are reported. One line each, like node_exporter's
// collector registration.

import { accessFamily } from "./access.js";
import type { CheckFamily } from "./family.js";
import { filesFamily } from "./files.js";
import { generationFamily } from "./generation.js";
import { inputsFamily } from "./inputs.js";
import { keysFamily } from "./keys.js";
import { linksFamily } from "./links.js";
import { orphansFamily } from "./orphans.js";
import { templatesFamily } from "./templates.js";
import { usageFamily } from "./usage.js";

export const CHECK_FAMILIES: readonly CheckFamily[] = [
  generationFamily,
  filesFamily,
  accessFamily,
  linksFamily,
  templatesFamily,
  keysFamily,
  orphansFamily,
  inputsFamily,
  usageFamily,
];
