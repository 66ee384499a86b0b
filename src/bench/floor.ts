// The floor of a cold `status` (issue 11): what any Node program checking the bench host must do at the
// least, with none of the agent's code: read and JSON.parse the manifest, lstat each declared file once and
// read the sops files. `node dist/bench/floor.js ROOT GENERATION_DIR`; the start-up bench times it as a
// whole process beside `find` and `status`, so the distance of the goal from what Node itself costs is
// measured, not guessed. `floor.js --modules` instead loads the modules a cold `status` checks with and runs
// nothing: their loading on its own. It prints nothing: the bench ignores stdout, as status' is.

import * as fs from "node:fs";

const [root, generation] = process.argv.slice(2);
if (root === "--modules") {
  await Promise.all([
    import("../cli/status.js"),
    import("../host/check-host.js"),
    import("../cli/format.js"),
  ]);
  process.exit(0);
}
if (root === undefined || generation === undefined) throw new Error("usage: floor.js ROOT GENERATION_DIR");
const store = `${root}/nix/store`;
const names = fs.readdirSync(store);
const manifestName = names.find((n) => n.endsWith("manifest.json"));
if (manifestName === undefined) throw new Error(`no manifest in ${store}`);
const manifest = JSON.parse(fs.readFileSync(`${store}/${manifestName}`, "utf8")) as {
  secrets: { name: string }[];
};
const NO_THROW = { throwIfNoEntry: false } as const;
let present = 0;
for (const s of manifest.secrets)
  if (fs.lstatSync(`${generation}/${s.name}`, NO_THROW) !== undefined) present++;
let bytes = 0;
for (const n of names) if (n.endsWith(".yaml")) bytes += fs.readFileSync(`${store}/${n}`, "utf8").length;
if (present !== manifest.secrets.length || bytes === 0) throw new Error("the bench host is not complete");
