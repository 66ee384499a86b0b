// The agent's HTTP endpoints. Handlers only read what the agent last published: a scrape never touches the
// file system. TLS, client certificates, basic auth, headers and rate limiting follow exporter-toolkit's
// web config so an operator's existing file works unchanged.

import * as http from "node:http";
import type * as Https from "node:https";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import type { StatusDocument } from "../core/report.js";
import { BasicAuth } from "./basic-auth.js";
import { formatListen, type ListenAddress } from "./config.js";
import type { Logger } from "./logger.js";
import { answerPlainHttp } from "./plain-http.js";
import { statusBody } from "./status-body.js";
import {
  clientCertAllowed,
  NO_WEB_CONFIG,
  tlsNeedsNewServer,
  tlsOptions,
  type WebConfig,
} from "./web-config.js";

export interface HttpSource {
  /** True once the first full check has been published. */
  ready(): boolean;
  /** The body: one string, or parts written in order (a cached Buffer is sent as is, never re-encoded). */
  metrics(): Promise<string | readonly (string | Buffer)[]>;
  /** The same body gzip-compressed, served when the client accepts gzip. */
  metricsGzip?(): Promise<readonly Buffer[]>;
  readonly metricsContentType: string;
  status(): StatusDocument | null;
  readonly version: string;
}

export interface AgentServerOptions {
  readonly source: HttpSource;
  readonly logger: Logger;
  readonly webConfig?: WebConfig;
  /** For errors about the certificate files; "" when there is none. */
  readonly webConfigFile?: string;
  readonly headersTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
}

/**
 * node:https (and the TLS stack under it) only for a server that serves TLS: a plain-HTTP agent does not load
 * it, ~1 MiB resident (issue 11). A builtin loads synchronously through require.
 */
function httpsModule(): typeof Https {
  return createRequire(import.meta.url)("node:https") as typeof Https;
}

const ROUTES = new Set(["/", "/metrics", "/healthz", "/readyz", "/status"]);
const ALLOW = "GET, HEAD";

export class AgentServer {
  private server: http.Server | Https.Server;
  private web: WebConfig;
  private auth: BasicAuth;
  private bucket: { tokens: number; at: number } = { tokens: 0, at: 0 };
  private readonly opts: AgentServerOptions;

  constructor(opts: AgentServerOptions) {
    this.opts = opts;
    this.web = opts.webConfig ?? NO_WEB_CONFIG;
    this.auth = new BasicAuth(this.web.basicAuthUsers);
    this.server = this.create();
  }

  get tls(): boolean {
    return this.web.tls !== null;
  }

  /** Listens; resolves with the bound address (port 0 picks a free one). */
  listen(addr: ListenAddress): Promise<ListenAddress> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once("error", onError);
      this.server.listen(addr.port, addr.host, () => {
        this.server.off("error", onError);
        const a = this.server.address() as AddressInfo;
        this.opts.logger.info(
          { event: "listening", address: formatListen({ host: a.address, port: a.port }), tls: this.tls },
          "listening",
        );
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  /**
   * Applies a new web config. Auth, headers and certificates change in place; switching TLS on or off, or
   * changing the client-certificate policy, needs a new server: returns false then, and the caller
   * restarts the server.
   */
  setWebConfig(web: WebConfig): boolean {
    if (tlsNeedsNewServer(this.web.tls, web.tls)) return false;
    if (web.tls !== null && isHttps(this.server))
      this.server.setSecureContext(tlsOptions(web.tls, this.opts.webConfigFile ?? ""));
    this.web = web;
    this.auth.setUsers(web.basicAuthUsers);
    return true;
  }

  /** What basic auth has done: compares, cache hits, throttled attempts. */
  get authCounts(): BasicAuth["counts"] {
    return this.auth.counts;
  }

  async close(): Promise<void> {
    await Promise.all([
      new Promise<void>((resolve) => {
        this.server.close(() => resolve());
        // Keep-alive connections of a scraper would otherwise hold the close up to keepAliveTimeout.
        this.server.closeAllConnections();
      }),
      this.auth.close(),
    ]);
  }

  private create(): http.Server | Https.Server {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.handle(req, res).catch((err: unknown) => {
        this.opts.logger.error({ event: "http_error", err: String(err) }, "request failed");
        if (!res.headersSent) this.send(req, res, 500, "text/plain; charset=utf-8", "internal error\n");
        else res.destroy();
      });
    };
    const server =
      this.web.tls === null
        ? http.createServer(handler)
        : httpsModule().createServer(tlsOptions(this.web.tls, this.opts.webConfigFile ?? ""), handler);
    if (isHttps(server)) {
      server.on("tlsClientError", answerPlainHttp);
      // Policies that Node's handshake cannot express (any certificate, verify if given, allowed SANs).
      server.on("secureConnection", (socket: TLSSocket) => {
        const tls = this.web.tls;
        if (tls === null) return;
        const cert = socket.getPeerCertificate();
        const present = cert !== null && typeof cert === "object" && Object.keys(cert).length > 0;
        const sans =
          present && typeof cert.subjectaltname === "string" ? cert.subjectaltname.split(/,\s*/) : [];
        if (!clientCertAllowed(tls, { present, authorized: socket.authorized, subjectAltNames: sans }))
          socket.destroy();
      });
    }
    server.headersTimeout = this.opts.headersTimeoutMs ?? 10_000;
    server.requestTimeout = this.opts.requestTimeoutMs ?? 30_000;
    server.keepAliveTimeout = 5_000;
    return server;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    for (const [k, v] of Object.entries(this.web.headers)) res.setHeader(k, v);
    if (!this.takeToken()) {
      this.send(req, res, 429, "text/plain; charset=utf-8", "too many requests\n");
      return;
    }
    if (this.auth.enabled) {
      const verdict = await this.auth.check(req.headers.authorization, req.socket.remoteAddress ?? "");
      if (verdict.kind === "throttled") {
        res.setHeader("Retry-After", String(verdict.retryAfterSeconds));
        this.send(req, res, 429, "text/plain; charset=utf-8", "too many failed logins\n");
        return;
      }
      if (verdict.kind === "denied") {
        res.setHeader("WWW-Authenticate", 'Basic realm="sops-agent", charset="UTF-8"');
        this.send(req, res, 401, "text/plain; charset=utf-8", "unauthorized\n");
        return;
      }
    }
    const pathname = (req.url ?? "/").split("?")[0] ?? "/";
    if (!ROUTES.has(pathname)) {
      this.send(req, res, 404, "text/plain; charset=utf-8", "not found\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("Allow", ALLOW);
      this.send(req, res, 405, "text/plain; charset=utf-8", "method not allowed\n");
      return;
    }
    const src = this.opts.source;
    switch (pathname) {
      case "/metrics":
        res.setHeader("Vary", "Accept-Encoding");
        if (src.metricsGzip !== undefined && acceptsGzip(req.headers["accept-encoding"])) {
          res.setHeader("Content-Encoding", "gzip");
          this.send(req, res, 200, src.metricsContentType, await src.metricsGzip());
        } else this.send(req, res, 200, src.metricsContentType, await src.metrics());
        return;
      case "/healthz":
        this.send(req, res, 200, "text/plain; charset=utf-8", "ok\n");
        return;
      case "/readyz":
        if (src.ready()) this.send(req, res, 200, "text/plain; charset=utf-8", "ready\n");
        else this.send(req, res, 503, "text/plain; charset=utf-8", "not ready: the first check is running\n");
        return;
      case "/status": {
        const doc = src.status();
        if (doc === null)
          this.send(req, res, 503, "text/plain; charset=utf-8", "not ready: the first check is running\n");
        else this.send(req, res, 200, "application/json; charset=utf-8", [statusBody(doc)]);
        return;
      }
      default:
        this.send(req, res, 200, "text/html; charset=utf-8", landingPage(src.version));
    }
  }

  /** Token bucket of exporter-toolkit's rate_limit. */
  private takeToken(): boolean {
    const limit = this.web.rateLimit;
    if (limit === null) return true;
    const now = Date.now() / 1000;
    const b = this.bucket;
    b.tokens = Math.min(limit.burst, b.tokens + (now - b.at) / limit.intervalSeconds);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private send(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    code: number,
    type: string,
    body: string | readonly (string | Buffer)[],
  ): void {
    const parts = typeof body === "string" ? [body] : body;
    let length = 0;
    for (const p of parts) length += typeof p === "string" ? Buffer.byteLength(p) : p.length;
    res.statusCode = code;
    res.setHeader("Content-Type", type);
    res.setHeader("Content-Length", length);
    res.setHeader("Cache-Control", "no-store");
    // Node sends no body for HEAD by itself; ending without one keeps that explicit.
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    for (let i = 0; i < parts.length - 1; i++) res.write(parts[i] as string | Buffer);
    res.end(parts[parts.length - 1]);
  }
}

/**
 * Whether an Accept-Encoding header (RFC 9110 12.5.3) allows gzip: `gzip`, `x-gzip` or `*` with a q above
 * zero, and no `gzip;q=0` refusing it.
 */
export function acceptsGzip(header: string | undefined): boolean {
  if (header === undefined) return false;
  let star = false;
  for (const part of header.split(",")) {
    const [name = "", ...params] = part.split(";");
    const coding = name.trim().toLowerCase();
    const q = params.map((p) => /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(p)?.[1]).find((v) => v !== undefined);
    const allowed = q === undefined || Number(q) > 0;
    if (coding === "gzip" || coding === "x-gzip") return allowed;
    if (coding === "*") star = allowed;
  }
  return star;
}

function landingPage(version: string): string {
  const links = [
    ["/metrics", "Metrics"],
    ["/status", "Status (JSON, as <code>sops-agent status --json</code>)"],
    ["/healthz", "Health"],
    ["/readyz", "Readiness (ready after the first full check)"],
  ]
    .map(([href, text]) => `      <li><a href="${href}">${text}</a></li>`)
    .join("\n");
  return `<!DOCTYPE html>
<html lang="en">
  <head><meta charset="utf-8"><title>sops-agent</title></head>
  <body>
    <h1>sops-agent</h1>
    <p>Health of decrypted sops-nix secrets. Version ${version}.</p>
    <ul>
${links}
    </ul>
  </body>
</html>
`;
}

/** An https.Server is a tls.Server: it alone has setSecureContext (http.Server has none). */
function isHttps(server: http.Server | Https.Server): server is Https.Server {
  return "setSecureContext" in server;
}
