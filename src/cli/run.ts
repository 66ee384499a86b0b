// `sops-agent run`: parses flags, loads the config (flags win), starts the agent, and waits for a signal.
// SIGTERM/SIGINT stop it within a second with exit 0; SIGHUP reloads the config and keeps the old one when
// the new one is bad. Never calls process.exit: the exit code is returned to src/cli.ts.

import { parseArgs } from "node:util";
import { Agent } from "../agent/agent.js";
import {
  type AgentConfig,
  ConfigError,
  type ConfigLayer,
  defaultConfigPath,
  formatListen,
  isLogLevel,
  LOG_LEVELS,
  loadConfigFile,
  mergeConfig,
  parseListen,
} from "../agent/config.js";
import { createLogger } from "../agent/logger.js";
import { loadWebConfig, NO_WEB_CONFIG, type WebConfig } from "../agent/web-config.js";
import { VERSION } from "../version.js";
import type { CliIo } from "./io.js";

export const RUN_USAGE = `Usage: sops-agent run [options]

Runs the agent: watches the host's sops-nix secrets and serves Prometheus metrics.

Options:
  --config FILE            YAML config (default /etc/sops-agent/config.yaml when present,
                           else ~/.config/sops-agent/config.yaml for a non-root user)
  --root DIR               act as if DIR were / (an offline image, a test tree)
  --listen HOST:PORT       address to serve on (default from the config, else 127.0.0.1:29100)
  --manifest PATH          a manifest to check, repeatable (default: discover)
  --web.config.file FILE   TLS and basic auth, in Prometheus exporter-toolkit's format
  --log-level LEVEL        ${LOG_LEVELS.join(", ")}
  --check-config           validate the config and web config, then exit
  -h, --help               show this help
`;

interface Loaded {
  readonly config: AgentConfig;
  readonly web: WebConfig;
}

/** Signals, injectable so tests can drive the lifecycle without sending real ones. */
export interface SignalSource {
  on(signal: "SIGTERM" | "SIGINT" | "SIGHUP", handler: () => void): void;
  off(signal: "SIGTERM" | "SIGINT" | "SIGHUP", handler: () => void): void;
}

export async function runCommand(
  args: string[],
  io: CliIo,
  signals: SignalSource = process,
): Promise<number> {
  let flags: ConfigLayer;
  let configFlag: string | undefined;
  let checkOnly: boolean;
  try {
    const parsed = parseFlags(args);
    if (parsed === "help") {
      io.stdout(RUN_USAGE);
      return 0;
    }
    ({ flags, configFlag, checkOnly } = parsed);
  } catch (err) {
    io.stderr(`sops-agent run: ${err instanceof Error ? err.message : String(err)}\n${RUN_USAGE}`);
    return 2;
  }

  const uid = process.getuid?.() ?? 0;
  const load = (): Loaded => {
    const file = configFlag ?? defaultConfigPath(io.env, uid);
    const config = mergeConfig(file === null ? {} : loadConfigFile(file), flags, file);
    const web = config.webConfigFile === null ? NO_WEB_CONFIG : loadWebConfig(config.webConfigFile);
    return { config, web };
  };

  let loaded: Loaded;
  try {
    loaded = load();
  } catch (err) {
    io.stderr(`sops-agent run: ${err instanceof Error ? err.message : String(err)}\n`);
    return err instanceof ConfigError ? 2 : 1;
  }
  if (checkOnly) {
    const { config } = loaded;
    io.stdout(
      `config OK: ${config.source ?? "built-in defaults"}${config.webConfigFile === null ? "" : `, web config OK: ${config.webConfigFile}`}\n`,
    );
    return 0;
  }

  const logger = await createLogger({ level: loaded.config.logLevel, pretty: io.isTTY });
  const agent = new Agent({
    config: loaded.config,
    webConfig: loaded.web,
    logger,
    env: io.env,
    version: VERSION,
  });
  logger.info(
    { event: "starting", version: VERSION, config: loaded.config.source, root: loaded.config.root },
    "sops-agent starting",
  );

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ event: "stopping", signal }, "stopping");
      // A second is the promise: whatever has not closed by then is left to the process' exit.
      const deadline = setTimeout(() => finish(false), 900);
      void agent.stop().finally(() => {
        clearTimeout(deadline);
        finish(true);
      });
    };
    // `closed` says whether everything closed or the deadline cut it short: tests assert it, not the time.
    const finish = (closed: boolean) => {
      logger.info({ event: "stopped", closed }, "stopped");
      signals.off("SIGTERM", onTerm);
      signals.off("SIGINT", onInt);
      signals.off("SIGHUP", onHup);
      resolve(0);
    };
    const onTerm = () => stop("SIGTERM");
    const onInt = () => stop("SIGINT");
    const onHup = () => {
      let next: Loaded;
      try {
        next = load();
      } catch (err) {
        agent.reloadFailed(err instanceof Error ? err.message : String(err));
        return;
      }
      agent.reload(next.config, next.web).catch((err: unknown) => {
        agent.reloadFailed(err instanceof Error ? err.message : String(err));
      });
    };
    signals.on("SIGTERM", onTerm);
    signals.on("SIGINT", onInt);
    signals.on("SIGHUP", onHup);
    agent
      .start()
      .then((addr) => {
        const scheme = loaded.web.tls === null ? "http" : "https";
        logger.info(
          { event: "ready_to_scrape", url: `${scheme}://${formatListen(addr)}/metrics` },
          `serving metrics on ${scheme}://${formatListen(addr)}/metrics`,
        );
      })
      .catch((err: unknown) => {
        logger.error(
          { event: "start_failed", error: err instanceof Error ? err.message : String(err) },
          "cannot start",
        );
        io.stderr(`sops-agent run: ${err instanceof Error ? err.message : String(err)}\n`);
        void agent.stop().finally(() => {
          signals.off("SIGTERM", onTerm);
          signals.off("SIGINT", onInt);
          signals.off("SIGHUP", onHup);
          resolve(1);
        });
      });
  });
}

function parseFlags(
  args: string[],
): "help" | { flags: ConfigLayer; configFlag: string | undefined; checkOnly: boolean } {
  const { values } = parseArgs({
    args,
    allowPositionals: false,
    strict: true,
    options: {
      config: { type: "string" },
      root: { type: "string" },
      listen: { type: "string" },
      manifest: { type: "string", multiple: true },
      "web.config.file": { type: "string" },
      "log-level": { type: "string" },
      "check-config": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help === true) return "help";
  const flags: ConfigLayer = {};
  if (values.root !== undefined) flags.root = values.root;
  if (values.listen !== undefined) {
    const listen = parseListen(values.listen);
    if (listen === null) throw new Error(`--listen must be HOST:PORT, got "${values.listen}"`);
    flags.listen = listen;
  }
  if (values.manifest !== undefined) flags.manifests = values.manifest;
  if (values["web.config.file"] !== undefined) flags.webConfigFile = values["web.config.file"];
  const level = values["log-level"];
  if (level !== undefined) {
    if (!isLogLevel(level))
      throw new Error(`--log-level must be one of ${LOG_LEVELS.join(", ")}, got "${level}"`);
    flags.logLevel = level;
  }
  return { flags, configFlag: values.config, checkOnly: values["check-config"] === true };
}
