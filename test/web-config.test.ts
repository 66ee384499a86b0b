import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import {
  ConfigError,
  clientCertAllowed,
  loadWebConfig,
  parseWebConfig,
  type TlsServerConfig,
} from "../src/agent/web-config.js";

const FILE = "/etc/sops-agent/web.yml";

describe("parseWebConfig", () => {
  it("reads exporter-toolkit's sample file unchanged", () => {
    const web = parseWebConfig(
      [
        "tls_server_config:",
        "  cert_file: server.crt",
        "  key_file: server.key",
        "basic_auth_users:",
        "  alice: $2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze",
        "rate_limit:",
        '  interval: "1s"',
        "  burst: 20",
      ].join("\n"),
      FILE,
    );
    expect(web.tls?.cert).toEqual({ file: "/etc/sops-agent/server.crt" });
    expect(web.tls?.clientAuthType).toBe("NoClientCert");
    expect(web.tls?.minVersion).toBe("TLS12");
    expect([...web.basicAuthUsers.keys()]).toEqual(["alice"]);
    expect(web.rateLimit).toEqual({ intervalSeconds: 1, burst: 20 });
  });

  it("reads client auth, versions, suites, curves and headers", () => {
    const web = parseWebConfig(
      [
        "tls_server_config:",
        "  cert: '-----BEGIN CERTIFICATE-----'",
        "  key_file: /k",
        "  client_ca_file: /ca",
        "  client_auth_type: RequireAndVerifyClientCert",
        "  client_allowed_sans: [prometheus.example]",
        "  min_version: TLS13",
        "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]",
        "  curve_preferences: [X25519, CurveP256]",
        "http_server_config:",
        "  http2: false",
        "  headers:",
        "    X-Frame-Options: deny",
        "    Content-Security-Policy: ''",
      ].join("\n"),
      FILE,
    );
    expect(web.tls?.cert).toEqual({ inline: "-----BEGIN CERTIFICATE-----" });
    expect(web.tls?.clientCa).toEqual({ file: "/ca" });
    expect(web.http2).toBe(false);
    expect(web.headers).toEqual({ "X-Frame-Options": "deny" });
  });

  it.each([
    ["unknown top key", "tls_config:\n  cert_file: a\n", `${FILE}:1: unknown key "tls_config"`],
    [
      "unknown tls key",
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  ca_file: c\n",
      `${FILE}:4: unknown key "tls_server_config.ca_file"`,
    ],
    [
      "missing key_file",
      "tls_server_config:\n  cert_file: a\n",
      `${FILE}:2: "tls_server_config": missing key_file (the server key)`,
    ],
    [
      "cert twice",
      "tls_server_config:\n  cert: x\n  cert_file: a\n  key_file: b\n",
      `${FILE}:2: "tls_server_config": set either cert or cert_file, not both`,
    ],
    [
      "bad auth type",
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Always\n",
      `${FILE}:2: "tls_server_config.client_auth_type" must be one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert, got "Always"`,
    ],
    [
      "CA without policy",
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
      `${FILE}:2: "tls_server_config": a client CA is set but client_auth_type is NoClientCert`,
    ],
    [
      "verify without CA",
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
      `${FILE}:2: "tls_server_config": RequireAndVerifyClientCert needs client_ca_file`,
    ],
    [
      "bad version",
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: SSL3\n",
      `${FILE}:2: "tls_server_config.min_version" must be one of TLS10, TLS11, TLS12, TLS13, got "SSL3"`,
    ],
    [
      "bad suite",
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [RC4]\n",
      `${FILE}:4: "tls_server_config.cipher_suites": unknown cipher suite "RC4"`,
    ],
    [
      "unknown header",
      "http_server_config:\n  headers:\n    X-Powered-By: me\n",
      `${FILE}:3: unknown key "http_server_config.headers.X-Powered-By"`,
    ],
    [
      "plain password",
      "basic_auth_users:\n  alice: hunter2\n",
      `${FILE}:2: "basic_auth_users.alice" is not a bcrypt hash`,
    ],
    [
      "bad interval",
      "rate_limit:\n  interval: soon\n",
      `${FILE}:2: "rate_limit.interval" is not a duration (e.g. 30s, 1m30s, 500ms, 2h): "soon"`,
    ],
    [
      "http2 not bool",
      "http_server_config:\n  http2: yes please\n",
      `${FILE}:2: "http_server_config.http2" must be true or false`,
    ],
  ])("rejects %s", (_name, text, message) => {
    expect(() => parseWebConfig(text, FILE)).toThrow(ConfigError);
    expect(messageOf(() => parseWebConfig(text, FILE))).toBe(message);
  });

  it("names a certificate it cannot read at load time", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "web-"));
    writeFileSync(`${dir}/web.yml`, "tls_server_config:\n  cert_file: absent.crt\n  key_file: absent.key\n");
    expect(() => loadWebConfig(`${dir}/web.yml`)).toThrowError(
      `${dir}/web.yml:1: cannot read ${dir}/absent.crt (ENOENT)`,
    );
  });

  it.each([
    ["1s", 1],
    ["500ms", 0.5],
    ["1m30s", 90],
    ["1500us", 0.0015],
  ])("reads rate_limit.interval %j with the shared duration parser", (text, seconds) => {
    const config = parseWebConfig(`rate_limit:\n  interval: ${text}\n  burst: 2\n`, "/etc/web.yml");
    expect(config.rateLimit).toEqual({ intervalSeconds: seconds, burst: 2 });
  });

  it.each([["x"], ["1d"], ['"30"']])(
    "refuses rate_limit.interval %j, naming the file, line and field",
    (text) => {
      expect(() => parseWebConfig(`rate_limit:\n  interval: ${text}\n`, "/etc/web.yml")).toThrow(
        /\/etc\/web\.yml:2: "rate_limit\.interval" is not a duration/,
      );
    },
  );
});

describe("client certificate policies", () => {
  const tls = (clientAuthType: TlsServerConfig["clientAuthType"], sans: string[] = []): TlsServerConfig => ({
    cert: { inline: "" },
    key: { inline: "" },
    clientCa: null,
    clientAuthType,
    clientAllowedSans: sans,
    minVersion: "TLS12",
    maxVersion: "TLS13",
    cipherSuites: [],
    preferServerCipherSuites: true,
    curvePreferences: [],
  });
  const none = { present: false, authorized: false, subjectAltNames: [] };
  const bad = { present: true, authorized: false, subjectAltNames: ["DNS:x"] };
  const good = { present: true, authorized: true, subjectAltNames: ["DNS:prom"] };
  it.each([
    ["NoClientCert", none, true],
    ["RequestClientCert", bad, true],
    ["RequireAnyClientCert", none, false],
    ["RequireAnyClientCert", bad, true],
    ["VerifyClientCertIfGiven", none, true],
    ["VerifyClientCertIfGiven", bad, false],
    ["RequireAndVerifyClientCert", bad, false],
    ["RequireAndVerifyClientCert", good, true],
  ] as const)("%s with %j → %s", (type, peer, want) => {
    expect(clientCertAllowed(tls(type), peer)).toBe(want);
  });
  it("checks allowed SANs", () => {
    expect(clientCertAllowed(tls("RequireAndVerifyClientCert", ["prom"]), good)).toBe(true);
    expect(clientCertAllowed(tls("RequireAndVerifyClientCert", ["other"]), good)).toBe(false);
  });
});

function messageOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  return "(no error)";
}
