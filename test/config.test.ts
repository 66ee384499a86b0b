import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { validate } from "node-cron";
import { describe, expect, it } from "vitest";
import {
  ConfigError,
  DEFAULTS,
  defaultConfigPath,
  loadConfigFile,
  mergeConfig,
  parseConfig,
  parseListen,
  SYSTEM_CONFIG_PATH,
} from "../src/agent/config.js";

const FILE = "/etc/sops-agent/config.yaml";
/** The checks `run` passes: node-cron's own syntax. */
const CHECKS = { schedule: validate };

describe("parseConfig", () => {
  it("reads every key", () => {
    const layer = parseConfig(
      [
        'listen: "0.0.0.0:9999"',
        'schedule: "*/1 * * * *"',
        "extra_key_paths: [/var/lib/sops-nix/key.txt]",
        "log_level: debug",
        "web_config_file: web.yml",
        "root: /mnt",
        "manifests:",
        "  - /nix/store/x-manifest.json",
      ].join("\n"),
      FILE,
      CHECKS,
    );
    expect(layer).toEqual({
      listen: { host: "0.0.0.0", port: 9999 },
      schedule: "*/1 * * * *",
      extraKeyPaths: ["/var/lib/sops-nix/key.txt"],
      logLevel: "debug",
      webConfigFile: "/etc/sops-agent/web.yml",
      root: "/mnt",
      manifests: ["/nix/store/x-manifest.json"],
    });
  });

  it.each([
    ["empty", ""],
    ["comment only", "# nothing\n"],
    ["null", "~\n"],
  ])("takes an %s file as defaults", (_n, text) => {
    expect(parseConfig(text, FILE, CHECKS)).toEqual({});
  });

  // Each invalid file is paired with the exact error it must produce.
  it.each([
    [
      "unknown key",
      'listen: "127.0.0.1:1"\nschedule: "* * * * *"\nlistn: x\n',
      `${FILE}:3: unknown key "listn"`,
    ],
    ["bad listen", "listen: localhost\n", `${FILE}:1: "listen" must be HOST:PORT, got "localhost"`],
    [
      "port too big",
      'listen: "127.0.0.1:70000"\n',
      `${FILE}:1: "listen" must be HOST:PORT, got "127.0.0.1:70000"`,
    ],
    ["listen not a string", "listen: 9100\n", `${FILE}:1: "listen" must be a string`],
    [
      "bad cron",
      '\nschedule: "every minute"\n',
      `${FILE}:2: "schedule" is not a valid cron expression: "every minute"`,
    ],
    [
      "bad level",
      "log_level: loud\n",
      `${FILE}:1: "log_level" must be one of fatal, error, warn, info, debug, trace, silent, got "loud"`,
    ],
    ["list expected", "extra_key_paths: /a\n", `${FILE}:1: "extra_key_paths" must be a list of strings`],
    ["list item", "extra_key_paths:\n  - /a\n  - 3\n", `${FILE}:3: "extra_key_paths[1]" must be a string`],
    [
      "relative key",
      "extra_key_paths: [key.txt]\n",
      `${FILE}:1: "extra_key_paths[0]" must be an absolute host path, got "key.txt"`,
    ],
    ["not a mapping", "- a\n- b\n", `${FILE}:1: the file must be a mapping`],
    ["duplicate key", "root: /a\nroot: /b\n", `${FILE}:2: invalid YAML: Map keys must be unique`],
    [
      "syntax",
      "listen: [\n",
      `${FILE}:2: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]`,
    ],
  ])("rejects %s", (_name, text, message) => {
    expect(() => parseConfig(text, FILE, CHECKS)).toThrow(ConfigError);
    expect(messageOf(() => parseConfig(text, FILE, CHECKS))).toBe(message);
  });
});

describe("listen addresses", () => {
  it.each([
    ["127.0.0.1:29100", { host: "127.0.0.1", port: 29100 }],
    [":9100", { host: "0.0.0.0", port: 9100 }],
    ["[::1]:80", { host: "::1", port: 80 }],
    ["localhost:1", { host: "localhost", port: 1 }],
  ])("parses %s", (text, want) => expect(parseListen(text)).toEqual(want));
  it.each(["", "127.0.0.1", "a:b", "::1:80", "h:99999"])("rejects %j", (text) =>
    expect(parseListen(text)).toBeNull(),
  );
});

describe("layers and locations", () => {
  it("flags win over the file, the file over the defaults", () => {
    const c = mergeConfig({ root: "/file", logLevel: "debug" }, { root: "/flag" }, FILE);
    expect(c).toEqual({ ...DEFAULTS, root: "/flag", logLevel: "debug", source: FILE });
  });

  it("prefers the system file, then the user's for a non-root user", () => {
    const home = "/home/alice";
    const user = `${home}/.config/sops-agent/config.yaml`;
    expect(defaultConfigPath({ HOME: home }, 1000, (p) => p === SYSTEM_CONFIG_PATH || p === user)).toBe(
      SYSTEM_CONFIG_PATH,
    );
    expect(defaultConfigPath({ HOME: home }, 1000, (p) => p === user)).toBe(user);
    expect(defaultConfigPath({ HOME: "/root" }, 0, (p) => p.startsWith("/root"))).toBeNull();
    expect(defaultConfigPath({ HOME: home }, 1000, () => false)).toBeNull();
  });

  it("names a file it cannot read", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "cfg-"));
    expect(() => loadConfigFile(`${dir}/absent.yaml`, CHECKS)).toThrowError(
      `${dir}/absent.yaml:1: cannot read the config file (ENOENT)`,
    );
    writeFileSync(`${dir}/c.yaml`, "root: sub\n");
    expect(loadConfigFile(`${dir}/c.yaml`, CHECKS).root).toBe(`${dir}/sub`);
  });
});

function messageOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  return "(no error)";
}
