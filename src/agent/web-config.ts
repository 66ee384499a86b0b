// Prometheus exporter-toolkit's `--web.config.file` format, so an operator's existing file works unchanged:
// TLS (with client certificates), extra response headers, basic auth with bcrypt hashes, rate limiting.
// Parsing is pure; `loadWebConfig` reads the file and the certificates it names.

import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import type * as Tls from "node:tls";
import { parseDuration } from "../core/duration.js";
import { errnoOf } from "../host/rootfs.js";
import {
  booleanValue,
  ConfigError,
  type Entry,
  integerValue,
  mappingEntries,
  stringList,
  stringValue,
  YamlSource,
} from "./strict-yaml.js";

export { ConfigError };

export const CLIENT_AUTH_TYPES = [
  "NoClientCert",
  "RequestClientCert",
  "RequireAnyClientCert",
  "VerifyClientCertIfGiven",
  "RequireAndVerifyClientCert",
] as const;
export type ClientAuthType = (typeof CLIENT_AUTH_TYPES)[number];

const TLS_VERSIONS = { TLS10: "TLSv1", TLS11: "TLSv1.1", TLS12: "TLSv1.2", TLS13: "TLSv1.3" } as const;
type TlsVersionName = keyof typeof TLS_VERSIONS;

// Go's names for the cipher suites crypto/tls offers, mapped to OpenSSL's names that Node understands.
const CIPHER_SUITES: Readonly<Record<string, string>> = {
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: "ECDHE-ECDSA-AES128-GCM-SHA256",
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: "ECDHE-RSA-AES128-GCM-SHA256",
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: "ECDHE-ECDSA-AES256-GCM-SHA384",
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: "ECDHE-RSA-AES256-GCM-SHA384",
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-RSA-CHACHA20-POLY1305",
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: "ECDHE-ECDSA-CHACHA20-POLY1305",
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: "ECDHE-RSA-CHACHA20-POLY1305",
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: "ECDHE-ECDSA-AES128-SHA",
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: "ECDHE-RSA-AES128-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: "ECDHE-ECDSA-AES256-SHA",
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: "ECDHE-RSA-AES256-SHA",
  TLS_RSA_WITH_AES_128_GCM_SHA256: "AES128-GCM-SHA256",
  TLS_RSA_WITH_AES_256_GCM_SHA384: "AES256-GCM-SHA384",
  TLS_RSA_WITH_AES_128_CBC_SHA: "AES128-SHA",
  TLS_RSA_WITH_AES_256_CBC_SHA: "AES256-SHA",
};

const CURVES: Readonly<Record<string, string>> = {
  CurveP256: "P-256",
  CurveP384: "P-384",
  CurveP521: "P-521",
  X25519: "X25519",
};

const HEADERS = [
  "Content-Security-Policy",
  "X-Frame-Options",
  "X-Content-Type-Options",
  "X-XSS-Protection",
  "Strict-Transport-Security",
] as const;

/** PEM material either inline or from a file (resolved relative to the web config file). */
export type Pem = { readonly inline: string } | { readonly file: string };

export interface TlsServerConfig {
  readonly cert: Pem;
  readonly key: Pem;
  readonly clientCa: Pem | null;
  readonly clientAuthType: ClientAuthType;
  readonly clientAllowedSans: readonly string[];
  readonly minVersion: TlsVersionName;
  readonly maxVersion: TlsVersionName;
  readonly cipherSuites: readonly string[];
  readonly preferServerCipherSuites: boolean;
  readonly curvePreferences: readonly string[];
}

export interface WebConfig {
  readonly tls: TlsServerConfig | null;
  readonly http2: boolean;
  readonly headers: Readonly<Record<string, string>>;
  /** user → bcrypt hash; empty means no authentication. */
  readonly basicAuthUsers: ReadonlyMap<string, string>;
  /** null or interval 0: no rate limit. */
  readonly rateLimit: { readonly intervalSeconds: number; readonly burst: number } | null;
}

export const NO_WEB_CONFIG: WebConfig = {
  tls: null,
  http2: true,
  headers: {},
  basicAuthUsers: new Map(),
  rateLimit: null,
};

/** Parses the web config file's text; `file` names it in errors and anchors relative paths. */
export function parseWebConfig(text: string, file: string): WebConfig {
  const src = YamlSource.parse(file, text);
  let tls: TlsServerConfig | null = null;
  let http2 = true;
  let headers: Record<string, string> = {};
  const users = new Map<string, string>();
  let rateLimit: WebConfig["rateLimit"] = null;
  const top = ["tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"];
  for (const entry of mappingEntries(src, src.root, top, "")) {
    switch (entry.key) {
      case "tls_server_config":
        tls = entry.value === null ? null : parseTls(src, entry, path.dirname(path.resolve(file)));
        break;
      case "http_server_config":
        for (const e of mappingEntries(src, entry.value, ["http2", "headers"], "http_server_config")) {
          if (e.key === "http2") http2 = booleanValue(src, e, "http_server_config.http2");
          else headers = parseHeaders(src, e);
        }
        break;
      case "basic_auth_users":
        for (const e of mappingEntries(src, entry.value, null, "basic_auth_users")) {
          const hash = stringValue(src, e, `basic_auth_users.${e.key}`);
          if (!/^\$2[abxy]?\$[0-9]{2}\$[./A-Za-z0-9]{53}$/.test(hash))
            throw src.error(e.value, `"basic_auth_users.${e.key}" is not a bcrypt hash`);
          users.set(e.key, hash);
        }
        break;
      case "rate_limit":
        rateLimit = parseRateLimit(src, entry);
        break;
    }
  }
  return { tls, http2, headers, basicAuthUsers: users, rateLimit };
}

function parseTls(src: YamlSource, entry: Entry, dir: string): TlsServerConfig {
  const keys = [
    "cert",
    "key",
    "client_ca",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
  ];
  const v: Record<string, string> = {};
  let sans: string[] = [];
  let suites: string[] = [];
  let curves: string[] = [];
  let prefer = true;
  for (const e of mappingEntries(src, entry.value, keys, "tls_server_config")) {
    const name = `tls_server_config.${e.key}`;
    if (e.key === "client_allowed_sans") sans = stringList(src, e, name);
    else if (e.key === "cipher_suites") {
      suites = stringList(src, e, name);
      for (const s of suites)
        if (CIPHER_SUITES[s] === undefined)
          throw src.error(e.value, `"${name}": unknown cipher suite "${s}"`);
    } else if (e.key === "curve_preferences") {
      curves = stringList(src, e, name);
      for (const c of curves)
        if (CURVES[c] === undefined) throw src.error(e.value, `"${name}": unknown curve "${c}"`);
    } else if (e.key === "prefer_server_cipher_suites") prefer = booleanValue(src, e, name);
    else v[e.key] = stringValue(src, e, name);
  }
  const at = entry.value ?? entry.keyNode;
  const pem = (inline: string, file: string, what: string, required: boolean): Pem | null => {
    const i = v[inline];
    const f = v[file];
    if (i !== undefined && f !== undefined)
      throw src.error(at, `"tls_server_config": set either ${inline} or ${file}, not both`);
    if (i !== undefined) return { inline: i };
    if (f !== undefined) return { file: path.resolve(dir, f) };
    if (required) throw src.error(at, `"tls_server_config": missing ${file} (the ${what})`);
    return null;
  };
  const cert = pem("cert", "cert_file", "server certificate", true);
  const key = pem("key", "key_file", "server key", true);
  const clientCa = pem("client_ca", "client_ca_file", "client CA", false);
  const authText = v.client_auth_type ?? "NoClientCert";
  if (!(CLIENT_AUTH_TYPES as readonly string[]).includes(authText))
    throw src.error(
      at,
      `"tls_server_config.client_auth_type" must be one of ${CLIENT_AUTH_TYPES.join(", ")}, got "${authText}"`,
    );
  const clientAuthType = authText as ClientAuthType;
  if (clientCa !== null && clientAuthType === "NoClientCert")
    throw src.error(at, `"tls_server_config": a client CA is set but client_auth_type is NoClientCert`);
  if (clientAuthType === "RequireAndVerifyClientCert" && clientCa === null)
    throw src.error(at, `"tls_server_config": RequireAndVerifyClientCert needs client_ca_file`);
  if (
    sans.length > 0 &&
    clientAuthType !== "RequireAnyClientCert" &&
    clientAuthType !== "RequireAndVerifyClientCert"
  )
    throw src.error(
      at,
      `"tls_server_config.client_allowed_sans" needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert`,
    );
  const version = (k: "min_version" | "max_version", dflt: TlsVersionName): TlsVersionName => {
    const t = v[k] ?? dflt;
    if (!(t in TLS_VERSIONS))
      throw src.error(
        at,
        `"tls_server_config.${k}" must be one of ${Object.keys(TLS_VERSIONS).join(", ")}, got "${t}"`,
      );
    return t as TlsVersionName;
  };
  // Checked non-null above (required), narrowed here for the type checker.
  if (cert === null || key === null) throw src.error(at, `"tls_server_config": missing cert_file`);
  return {
    cert,
    key,
    clientCa,
    clientAuthType,
    clientAllowedSans: sans,
    minVersion: version("min_version", "TLS12"),
    maxVersion: version("max_version", "TLS13"),
    cipherSuites: suites,
    preferServerCipherSuites: prefer,
    curvePreferences: curves,
  };
}

function parseHeaders(src: YamlSource, entry: Entry): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of mappingEntries(src, entry.value, HEADERS, "http_server_config.headers")) {
    const value = stringValue(src, e, `http_server_config.headers.${e.key}`);
    if (/[\r\n]/.test(value))
      throw src.error(e.value, `"http_server_config.headers.${e.key}" must be one line`);
    if (value !== "") out[e.key] = value;
  }
  return out;
}

function parseRateLimit(src: YamlSource, entry: Entry): WebConfig["rateLimit"] {
  let intervalSeconds = 0;
  let burst = 0;
  for (const e of mappingEntries(src, entry.value, ["interval", "burst"], "rate_limit")) {
    if (e.key === "burst") burst = integerValue(src, e, "rate_limit.burst");
    else {
      const t = stringValue(src, e, "rate_limit.interval");
      const parsed = parseDuration(t, "go");
      if (!parsed.ok) throw src.error(e.value, `"rate_limit.interval" ${parsed.reason}: "${t}"`);
      intervalSeconds = parsed.ms / 1000;
    }
  }
  return intervalSeconds > 0 ? { intervalSeconds, burst: Math.max(1, burst) } : null;
}

/** Reads and parses a web config file; a read failure is a ConfigError on line 1. */
export function loadWebConfig(file: string): WebConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(file, 1, `cannot read the web config file (${errnoOf(err)})`);
  }
  const config = parseWebConfig(text, file);
  // Load the certificates now, as the server will, so a bad or mismatched file is reported by --check-config
  // and at load or reload, not at the first TLS handshake.
  if (config.tls !== null) checkTlsMaterial(config.tls, tlsOptions(config.tls, file), file);
  return config;
}

/** Throws a ConfigError naming the file when a certificate or key cannot be used, or the two do not match. */
function checkTlsMaterial(
  tls: TlsServerConfig,
  opts: ReturnType<typeof tlsOptions>,
  webConfigFile: string,
): void {
  const fail = (message: string) => new ConfigError(webConfigFile, 1, message);
  const reason = (err: unknown) =>
    err instanceof Error ? err.message.replace(/^error:[0-9A-F]+:/, "") : "unknown";
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(opts.cert);
  } catch (err) {
    throw fail(`cannot use ${pemName(tls.cert, "cert")} as the server certificate (${reason(err)})`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(opts.key);
  } catch (err) {
    throw fail(`cannot use ${pemName(tls.key, "key")} as the server key (${reason(err)})`);
  }
  if (!cert.checkPrivateKey(key))
    throw fail(
      `${pemName(tls.cert, "cert")} and ${pemName(tls.key, "key")} do not match: the key is not the certificate's`,
    );
  if (opts.ca !== undefined && tls.clientCa !== null)
    try {
      new X509Certificate(opts.ca);
    } catch (err) {
      throw fail(`cannot use ${pemName(tls.clientCa, "client_ca")} as the client CA (${reason(err)})`);
    }
  // Whatever else the server would refuse (a cipher or curve list this OpenSSL lacks).
  try {
    // node:tls only when TLS is configured: a plain-HTTP agent never loads it (issue 11).
    (createRequire(import.meta.url)("node:tls") as typeof Tls).createSecureContext(opts);
  } catch (err) {
    throw fail(`the TLS settings cannot be used (${reason(err)})`);
  }
}

function pemName(p: Pem, inlineKey: string): string {
  return "file" in p ? p.file : `the inline ${inlineKey}`;
}

/**
 * Whether going from one TLS config to the other needs a new server: the client-certificate policy is a
 * property of the listening server (requestCert, rejectUnauthorized), which setSecureContext does not change.
 */
export function tlsNeedsNewServer(from: TlsServerConfig | null, to: TlsServerConfig | null): boolean {
  if (from === null || to === null) return from !== to;
  return from.clientAuthType !== to.clientAuthType;
}

/** Options for `https.createServer` / `setSecureContext`. Throws a ConfigError when a file cannot be read. */
export function tlsOptions(
  tls: TlsServerConfig,
  webConfigFile: string,
): {
  cert: string;
  key: string;
  ca?: string;
  requestCert: boolean;
  rejectUnauthorized: boolean;
  minVersion: "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3";
  maxVersion: "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3";
  ciphers?: string;
  honorCipherOrder: boolean;
  ecdhCurve?: string;
} {
  const read = (p: Pem): string => {
    if ("inline" in p) return p.inline;
    try {
      return readFileSync(p.file, "utf8");
    } catch (err) {
      throw new ConfigError(webConfigFile, 1, `cannot read ${p.file} (${errnoOf(err)})`);
    }
  };
  const ca = tls.clientCa === null ? undefined : read(tls.clientCa);
  return {
    cert: read(tls.cert),
    key: read(tls.key),
    ...(ca === undefined ? {} : { ca }),
    requestCert: tls.clientAuthType !== "NoClientCert",
    // Only this policy may refuse the handshake; the others are enforced per request (see clientCertAllowed).
    rejectUnauthorized: tls.clientAuthType === "RequireAndVerifyClientCert",
    minVersion: TLS_VERSIONS[tls.minVersion],
    maxVersion: TLS_VERSIONS[tls.maxVersion],
    ...(tls.cipherSuites.length === 0
      ? {}
      : { ciphers: tls.cipherSuites.map((s) => CIPHER_SUITES[s] ?? s).join(":") }),
    honorCipherOrder: tls.preferServerCipherSuites,
    ...(tls.curvePreferences.length === 0
      ? {}
      : { ecdhCurve: tls.curvePreferences.map((c) => CURVES[c] ?? c).join(":") }),
  };
}

/** What a TLS socket tells about its client certificate. */
export interface PeerCertificate {
  readonly present: boolean;
  /** Whether it chains to the client CA. */
  readonly authorized: boolean;
  /** Subject alternative names, as `DNS:x`, `IP Address:y`, `email:z`, `URI:w`. */
  readonly subjectAltNames: readonly string[];
}

/** Whether a request may go on under the client_auth_type policy (Go's tls.ClientAuthType semantics). */
export function clientCertAllowed(tls: TlsServerConfig, peer: PeerCertificate): boolean {
  switch (tls.clientAuthType) {
    case "NoClientCert":
    case "RequestClientCert":
      return true;
    case "RequireAnyClientCert":
      return peer.present && sansAllowed(tls, peer);
    case "VerifyClientCertIfGiven":
      return !peer.present || peer.authorized;
    case "RequireAndVerifyClientCert":
      return peer.present && peer.authorized && sansAllowed(tls, peer);
  }
}

function sansAllowed(tls: TlsServerConfig, peer: PeerCertificate): boolean {
  if (tls.clientAllowedSans.length === 0) return true;
  const names = peer.subjectAltNames.map((s) => s.slice(s.indexOf(":") + 1));
  return names.some((n) => tls.clientAllowedSans.includes(n));
}
