// `npm run example`: lays out the bundled example host and runs the agent on it, so a new user sees the
// status report and the metrics without a NixOS machine.

import { DEFAULT_LISTEN } from "../agent/config.js";
import { processIo } from "../cli/io.js";
import { main } from "../cli.js";
import { exampleRoot, layoutExampleHost } from "./example-host.js";

const root = exampleRoot();
const listen = process.env.SOPS_AGENT_EXAMPLE_LISTEN ?? DEFAULT_LISTEN;
const host = layoutExampleHost(root);
const io = processIo();
await main(["status", "--root", root], io);
io.stdout(
  [
    "",
    `Example host laid out in ${root}, with the scopes ${[...host.scopes.keys()].join(", ")}.`,
    `Starting the agent on it. Scrape it:   curl http://${listen}/metrics`,
    `                       its status:     curl http://${listen}/status`,
    `Check it from another terminal:        node dist/cli.js status --root ${root}`,
    `Break something and watch the metrics: rm ${root}/run/secrets.d/1/nginx/htpasswd`,
    "Stop with Ctrl-C.",
    "",
    "",
  ].join("\n"),
);
process.exitCode = await main(["run", "--root", root, "--listen", listen], io);
