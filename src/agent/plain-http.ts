// A plain-HTTP request to the TLS port (a scrape config that still says `scheme: http`) gets a clear
// 400 instead of a dropped connection: the same answer Go's net/http, and so every Prometheus exporter,
// gives. OpenSSL recognises the request line as its first record (ERR_SSL_HTTP_REQUEST); the answer is
// written in clear on the raw socket under the TLS one.

import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";

const BODY = "Client sent an HTTP request to an HTTPS server.\n";
const ANSWER = `HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(BODY)}\r\n\r\n${BODY}`;

export function answerPlainHttp(err: Error & { code?: string }, socket: TLSSocket): void {
  if (err.code !== "ERR_SSL_HTTP_REQUEST") return;
  // Node keeps the socket a TLSSocket wraps as `_parent`; nothing else exposes it.
  const raw = (socket as TLSSocket & { _parent?: unknown })._parent;
  if (raw !== null && typeof raw === "object" && "end" in raw && "destroyed" in raw) {
    const s = raw as Socket;
    if (!s.destroyed) s.end(ANSWER);
  }
}
