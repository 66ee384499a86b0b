// Reads and parses the manifests discovery found. A bad manifest becomes a problem of its own scope and
// never hides the others. A ManifestCache reused across checks parses each manifest once per content:
// manifests are store paths (immutable), and a 10,000-secret one costs ~15 MB of garbage to read and parse.

import {
  type ManifestError,
  type ManifestItemError,
  manifestErrorMessage,
  parseManifest,
} from "../core/manifest.js";
import type { DeclaredScope } from "../core/model.js";
import type { Problem } from "../core/problems.js";
import { type ManifestRef, manifestReader } from "./discovery.js";
import type { RootFs } from "./rootfs.js";

const MAX_MANIFEST_BYTES = 16 << 20;

export interface LoadedScopes {
  readonly scopes: DeclaredScope[];
  readonly problems: Problem[];
}

/**
 * Parsed manifests by what was parsed (real path, size, mtime, inode, and the ref's scope fields). Holds the
 * manifests of the last check only. The scopes it hands out are shared between runs: they are never mutated.
 */
export class ManifestCache {
  private entries = new Map<string, Loaded>();
  private next: Map<string, Loaded> | null = null;
  private parses = 0;

  /** How many times a manifest was parsed since the cache was created (for tests and the bench). */
  get parseCount(): number {
    return this.parses;
  }

  /** @internal Starts a check: entries not used by it are dropped at `end`. */
  begin(): void {
    this.next = new Map();
  }

  /** @internal */
  end(): void {
    if (this.next !== null) this.entries = this.next;
    this.next = null;
  }

  /** @internal */
  get(key: string): Loaded | undefined {
    const hit = this.entries.get(key) ?? this.next?.get(key);
    if (hit !== undefined) this.next?.set(key, hit);
    return hit;
  }

  /** @internal */
  set(key: string, loaded: Loaded): void {
    this.parses++;
    this.next?.set(key, loaded);
  }
}

export function loadScopes(
  fs: RootFs,
  refs: readonly ManifestRef[],
  cache?: ManifestCache,
  allowNoManifests = false,
): LoadedScopes {
  if (refs.length === 0) {
    cache?.begin();
    cache?.end();
    return { scopes: [], problems: [noManifests(allowNoManifests)] };
  }
  const scopes: DeclaredScope[] = [];
  const problems: Problem[] = [];
  cache?.begin();
  try {
    for (const ref of refs) {
      const loaded = loadScope(manifestReader(fs, ref), ref, cache);
      if (loaded.ok) {
        // Attached after the cache: the entry point's environment can change while the manifest does not.
        scopes.push(
          ref.environment === undefined ? loaded.scope : { ...loaded.scope, environment: ref.environment },
        );
        for (const p of loaded.problems) problems.push(p);
      } else problems.push(loaded.problem);
    }
  } finally {
    cache?.end();
  }
  return { scopes, problems };
}

type Loaded =
  | { readonly ok: true; readonly scope: DeclaredScope; readonly problems: readonly Problem[] }
  | { readonly ok: false; readonly problem: Problem };

function loadScope(reader: RootFs, ref: ManifestRef, cache: ManifestCache | undefined): Loaded {
  const text = readManifest(reader, ref, cache);
  if (text.state === "cached") return text.loaded;
  if (text.state === "absent") return { ok: false, problem: manifestMissing(ref) };
  if (text.state === "unreadable") {
    return {
      ok: false,
      problem: manifestInvalid(ref, { file: ref.path, field: "(document)", message: text.why }),
    };
  }
  const parsed = parseManifest(text.text, {
    manifestPath: ref.path,
    scope: ref.scope,
    platform: ref.platform,
    user: ref.user,
    runtimeDir: ref.runtimeDir,
  });
  const loaded: Loaded = parsed.ok
    ? { ok: true, scope: parsed.scope, problems: parsed.itemErrors.map((e) => itemInvalid(ref, e)) }
    : { ok: false, problem: manifestInvalid(ref, parsed.error) };
  if (text.key !== null) cache?.set(text.key, loaded);
  return loaded;
}

type ManifestText =
  | { readonly state: "read"; readonly text: string; readonly key: string | null }
  | { readonly state: "cached"; readonly loaded: Loaded }
  | { readonly state: "absent" }
  | { readonly state: "unreadable"; readonly why: string };

function readManifest(reader: RootFs, ref: ManifestRef, cache: ManifestCache | undefined): ManifestText {
  const manifestPath = ref.path;
  const resolved = reader.resolve(manifestPath);
  if (resolved.state === "absent") return { state: "absent" };
  if (resolved.state === "loop") return { state: "unreadable", why: "cannot be read (symlink loop)" };
  if (resolved.state === "inaccessible")
    return { state: "unreadable", why: `cannot be read (${resolved.errno})` };
  if (resolved.facts.type !== "file") return { state: "unreadable", why: "is not a regular file" };
  // Refused before reading: a cut manifest would look like invalid JSON.
  if (resolved.facts.size > MAX_MANIFEST_BYTES) return { state: "unreadable", why: "is larger than 16 MiB" };
  const f = resolved.facts;
  const key =
    cache === undefined
      ? null
      : [
          reader.root,
          resolved.path,
          f.size,
          f.mtimeMs,
          f.ino,
          ref.path,
          ref.scope,
          ref.platform,
          JSON.stringify(ref.user),
          ref.runtimeDir,
          ref.via,
        ].join("\0");
  const hit = key === null ? undefined : cache?.get(key);
  if (hit !== undefined) return { state: "cached", loaded: hit };
  // RootFs sizes its buffer from fstat (not the 16 MiB limit) and refuses a file grown past the limit.
  const text = reader.readRealText(resolved.path, MAX_MANIFEST_BYTES, { seen: f });
  if (typeof text !== "string")
    return {
      state: "unreadable",
      why: text.error === "EFBIG" ? "is larger than 16 MiB" : `cannot be read (${text.error})`,
    };
  // A file that changed while it was read is parsed but not remembered under the stamp it no longer has.
  return { state: "read", text, key: Buffer.byteLength(text) === f.size ? key : null };
}

function manifestMissing(ref: ManifestRef): Problem {
  const hint =
    ref.via === "--manifest"
      ? "check the --manifest path"
      : `${ref.via} refers to it: it was garbage-collected or the generation is broken; re-run the activation (nixos-rebuild/darwin-rebuild/home-manager switch)`;
  return {
    code: "manifest_missing",
    severity: "critical",
    scope: ref.scope,
    subject: ref.path,
    path: ref.path,
    message: `manifest ${ref.path} is absent: ${hint}`,
  };
}

function manifestInvalid(ref: ManifestRef, error: ManifestError): Problem {
  return {
    code: "manifest_invalid",
    severity: "critical",
    scope: ref.scope,
    subject: ref.path,
    path: ref.path,
    message: manifestErrorMessage(error),
  };
}

/**
 * One secret or template sops-install-secrets would refuse. It decodes the whole manifest and validates
 * every item before it installs anything (main.go:168-176, 718-756), so one bad item means no secret of
 * the scope is installed at the next activation: critical, named by the item, the rest still checked.
 */
function itemInvalid(ref: ManifestRef, error: ManifestItemError): Problem {
  return {
    code: "manifest_invalid",
    severity: "critical",
    scope: ref.scope,
    subject: error.subject,
    path: ref.path,
    message: `${manifestErrorMessage(error)}. sops-install-secrets stops at it and installs no secret of this scope at the next activation; fix the declaration.`,
  };
}

/**
 * Nothing checked is not healthy: `just switch && sops-agent status` must not pass on a host where no
 * manifest was found (a wrong --root, a broken discovery, sops-nix not deployed). Hosts that run no
 * sops-nix on purpose lower it to info.
 */
function noManifests(allowed: boolean): Problem {
  return {
    code: "no_manifests",
    severity: allowed ? "info" : "critical",
    scope: "host",
    subject: "/",
    path: "/",
    message:
      "no sops-nix manifest found in /run/current-system/activate, the sops-install-secrets units, the " +
      "nix-darwin launch daemons or any home-manager sops-nix unit; pass --manifest PATH to name one" +
      (allowed ? "" : ", or --allow-no-manifests (allow_no_manifests: true) on a host without sops-nix"),
  };
}
