// Watching with chokidar (issue 3 §2). sops-install-secrets swaps a scope's link by a rename and deletes
// the old generation at once, so a watch on a generation directory goes stale on every switch: the agent
// watches the link's parent, the current generation, the parents of declared links and key files, and the
// discovery entry points, and re-targets after every check. Only directories are watched (one inotify
// watch each, never one per secret); a raw event is relevant when it names an entry the plan cares about.

import * as path from "node:path";
import { type FSWatcher, watch } from "chokidar";
import type { CheckRun } from "../core/report.js";
import type { RootFs } from "../host/rootfs.js";
import type { Logger } from "./logger.js";

/** A host path whose entries matter ("dir"), or one entry ("entry"); `stopAt` bounds the walk upwards. */
export type Wanted =
  | { readonly kind: "dir"; readonly path: string; readonly stopAt?: string }
  | { readonly kind: "entry"; readonly path: string; readonly stopAt?: string };

/** Real directory → which of its entries matter ("all" or a set of names). */
export type WatchPlan = ReadonlyMap<string, "all" | ReadonlySet<string>>;

export interface WantedInput {
  readonly run: CheckRun | null;
  readonly extraKeyPaths: readonly string[];
  /** Home directories of the host's users: home-manager scopes appear there. */
  readonly homes: readonly string[];
  readonly platform: NodeJS.Platform;
}

/** What to watch, as host paths, each once (10,000 secrets in one directory give one entry, not 10,000). Pure. */
export function wantedPaths(input: WantedInput): Wanted[] {
  const seen = new Set<string>();
  const out: Wanted[] = [];
  const push = (w: Wanted) => {
    const key = `${w.kind}\0${w.path}\0${w.stopAt ?? ""}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push(w);
  };
  // /run/current-system changes on every NixOS switch: discovery runs again then.
  push({ kind: "entry", path: "/run/current-system" });
  push({ kind: "dir", path: "/etc/systemd/system" });
  push({ kind: "entry", path: "/etc/passwd" });
  push({ kind: "entry", path: "/etc/group" });
  if (input.platform === "darwin") push({ kind: "dir", path: "/Library/LaunchDaemons" });
  for (const home of input.homes) {
    push({ kind: "dir", path: path.posix.join(home, ".config/systemd/user"), stopAt: home });
    if (input.platform === "darwin")
      push({ kind: "dir", path: path.posix.join(home, "Library/LaunchAgents"), stopAt: home });
  }
  for (const p of input.extraKeyPaths) push({ kind: "entry", path: p });
  for (const scope of input.run?.observed ?? []) {
    const d = scope.declared;
    // The rename that swaps generations happens in the link's parent directory.
    push({ kind: "entry", path: d.symlinkPath });
    if (scope.generation !== null) push({ kind: "dir", path: scope.generation.target });
    let lastDir: string | null = null;
    for (const f of scope.files) {
      if (f.generationPath !== null) {
        const dir = path.posix.dirname(f.generationPath);
        // Most files of a scope share their directory: skip the Set lookup string for the common case.
        if (dir !== lastDir) push({ kind: "dir", path: dir });
        lastDir = dir;
      }
      if (f.link !== null) push({ kind: "entry", path: f.declared.path });
    }
    for (const k of d.keys) push({ kind: "entry", path: k.path });
  }
  return out;
}

/**
 * Maps wanted host paths to real directories that exist now. A missing directory is watched through its
 * nearest existing ancestor, for the one entry on the way down, so its creation is seen (sops-nix never ran
 * yet, a user not logged in yet).
 */
export function planWatches(wanted: readonly Wanted[], fs: RootFs): WatchPlan {
  const plan = new Map<string, "all" | Set<string>>();
  const add = (dir: string, name: string | null) => {
    const real = fs.real(dir);
    const current = plan.get(real);
    if (current === "all") return;
    if (name === null) plan.set(real, "all");
    else if (current === undefined) plan.set(real, new Set([name]));
    else current.add(name);
  };
  const dirs = new Map<string, boolean>();
  const isDir = (p: string) => {
    let known = dirs.get(p);
    if (known === undefined) {
      const f = fs.lstat(p);
      known = f.state === "present" && f.type === "directory";
      dirs.set(p, known);
    }
    return known;
  };
  for (const w of wanted) {
    let dir =
      w.kind === "dir" ? path.posix.normalize(w.path) : path.posix.dirname(path.posix.normalize(w.path));
    let name: string | null = w.kind === "dir" ? null : path.posix.basename(w.path);
    for (;;) {
      if (isDir(dir)) {
        add(dir, name);
        break;
      }
      if (dir === "/" || (w.stopAt !== undefined && dir === w.stopAt)) break;
      name = path.posix.basename(dir);
      dir = path.posix.dirname(dir);
    }
  }
  return plan;
}

/** Errors that mean "notifications do not work here": fall back to polling. */
const POLLING_ERRORS = new Set(["ENOSPC", "EMFILE", "ENFILE", "ENOSYS", "EOPNOTSUPP", "ENOTSUP", "EINVAL"]);

export interface WatcherOptions {
  /** Called once per burst of relevant events, after `debounceMs` of quiet (at most `maxWaitMs` after the first). */
  readonly onChange: () => void;
  readonly onEvent?: () => void;
  readonly onPolling?: (polling: boolean) => void;
  readonly logger: Logger;
  readonly debounceMs?: number;
  readonly maxWaitMs?: number;
  readonly usePolling?: boolean;
  readonly pollingIntervalMs?: number;
}

/** How long a retarget waits for chokidar to report its new watches in place. */
const SETTLE_LIMIT_MS = 2000;

export class SecretsWatcher {
  private watcher: FSWatcher;
  private plan: WatchPlan = new Map();
  private timer: NodeJS.Timeout | null = null;
  private firstEventAt = 0;
  private closed = false;
  private pollingMode: boolean;
  private readonly opts: WatcherOptions;

  constructor(opts: WatcherOptions) {
    this.opts = opts;
    this.pollingMode = opts.usePolling === true;
    this.watcher = this.create();
  }

  get polling(): boolean {
    return this.pollingMode;
  }

  /** Real directories currently watched. */
  get watched(): readonly string[] {
    return [...this.plan.keys()];
  }

  /**
   * Swaps the watched set for `plan`; resolves, once the new watches are in place, with whether
   * directories were added. chokidar sets watches up asynchronously: a change made before that is only
   * seen by a check made after it, so the caller re-checks after this resolves.
   */
  async retarget(plan: WatchPlan): Promise<boolean> {
    if (this.closed) return false;
    const added = [...plan.keys()].filter((d) => !this.plan.has(d));
    const removed = [...this.plan.keys()].filter((d) => !plan.has(d));
    this.plan = plan;
    if (removed.length > 0) this.watcher.unwatch(removed);
    if (added.length === 0) return false;
    this.watcher.add(added);
    await this.settled(added);
    return true;
  }

  /**
   * Waits (bounded) until chokidar holds a closer for every directory: it registers one only once the
   * fs.watch (or poller) is set up, while getWatched() lists a directory before that.
   */
  private async settled(dirs: readonly string[]): Promise<void> {
    const until = Date.now() + SETTLE_LIMIT_MS;
    while (!this.closed && Date.now() < until) {
      const closers = this.watcher._closers;
      if (dirs.every((d) => closers.has(d))) return;
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Notifications failed: poll the same directories, loudly. Exposed for tests. */
  fallBackToPolling(reason: string): void {
    if (this.pollingMode || this.closed) return;
    this.opts.logger.warn(
      { event: "watch_polling", reason },
      "file-system notifications failed; falling back to polling (raise fs.inotify.max_user_watches)",
    );
    this.pollingMode = true;
    this.opts.onPolling?.(true);
    const old = this.watcher;
    this.watcher = this.create();
    const dirs = [...this.plan.keys()];
    if (dirs.length > 0) this.watcher.add(dirs);
    void old.close();
    // Whatever happened while notifications were broken is unknown: look again.
    this.schedule();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.watcher.close();
  }

  private create(): FSWatcher {
    const w = watch([], {
      persistent: true,
      ignoreInitial: true,
      followSymlinks: false,
      depth: 0,
      // atomic would hold back unlink events for 100 ms; the agent debounces on its own.
      atomic: false,
      usePolling: this.pollingMode,
      interval: this.opts.pollingIntervalMs ?? 2000,
      binaryInterval: this.opts.pollingIntervalMs ?? 2000,
      // Entries are never watched one by one: the directory's own watch reports them.
      ignored: (p: string) => !this.plan.has(p),
      ignorePermissionErrors: true,
    });
    w.on("raw", (_event: string, evPath: string, details: unknown) => this.onRaw(evPath, details));
    w.on("error", (err: unknown) => this.onError(err));
    return w;
  }

  private onRaw(evPath: string | null | undefined, details: unknown): void {
    if (this.closed) return;
    const watchedPath =
      typeof details === "object" &&
      details !== null &&
      "watchedPath" in details &&
      typeof details.watchedPath === "string"
        ? details.watchedPath
        : null;
    if (!this.relevant(watchedPath, evPath ?? null)) return;
    this.opts.logger.trace({ event: "watch_event", dir: watchedPath, path: evPath }, "file-system event");
    this.opts.onEvent?.();
    this.schedule();
  }

  private relevant(watchedPath: string | null, evPath: string | null): boolean {
    // Polling reports the watched directory itself, with no entry name: its listing changed.
    if (watchedPath === null) return evPath === null || this.plan.has(evPath);
    const interest = this.plan.get(watchedPath);
    if (interest === undefined) return false;
    if (interest === "all" || evPath === null || evPath === "") return true;
    return interest.has(path.basename(evPath));
  }

  private schedule(): void {
    const now = Date.now();
    const debounce = this.opts.debounceMs ?? 50;
    const maxWait = this.opts.maxWaitMs ?? 500;
    if (this.timer === null) this.firstEventAt = now;
    else clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(debounce, this.firstEventAt + maxWait - now));
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.closed) this.opts.onChange();
    }, wait);
  }

  private onError(err: unknown): void {
    const code = typeof err === "object" && err !== null && "code" in err ? String(err.code) : "";
    if (POLLING_ERRORS.has(code)) this.fallBackToPolling(code);
    else this.opts.logger.warn({ event: "watch_error", code, err: String(err) }, "watch error");
  }
}
