// `node --import ./test/helpers/record-modules.mjs …`: appends every module URL the program resolves
// (ESM imports and the packages they pull in) to the file named by SOPS_AGENT_MODULE_LOG, one per line.
import { register } from "node:module";

register("./record-modules-hooks.mjs", import.meta.url);
