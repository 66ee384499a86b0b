// What a published state's metrics and status document are made of, held compactly, so the agent can tell
// in one pass of comparisons (no rendering, no string per secret) that a check found nothing new. Most
// checks are the schedule's or a watch event that changed nothing the metrics show: those then reuse the
// rendered /metrics text, its gzip and the status document instead of allocating them again. Pure.

import type { DeclaredScope } from "../core/model.js";
import type { Problem } from "../core/problems.js";
import type { HostRecipient, ScopeSummary, SopsFileSummary } from "../core/report.js";
import type { PublishedState } from "./metrics.js";

export interface StateKey {
  /** Per observed scope: its declarations (by identity: the manifest cache hands out the same arrays while
   * the manifest is unchanged) and how many files were observed. */
  readonly scopes: readonly ScopeIdentity[];
  /** Per observed file, in order: its mtime in ms, NaN when it was not present. */
  readonly mtimes: Float64Array;
  /** Per status secret, in order: 1 when ok. */
  readonly ok: Uint8Array;
  readonly problems: readonly Problem[];
  /** Families that failed: the document says its verdict is incomplete. */
  readonly incomplete: readonly object[];
  readonly summaries: readonly ScopeSummary[];
  readonly recipients: readonly HostRecipient[];
  readonly sopsFiles: readonly SopsFileSummary[];
  readonly activations: readonly object[];
  readonly staleConsumers: readonly object[];
  /** Generation switch counters: `scope count last` lines (a handful of scopes). */
  readonly switches: string;
}

interface ScopeIdentity {
  readonly secrets: DeclaredScope["secrets"];
  readonly templates: DeclaredScope["templates"];
  readonly generation: number | null;
  readonly files: number;
}

export function stateKey({ run, switches }: PublishedState): StateKey {
  let n = 0;
  for (const o of run.observed) n += o.files.length;
  const mtimes = new Float64Array(n);
  let i = 0;
  for (const o of run.observed)
    for (const f of o.files) mtimes[i++] = f.facts.state === "present" ? f.facts.mtimeMs : Number.NaN;
  const secrets = run.document.secrets;
  const ok = new Uint8Array(secrets.length);
  for (let j = 0; j < secrets.length; j++) ok[j] = secrets[j]?.ok === true ? 1 : 0;
  let sw = "";
  for (const [scope, s] of switches) sw += `${scope} ${s.count} ${s.lastSeconds}\n`;
  return {
    scopes: run.observed.map((o) => ({
      secrets: o.declared.secrets,
      templates: o.declared.templates,
      generation: o.generation?.number ?? null,
      files: o.files.length,
    })),
    mtimes,
    ok,
    problems: run.document.problems,
    incomplete: run.document.incomplete,
    summaries: run.document.scopes,
    recipients: run.document.recipients,
    sopsFiles: run.sopsFiles,
    activations: run.activations ?? [],
    staleConsumers: run.staleConsumers ?? [],
    switches: sw,
  };
}

export function sameStateKey(a: StateKey, b: StateKey): boolean {
  return (
    a.switches === b.switches &&
    sameList(a.scopes, b.scopes, sameScope) &&
    sameFloats(a.mtimes, b.mtimes) &&
    sameBytes(a.ok, b.ok) &&
    sameList(a.problems, b.problems, shallowEqual) &&
    sameList(a.incomplete, b.incomplete, shallowEqual) &&
    sameList(a.summaries, b.summaries, shallowEqual) &&
    sameList(a.recipients, b.recipients, shallowEqual) &&
    sameList(a.sopsFiles, b.sopsFiles, sameSopsFile) &&
    sameList(a.activations, b.activations, shallowEqual) &&
    sameList(a.staleConsumers, b.staleConsumers, shallowEqual)
  );
}

function sameScope(a: ScopeIdentity, b: ScopeIdentity): boolean {
  return (
    a.secrets === b.secrets &&
    a.templates === b.templates &&
    a.generation === b.generation &&
    a.files === b.files
  );
}

function sameSopsFile(a: SopsFileSummary, b: SopsFileSummary): boolean {
  return (
    a.scope === b.scope &&
    a.file === b.file &&
    a.lastModifiedSeconds === b.lastModifiedSeconds &&
    shallowEqual(a.recipients, b.recipients)
  );
}

function sameList<T>(a: readonly T[], b: readonly T[], same: (x: T, y: T) => boolean): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!same(a[i] as T, b[i] as T)) return false;
  return true;
}

function sameFloats(a: Float64Array, b: Float64Array): boolean {
  if (a.length !== b.length) return false;
  // Object.is: NaN (absent) equals NaN.
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Same own keys with identical values: problems, summaries and recipients are flat records. */
function shallowEqual(a: object, b: object): boolean {
  if (a === b) return true;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka)
    if ((a as Record<string, unknown>)[k] !== (b as Record<string, unknown>)[k]) return false;
  return true;
}
