// Declared secrets and scopes built in memory, with sops-nix's defaults, for the pure checks' tests and
// the benchmarks (which skip manifest parsing). Fields not given take the NixOS system scope's values.

import type { DeclaredKey, DeclaredScope, DeclaredSecret, DeclaredTemplate } from "../core/model.js";

const ROOT = { kind: "id", id: 0 } as const;

export function declaredSecret(
  name: string,
  fields: Partial<Omit<DeclaredSecret, "kind" | "name">> = {},
): DeclaredSecret {
  return {
    kind: "secret",
    name,
    path: `/run/secrets/${name}`,
    mode: 0o400,
    modeText: "0400",
    owner: ROOT,
    group: ROOT,
    sopsFile: "/nix/store/00000000000000000000000000000000-secrets.yaml",
    key: name,
    format: "yaml",
    sopsFileHash: "",
    restartUnits: [],
    reloadUnits: [],
    ...fields,
  };
}

export function declaredTemplate(
  name: string,
  fields: Partial<Omit<DeclaredTemplate, "kind" | "name">> = {},
): DeclaredTemplate {
  return {
    kind: "template",
    name,
    path: `/run/secrets/rendered/${name}`,
    mode: 0o400,
    modeText: "0400",
    owner: ROOT,
    group: ROOT,
    source: { kind: "file", path: `/nix/store/00000000000000000000000000000000-${name}` },
    restartUnits: [],
    reloadUnits: [],
    ...fields,
  };
}

export function declaredScope(
  secrets: readonly DeclaredSecret[],
  fields: Partial<Omit<DeclaredScope, "secrets">> & { readonly keys?: readonly DeclaredKey[] } = {},
): DeclaredScope {
  return {
    scope: "system",
    manifestPath: "/nix/store/00000000000000000000000000000000-manifest.json",
    platform: "linux",
    userMode: false,
    user: null,
    runtimeDir: null,
    usesRuntimeDir: false,
    symlinkPath: "/run/secrets",
    mountPoint: "/run/secrets.d",
    keys: [],
    templates: [],
    keepGenerations: 1,
    ...fields,
    secrets,
  };
}
