// `sops-agent run`: parses flags, loads the config (flags win), starts the agent, and waits for a signal.
// SIGTERM/SIGINT stop it within a second with exit 0; SIGHUP reloads the config and keeps the old one when
// the new one is bad. Never calls process.exit: the exit code is returned to src/cli.ts.

import { lookup } from "node:dns/promises";
import { validate as validCron } from "node-cron";
import { Agent } from "../agent/agent.js";
import {
  type AgentConfig,
  type ConfigLayer,
  defaultConfigPath,
  formatListen,
  isLogFormat,
  isLogLevel,
  LOG_FORMATS,
  LOG_LEVELS,
  loadConfigFile,
  mergeConfig,
  parseListen,
} from "../agent/config.js";
import { createLogger } from "../agent/logger.js";
import { defaultStatusSocket } from "../agent/status-socket.js";
import { loadWebConfig, NO_WEB_CONFIG, type WebConfig } from "../agent/web-config.js";
import { VERSION } from "../version.js";
import { oneOf, parseFlags } from "./args.js";
import { EXIT } from "./exit.js";
import { type CliIo, UsageError } from "./io.js";
import { rootDirProblem } from "./root-dir.js";

export const RUN_USAGE = `Usage: sops-agent run [options]

Runs the agent: watches the host's sops-nix secrets and serves Prometheus metrics. Flags win over the
config file; the Prometheus exporter spellings are accepted beside the short ones.

Options:
  --config FILE, --config.file FILE
                           YAML config (default /etc/sops-agent/config.yaml when present,
                           else ~/.config/sops-agent/config.yaml for a non-root user)
  --root DIR               act as if DIR were / (an offline image, a test tree)
  --listen HOST:PORT, --web.listen-address HOST:PORT
                           address to serve on (default from the config, else 127.0.0.1:29100)
  --manifest PATH          a manifest to check, repeatable (default: discover)
  --web.config.file FILE   TLS and basic auth, in Prometheus exporter-toolkit's format
  --log-level LEVEL, --log.level LEVEL
                           ${LOG_LEVELS.join(", ")}
  --log.format FORMAT      ${LOG_FORMATS.join(" or ")} (default json; readable lines on a terminal)
  --status-socket PATH     where \`sops-agent status\` reads the last check (mode 0600; "" for none;
                           default /run/sops-agent/status.sock, or $RUNTIME_DIRECTORY/status.sock)
  --allow-no-manifests     finding no manifest is info, not critical (no sops-nix on this host)
  --check-config, --config.check
                           validate the config and web config (and resolve the listen host), then exit
  -h, --help               show this help

Exit status:
  0   stopped by SIGTERM or SIGINT; --check-config: the config is valid
  1   the agent failed at run time
  2   usage error: a bad flag or value, a --listen host that does not resolve
  69  the listen address cannot be bound (in use, not permitted, not an address of this host)
  70  internal error
  78  the config or web config file is invalid or unreadable (or its listen host does not resolve)
`;

/** The errors of binding a listening socket; anything else failing at start is a run-time failure. */
const BIND_ERRORS = new Set(["EADDRINUSE", "EACCES", "EADDRNOTAVAIL", "EPERM"]);

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
  const parsed = runFlags(args);
  if (parsed === "help") {
    io.stdout(RUN_USAGE);
    return EXIT.ok;
  }
  const { flags, configFlag, checkOnly, statusSocketFlag } = parsed;
  // A --listen host that does not resolve is a mistake on the command line, found before anything starts.
  if (flags.listen !== undefined) {
    const why = await unresolvable(flags.listen.host);
    if (why !== null) throw new UsageError(`--listen: cannot resolve "${flags.listen.host}" (${why})`);
  }

  const flagRootProblem = flags.root === undefined ? null : rootDirProblem(flags.root);
  if (flagRootProblem !== null) throw new UsageError(`--root: ${flagRootProblem}`);
  const uid = process.getuid?.() ?? 0;
  const load = (): Loaded => {
    const file = configFlag ?? defaultConfigPath(io.env, uid);
    const config = mergeConfig(
      file === null ? {} : loadConfigFile(file, { schedule: validCron }),
      flags,
      file,
    );
    // A root that is not a directory would check nothing; a reload with one keeps the old config.
    const rootProblem = rootDirProblem(config.root);
    if (rootProblem !== null) throw new Error(`root: ${rootProblem}`);
    const web = config.webConfigFile === null ? NO_WEB_CONFIG : loadWebConfig(config.webConfigFile);
    return { config, web };
  };

  let loaded: Loaded;
  try {
    loaded = load();
  } catch (err) {
    // Only config files are read here: whatever fails, the configuration is what is wrong.
    io.stderr(`sops-agent run: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.configInvalid;
  }
  if (flags.listen === undefined) {
    const why = await unresolvable(loaded.config.listen.host);
    if (why !== null) {
      io.stderr(
        `sops-agent run: ${loaded.config.source ?? "config"}: listen: cannot resolve "${loaded.config.listen.host}" (${why})\n`,
      );
      return EXIT.configInvalid;
    }
  }
  if (checkOnly) {
    const { config } = loaded;
    io.stdout(
      `config OK: ${config.source ?? "built-in defaults"}${config.webConfigFile === null ? "" : `, web config OK: ${config.webConfigFile}`}\n`,
    );
    return EXIT.ok;
  }

  const logger = await createLogger({
    level: loaded.config.logLevel,
    format: loaded.config.logFormat ?? "json",
    // Readable lines for a person at a terminal, unless a format was asked for.
    pretty: io.isTTY && loaded.config.logFormat === null,
  });
  const agent = new Agent({
    config: loaded.config,
    webConfig: loaded.web,
    logger,
    env: io.env,
    version: VERSION,
    // The default socket is for an agent watching this host; one watching another root is asked by name only.
    statusSocket:
      statusSocketFlag !== undefined
        ? statusSocketFlag || null
        : loaded.config.root === "/"
          ? defaultStatusSocket(io.env, uid)
          : null,
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
        const code = errnoCode(err);
        void agent.stop().finally(() => {
          signals.off("SIGTERM", onTerm);
          signals.off("SIGINT", onInt);
          signals.off("SIGHUP", onHup);
          resolve(code !== null && BIND_ERRORS.has(code) ? EXIT.cannotBind : EXIT.critical);
        });
      });
  });
}

interface RunFlags {
  readonly flags: ConfigLayer;
  readonly configFlag: string | undefined;
  readonly checkOnly: boolean;
  readonly statusSocketFlag: string | undefined;
}

function runFlags(args: string[]): "help" | RunFlags {
  const { values } = parseFlags({
    args,
    options: {
      config: { type: "string" },
      "config.file": { type: "string" },
      root: { type: "string" },
      listen: { type: "string" },
      "web.listen-address": { type: "string" },
      manifest: { type: "string", multiple: true },
      "web.config.file": { type: "string" },
      "log-level": { type: "string" },
      "log.level": { type: "string" },
      "log.format": { type: "string" },
      "check-config": { type: "boolean" },
      "allow-no-manifests": { type: "boolean" },
      "config.check": { type: "boolean" },
      "status-socket": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help === true) return "help";
  const flags: ConfigLayer = {};
  if (values.root !== undefined) flags.root = values.root;
  if (values["allow-no-manifests"] === true) flags.allowNoManifests = true;
  const listenText = oneOf(values, ["listen", "web.listen-address"]);
  if (listenText !== undefined) {
    const listen = parseListen(listenText);
    if (listen === null) throw new UsageError(`--listen must be HOST:PORT, got "${listenText}"`);
    flags.listen = listen;
  }
  if (values.manifest !== undefined) flags.manifests = values.manifest;
  if (values["web.config.file"] !== undefined) flags.webConfigFile = values["web.config.file"];
  const level = oneOf(values, ["log-level", "log.level"]);
  if (level !== undefined) {
    if (!isLogLevel(level))
      throw new UsageError(`--log.level must be one of ${LOG_LEVELS.join(", ")}, got "${level}"`);
    flags.logLevel = level;
  }
  const format = values["log.format"];
  if (format !== undefined) {
    if (!isLogFormat(format))
      throw new UsageError(`--log.format must be ${LOG_FORMATS.join(" or ")}, got "${format}"`);
    flags.logFormat = format;
  }
  return {
    flags,
    configFlag: oneOf(values, ["config", "config.file"]),
    checkOnly: values["check-config"] === true || values["config.check"] === true,
    statusSocketFlag: values["status-socket"],
  };
}

/** Why a listen host does not resolve (the resolver's code), or null when it does. */
async function unresolvable(host: string): Promise<string | null> {
  try {
    await lookup(host);
    return null;
  } catch (err) {
    return errnoCode(err) ?? "unknown error";
  }
}

function errnoCode(err: unknown): string | null {
  return typeof err === "object" && err !== null && "code" in err && typeof err.code === "string"
    ? err.code
    : null;
}
