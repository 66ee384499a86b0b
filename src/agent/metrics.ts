// The agent's metrics. The names are a public contract (README). Two registries: the state registry holds
// everything derived from a published check and is rendered once per publish, so /metrics costs a string
// concatenation however many secrets there are; the live registry holds what moves between checks (process
// metrics, watch events, reloads) and is small enough to render on every scrape.

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { Principal, ScopeName } from "../core/model.js";
import { SEVERITIES } from "../core/problems.js";
import type { CheckRun } from "../core/report.js";

export interface GenerationSwitches {
  readonly count: number;
  /** Unix seconds of the last switch, null when none was seen yet. */
  readonly lastSeconds: number | null;
}

/** What one publish shows: a check run and the agent's per-scope switch counters at that moment. */
export interface PublishedState {
  readonly run: CheckRun;
  readonly switches: ReadonlyMap<ScopeName, GenerationSwitches>;
}

const SCOPE_HOST = "host";

export class AgentMetrics {
  readonly contentType: string;
  private readonly state = new Registry();
  private readonly live = new Registry();
  private stateText = "";
  private publishSeq = 0;

  private readonly secretOk: Gauge;
  private readonly secretInfo: Gauge;
  private readonly secretModified: Gauge;
  private readonly problem: Gauge;
  private readonly problems: Gauge;
  private readonly healthy: Gauge;
  private readonly generation: Gauge;
  private readonly switchesTotal: Counter;
  private readonly switchTimestamp: Gauge;
  private readonly fileModified: Gauge;
  private readonly fileRecipients: Gauge;
  private readonly checkSuccess: Gauge;
  private readonly familyDuration: Gauge;
  private readonly lastCheck: Gauge;

  private readonly checkDuration: Histogram;
  private readonly watchEvents: Counter;
  private readonly watchPolling: Gauge;
  private readonly reloadOk: Gauge;
  private readonly reloadTimestamp: Gauge;

  constructor(version: string, opts: { readonly processMetrics?: boolean } = {}) {
    this.contentType = this.state.contentType;
    const s = [this.state];
    const l = [this.live];
    this.secretOk = new Gauge({
      name: "sops_secret_ok",
      help: "1 when the declared secret or template has no critical problem, else 0.",
      labelNames: ["scope", "kind", "name"],
      registers: s,
    });
    this.secretInfo = new Gauge({
      name: "sops_secret_info",
      help: "Declared secrets and templates: path, mode and owner as the manifest declares them.",
      labelNames: ["scope", "kind", "name", "path", "mode", "owner", "group"],
      registers: s,
    });
    this.secretModified = new Gauge({
      name: "sops_secret_modified_timestamp_seconds",
      help: "Modification time of the file in the current generation.",
      labelNames: ["scope", "kind", "name"],
      registers: s,
    });
    this.problem = new Gauge({
      name: "sops_problem",
      help: "1 for each active problem; the series disappears when the problem is solved.",
      labelNames: ["scope", "subject", "code", "severity"],
      registers: s,
    });
    this.problems = new Gauge({
      name: "sops_problems",
      help: "Number of active problems by severity.",
      labelNames: ["scope", "severity"],
      registers: s,
    });
    this.healthy = new Gauge({
      name: "sops_healthy",
      help: "1 when the scope has no critical problem.",
      labelNames: ["scope"],
      registers: s,
    });
    this.generation = new Gauge({
      name: "sops_generation",
      help: "The generation number the scope's symlinkPath points to.",
      labelNames: ["scope"],
      registers: s,
    });
    this.switchesTotal = new Counter({
      name: "sops_generation_switches_total",
      help: "Generation switches the agent has seen since it started.",
      labelNames: ["scope"],
      registers: s,
    });
    this.switchTimestamp = new Gauge({
      name: "sops_generation_switch_timestamp_seconds",
      help: "When the agent last saw the scope switch generation.",
      labelNames: ["scope"],
      registers: s,
    });
    this.fileModified = new Gauge({
      name: "sops_file_last_modified_timestamp_seconds",
      help: "The sops `lastmodified` time of an encrypted sops file.",
      labelNames: ["scope", "file"],
      registers: s,
    });
    this.fileRecipients = new Gauge({
      name: "sops_file_recipients",
      help: "Number of recipients of an encrypted sops file, by kind.",
      labelNames: ["scope", "file", "kind"],
      registers: s,
    });
    this.checkSuccess = new Gauge({
      name: "sops_agent_check_success",
      help: "1 when the check family ran to completion in the last check.",
      labelNames: ["check"],
      registers: s,
    });
    this.familyDuration = new Gauge({
      name: "sops_agent_check_family_duration_seconds",
      help: "How long the check family took in the last check.",
      labelNames: ["check"],
      registers: s,
    });
    this.lastCheck = new Gauge({
      name: "sops_agent_last_check_timestamp_seconds",
      help: "When the last published check started.",
      registers: s,
    });

    new Gauge({
      name: "sops_agent_build_info",
      help: "The agent's version; always 1.",
      labelNames: ["version"],
      registers: l,
    }).set({ version }, 1);
    this.checkDuration = new Histogram({
      name: "sops_agent_check_duration_seconds",
      help: "Duration of whole host checks.",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: l,
    });
    this.watchEvents = new Counter({
      name: "sops_agent_watch_events_total",
      help: "File-system events that concerned a watched path.",
      registers: l,
    });
    this.watchPolling = new Gauge({
      name: "sops_agent_watch_polling",
      help: "1 when file-system notifications failed and the agent fell back to polling.",
      registers: l,
    });
    this.reloadOk = new Gauge({
      name: "sops_agent_config_last_reload_successful",
      help: "1 when the last configuration load succeeded.",
      registers: l,
    });
    this.reloadTimestamp = new Gauge({
      name: "sops_agent_config_last_reload_success_timestamp_seconds",
      help: "When the configuration was last loaded successfully.",
      registers: l,
    });
    this.watchEvents.inc(0);
    this.watchPolling.set(0);
    this.reloadOk.set(1);
    this.reloadTimestamp.set(Date.now() / 1000);
    // Without a prefix, so the usual process_* and nodejs_* dashboards work as for any Node exporter.
    if (opts.processMetrics !== false) {
      collectDefaultMetrics({ register: this.live });
      // Gauges named like counters: promtool rejects them, and nodejs_active_{handles,requests,resources}
      // by type carry the same numbers.
      for (const name of [
        "nodejs_active_handles_total",
        "nodejs_active_requests_total",
        "nodejs_active_resources_total",
      ])
        this.live.removeSingleMetric(name);
    }
  }

  /** Replaces every state series with those of `published` and renders them once. */
  async publish(published: PublishedState): Promise<void> {
    const seq = ++this.publishSeq;
    this.fillState(published);
    const text = await this.state.metrics();
    // A slower render of an older state must never overwrite a newer one.
    if (seq === this.publishSeq) this.stateText = text;
  }

  observeCheckDuration(seconds: number): void {
    this.checkDuration.observe(seconds);
  }

  watchEvent(count = 1): void {
    this.watchEvents.inc(count);
  }

  setWatchPolling(polling: boolean): void {
    this.watchPolling.set(polling ? 1 : 0);
  }

  configReloaded(ok: boolean, nowSeconds = Date.now() / 1000): void {
    this.reloadOk.set(ok ? 1 : 0);
    if (ok) this.reloadTimestamp.set(nowSeconds);
  }

  /** The /metrics body: the cached state text and a fresh rendering of the live registry. */
  async render(): Promise<string> {
    return this.stateText + (await this.live.metrics());
  }

  private fillState({ run, switches }: PublishedState): void {
    for (const m of [
      this.secretOk,
      this.secretInfo,
      this.secretModified,
      this.problem,
      this.problems,
      this.healthy,
      this.generation,
      this.switchesTotal,
      this.switchTimestamp,
      this.fileModified,
      this.fileRecipients,
      this.checkSuccess,
      this.familyDuration,
    ])
      m.reset();
    const doc = run.document;
    for (const s of doc.secrets)
      this.secretOk.set({ scope: s.scope, kind: s.kind, name: s.name }, s.ok ? 1 : 0);
    for (const scope of run.observed) {
      const name = scope.declared.scope;
      for (const f of scope.files) {
        const d = f.declared;
        const labels = { scope: name, kind: d.kind, name: d.name };
        this.secretInfo.set(
          { ...labels, path: d.path, mode: d.modeText, owner: principal(d.owner), group: principal(d.group) },
          1,
        );
        if (f.facts.state === "present") this.secretModified.set(labels, f.facts.mtimeMs / 1000);
      }
      const n = scope.generation?.number;
      if (n !== undefined && n !== null) this.generation.set({ scope: name }, n);
    }
    for (const p of doc.problems)
      this.problem.set({ scope: p.scope, subject: p.subject, code: p.code, severity: p.severity }, 1);
    // Every scope and every severity, zero included, so alert rules see the series before the first problem.
    const scopes = [...new Set<string>([...doc.scopes.map((s) => s.scope), SCOPE_HOST])];
    for (const p of doc.problems) if (!scopes.includes(p.scope)) scopes.push(p.scope);
    for (const scope of scopes) {
      const mine = doc.problems.filter((p) => p.scope === scope);
      for (const severity of SEVERITIES)
        this.problems.set({ scope, severity }, mine.filter((p) => p.severity === severity).length);
      this.healthy.set({ scope }, mine.some((p) => p.severity === "critical") ? 0 : 1);
    }
    for (const s of doc.scopes) {
      const sw = switches.get(s.scope) ?? { count: 0, lastSeconds: null };
      this.switchesTotal.inc({ scope: s.scope }, sw.count);
      if (sw.lastSeconds !== null) this.switchTimestamp.set({ scope: s.scope }, sw.lastSeconds);
    }
    for (const f of run.sopsFiles) {
      if (f.lastModifiedSeconds !== null)
        this.fileModified.set({ scope: f.scope, file: f.file }, f.lastModifiedSeconds);
      for (const kind of Object.keys(f.recipients).sort())
        this.fileRecipients.set({ scope: f.scope, file: f.file, kind }, f.recipients[kind] ?? 0);
    }
    for (const fam of run.families) {
      this.checkSuccess.set({ check: fam.family }, fam.ok ? 1 : 0);
      this.familyDuration.set({ check: fam.family }, fam.durationSeconds);
    }
    this.lastCheck.set(run.startedAt);
  }
}

/** The declared name, or the numeric id as a string. */
export function principal(p: Principal): string {
  return p.kind === "name" ? p.name : String(p.id);
}
