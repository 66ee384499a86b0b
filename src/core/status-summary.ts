// What the human status report needs of a status document: everything but the per-secret list, which is
// reduced to counts per scope. At 10,000 secrets the document is ~1.6 MB of JSON, almost all of it that list;
// the summary is a few hundred bytes on a healthy host. The agent's status socket sends it first, so an
// answered `status` parses only this (src/agent/status-socket.ts, src/cli/agent-socket.ts). Pure.

import type { ScopeName } from "./model.js";
import type { StatusDocument } from "./report.js";

/** How one scope's declared files fare. */
export interface FileTally {
  readonly scope: ScopeName;
  readonly secrets: number;
  readonly templates: number;
  /** Secrets and templates a critical problem names. */
  readonly notOk: number;
}

export type StatusSummary = Omit<StatusDocument, "secrets"> & {
  /** One tally per scope that declares files, in the order the document lists them. */
  readonly files: readonly FileTally[];
};

export function summarize(doc: StatusDocument): StatusSummary {
  const tallies = new Map<
    ScopeName,
    { scope: ScopeName; secrets: number; templates: number; notOk: number }
  >();
  for (const s of doc.secrets) {
    let t = tallies.get(s.scope);
    if (t === undefined) {
      t = { scope: s.scope, secrets: 0, templates: 0, notOk: 0 };
      tallies.set(s.scope, t);
    }
    if (s.kind === "secret") t.secrets++;
    else t.templates++;
    if (!s.ok) t.notOk++;
  }
  return {
    healthy: doc.healthy,
    incomplete: doc.incomplete,
    scopes: doc.scopes,
    problems: doc.problems,
    recipients: doc.recipients,
    ...(doc.partialView === undefined ? {} : { partialView: doc.partialView }),
    files: [...tallies.values()],
  };
}
