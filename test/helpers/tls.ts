// Certificates made by the real openssl for TLS tests: a self-signed server certificate for 127.0.0.1, a
// client CA with one client certificate it signed, and a key that belongs to neither.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

export interface TlsMaterial {
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCa: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** A valid EC key that matches no certificate here. */
  readonly otherKey: string;
  read(file: string): string;
}

export function makeTlsMaterial(openssl: string, dir: string): TlsMaterial {
  const p = (name: string) => path.join(dir, name);
  const run = (args: string[]) => execFileSync(openssl, args, { cwd: dir, stdio: "ignore" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  run(
    [
      "req",
      "-x509",
      ...ec,
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ].concat(["-keyout", p("server.key"), "-out", p("server.crt")]),
  );
  run([
    "req",
    "-x509",
    ...ec,
    "-days",
    "1",
    "-subj",
    "/CN=client-ca",
    "-keyout",
    p("ca.key"),
    "-out",
    p("ca.crt"),
  ]);
  run(["req", ...ec, "-subj", "/CN=prometheus", "-keyout", p("client.key"), "-out", p("client.csr")]);
  run(
    [
      "x509",
      "-req",
      "-in",
      p("client.csr"),
      "-CA",
      p("ca.crt"),
      "-CAkey",
      p("ca.key"),
      "-CAcreateserial",
    ].concat(["-days", "1", "-out", p("client.crt")]),
  );
  run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", p("other.key")]);
  return {
    serverCert: p("server.crt"),
    serverKey: p("server.key"),
    clientCa: p("ca.crt"),
    clientCert: p("client.crt"),
    clientKey: p("client.key"),
    otherKey: p("other.key"),
    read: (file) => fs.readFileSync(file, "utf8"),
  };
}
