// The agent's metrics. The names are a public contract (README). Two parts: the state part is everything
// derived from a published check; it is rendered once per publish, straight from the run into one Buffer (no
// per-series label maps: at 10,000 secrets prom-client's maps cost ~12 MB held and ~190 MB of garbage per
// publish), so /metrics costs one write however many secrets there are. The live part (process metrics,
// watch events, reloads) moves between checks, is small, and stays a prom-client registry rendered per scrape.
// The state text is byte-for-byte what prom-client would print for the same series (HELP/TYPE lines, label
// escaping, number formatting, blank line between families, first-insertion order, last value wins).

import { crc32, createDeflateRaw, deflateRawSync, constants as zlibConstants } from "node:zlib";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { type DeclaredFile, principalText, type ScopeName } from "../core/model.js";
import type { FileObservation } from "../core/observation.js";
import { compareProblems, type Problem, SEVERITIES, type Severity } from "../core/problems.js";
import type { CheckRun } from "../core/report.js";
import { NODEJS, REVISION } from "../version.js";
import { type StateKey, sameStateKey, stateKey } from "./state-key.js";

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

/** A /metrics body: the cached state part (Buffers, most of them kept from earlier publishes), then the live part. */
export type MetricsBody = readonly (Buffer | string)[];

/**
 * The state part as raw deflate blocks that end on a sync flush (byte-aligned, not final), with its CRC-32:
 * a scrape appends the live part's final blocks and the gzip trailer, so one gzip member is sent and the
 * megabytes of state are compressed once per publish, not once per scrape.
 */
interface DeflatedState {
  readonly blocks: Buffer;
  readonly crc: number;
}

/** The stable state text, what it was rendered from and, once a scraper asked for gzip, its compression. */
interface RenderedState {
  readonly key: StateKey | null;
  /** The text in parts, to be sent in order: the per-secret families in blocks kept across publishes. */
  readonly parts: readonly Buffer[];
  readonly size: number;
  deflated: Promise<DeflatedState> | null;
}

/** RFC 1952 member header: deflate, no flags, no mtime (the body must not depend on when it was built), OS unknown. */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);

const SCOPE_HOST = "host";

export class AgentMetrics {
  readonly contentType: string;
  private readonly live = new Registry();
  private state: RenderedState = { key: null, parts: [], size: 0, deflated: null };
  private readonly blocks = new StateBlocks();
  private volatile = "";
  private deflations = 0;
  private renders = 0;
  private reused = false;

  private readonly checkDuration: Histogram;
  private readonly watchEvents: Counter;
  private readonly watchPolling: Gauge;
  private readonly reloadOk: Gauge;
  private readonly reloadTimestamp: Gauge;

  constructor(
    version: string,
    opts: { readonly processMetrics?: boolean; readonly revision?: string; readonly nodejs?: string } = {},
  ) {
    this.contentType = this.live.contentType;
    const l = [this.live];
    new Gauge({
      name: "sops_agent_build_info",
      help: "The agent's version, source revision and Node.js version; always 1.",
      labelNames: ["version", "revision", "nodejs"],
      registers: l,
    }).set({ version, revision: opts.revision ?? REVISION, nodejs: opts.nodejs ?? NODEJS }, 1);
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
    // Synchronous: publishes can no longer finish out of order.
    const key = stateKey(published);
    const prev = this.state.key;
    this.reused = prev !== null && sameStateKey(prev, key);
    if (!this.reused) {
      this.renders++;
      const parts = renderStable(published, this.blocks);
      let size = 0;
      for (const p of parts) size += p.length;
      this.state = { key, parts, size, deflated: null };
    }
    this.volatile = renderVolatile(published.run);
  }

  /** Whether the last publish found nothing changed since the one before (its state text was reused). */
  get lastPublishUnchanged(): boolean {
    return this.reused;
  }

  /** How many times the stable state text was rendered (tests count it: once per change, not per check). */
  get stateRenders(): number {
    return this.renders;
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

  /** How many times a state part was compressed (tests count it: once per publish at most). */
  get stateDeflations(): number {
    return this.deflations;
  }

  /** How many blocks of per-secret series were rendered (tests count them: only the changed ones). */
  get blockRenders(): number {
    return this.blocks.rendered;
  }

  /** The /metrics body as one string (tests, tools). */
  async render(): Promise<string> {
    return (await this.body()).map((p) => (typeof p === "string" ? p : p.toString("utf8"))).join("");
  }

  /** The /metrics body as parts to write in order: the cached state Buffers and a fresh live rendering. */
  async body(): Promise<MetricsBody> {
    return [...this.state.parts, this.volatile + (await this.live.metrics())];
  }

  /**
   * The /metrics body gzip-compressed, as parts to write in order. The state part is compressed at most once
   * per publish (off the main thread, in zlib's thread pool); only the small live part is compressed per scrape.
   */
  async gzipBody(): Promise<readonly Buffer[]> {
    const state = this.state;
    if (state.deflated === null) {
      this.deflations++;
      state.deflated = deflateState(state.parts);
    }
    const deflated = await state.deflated;
    const live = Buffer.from(this.volatile + (await this.live.metrics()), "utf8");
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(crc32(live, deflated.crc) >>> 0, 0);
    trailer.writeUInt32LE((state.size + live.length) % 2 ** 32, 4);
    return [GZIP_HEADER, deflated.blocks, deflateRawSync(live), trailer];
  }
}

function deflateState(parts: readonly Buffer[]): Promise<DeflatedState> {
  return new Promise((resolve, reject) => {
    // One stream over the parts (no 3 MB copy of the text); the sync flush ends it byte-aligned, not final.
    const z = createDeflateRaw();
    const out: Buffer[] = [];
    let crc = 0;
    z.on("data", (chunk: Buffer) => out.push(chunk));
    z.on("error", reject);
    for (const p of parts) {
      crc = crc32(p, crc);
      z.write(p);
    }
    z.flush(zlibConstants.Z_SYNC_FLUSH, () => {
      z.close();
      resolve({ blocks: Buffer.concat(out), crc });
    });
  });
}

// --- The state part, rendered as prom-client would print the same series ---------------------------------

/**
 * One metric family's series, keyed by their formatted label set: first insertion order, last value wins.
 * Given a sink, a family whose series are known to be distinct writes each one as it is set, header first.
 */
class Family {
  private readonly series = new Map<string, number>();
  private readonly name: string;
  private readonly help: string;
  private readonly type: "gauge" | "counter";
  private readonly direct: TextSink | null;

  constructor(name: string, help: string, type: "gauge" | "counter", direct: TextSink | null) {
    this.name = escapeString(name);
    this.help = help;
    this.type = type;
    this.direct = direct;
    if (direct !== null) this.header(direct);
  }

  set(labels: string, value: number): void {
    if (this.direct !== null) this.direct.add(`\n${this.name}${labels} ${valueString(value)}`);
    else this.series.set(labels, value);
  }

  inc(labels: string, value: number): void {
    // A direct family sees each label set once, so its increment is the whole value.
    if (this.direct !== null) this.set(labels, value);
    else this.series.set(labels, (this.series.get(labels) ?? 0) + value);
  }

  /** Writes what was collected; a direct family has written everything already. */
  write(out: TextSink): void {
    if (this.direct !== null) return;
    this.header(out);
    for (const [labels, value] of this.series) out.add(`\n${this.name}${labels} ${valueString(value)}`);
  }

  private header(out: TextSink): void {
    out.add(familyHeader(this.name, this.help, this.type));
  }
}

/** `# HELP` and `# TYPE` of a family, as prom-client prints them. */
function familyHeader(name: string, help: string, type: "gauge" | "counter"): string {
  const n = escapeString(name);
  return `# HELP ${n} ${escapeString(help)}\n# TYPE ${n} ${type}`;
}

/** Collects small strings and rendered blocks into Buffers, without ever building the whole text as one string. */
class TextSink {
  private readonly chunks: Buffer[] = [];
  private pending = "";

  add(s: string): void {
    this.pending += s;
    if (this.pending.length >= 1 << 16) this.flush();
  }

  /** A Buffer rendered before, kept as its own part. */
  addBuffer(b: Buffer): void {
    this.flush();
    this.chunks.push(b);
  }

  /** The parts, in order. */
  parts(): Buffer[] {
    this.flush();
    return this.chunks;
  }

  finish(): Buffer {
    const parts = this.parts();
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  }

  private flush(): void {
    if (this.pending === "") return;
    this.chunks.push(Buffer.from(this.pending, "utf8"));
    this.pending = "";
  }
}

/** Series per block: a change to one secret renders its block again, not the 10,000 lines of its family. */
const BLOCK = 256;

interface Block {
  readonly scope: string;
  /** What each series was rendered from, by identity (the check hands out the same objects while unchanged). */
  readonly keys: readonly unknown[];
  readonly text: Buffer;
}

/**
 * One family's series in blocks, matched by position with the last publish's. The check reuses its
 * observation and status objects while nothing about them changed, so a block whose objects are all the
 * same ones renders the same text.
 */
class SeriesBlocks {
  private blocks: Block[] = [];
  private next: Block[] = [];
  private at = 0;
  private readonly counter: { rendered: number };

  constructor(counter: { rendered: number }) {
    this.counter = counter;
  }

  begin(): void {
    this.next = [];
    this.at = 0;
  }

  end(): void {
    this.blocks = this.next;
    this.next = [];
  }

  /** Writes `items` of one scope, block by block, each line (with its leading newline) from `line`. */
  write<T>(
    out: TextSink,
    scope: string,
    items: readonly T[],
    key: (item: T) => unknown,
    line: (item: T) => string,
  ): void {
    for (let from = 0; from < items.length; from += BLOCK) {
      const to = Math.min(items.length, from + BLOCK);
      const old = this.blocks[this.at++];
      let same = old !== undefined && old.scope === scope && old.keys.length === to - from;
      for (let i = from; same && i < to; i++) same = old?.keys[i - from] === key(items[i] as T);
      if (same && old !== undefined) {
        this.next.push(old);
        if (old.text.length > 0) out.addBuffer(old.text);
        continue;
      }
      this.counter.rendered++;
      const keys: unknown[] = [];
      let text = "";
      for (let i = from; i < to; i++) {
        const item = items[i] as T;
        keys.push(key(item));
        text += line(item);
      }
      const block = { scope, keys, text: Buffer.from(text, "utf8") };
      this.next.push(block);
      if (block.text.length > 0) out.addBuffer(block.text);
    }
  }
}

/** The block caches of the three per-secret families. */
class StateBlocks {
  readonly counter = { rendered: 0 };
  readonly ok = new SeriesBlocks(this.counter);
  readonly info = new SeriesBlocks(this.counter);
  readonly modified = new SeriesBlocks(this.counter);
  /** Label prefixes by scope, the same strings from publish to publish. */
  private readonly prefixes = new Map<string, Readonly<Record<"secret" | "template", string>>>();

  get rendered(): number {
    return this.counter.rendered;
  }

  private distinctKey: readonly unknown[] = [];
  private distinctValue = { secrets: true, files: true };

  /**
   * Whether no two status entries, and no two observed files, share their labels: then each family is
   * written series by series. Depends on the declarations only, so it is decided once per change of them.
   */
  distinct(run: CheckRun): { readonly secrets: boolean; readonly files: boolean } {
    const key: unknown[] = [];
    for (const o of run.observed)
      key.push(o.declared.scope, o.declared.secrets, o.declared.templates, o.files.length);
    key.push(run.document.secrets.length);
    const known = this.distinctKey;
    if (key.length === known.length && key.every((k, i) => k === known[i])) return this.distinctValue;
    const okDistinct = new SecretKeys();
    const filesDistinct = new SecretKeys();
    this.distinctValue = {
      secrets: run.document.secrets.every((s) => okDistinct.add(s.scope, s.kind, s.name)),
      files: run.observed.every((o) =>
        o.files.every((f) => filesDistinct.add(o.declared.scope, f.declared.kind, f.declared.name)),
      ),
    };
    this.distinctKey = key;
    return this.distinctValue;
  }

  prefixesOf(scope: string): Readonly<Record<"secret" | "template", string>> {
    let p = this.prefixes.get(scope);
    if (p === undefined) {
      p = kindPrefixes(scope);
      this.prefixes.set(scope, p);
    }
    return p;
  }
}

/** `{k1="v1",k2="v2"}` from alternating names and values, "" for none. */
function labelString(...kv: string[]): string {
  if (kv.length === 0) return "";
  let s = "{";
  for (let i = 0; i < kv.length; i += 2) {
    if (i > 0) s += ",";
    s += `${kv[i]}="${escapeLabelValue(kv[i + 1] as string)}"`;
  }
  return `${s}}`;
}

function escapeString(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

const NEEDS_ESCAPE = /[\\\n"]/;

function escapeLabelValue(s: string): string {
  return NEEDS_ESCAPE.test(s) ? escapeString(s).replace(/"/g, '\\"') : s;
}

/** prom-client's number formatting, "Nan" included. */
function valueString(v: number): string {
  if (Number.isNaN(v)) return "Nan";
  if (!Number.isFinite(v)) return v < 0 ? "-Inf" : "+Inf";
  return `${v}`;
}

/** The state part of /metrics for a published run, exactly as prom-client printed it before. Pure. */
export function renderState(published: PublishedState): Buffer {
  return Buffer.concat([
    ...renderStable(published, new StateBlocks()),
    Buffer.from(renderVolatile(published.run), "utf8"),
  ]);
}

/**
 * Everything but the last three families: what changes only when something on the host or in the
 * declarations changed. At 10,000 secrets it is ~3 MB, rendered (and compressed) only then (stateKey).
 */
function renderStable({ run, switches }: PublishedState, blocks: StateBlocks): Buffer[] {
  const out = new TextSink();
  const doc = run.document;
  // The per-secret and per-problem families are written series by series, straight into the sink: a label
  // map of 10,000 keys cost ~45 MB of garbage per publish. When two series share labels (never for what
  // sops-nix writes) they are merged in a map first, as prom-client would. The per-secret families are
  // written in blocks kept from the last publish: a change to one secret renders one block of each.
  const direct = blocks.distinct(run);
  blocks.ok.begin();
  blocks.info.begin();
  blocks.modified.begin();
  const okHelp = "1 when the declared secret or template has no critical problem, else 0.";
  if (direct.secrets) {
    out.add(familyHeader("sops_secret_ok", okHelp, "gauge"));
    blocks.ok.write(
      out,
      "",
      doc.secrets,
      (s) => s,
      (s) =>
        `\nsops_secret_ok${labelString("scope", s.scope, "kind", s.kind, "name", s.name)} ${s.ok ? 1 : 0}`,
    );
  } else {
    const okFamily = new Family("sops_secret_ok", okHelp, "gauge", null);
    for (const s of doc.secrets)
      okFamily.set(labelString("scope", s.scope, "kind", s.kind, "name", s.name), s.ok ? 1 : 0);
    okFamily.write(out);
  }

  out.add("\n\n");
  const infoHelp = "Declared secrets and templates: path, mode and owner as the manifest declares them.";
  const infoLabels = (prefixes: Readonly<Record<"secret" | "template", string>>, d: DeclaredFile) => {
    const extra = labelString(
      "path",
      d.path,
      "mode",
      d.modeText,
      "owner",
      principalText(d.owner),
      "group",
      principalText(d.group),
    );
    return `${prefixes[d.kind]}${escapeLabelValue(d.name)}",${extra.slice(1)}`;
  };
  const modifiedHelp = "Modification time of the file in the current generation.";
  const modifiedLabels = (prefixes: Readonly<Record<"secret" | "template", string>>, f: FileObservation) =>
    `${prefixes[f.declared.kind]}${escapeLabelValue(f.declared.name)}"}`;
  if (direct.files) {
    out.add(familyHeader("sops_secret_info", infoHelp, "gauge"));
    for (const scope of run.observed) {
      const prefixes = blocks.prefixesOf(scope.declared.scope);
      blocks.info.write(
        out,
        scope.declared.scope,
        scope.files,
        (f) => f.declared,
        (f) => `\nsops_secret_info${infoLabels(prefixes, f.declared)} 1`,
      );
    }
    out.add("\n\n");
    out.add(familyHeader("sops_secret_modified_timestamp_seconds", modifiedHelp, "gauge"));
    for (const scope of run.observed) {
      const prefixes = blocks.prefixesOf(scope.declared.scope);
      blocks.modified.write(
        out,
        scope.declared.scope,
        scope.files,
        (f) => f,
        (f) =>
          f.facts.state === "present"
            ? `\nsops_secret_modified_timestamp_seconds${modifiedLabels(prefixes, f)} ${valueString(f.facts.mtimeMs / 1000)}`
            : "",
      );
    }
  } else {
    const secretInfo = new Family("sops_secret_info", infoHelp, "gauge", null);
    for (const scope of run.observed) {
      const prefixes = blocks.prefixesOf(scope.declared.scope);
      for (const f of scope.files) secretInfo.set(infoLabels(prefixes, f.declared), 1);
    }
    secretInfo.write(out);
    out.add("\n\n");
    const secretModified = new Family("sops_secret_modified_timestamp_seconds", modifiedHelp, "gauge", null);
    for (const scope of run.observed) {
      const prefixes = blocks.prefixesOf(scope.declared.scope);
      for (const f of scope.files)
        if (f.facts.state === "present")
          secretModified.set(modifiedLabels(prefixes, f), f.facts.mtimeMs / 1000);
    }
    secretModified.write(out);
  }
  blocks.ok.end();
  blocks.info.end();
  blocks.modified.end();

  out.add("\n\n");
  // checkHost sorts problems by scope, severity, subject and code: exactly the labels, so equal series are
  // neighbours and a sorted list without equal neighbours has none.
  let sorted = true;
  for (let i = 1; i < doc.problems.length && sorted; i++)
    sorted = compareProblems(doc.problems[i - 1] as Problem, doc.problems[i] as Problem) < 0;
  const problem = new Family(
    "sops_problem",
    "1 for each active problem; the series disappears when the problem is solved.",
    "gauge",
    sorted ? out : null,
  );
  for (const p of doc.problems)
    problem.set(
      labelString("scope", p.scope, "subject", p.subject, "code", p.code, "severity", p.severity),
      1,
    );
  problem.write(out);

  const gauge = (name: string, help: string) => new Family(name, help, "gauge", null);
  const problems = gauge("sops_problems", "Number of active problems by severity.");
  const healthy = gauge("sops_healthy", "1 when the scope has no critical problem.");
  const generation = gauge("sops_generation", "The generation number the scope's symlinkPath points to.");
  const switchesTotal = new Family(
    "sops_generation_switches_total",
    "Generation switches the agent has seen since it started.",
    "counter",
    null,
  );
  const switchTimestamp = gauge(
    "sops_generation_switch_timestamp_seconds",
    "When the agent last saw the scope switch generation.",
  );
  const fileModified = gauge(
    "sops_file_last_modified_timestamp_seconds",
    "The sops `lastmodified` time of an encrypted sops file.",
  );
  const fileRecipients = gauge(
    "sops_file_recipients",
    "Number of recipients of an encrypted sops file, by kind.",
  );
  const orphans = gauge(
    "sops_orphans",
    "Leftovers of earlier generations by kind: link (a former path link) or file (an undeclared file).",
  );
  const activation = gauge(
    "sops_activation_success",
    "1 when the scope's last sops-nix activation succeeded, 0 when it failed; absent when nothing tells.",
  );
  const consumerStale = gauge(
    "sops_consumer_stale",
    "1 for each unit still running since before the declaration of a secret it reads changed.",
  );

  for (const scope of run.observed) {
    const n = scope.generation?.number;
    if (n !== undefined && n !== null) generation.set(labelString("scope", scope.declared.scope), n);
  }
  // Every scope and every severity, zero included, so alert rules see the series before the first problem.
  const scopes = [...new Set<string>([...doc.scopes.map((s) => s.scope), SCOPE_HOST])];
  for (const p of doc.problems) if (!scopes.includes(p.scope)) scopes.push(p.scope);
  for (const scope of scopes) {
    const counts: Record<Severity, number> = { critical: 0, warning: 0, info: 0 };
    for (const p of doc.problems) if (p.scope === scope) counts[p.severity]++;
    for (const severity of SEVERITIES)
      problems.set(labelString("scope", scope, "severity", severity), counts[severity]);
    healthy.set(labelString("scope", scope), counts.critical > 0 ? 0 : 1);
  }
  // Both kinds for every scope, zero included, like sops_problems.
  for (const s of doc.scopes) {
    let links = 0;
    let files = 0;
    for (const p of doc.problems) {
      if (p.scope !== s.scope) continue;
      if (p.code === "orphan_link") links++;
      else if (p.code === "orphan_file") files++;
    }
    orphans.set(labelString("scope", s.scope, "kind", "link"), links);
    orphans.set(labelString("scope", s.scope, "kind", "file"), files);
  }
  for (const a of run.activations ?? []) activation.set(labelString("scope", a.scope), a.succeeded ? 1 : 0);
  for (const c of run.staleConsumers ?? [])
    consumerStale.set(labelString("scope", c.scope, "name", c.name, "unit", c.unit), 1);
  for (const s of doc.scopes) {
    const sw = switches.get(s.scope) ?? { count: 0, lastSeconds: null };
    switchesTotal.inc(labelString("scope", s.scope), sw.count);
    if (sw.lastSeconds !== null) switchTimestamp.set(labelString("scope", s.scope), sw.lastSeconds);
  }
  for (const f of run.sopsFiles) {
    if (f.lastModifiedSeconds !== null)
      fileModified.set(labelString("scope", f.scope, "file", f.file), f.lastModifiedSeconds);
    for (const kind of Object.keys(f.recipients).sort())
      fileRecipients.set(
        labelString("scope", f.scope, "file", f.file, "kind", kind),
        f.recipients[kind] ?? 0,
      );
  }
  for (const f of [
    problems,
    healthy,
    generation,
    switchesTotal,
    switchTimestamp,
    fileModified,
    fileRecipients,
    orphans,
    activation,
    consumerStale,
  ]) {
    out.add("\n\n");
    f.write(out);
  }
  return out.parts();
}

/** The families that change with every check (durations, the time of the check): small, rendered per publish. */
function renderVolatile(run: CheckRun): string {
  const out = new TextSink();
  const gauge = (name: string, help: string) => new Family(name, help, "gauge", null);
  const checkSuccess = gauge(
    "sops_agent_check_success",
    "1 when the check family ran to completion in the last check.",
  );
  const familyDuration = gauge(
    "sops_agent_check_family_duration_seconds",
    "How long the check family took in the last check.",
  );
  const lastCheck = gauge(
    "sops_agent_last_check_timestamp_seconds",
    "When the last published check finished.",
  );
  for (const fam of run.families) {
    checkSuccess.set(labelString("check", fam.family), fam.ok ? 1 : 0);
    familyDuration.set(labelString("check", fam.family), fam.durationSeconds);
  }
  lastCheck.set("", run.startedAt + run.durationSeconds);
  for (const f of [checkSuccess, familyDuration, lastCheck]) {
    out.add("\n\n");
    f.write(out);
  }
  out.add("\n");
  return out.finish().toString("utf8");
}

/** `{scope="…",kind="secret",name="` and the same for templates: the part of a secret's labels shared by its scope. */
function kindPrefixes(scope: string): Readonly<Record<"secret" | "template", string>> {
  const s = labelString("scope", scope);
  return {
    secret: `${s.slice(0, -1)},kind="secret",name="`,
    template: `${s.slice(0, -1)},kind="template",name="`,
  };
}

/** Remembers (scope, kind, name) triples without building a key string per secret. */
class SecretKeys {
  private readonly seen = new Map<string, { secret: Set<string>; template: Set<string> }>();

  /** False when the triple was added before. */
  add(scope: string, kind: "secret" | "template", name: string): boolean {
    let byKind = this.seen.get(scope);
    if (byKind === undefined) {
      byKind = { secret: new Set(), template: new Set() };
      this.seen.set(scope, byKind);
    }
    const names = byKind[kind];
    if (names.has(name)) return false;
    names.add(name);
    return true;
  }
}

/** The declared name, or the numeric id as a string. */
