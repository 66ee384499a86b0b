// Which units read which paths, from their unit files: the directives that hand a file to a service
// (ExecStart*, EnvironmentFile=, LoadCredential=, BindReadOnlyPaths=, …, drop-ins included) and the store
// scripts those ExecStart lines run, one level deep (NixOS wraps most `script`s so). Unit files and scripts
// are store paths and never change: each is read once and only the absolute paths it names are kept.

import * as path from "node:path";
import type { RootFs } from "./rootfs.js";

const MAX_UNIT_BYTES = 256 << 10;
const MAX_SCRIPTS_PER_UNIT = 8;
const MAX_UNITS = 4000;

const DIRECTIVE =
  /^\s*(ExecStart|ExecStartPre|ExecStartPost|ExecReload|ExecStop|ExecStopPost|ExecCondition|EnvironmentFile|Environment|LoadCredential|LoadCredentialEncrypted|SetCredentialEncrypted|BindReadOnlyPaths|BindPaths|ReadOnlyPaths|ReadWritePaths)\s*=(.*)$/gm;
const EXEC = /^Exec/;
// Absolute paths in a directive or a script: stop at whitespace, quotes, shell and systemd separators.
const PATH_TOKEN = /\/[^\s"'`;:,=(){}<>|&$]+/g;
const STORE_SCRIPT = /^\/nix\/store\/[0-9a-z]{32}-[^/]+(\/[^\s]*)?$/;

/** A unit and the paths its unit file (and drop-ins, and the scripts it runs) names. */
export interface UnitPaths {
  readonly unit: string;
  readonly file: string;
  readonly paths: ReadonlySet<string>;
}

/** Paths named by unit files, by real path and stamp: reads only what changed. */
export class UnitFileCache {
  private entries = new Map<string, ReadonlySet<string>>();
  private reads = 0;

  get fileReads(): number {
    return this.reads;
  }

  /** @internal */
  get(
    key: string,
    read: () => ReadonlySet<string>,
    used: Map<string, ReadonlySet<string>>,
  ): ReadonlySet<string> {
    let hit = this.entries.get(key);
    if (hit === undefined) {
      this.reads++;
      hit = read();
    }
    used.set(key, hit);
    return hit;
  }

  /** @internal */
  keep(used: Map<string, ReadonlySet<string>>): void {
    this.entries = used;
  }
}

/** The `.service` units in the given directories (earlier directories win, as systemd's search path does). */
export function unitPathsIn(fs: RootFs, dirs: readonly string[], cache: UnitFileCache): UnitPaths[] {
  const used = new Map<string, ReadonlySet<string>>();
  const seen = new Set<string>();
  const out: UnitPaths[] = [];
  for (const dir of dirs) {
    const names = fs.readdir(dir);
    for (const name of names) {
      if (!name.endsWith(".service") || seen.has(name) || seen.size >= MAX_UNITS) continue;
      seen.add(name);
      const file = `${dir}/${name}`;
      const paths = new Set<string>();
      for (const f of [file, ...dropIns(fs, dir, name, names)]) {
        for (const p of pathsOf(fs, f, cache, used)) paths.add(p);
      }
      if (paths.size > 0) out.push({ unit: name, file, paths });
    }
  }
  cache.keep(used);
  return out;
}

function dropIns(fs: RootFs, dir: string, name: string, names: readonly string[]): string[] {
  if (!names.includes(`${name}.d`)) return [];
  return fs
    .readdir(`${dir}/${name}.d`)
    .filter((n) => n.endsWith(".conf"))
    .map((n) => `${dir}/${name}.d/${n}`);
}

function pathsOf(
  fs: RootFs,
  file: string,
  cache: UnitFileCache,
  used: Map<string, ReadonlySet<string>>,
): ReadonlySet<string> {
  const resolved = fs.resolve(file);
  if (resolved.state !== "resolved" || resolved.facts.type !== "file") return EMPTY;
  const f = resolved.facts;
  // Who reads is part of the key: a user's view must not be answered from what the agent read.
  const key = `${fs.as?.uid ?? "agent"}\0${resolved.path}\0${f.size}\0${f.mtimeMs}\0${f.ino}`;
  return cache.get(key, () => readUnitPaths(fs, resolved.path), used);
}

const EMPTY: ReadonlySet<string> = new Set();

function readUnitPaths(fs: RootFs, file: string): ReadonlySet<string> {
  const text = fs.readText(file, MAX_UNIT_BYTES);
  if (typeof text !== "string") return EMPTY;
  const paths = new Set<string>();
  const scripts: string[] = [];
  for (const m of text.matchAll(DIRECTIVE)) {
    const [, directive = "", value = ""] = m;
    for (const token of value.matchAll(PATH_TOKEN)) {
      const p = path.posix.normalize(token[0]);
      if (!p.startsWith("/nix/store/")) paths.add(p);
      else if (EXEC.test(directive) && STORE_SCRIPT.test(p) && scripts.length < MAX_SCRIPTS_PER_UNIT)
        scripts.push(p);
    }
  }
  for (const script of scripts) {
    const body = fs.readText(script, MAX_UNIT_BYTES);
    // Binaries are not scripts: a NUL byte says so, and their strings are not a service's configuration.
    if (typeof body !== "string" || body.includes("\0")) continue;
    for (const token of body.matchAll(PATH_TOKEN)) {
      const p = path.posix.normalize(token[0]);
      if (!p.startsWith("/nix/store/")) paths.add(p);
    }
  }
  return paths.size === 0 ? EMPTY : paths;
}
