// The agent's imperative shell: holds the config, runs checks off the scrape path (at start, on debounced
// watch events, on the cron schedule, on reload), publishes each result whole, and logs deploy events.
// What a publish means is a pure function below; what a switch changed and which problems came and went
// are told apart in events.ts, tested on their own.

import { type Logger as CronLogger, type ScheduledTask, schedule } from "node-cron";
import type { ScopeName } from "../core/model.js";
import type { CheckRun, StatusDocument } from "../core/report.js";
import {
  type CheckHostOptions,
  type CheckState,
  checkHostKeeping,
  recheckFiles,
} from "../host/check-host.js";
import { DeclarationMemory, HistoryCache } from "../host/history.js";
import { ManifestCache } from "../host/load-scopes.js";
import { RootFs } from "../host/rootfs.js";
import { UsageCache } from "../host/usage.js";
import { SopsFileCache } from "../sops/reader.js";
import { type AgentConfig, formatListen, type ListenAddress } from "./config.js";
import { generationSwitches, logEvents, problemEvents, type ScopeBefore } from "./events.js";
import { AgentServer } from "./http.js";
import type { Logger } from "./logger.js";
import { AgentMetrics, type GenerationSwitches, type PublishedState } from "./metrics.js";
import { StatusSocketServer } from "./status-socket.js";
import { planWatches, SecretsWatcher, wantedPaths } from "./watcher.js";
import { NO_WEB_CONFIG, type WebConfig } from "./web-config.js";

/** How often a check is repeated when the generation it looked at vanished under it. */
const MAX_ATTEMPTS = 5;

export interface AgentOptions {
  readonly config: AgentConfig;
  readonly webConfig?: WebConfig;
  readonly logger: Logger;
  readonly env: NodeJS.ProcessEnv;
  readonly version: string;
  /** Injected in tests; checkHost otherwise. */
  readonly check?: (opts: CheckHostOptions) => CheckRun;
  readonly processMetrics?: boolean;
  readonly debounceMs?: number;
  readonly now?: () => number;
  /** Where `sops-agent status` can read the last check (src/agent/status-socket.ts); null for nowhere. */
  readonly statusSocket?: string | null;
}

export class Agent {
  readonly metrics: AgentMetrics;
  private config: AgentConfig;
  private web: WebConfig;
  private published: KeptRun | null = null;
  private server: AgentServer | null = null;
  private socket: StatusSocketServer | null = null;
  private watcher: SecretsWatcher | null = null;
  private cron: ScheduledTask | null = null;
  private running: Promise<void> | null = null;
  private pending = false;
  /**
   * What the next check must look at: the real paths of the files the watcher named, or null for
   * everything (the schedule, a reload, a switch, an event that named no file).
   */
  private nextChanged: Set<string> | null = null;
  /** Whether a check is requested that has not started yet (nextChanged is its scope). */
  private queued = false;
  /** What the last check read, for a re-check of named files only; null until the first full check. */
  private checkState: CheckState | null = null;
  private stopped = false;
  private readonly switches = new Map<ScopeName, GenerationSwitches>();
  private readonly sopsCache = new SopsFileCache();
  private readonly manifestCache = new ManifestCache();
  private readonly historyCache = new HistoryCache();
  /** What each scope declared before the switches this agent saw: leftovers outlive garbage-collected profiles. */
  private readonly memory = new DeclarationMemory();
  private readonly usageCache = new UsageCache();
  private readonly opts: AgentOptions;
  private readonly log: Logger;

  constructor(opts: AgentOptions) {
    this.opts = opts;
    this.config = opts.config;
    this.web = opts.webConfig ?? NO_WEB_CONFIG;
    this.log = opts.logger;
    this.metrics = new AgentMetrics(opts.version, { processMetrics: opts.processMetrics !== false });
  }

  /** What is kept of the run /metrics and /status show, null before the first check. */
  get state(): KeptRun | null {
    return this.published;
  }

  get listenAddress(): ListenAddress | null {
    return this.boundAddress;
  }

  private boundAddress: ListenAddress | null = null;
  private watching = false;

  /** Listens first (so /readyz answers 503 during the first check), then checks, watches and schedules. */
  async start(): Promise<ListenAddress> {
    this.server = this.newServer(this.web);
    this.boundAddress = await this.server.listen(this.config.listen);
    await this.listenStatusSocket();
    this.watcher = new SecretsWatcher({
      logger: this.log,
      onChange: (changed) => this.requestCheck(changed),
      onEvent: () => this.metrics.watchEvent(),
      onPolling: (p) => this.metrics.setWatchPolling(p),
      debounceMs: this.opts.debounceMs ?? 50,
    });
    this.startCron();
    await this.requestCheck();
    return this.boundAddress;
  }

  /**
   * Runs a check now, or once more after the running one; resolves when that check is published. With the
   * real paths of changed files only those are observed again (a full check stays on the schedule).
   */
  requestCheck(changed: ReadonlySet<string> | null = null): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.queue(changed);
    if (this.running !== null) {
      this.pending = true;
      return this.running;
    }
    this.running = this.loop().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Applies a reloaded config and web config. Throws when the new listen address cannot be bound. */
  async reload(config: AgentConfig, web: WebConfig): Promise<void> {
    const old = this.config;
    // Bind first: if the new address cannot be bound, this throws and nothing of the new config applies.
    const sameAddress = formatListen(config.listen) === formatListen(old.listen);
    if (!sameAddress || this.server === null || !this.server.setWebConfig(web))
      await this.rebind(config.listen, web, sameAddress);
    this.config = config;
    this.log.level = config.logLevel;
    if (config.schedule !== old.schedule) this.startCron();
    this.web = web;
    this.metrics.configReloaded(true);
    this.log.info({ event: "config_reloaded", source: config.source }, "configuration reloaded");
    if (
      config.root !== old.root ||
      config.allowNoManifests !== old.allowNoManifests ||
      JSON.stringify(config.manifests) !== JSON.stringify(old.manifests) ||
      JSON.stringify(config.extraKeyPaths) !== JSON.stringify(old.extraKeyPaths)
    )
      void this.requestCheck();
  }

  /** A reload whose config was bad: the old one stays. */
  reloadFailed(message: string): void {
    this.metrics.configReloaded(false);
    this.log.error(
      { event: "config_reload_failed", error: message },
      "configuration reload failed; keeping the old one",
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.cron?.destroy();
    this.cron = null;
    await Promise.all([this.watcher?.close(), this.server?.close(), this.socket?.close()]);
    this.watcher = null;
    this.server = null;
    this.socket = null;
  }

  /** The local status socket is a convenience: the agent runs on without it, and says why. */
  private async listenStatusSocket(): Promise<void> {
    const file = this.opts.statusSocket ?? null;
    if (file === null) return;
    const socket = new StatusSocketServer({ path: file, group: null });
    try {
      await socket.listen();
      this.socket = socket;
      this.log.info({ event: "status_socket", path: file }, "status socket listening");
    } catch (err) {
      this.log.warn(
        { event: "status_socket_failed", path: file, error: err instanceof Error ? err.message : "unknown" },
        "no status socket: `sops-agent status` will check by itself",
      );
    }
  }

  private async rebind(listen: ListenAddress, web: WebConfig, sameAddress: boolean): Promise<void> {
    this.log.info(
      {
        event: "server_restarted",
        reason: sameAddress ? "TLS on/off or client certificate policy changed" : "listen address changed",
      },
      "starting a new HTTP server for the reloaded configuration",
    );
    const next = this.newServer(web);
    // The same port cannot be bound twice: close the old server first then.
    if (sameAddress) await this.server?.close();
    try {
      this.boundAddress = await next.listen(listen);
    } catch (err) {
      if (sameAddress) {
        this.server = this.newServer(this.web);
        this.boundAddress = await this.server.listen(listen);
      }
      throw err;
    }
    if (!sameAddress) await this.server?.close();
    this.server = next;
  }

  private newServer(web: WebConfig): AgentServer {
    const metrics = this.metrics;
    return new AgentServer({
      logger: this.log,
      webConfig: web,
      webConfigFile: this.config.webConfigFile ?? "",
      source: {
        // Ready once the first check is published and its watches are in place, so no change is missed.
        ready: () => this.published !== null && this.watching,
        metrics: () => metrics.body(),
        metricsGzip: () => metrics.gzipBody(),
        metricsContentType: metrics.contentType,
        status: () => this.published?.document ?? null,
        version: this.opts.version,
      },
    });
  }

  private startCron(): void {
    this.cron?.destroy();
    this.cron = schedule(this.config.schedule, () => this.requestCheck(), {
      name: "sops-agent-recheck",
      noOverlap: true,
      logger: schedulerLogger(this.log),
    });
  }

  private async loop(): Promise<void> {
    do {
      // Let queued I/O (scrapes, watch events) run before the synchronous check takes the thread.
      await new Promise((r) => setImmediate(r));
      this.pending = false;
      const changed = this.queued ? this.nextChanged : null;
      this.queued = false;
      this.nextChanged = null;
      if (this.stopped) return;
      let run: CheckRun | null;
      try {
        run = await this.consistentCheck(changed);
      } catch (err) {
        // The daemon never dies on what it reads: keep the last published state and say why.
        this.log.error(
          { event: "check_failed", error: err instanceof Error ? err.message : "unknown" },
          "check failed",
        );
        continue;
      }
      if (run === null || this.stopped) continue;
      await this.publish(run);
      this.log.debug(
        {
          event: "check",
          durationSeconds: run.durationSeconds,
          healthy: run.document.healthy,
          generations: Object.fromEntries(
            run.observed.map((o) => [o.declared.scope, o.generation?.number ?? null]),
          ),
        },
        "check published",
      );
      try {
        // A re-check of named files changes nothing that is watched.
        if (changed === null || this.lastCheckWasFull) await this.retarget(run);
      } catch (err) {
        this.log.warn(
          { event: "watch_failed", error: err instanceof Error ? err.message : "unknown" },
          "could not update watches",
        );
      }
      this.watching = true;
    } while (this.pending && !this.stopped);
  }

  /** Adds `changed` to what the next check must look at; null widens it to everything. */
  private queue(changed: ReadonlySet<string> | null): void {
    if (!this.queued) {
      this.queued = true;
      this.nextChanged = changed === null ? null : new Set(changed);
    } else if (changed === null) this.nextChanged = null;
    else if (this.nextChanged !== null) for (const p of changed) this.nextChanged.add(p);
  }

  private lastCheckWasFull = true;
  private recheckCount = 0;

  /** How many checks observed only the files the watcher named (tests count them). */
  get rechecks(): number {
    return this.recheckCount;
  }

  /** A re-check of the named files when the last check's state allows it, else a full check. */
  private check(changed: ReadonlySet<string> | null): CheckRun {
    const state = this.checkState;
    if (changed !== null && state !== null && state.root === this.config.root) {
      const partial = recheckFiles(state, changed);
      if (partial !== null) {
        this.lastCheckWasFull = false;
        this.recheckCount++;
        this.checkState = partial.state;
        return partial.run;
      }
    }
    this.lastCheckWasFull = true;
    const options = {
      root: this.config.root,
      manifests: this.config.manifests,
      env: this.opts.env,
      sopsCache: this.sopsCache,
      manifestCache: this.manifestCache,
      historyCache: this.historyCache,
      memory: this.memory,
      usageCache: this.usageCache,
      extraKeyPaths: this.config.extraKeyPaths,
      allowNoManifests: this.config.allowNoManifests,
      previous: state,
    };
    if (this.opts.check !== undefined) {
      this.checkState = null;
      return this.opts.check(options);
    }
    const full = checkHostKeeping(options);
    this.checkState = full.state;
    return full.run;
  }

  /** A check whose scopes did not swap generations under it; null when the host kept changing. */
  private async consistentCheck(changed: ReadonlySet<string> | null): Promise<CheckRun | null> {
    const fs = new RootFs(this.config.root);
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      // A torn run is checked again in full: a generation moved under it.
      const run = this.check(attempt === 1 ? changed : null);
      this.metrics.observeCheckDuration(run.durationSeconds);
      const torn = tornScopes(run, (p) => fs.lstat(p));
      if (torn.length === 0) return run;
      this.log.debug(
        { event: "check_retry", attempt, scopes: torn },
        "a generation vanished during the check; checking again",
      );
      await new Promise((r) => setImmediate(r));
    }
    this.log.warn(
      { event: "check_unsettled", attempts: MAX_ATTEMPTS },
      "the host kept switching generations; keeping the last state",
    );
    return null;
  }

  private async publish(run: CheckRun): Promise<void> {
    const prev = this.published;
    const now = (this.opts.now ?? Date.now)() / 1000;
    const switches = prev === null ? [] : generationSwitches(prev.scopes, run);
    for (const event of switches) {
      const sw = this.switches.get(event.scope) ?? { count: 0, lastSeconds: null };
      this.switches.set(event.scope, { count: sw.count + 1, lastSeconds: now });
    }
    logEvents(this.log, switches, problemEvents(prev?.document.problems ?? null, run.document.problems));
    const state: PublishedState = { run, switches: new Map(this.switches) };
    // Metrics first, then the pointer: /metrics and /status move to the new state together.
    await this.metrics.publish(state);
    const kept = keepRun(run);
    // Nothing the document shows changed: keep the previous one, so whatever was serialised from it stays valid.
    this.published =
      prev !== null && this.metrics.lastPublishUnchanged ? { ...kept, document: prev.document } : kept;
    const published = this.published;
    const config = this.config;
    this.socket?.publish(() => ({
      agent: {
        pid: process.pid,
        version: this.opts.version,
        root: config.root,
        manifests: config.manifests,
        checkedAt: run.startedAt + run.durationSeconds,
      },
      document: published.document,
    }));
  }

  private async retarget(run: CheckRun): Promise<void> {
    const watcher = this.watcher;
    if (watcher === null) return;
    const fs = new RootFs(this.config.root);
    const plan = planWatches(
      wantedPaths({
        run,
        extraKeyPaths: this.config.extraKeyPaths,
        homes: run.homes,
        platform: process.platform,
      }),
      fs,
    );
    // A directory watched only from now on may have changed since the check read it: look once more.
    if (await watcher.retarget(plan)) {
      this.queue(null);
      this.pending = true;
    }
  }
}

/**
 * node-cron's own messages (missed runs, a run blocked by the one still going) as JSON lines through pino,
 * not its coloured text on the console, which journald would store as lines no log query can parse.
 */
export function schedulerLogger(log: Logger): CronLogger {
  const line =
    (level: "info" | "warn" | "error" | "debug") =>
    (message: string | Error, err?: Error): void => {
      const error = message instanceof Error ? message : err;
      log[level](
        { event: "scheduler", ...(error === undefined ? {} : { error: error.message }) },
        message instanceof Error ? message.message : message,
      );
    };
  return { info: line("info"), warn: line("warn"), error: line("error"), debug: line("debug") };
}

/**
 * Scopes that have problems and whose link moved or whose generation vanished since the check read them:
 * the problems may be artefacts of a swap in progress, so the run is not published.
 */
export function tornScopes(
  run: CheckRun,
  lstat: (hostPath: string) => ReturnType<RootFs["lstat"]>,
): ScopeName[] {
  const withProblems = new Set<string>(run.document.problems.map((p) => p.scope));
  const torn: ScopeName[] = [];
  for (const scope of run.observed) {
    if (!withProblems.has(scope.declared.scope)) continue;
    const before = scope.link.state === "present" ? (scope.link.linkTarget ?? null) : null;
    const now = lstat(scope.declared.symlinkPath);
    const after = now.state === "present" ? (now.linkTarget ?? null) : null;
    const vanished = scope.generation !== null && lstat(scope.generation.target).state === "absent";
    if (before !== after || vanished) torn.push(scope.declared.scope);
  }
  return torn;
}

/**
 * What the agent keeps of a published run until the next one: the document /status serves, and per scope
 * its generation and declaration (shared with the manifest cache), which the next deploy event is told
 * apart by. The full run (an observation per file) is dropped: at 10,000 secrets it held ~2 MB more, for
 * the whole time between checks.
 */
export interface KeptRun {
  readonly document: StatusDocument;
  readonly scopes: ReadonlyMap<ScopeName, ScopeBefore>;
}

export function keepRun(run: CheckRun): KeptRun {
  return {
    document: run.document,
    scopes: new Map(
      run.observed.map(
        (s) =>
          [s.declared.scope, { generation: s.generation?.number ?? null, declared: s.declared }] as const,
      ),
    ),
  };
}
