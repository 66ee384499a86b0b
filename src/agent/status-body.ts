// The /status body: one serialisation per published document, shared by every request for it. Serialising
// per request made 50 concurrent requests of a 40 MB document take the agent to 3.3 GB resident.

import type { StatusDocument } from "../core/report.js";

// Keyed by the document itself: a new check publishes a new document, and the old body goes with the old one.
const bodies = new WeakMap<StatusDocument, Buffer>();
let serialisations = 0;

/** The document as `status --json` prints it, serialised on first use and cached while it is published. */
export function statusBody(doc: StatusDocument): Buffer {
  let body = bodies.get(doc);
  if (body === undefined) {
    serialisations++;
    body = Buffer.from(`${JSON.stringify(doc, null, 2)}\n`, "utf8");
    bodies.set(doc, body);
  }
  return body;
}

/** How many documents have been serialised in this process (tests count them). */
export function statusSerialisations(): number {
  return serialisations;
}
