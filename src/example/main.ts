// `npm run example`: lays out the bundled example host and runs the agent on it, so a new user sees the
// status report and the metrics without a NixOS machine. It takes another port when the default one is
// busy, and removes the example tree when stopped (Ctrl-C).

import * as fs from "node:fs";
import * as net from "node:net";
import { DEFAULT_LISTEN, formatListen, type ListenAddress, parseListen } from "../agent/config.js";
import { processIo } from "../cli/io.js";
import { main } from "../cli.js";
import { exampleRoot, layoutExampleHost } from "./example-host.js";

/** Whether the address can be bound now; the probe is closed at once. */
function bindable(addr: ListenAddress): Promise<ListenAddress | null> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once("error", () => resolve(null));
    probe.listen(addr.port, addr.host, () => {
      const bound = probe.address() as net.AddressInfo;
      probe.close(() => resolve({ host: addr.host, port: bound.port }));
    });
  });
}

/** The default address, or a free port on the same host when the default one is taken. */
async function exampleListen(io: ReturnType<typeof processIo>): Promise<string> {
  const given = process.env.SOPS_AGENT_EXAMPLE_LISTEN;
  // An address asked for is used as it is: if it is taken, `run` says so.
  if (given !== undefined && given !== "") return given;
  const wanted = parseListen(DEFAULT_LISTEN) ?? { host: "127.0.0.1", port: 29100 };
  if ((await bindable(wanted)) !== null) return DEFAULT_LISTEN;
  const free = await bindable({ host: wanted.host, port: 0 });
  if (free === null) return DEFAULT_LISTEN;
  io.stdout(`Port ${wanted.port} is taken; the example uses ${formatListen(free)} instead.\n`);
  return formatListen(free);
}

const root = process.env.SOPS_AGENT_EXAMPLE_ROOT || exampleRoot();
const io = processIo();
const listen = await exampleListen(io);
const host = layoutExampleHost(root);
try {
  await main(["status", "--root", root], io);
  io.stdout(
    [
      "",
      `Example host laid out in ${root} (removed when you stop the agent),`,
      `with the scopes ${[...host.scopes.keys()].join(", ")}.`,
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
} finally {
  fs.rmSync(root, { recursive: true, force: true });
  io.stdout(`Removed the example host ${root}.\n`);
}
