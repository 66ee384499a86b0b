// Reads the sops files the manifests name, through RootFs, and remembers each parse until the file
// changes: an agent that checks every few seconds must not re-parse unchanged files.

import { permits, READ } from "../core/access.js";
import type { PresentFacts } from "../core/facts.js";
import type { DeclaredScope, ScopeName, SecretFormat } from "../core/model.js";
import type { HostRecipient, SopsFileSummary } from "../core/report.js";
import type { RootFs } from "../host/rootfs.js";
import { keyringRecipients, type ScopeKeyring, scopeKeyring } from "./identities.js";
import type { SopsFileObservation, SopsObservation } from "./model.js";
import { viewFor } from "./model.js";
import { MAX_INPUT_BYTES, parseSopsFile, recipientCounts, type SopsParse } from "./parse.js";

interface CacheEntry {
  /** Identity of the content seen: the resolved path and its (size, mtime, inode). */
  readonly stamp: string;
  readonly observation: SopsFileObservation;
}

export class SopsFileCache {
  private entries = new Map<string, CacheEntry>();
  private parses = 0;

  /** How many times a file was parsed since the cache was created (for tests and the bench). */
  get parseCount(): number {
    return this.parses;
  }

  /**
   * `viewOf` gives the reader a scope's files are looked at with: a user's home-manager scope names its
   * own sops files and keys, and the agent reads them only as far as that user could.
   */
  observe(
    fs: RootFs,
    scopes: readonly DeclaredScope[],
    viewOf: (scope: DeclaredScope) => RootFs = () => fs,
  ): SopsObservation {
    const wanted = formatsByFile(scopes);
    const next = new Map<string, CacheEntry>();
    const files = new Map<string, SopsFileObservation>();
    const readers = readersByFile(scopes, viewOf);
    for (const [path, formats] of wanted) {
      // Read with the agent's own access when a system scope names the file or one naming user can read it.
      const reader = readers.get(path)?.find((r) => r === fs || canRead(r, path));
      if (reader === undefined) {
        files.set(path, { state: "unreadable", reason: "cannot be read by the scope's user (EACCES)" });
        continue;
      }
      const entry = this.entryFor(fs, path, formats);
      next.set(path, entry);
      files.set(path, entry.observation);
    }
    // Files no manifest names any more are forgotten.
    this.entries = next;
    const identities = new Map<ScopeName, readonly HostRecipient[]>();
    const keyrings = new Map<ScopeName, ScopeKeyring>();
    for (const scope of scopes) {
      const keyring = scopeKeyring(viewOf(scope), scope);
      keyrings.set(scope.scope, keyring);
      identities.set(scope.scope, keyringRecipients(scope.scope, keyring));
    }
    return { files, identities, keyrings };
  }

  private entryFor(fs: RootFs, path: string, formats: ReadonlySet<SecretFormat>): CacheEntry {
    const resolved = fs.resolve(path);
    if (resolved.state === "absent" || resolved.state === "loop") {
      return { stamp: "absent", observation: { state: "absent" } };
    }
    if (resolved.state === "inaccessible") {
      return {
        stamp: "",
        observation: { state: "unreadable", reason: `cannot be read (${resolved.errno})` },
      };
    }
    const f = resolved.facts;
    const stamp = `${resolved.path}\0${f.size}\0${f.mtimeMs}\0${f.ino}`;
    const cached = this.entries.get(path);
    if (cached?.stamp !== stamp)
      return {
        stamp,
        observation: this.read(fs, resolved.path, f, formats, new Map<SecretFormat, SopsParse>()),
      };
    if (cached.observation.state !== "present" || hasAll(cached.observation.parses, formats)) return cached;
    // Same content, declared under a format not parsed yet: keep the parses already done.
    return { stamp, observation: this.read(fs, resolved.path, f, formats, cached.observation.parses) };
  }

  private read(
    fs: RootFs,
    real: string,
    facts: PresentFacts,
    formats: ReadonlySet<SecretFormat>,
    done: ReadonlyMap<SecretFormat, SopsParse>,
  ): SopsFileObservation {
    if (facts.type !== "file") return { state: "unreadable", reason: `is a ${facts.type}, not a file` };
    if (facts.size > MAX_INPUT_BYTES) {
      return { state: "unreadable", reason: `is larger than ${MAX_INPUT_BYTES} bytes` };
    }
    const text = fs.readRealText(real, MAX_INPUT_BYTES, { seen: facts });
    if (typeof text !== "string")
      return {
        state: "unreadable",
        reason:
          text.error === "EFBIG"
            ? `is larger than ${MAX_INPUT_BYTES} bytes`
            : `cannot be read (${text.error})`,
      };
    const parses = new Map(done);
    for (const format of formats) {
      if (parses.has(format)) continue;
      this.parses++;
      parses.set(format, parseSopsFile(text, format));
    }
    return { state: "present", parses };
  }
}

function hasAll(parses: ReadonlyMap<SecretFormat, SopsParse>, formats: ReadonlySet<SecretFormat>): boolean {
  for (const f of formats) if (!parses.has(f)) return false;
  return true;
}

function readersByFile(
  scopes: readonly DeclaredScope[],
  viewOf: (scope: DeclaredScope) => RootFs,
): Map<string, RootFs[]> {
  const out = new Map<string, RootFs[]>();
  for (const scope of scopes) {
    const view = viewOf(scope);
    let last: string | null = null;
    for (const secret of scope.secrets) {
      // Neighbours usually share a file (sops-nix lists secrets by name): one lookup for the run of them.
      if (secret.sopsFile === last) continue;
      last = secret.sopsFile;
      const readers = out.get(secret.sopsFile);
      if (readers === undefined) out.set(secret.sopsFile, [view]);
      else if (!readers.includes(view)) readers.push(view);
    }
  }
  return out;
}

/** Whether a view's account can reach and read the file (the view's resolve walks with its access). */
function canRead(view: RootFs, path: string): boolean {
  const resolved = view.resolve(path);
  // Absent as far as the account can see: reported as absent, which the account could tell itself.
  if (resolved.state === "absent" || resolved.state === "loop") return true;
  return resolved.state === "resolved" && (view.as === null || permits(view.as, resolved.facts, READ, false));
}

interface SopsFileRef {
  readonly file: string;
  readonly format: SecretFormat;
}

function formatsByFile(scopes: readonly DeclaredScope[]): Map<string, Set<SecretFormat>> {
  const out = new Map<string, Set<SecretFormat>>();
  for (const scope of scopes) {
    let last: SopsFileRef | null = null;
    for (const secret of scope.secrets) {
      if (last !== null && secret.sopsFile === last.file && secret.format === last.format) continue;
      last = { file: secret.sopsFile, format: secret.format };
      let formats = out.get(secret.sopsFile);
      if (formats === undefined) {
        formats = new Set();
        out.set(secret.sopsFile, formats);
      }
      formats.add(secret.format);
    }
  }
  return out;
}

/**
 * One summary per (scope, sops file), for `sops_file_last_modified_timestamp_seconds{scope,file}` and
 * `sops_file_recipients{scope,file,kind}`. A file that is absent or does not parse has null and no counts.
 */
export function sopsFileSummaries(
  scopes: readonly DeclaredScope[],
  observation: SopsObservation,
): SopsFileSummary[] {
  const out: SopsFileSummary[] = [];
  for (const scope of scopes) {
    const done = new Set<string>();
    let last: string | null = null;
    for (const secret of scope.secrets) {
      if (secret.sopsFile === last) continue;
      last = secret.sopsFile;
      if (done.has(secret.sopsFile)) continue;
      done.add(secret.sopsFile);
      const view = viewFor(observation.files.get(secret.sopsFile), secret.format);
      out.push(
        view.state === "parsed"
          ? {
              scope: scope.scope,
              file: secret.sopsFile,
              lastModifiedSeconds: view.document.metadata.lastModified,
              recipients: recipientCounts(view.document),
            }
          : { scope: scope.scope, file: secret.sopsFile, lastModifiedSeconds: null, recipients: {} },
      );
    }
  }
  return out;
}
