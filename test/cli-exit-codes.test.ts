// Every command's exit codes, from the built program as a script or a unit sees them: 0 healthy, 1 critical,
// 2 the user's mistake (one line on stderr that points at --help), and run's own 69 (cannot bind) and
// 78 (config invalid). The table is the documentation's, checked.

import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, ensureBuilt } from "./helpers/agent.js";
import { cleanupRoots, healthyHost, tempRoot } from "./helpers/host.js";

interface Outcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function cli(args: string[], cwd = process.cwd()): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { cwd, env: { PATH: process.env.PATH ?? "", HOME: "/nonexistent" }, timeout: 20_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

let healthy: string;
let broken: string;
let empty: string;
let files: string;
let busyPort: number;
const busy = net.createServer();

beforeAll(async () => {
  ensureBuilt();
  healthy = healthyHost().root;
  const b = healthyHost();
  fs.rmSync(b.real("/run/secrets.d/1/db-password"));
  broken = b.root;
  empty = tempRoot();
  files = tempRoot();
  fs.writeFileSync(path.join(files, "not-json.json"), '{"secrets": [\n  {"name": "a",}\n]}\n');
  fs.writeFileSync(path.join(files, "bad-config.yaml"), "listen: 127.0.0.1:1\nlistn: typo\n");
  fs.writeFileSync(path.join(files, "unresolvable.yaml"), "listen: host.invalid:29100\n");
  fs.writeFileSync(path.join(files, "good-config.yaml"), "listen: 127.0.0.1:29100\nlog_level: warn\n");
  fs.copyFileSync(
    new URL("fixtures/sops-nix/test-assets/ssh-ed25519-key.pub", import.meta.url),
    path.join(files, "key.pub"),
  );
  await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
  busyPort = (busy.address() as net.AddressInfo).port;
});

afterAll(async () => {
  await new Promise((r) => busy.close(r));
  cleanupRoots();
});

type Case = readonly [what: string, args: () => string[], code: number, stderr: RegExp | "" | null];

const cases: Case[] = [
  // the program
  ["--help", () => ["--help"], 0, ""],
  ["--version", () => ["--version"], 0, ""],
  ["no command", () => [], 2, /a command is needed/],
  ["an unknown command", () => ["frobnicate"], 2, /unknown command "frobnicate"/],
  // status
  ["status on a healthy host", () => ["status", "--root", healthy], 0, ""],
  ["status on a broken host", () => ["status", "--root", broken], 1, ""],
  ["status --json on a broken host", () => ["status", "--json", "--root", broken], 1, ""],
  ["status --help", () => ["status", "--help"], 0, ""],
  ["status with an unknown flag", () => ["status", "--jsno"], 2, /unknown option '--jsno'/],
  ["status with a stray argument", () => ["status", "now"], 2, /unexpected argument 'now'/],
  [
    "status --wait that is no duration",
    () => ["status", "--wait", "soon"],
    2,
    /--wait: "soon" is not a duration/,
  ],
  ["status with a negative --wait", () => ["status", "--wait=-5s"], 2, /--wait: "-5s" must not be negative/],
  ["status --wait without a value", () => ["status", "--wait"], 2, /--wait/],
  [
    "status --manifest that does not exist",
    () => ["status", "--root", empty, "--manifest", "/nix/store/absent-manifest.json"],
    2,
    /--manifest \/nix\/store\/absent-manifest\.json: no such file/,
  ],
  [
    "status --manifest that is not JSON",
    () => ["status", "--manifest", path.join(files, "not-json.json")],
    2,
    /not-json\.json:2:16: not JSON: expected a property name/,
  ],
  [
    "status --config that is invalid",
    () => ["status", "--root", healthy, "--config", path.join(files, "bad-config.yaml")],
    2,
    /bad-config\.yaml:2: .*listn/,
  ],
  // run
  ["run --help", () => ["run", "--help"], 0, ""],
  ["run with an unknown flag", () => ["run", "--bogus"], 2, /unknown option '--bogus'/],
  ["run --listen that is no address", () => ["run", "--listen", "nonsense"], 2, /--listen must be HOST:PORT/],
  [
    "run --web.listen-address whose host does not resolve",
    () => ["run", "--web.listen-address", "host.invalid:29100"],
    2,
    /cannot resolve "host\.invalid"/,
  ],
  [
    "run --log.format that does not exist",
    () => ["run", "--log.format", "xml"],
    2,
    /--log\.format must be json or logfmt/,
  ],
  [
    "run --log.level that does not exist",
    () => ["run", "--log.level", "loud"],
    2,
    /--log\.level must be one of/,
  ],
  [
    "run with an invalid config",
    () => ["run", "--config", path.join(files, "bad-config.yaml"), "--check-config"],
    78,
    /bad-config\.yaml:2:/,
  ],
  [
    "run with a config whose listen host does not resolve",
    () => ["run", "--config.file", path.join(files, "unresolvable.yaml"), "--config.check"],
    78,
    /unresolvable\.yaml: listen: cannot resolve "host\.invalid"/,
  ],
  [
    "run with a web config that cannot be read",
    () => ["run", "--check-config", "--web.config.file", path.join(files, "absent-web.yml")],
    78,
    /absent-web\.yml/,
  ],
  [
    "run --check-config with a valid config",
    () => ["run", "--config", path.join(files, "good-config.yaml"), "--check-config"],
    0,
    "",
  ],
  [
    "run on a port already in use",
    () => ["run", "--root", empty, "--listen", `127.0.0.1:${busyPort}`, "--log.level", "silent"],
    69,
    /EADDRINUSE/,
  ],
  [
    "run on an address that is not this host's",
    () => ["run", "--root", empty, "--listen", "192.0.2.1:29100", "--log.level", "silent"],
    69,
    /EADDRNOTAVAIL/,
  ],
  // recipient
  ["recipient of a key file", () => ["recipient", path.join(files, "key.pub")], 0, ""],
  ["recipient with an unknown flag", () => ["recipient", "--bogus"], 2, /unknown option '--bogus'/],
  [
    "recipient of a file that does not exist",
    () => ["recipient", path.join(files, "absent.pub")],
    2,
    /absent\.pub: cannot read \(ENOENT\)/,
  ],
  ["recipient of a host without keys", () => ["recipient", "--root", empty], 1, /no age recipient found/],
];

describe("exit codes of the built CLI", () => {
  it.each(cases)("%s", async (_, args, code, stderr) => {
    const r = await cli(args());
    expect({ code: r.code, stderr: r.stderr }).toEqual({
      code,
      stderr: stderr === "" ? "" : expect.stringMatching(stderr ?? /.*/),
    });
    if (code === 2 && args()[0] !== undefined) {
      // A usage error is one line that says where help is, never the whole help.
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(/see 'sops-agent( \w+)? --help'\n$/);
      expect(r.stdout).toBe("");
    }
  });

  it("prints name, version, revision and Node version for --version", async () => {
    const r = await cli(["--version"]);
    expect(r.stdout).toMatch(
      new RegExp(
        `^sops-agent, version \\d+\\.\\d+\\.\\d+\\S* \\(revision: [0-9A-Za-z._+-]+\\)\\n  node version: ${process.version.replaceAll(".", "\\.")}\\n`,
      ),
    );
  });
});
