// Reads and parses the manifests discovery found. A bad manifest becomes a problem of its own scope and
// never hides the others.

import { type ManifestError, manifestErrorMessage, parseManifest } from "../core/manifest.js";
import type { DeclaredScope } from "../core/model.js";
import type { Problem } from "../core/problems.js";
import { type ManifestRef, manifestReader } from "./discovery.js";
import type { RootFs } from "./rootfs.js";

const MAX_MANIFEST_BYTES = 16 << 20;

export interface LoadedScopes {
  readonly scopes: DeclaredScope[];
  readonly problems: Problem[];
}

export function loadScopes(fs: RootFs, refs: readonly ManifestRef[]): LoadedScopes {
  if (refs.length === 0) return { scopes: [], problems: [noManifests()] };
  const scopes: DeclaredScope[] = [];
  const problems: Problem[] = [];
  for (const ref of refs) {
    const loaded = loadScope(manifestReader(fs, ref), ref);
    if (loaded.ok) scopes.push(loaded.scope);
    else problems.push(loaded.problem);
  }
  return { scopes, problems };
}

type Loaded =
  | { readonly ok: true; readonly scope: DeclaredScope }
  | { readonly ok: false; readonly problem: Problem };

function loadScope(reader: RootFs, ref: ManifestRef): Loaded {
  const text = readManifest(reader, ref.path);
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
  return parsed.ok ? parsed : { ok: false, problem: manifestInvalid(ref, parsed.error) };
}

type ManifestText =
  | { readonly state: "read"; readonly text: string }
  | { readonly state: "absent" }
  | { readonly state: "unreadable"; readonly why: string };

function readManifest(reader: RootFs, manifestPath: string): ManifestText {
  const resolved = reader.resolve(manifestPath);
  if (resolved.state === "absent") return { state: "absent" };
  if (resolved.state === "loop") return { state: "unreadable", why: "cannot be read (symlink loop)" };
  if (resolved.state === "inaccessible")
    return { state: "unreadable", why: `cannot be read (${resolved.errno})` };
  if (resolved.facts.type !== "file") return { state: "unreadable", why: "is not a regular file" };
  // RootFs truncates silently at the limit; a cut manifest would look like invalid JSON.
  if (resolved.facts.size > MAX_MANIFEST_BYTES) return { state: "unreadable", why: "is larger than 16 MiB" };
  const text = reader.readRealText(resolved.path, MAX_MANIFEST_BYTES);
  if (typeof text !== "string") return { state: "unreadable", why: `cannot be read (${text.error})` };
  return { state: "read", text };
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

function noManifests(): Problem {
  return {
    code: "no_manifests",
    severity: "info",
    scope: "host",
    subject: "/",
    path: "/",
    message:
      "no sops-nix manifest found in /run/current-system/activate, the sops-install-secrets units, the " +
      "nix-darwin launch daemons or any home-manager sops-nix unit; pass --manifest PATH to name one",
  };
}
