// Watching (issue 3 §2, issue 9.4 and 9.7). sops-install-secrets swaps a scope's link by a rename and
// deletes the old generation at once, so a watch on a generation directory goes stale on every switch:
// the agent watches the link's parent, the current generation, the parents of declared links and key
// files, and the discovery entry points, and re-targets after every check. Only directories are watched
// (one inotify watch each, never one per secret); an event is relevant when it names an entry the plan
// cares about.
//
// Directories are watched with fs.watch on their real path resolved inside the root (RootFs), never on
// root + path: the kernel would follow an absolute link of the image (/home -> /persist/home) on the
// running host. chokidar is not used: it realpath()s symlinked entries even with followSymlinks off and
// re-reads a directory on every event, which lets a user flooding a directory of hers starve the agent.

import * as fs from "node:fs";
import * as path from "node:path";
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

const HM_SYSTEMD_UNIT = ".config/systemd/user/sops-nix.service";
const HM_LAUNCH_AGENT = "Library/LaunchAgents/org.nix-community.home.sops-nix.plist";

/**
 * What to watch, as host paths, each once (10,000 secrets in one directory give one entry, not 10,000).
 * Only what the checks read: in directories a user can write to (her home, a home-manager generation), the
 * entries the checks look at, never the whole directory. Pure.
 */
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
  push({ kind: "entry", path: "/etc/systemd/system/sops-install-secrets.service" });
  push({ kind: "entry", path: "/etc/systemd/system/sops-install-secrets-for-users.service" });
  push({ kind: "entry", path: "/etc/passwd" });
  push({ kind: "entry", path: "/etc/group" });
  if (input.platform === "darwin") {
    push({ kind: "entry", path: "/Library/LaunchDaemons/org.nixos.sops-install-secrets.plist" });
    push({ kind: "entry", path: "/Library/LaunchDaemons/org.nixos.sops-install-secrets-for-users.plist" });
  }
  for (const home of input.homes) {
    push({ kind: "entry", path: path.posix.join(home, HM_SYSTEMD_UNIT), stopAt: home });
    if (input.platform === "darwin")
      push({ kind: "entry", path: path.posix.join(home, HM_LAUNCH_AGENT), stopAt: home });
  }
  for (const p of input.extraKeyPaths) push({ kind: "entry", path: p });
  for (const scope of input.run?.observed ?? []) {
    const d = scope.declared;
    // The rename that swaps generations happens in the link's parent directory.
    push({ kind: "entry", path: d.symlinkPath });
    // A system generation only root writes to: its whole listing. A user's: the declared entries only.
    const userWritable = d.user !== null;
    if (scope.generation !== null && !userWritable) push({ kind: "dir", path: scope.generation.target });
    let lastDir: string | null = null;
    for (const f of scope.files) {
      if (f.generationPath !== null) {
        if (userWritable) push({ kind: "entry", path: f.generationPath });
        else {
          const dir = path.posix.dirname(f.generationPath);
          // Most files of a scope share their directory: skip the Set lookup string for the common case.
          if (dir !== lastDir) push({ kind: "dir", path: dir });
          lastDir = dir;
        }
      }
      if (f.link !== null) push({ kind: "entry", path: f.declared.path });
    }
    for (const k of d.keys) push({ kind: "entry", path: k.path });
    // The key files sops.environment names are checked like the declared ones (checks/keys.ts).
    if (d.environment?.ageKeyFile !== undefined) push({ kind: "entry", path: d.environment.ageKeyFile });
    if (d.environment?.ageSshKeyFile !== undefined)
      push({ kind: "entry", path: d.environment.ageSshKeyFile });
  }
  return out;
}

/**
 * Maps wanted host paths to real directories that exist now, each resolved inside the root the way the
 * checks resolve paths: a directory is watched at its real path, never through a link. A missing
 * directory is watched through its nearest existing ancestor, for the one entry on the way down, so its
 * creation is seen (sops-nix never ran yet, a user not logged in yet).
 */
export function planWatches(wanted: readonly Wanted[], fs: RootFs): WatchPlan {
  const plan = new Map<string, "all" | Set<string>>();
  const add = (real: string, name: string | null) => {
    const current = plan.get(real);
    if (current === "all") return;
    if (name === null) plan.set(real, "all");
    else if (current === undefined) plan.set(real, new Set([name]));
    else current.add(name);
  };
  // Host directory → its real path inside the root, or null when it is not a directory there.
  const dirs = new Map<string, string | null>();
  const realDir = (p: string): string | null => {
    let known = dirs.get(p);
    if (known === undefined) {
      const r = fs.resolve(p);
      known = r.state === "resolved" && r.facts.type === "directory" ? fs.real(r.path) : null;
      dirs.set(p, known);
    }
    return known;
  };
  for (const w of wanted) {
    let dir =
      w.kind === "dir" ? path.posix.normalize(w.path) : path.posix.dirname(path.posix.normalize(w.path));
    let name: string | null = w.kind === "dir" ? null : path.posix.basename(w.path);
    for (;;) {
      const real = realDir(dir);
      if (real !== null) {
        add(real, name);
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
  /**
   * Called shortly after the first relevant event (after SETTLE_MS when nothing was reported for
   * `debounceMs`, else `debounceMs` after the last report), once for every event until then, with the real
   * paths of the entries the events named; null when one named none (polling, a directory's own event)
   * or there were many: then anything may have changed.
   */
  readonly onChange: (changed: ReadonlySet<string> | null) => void;
  /** Each relevant event (or a polled change). */
  readonly onEvent?: () => void;
  readonly onPolling?: (polling: boolean) => void;
  readonly logger: Logger;
  readonly debounceMs?: number;
  readonly usePolling?: boolean;
  readonly pollingIntervalMs?: number;
}

/** How long a change after a quiet interval waits for the events that come with it. */
const SETTLE_MS = 10;

/** Beyond this many entries in one interval, a full check is as cheap as following them one by one. */
const MAX_NAMED_CHANGES = 64;

/** A directory watched, with the inode it had when the watch was set up (a recreated one needs a new watch). */
interface DirWatch {
  readonly ino: number;
  readonly watcher: fs.FSWatcher | null;
}

/**
 * Watches the plan's directories and calls `onChange` when a relevant entry changed: at most once per
 * `debounceMs`, however many events arrive (a flood costs one Set lookup per event, and one check per
 * interval). Falls back to polling the directories and named entries when notifications fail.
 */
export class SecretsWatcher {
  private plan: WatchPlan = new Map();
  private readonly dirs = new Map<string, DirWatch>();
  private timer: NodeJS.Timeout | null = null;
  /** Entries named by the events of the interval so far; null once one could not be named. */
  private changed: Set<string> | null = new Set();
  private pollTimer: NodeJS.Timeout | null = null;
  private stamps = new Map<string, string>();
  private closed = false;
  private pollingMode: boolean;
  private readonly opts: WatcherOptions;

  constructor(opts: WatcherOptions) {
    this.opts = opts;
    this.pollingMode = opts.usePolling === true;
    if (this.pollingMode) this.startPolling();
  }

  get polling(): boolean {
    return this.pollingMode;
  }

  /** Real directories currently watched. */
  get watched(): readonly string[] {
    return [...this.plan.keys()];
  }

  /**
   * Swaps the watched set for `plan`; resolves with whether directories were added (or watched anew),
   * so the caller re-checks: a change made before a watch was in place is only seen by a later check.
   */
  async retarget(plan: WatchPlan): Promise<boolean> {
    if (this.closed) return false;
    this.plan = plan;
    for (const [dir, w] of this.dirs) {
      if (!plan.has(dir)) {
        w.watcher?.close();
        this.dirs.delete(dir);
      }
    }
    let added = false;
    for (const dir of plan.keys()) {
      const known = this.dirs.get(dir);
      const ino = inodeOf(dir);
      if (known !== undefined && known.ino === ino) continue;
      // New, or deleted and recreated since (its old watch died with it).
      known?.watcher?.close();
      this.dirs.set(dir, { ino, watcher: this.pollingMode ? null : this.watchDir(dir) });
      added = true;
    }
    if (this.pollingMode) this.stamps = this.stampAll();
    return added;
  }

  private watchDir(dir: string): fs.FSWatcher | null {
    try {
      const w = fs.watch(dir, { persistent: true }, (_event, name) => this.onRaw(dir, name));
      w.on("error", (err) => this.onError(err));
      return w;
    } catch (err) {
      this.onError(err);
      return null;
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
    for (const [dir, w] of this.dirs) {
      w.watcher?.close();
      this.dirs.set(dir, { ino: w.ino, watcher: null });
    }
    this.stamps = this.stampAll();
    this.startPolling();
    // Whatever happened while notifications were broken is unknown: look again.
    this.changed = null;
    this.schedule();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.pollTimer !== null) clearInterval(this.pollTimer);
    this.timer = null;
    this.pollTimer = null;
    for (const w of this.dirs.values()) w.watcher?.close();
    this.dirs.clear();
  }

  private startPolling(): void {
    if (this.pollTimer !== null) return;
    this.pollTimer = setInterval(() => this.poll(), this.opts.pollingIntervalMs ?? 2000);
    this.pollTimer.unref?.();
  }

  private poll(): void {
    if (this.closed) return;
    const next = this.stampAll();
    let changed = next.size !== this.stamps.size;
    if (!changed) for (const [k, v] of next) if (this.stamps.get(k) !== v) changed = true;
    this.stamps = next;
    if (changed) {
      this.opts.onEvent?.();
      this.changed = null;
      this.schedule();
    }
  }

  /** Per watched directory its own stamp (a listing change moves its mtime), and each named entry's. */
  private stampAll(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [dir, interest] of this.plan) {
      out.set(dir, stampOf(dir));
      if (interest !== "all")
        for (const name of interest) out.set(`${dir}/${name}`, stampOf(`${dir}/${name}`));
    }
    return out;
  }

  private onRaw(dir: string, name: string | null): void {
    if (this.closed) return;
    const interest = this.plan.get(dir);
    if (interest === undefined) return;
    // A flood costs this lookup per event: nothing else runs until the next check.
    if (interest !== "all" && name !== null && !interest.has(name)) return;
    this.opts.onEvent?.();
    const named = this.changed;
    if (named !== null) {
      if (name === null || name === "" || named.size >= MAX_NAMED_CHANGES) this.changed = null;
      else named.add(`${dir}/${name}`);
    }
    if (this.timer !== null) return;
    this.opts.logger.trace({ event: "watch_event", dir, path: name }, "file-system event");
    this.schedule();
  }

  /**
   * One change per `debounceMs` at most, counted from the last one: later events inside the interval join
   * the pending one. A change after a quiet interval is reported after SETTLE_MS only (issue 11.5: the
   * debounce was most of the change-to-metric latency), enough for the events of one rename or write to
   * arrive together.
   */
  private schedule(): void {
    if (this.timer !== null || this.closed) return;
    const debounce = this.opts.debounceMs ?? 50;
    const delay = Math.max(Math.min(debounce, SETTLE_MS), this.lastFired + debounce - performance.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.lastFired = performance.now();
      const changed = this.changed;
      this.changed = new Set();
      if (!this.closed) this.opts.onChange(changed);
    }, delay);
  }

  private lastFired = Number.NEGATIVE_INFINITY;

  private onError(err: unknown): void {
    const code = typeof err === "object" && err !== null && "code" in err ? String(err.code) : "";
    if (POLLING_ERRORS.has(code)) this.fallBackToPolling(code);
    else this.opts.logger.warn({ event: "watch_error", code, err: String(err) }, "watch error");
  }
}

function inodeOf(real: string): number {
  try {
    return fs.lstatSync(real).ino;
  } catch {
    return -1;
  }
}

function stampOf(real: string): string {
  try {
    const st = fs.lstatSync(real);
    return `${st.ino}:${st.mtimeMs}:${st.ctimeMs}:${st.size}`;
  } catch {
    return "absent";
  }
}
