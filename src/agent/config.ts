// The agent's YAML config: a pure parser with exact, located errors, the flag overlay, and a tiny loader.
// Flags win over the file; the file wins over the built-in defaults.

import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { defaultConfigPath as configPathIn, SYSTEM_CONFIG_PATH } from "../core/config-path.js";
import { errnoOf } from "../host/rootfs.js";
import {
  booleanValue,
  ConfigError,
  type Entry,
  mappingEntries,
  stringList,
  stringValue,
  YamlSource,
} from "./strict-yaml.js";

export { ConfigError };

/**
 * 29100: the exporter range 9100–9999 is fully allocated on Prometheus' port list, so the agent sits
 * outside it, below Linux' ephemeral range (32768–60999) where a listener could collide with outgoing
 * connections, on a port no service in /etc/services claims; "…9100" echoes node_exporter.
 */
export const DEFAULT_PORT = 29100;
export const DEFAULT_LISTEN = `127.0.0.1:${DEFAULT_PORT}`;
export const DEFAULT_SCHEDULE = "*/5 * * * *";
export { SYSTEM_CONFIG_PATH };
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** As Prometheus exporters spell `--log.format`. */
export const LOG_FORMATS = ["json", "logfmt"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export interface AgentConfig {
  readonly listen: ListenAddress;
  readonly schedule: string;
  readonly extraKeyPaths: readonly string[];
  readonly logLevel: LogLevel;
  /** null: JSON, or readable lines on a terminal. */
  readonly logFormat: LogFormat | null;
  readonly webConfigFile: string | null;
  readonly root: string;
  /** Finding no manifest is info instead of critical: for hosts that run no sops-nix on purpose. */
  readonly allowNoManifests: boolean;
  /** null: discover the manifests. */
  readonly manifests: readonly string[] | null;
  /** The file the config came from, null for built-in defaults. */
  readonly source: string | null;
}

/** What a config file or the command line set; absent keys keep the lower layer's value. */
export type ConfigLayer = { -readonly [K in Exclude<keyof AgentConfig, "source">]?: AgentConfig[K] };

const KEYS = [
  "listen",
  "schedule",
  "extra_key_paths",
  "log_level",
  "log_format",
  "web_config_file",
  "root",
  "manifests",
  "allow_no_manifests",
] as const;

export const DEFAULTS: AgentConfig = {
  listen: { host: "127.0.0.1", port: DEFAULT_PORT },
  schedule: DEFAULT_SCHEDULE,
  extraKeyPaths: [],
  logLevel: "info",
  logFormat: null,
  webConfigFile: null,
  root: "/",
  allowNoManifests: false,
  manifests: null,
  source: null,
};

/** `HOST:PORT`, `[v6]:PORT` or `:PORT` (all interfaces); null when malformed. */
export function parseListen(text: string): ListenAddress | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]*)):([0-9]{1,5})$/.exec(text);
  if (m === null) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  const host = m[1] ?? m[2] ?? "";
  return { host: host === "" ? "0.0.0.0" : host, port };
}

export function formatListen(l: ListenAddress): string {
  return l.host.includes(":") ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`;
}

/**
 * Checks that need a module the caller may not want to load: the cron syntax is node-cron's, which only
 * `run` loads (`status` schedules nothing and passes an accept-all check).
 */
export interface ConfigChecks {
  readonly schedule: (cron: string) => boolean;
}

/**
 * Parses a config file's text. Relative paths in it are taken relative to the file's directory, so a
 * config works the same whatever the agent's working directory.
 */
export function parseConfig(text: string, file: string, checks: ConfigChecks): ConfigLayer {
  const src = YamlSource.parse(file, text);
  const layer: ConfigLayer = {};
  const dir = path.dirname(path.resolve(file));
  const abs = (p: string) => path.resolve(dir, p);
  for (const entry of mappingEntries(src, src.root, KEYS, "")) {
    switch (entry.key) {
      case "listen": {
        const text = stringValue(src, entry, "listen");
        const listen = parseListen(text);
        if (listen === null) throw located(src, entry, `"listen" must be HOST:PORT, got "${text}"`);
        layer.listen = listen;
        break;
      }
      case "schedule": {
        const text = stringValue(src, entry, "schedule");
        if (!checks.schedule(text))
          throw located(src, entry, `"schedule" is not a valid cron expression: "${text}"`);
        layer.schedule = text;
        break;
      }
      case "extra_key_paths":
        layer.extraKeyPaths = stringList(src, entry, "extra_key_paths").map((p, i) =>
          requireAbsolute(src, entry, `extra_key_paths[${i}]`, p),
        );
        break;
      case "log_level": {
        const text = stringValue(src, entry, "log_level");
        if (!isLogLevel(text))
          throw located(src, entry, `"log_level" must be one of ${LOG_LEVELS.join(", ")}, got "${text}"`);
        layer.logLevel = text;
        break;
      }
      case "log_format": {
        const text = stringValue(src, entry, "log_format");
        if (!isLogFormat(text))
          throw located(src, entry, `"log_format" must be ${LOG_FORMATS.join(" or ")}, got "${text}"`);
        layer.logFormat = text;
        break;
      }
      case "web_config_file":
        layer.webConfigFile = abs(stringValue(src, entry, "web_config_file"));
        break;
      case "root":
        layer.root = abs(stringValue(src, entry, "root"));
        break;
      case "allow_no_manifests":
        layer.allowNoManifests = booleanValue(src, entry, "allow_no_manifests");
        break;
      case "manifests":
        // Manifest paths are host paths (inside `root`): they stay as written.
        layer.manifests = stringList(src, entry, "manifests");
        break;
    }
  }
  return layer;
}

export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

export function isLogFormat(s: string): s is LogFormat {
  return (LOG_FORMATS as readonly string[]).includes(s);
}

/** Defaults, then the file, then the flags. */
export function mergeConfig(file: ConfigLayer, flags: ConfigLayer, source: string | null): AgentConfig {
  return { ...DEFAULTS, ...file, ...flags, source };
}

/** Where the config lives when `--config` is not given (core/config-path.ts), asking the file system. */
export function defaultConfigPath(
  env: NodeJS.ProcessEnv,
  uid: number,
  exists: (p: string) => boolean = existsSync,
): string | null {
  return configPathIn(env, uid, exists);
}

/** Reads and parses a config file; a read failure is a ConfigError on line 1. */
export function loadConfigFile(file: string, checks: ConfigChecks): ConfigLayer {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(file, 1, `cannot read the config file (${errnoOf(err)})`);
  }
  return parseConfig(text, file, checks);
}

function located(src: YamlSource, entry: Entry, message: string): ConfigError {
  return src.error(entry.value ?? entry.keyNode, message);
}

function requireAbsolute(src: YamlSource, entry: Entry, name: string, p: string): string {
  if (!p.startsWith("/")) throw located(src, entry, `"${name}" must be an absolute host path, got "${p}"`);
  return p;
}
