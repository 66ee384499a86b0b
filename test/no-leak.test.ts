// A secret's value never leaves: planted values in every secret and template never appear in any output,
// whatever is wrong with the host.

import * as fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import type { HostLayout } from "../src/example/layout.js";
import { checkHost } from "../src/host/check-host.js";
import { runCli } from "./helpers/cli.js";
import { cleanupRoots, healthyHost, PLANTED } from "./helpers/host.js";

afterEach(cleanupRoots);

const gen = "/run/secrets.d/1";
const PLACEHOLDER = `<SOPS:${"cd".repeat(32)}:PLACEHOLDER>`;

const FAULTS: Record<string, (h: HostLayout) => void> = {
  healthy: () => {},
  "unrendered template holding a value": (h) =>
    fs.writeFileSync(
      h.real(`${gen}/rendered/app.env`),
      `TOKEN=PLANTED-template-c0de\nOTHER=${PLACEHOLDER}\n`,
    ),
  "secret replaced by a directory": (h) => {
    fs.rmSync(h.real(`${gen}/db-password`));
    fs.mkdirSync(h.real(`${gen}/db-password`));
  },
  "link replaced by a copy of the secret": (h) => {
    fs.rmSync(h.real("/var/lib/app/token"));
    fs.writeFileSync(h.real("/var/lib/app/token"), "PLANTED-api-token-5521");
  },
  "key file holding a value": (h) =>
    fs.writeFileSync(h.real("/var/lib/sops-nix/key.txt"), "PLANTED-key-material-beef\n"),
  "manifest corrupted with a value": (h) =>
    fs.writeFileSync(
      h.real(h.scopes.get("system")?.manifestPath ?? ""),
      '{"secrets": "PLANTED-db-password-7f3a"',
    ),
};

describe.each(Object.entries(FAULTS))("%s", (_, fault) => {
  it("no planted value appears in status output, JSON or the check run", async () => {
    const host = healthyHost();
    fault(host);
    const outputs = [
      await runCli(["status", "--root", host.root]),
      await runCli(["status", "--root", host.root, "--json"]),
      await runCli(["status", "--root", host.root], { isTTY: true }),
    ];
    for (const o of outputs) {
      expect(o.stdout).not.toMatch(PLANTED);
      expect(o.stderr).not.toMatch(PLANTED);
    }
    const run = checkHost({ root: host.root, manifests: null, env: {} });
    expect(
      JSON.stringify({ document: run.document, families: run.families, sopsFiles: run.sopsFiles }),
    ).not.toMatch(PLANTED);
  });
});

describe("the planted values are really there", () => {
  it("so the assertions above can fail", () => {
    const host = healthyHost();
    expect(fs.readFileSync(host.real(`${gen}/db-password`), "utf8")).toMatch(PLANTED);
    expect(fs.readFileSync(host.real(`${gen}/rendered/app.env`), "utf8")).toMatch(PLANTED);
    expect(fs.readFileSync(host.real("/run/user/1000/secrets.d/1/rendered/mcp.json"), "utf8")).toMatch(
      PLANTED,
    );
  });
});
