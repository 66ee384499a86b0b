// The declared model: what sops-nix manifests say should exist on a host.
// Data types only — no I/O and no business logic live here.

import type { IdentityFileParse } from "../sops/identity-file.js";

export type ScopeName = "system" | "for-users" | `user:${string}`;
export type Platform = "linux" | "darwin";
export type SecretFormat = "yaml" | "json" | "binary" | "dotenv" | "ini";
export const SECRET_FORMATS = [
  "yaml",
  "json",
  "binary",
  "dotenv",
  "ini",
] as const satisfies readonly SecretFormat[];

/**
 * Who should own a file, by sops-install-secrets' rule: a non-empty name is looked up in the
 * host's passwd/group database, otherwise the numeric id is used.
 */
export type Principal =
  | { readonly kind: "name"; readonly name: string }
  | { readonly kind: "id"; readonly id: number };

/** A principal as users read it and as the `owner`/`group` labels show it: the name, or the numeric id. */
export function principalText(p: Principal): string {
  return p.kind === "name" ? p.name : String(p.id);
}

interface DeclaredFileBase {
  readonly name: string;
  /** Where the user expects the file, `%r` expanded. Equal to `<symlinkPath>/<name>` unless overridden. */
  readonly path: string;
  /** Permission bits parsed from the manifest's octal string. */
  readonly mode: number;
  /** The mode exactly as the manifest wrote it, for display. */
  readonly modeText: string;
  readonly owner: Principal;
  readonly group: Principal;
  /** Units sops-install-secrets restarts or reloads when the file's content changes (empty in user mode). */
  readonly restartUnits: readonly string[];
  readonly reloadUnits: readonly string[];
}

export interface DeclaredSecret extends DeclaredFileBase {
  readonly kind: "secret";
  /** The encrypted sops file (a Nix store path). */
  readonly sopsFile: string;
  /** Path inside the sops document, `/`-separated; "" means the whole file. */
  readonly key: string;
  readonly format: SecretFormat;
  /**
   * sha256 of the sops file as the Nix module computed it (`validateSopsFiles`); "" when the manifest has
   * none (home-manager writes none, and NixOS leaves it empty when validation is off).
   */
  readonly sopsFileHash: string;
}

/**
 * Where a template's text comes from, as sops-install-secrets chooses it: `content` when non-empty, else
 * `file` (main.go:702, sops-nix 56b2406). The content is held only as a digest: a template's text is
 * never needed, only whether it changed.
 */
export type TemplateSource =
  | { readonly kind: "content"; readonly sha256: string }
  | { readonly kind: "file"; readonly path: string }
  | { readonly kind: "none" };

export interface DeclaredTemplate extends DeclaredFileBase {
  readonly kind: "template";
  readonly source: TemplateSource;
}

export type DeclaredFile = DeclaredSecret | DeclaredTemplate;

/** Where a key comes from: the manifest's three key options, or the agent's own `extra_key_paths`. */
export type KeyRole = "age-ssh" | "ssh-gpg" | "age-key-file" | "extra";

export interface DeclaredKey {
  readonly path: string;
  /** ageSshKeyPaths, sshKeyPaths or ageKeyFile. */
  readonly role: KeyRole;
}

/** The account a home-manager scope belongs to. */
export interface ScopeUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

export interface DeclaredScope {
  readonly scope: ScopeName;
  readonly manifestPath: string;
  readonly platform: Platform;
  readonly userMode: boolean;
  /** Set for user scopes. */
  readonly user: ScopeUser | null;
  /** User scopes: the user's runtime directory (what `%r` expands to); null when it cannot be known. */
  readonly runtimeDir: string | null;
  /**
   * Whether a path of the manifest uses `%r`. Hard-coded paths (`/run/user/1000/secrets.d`, a common
   * pattern) are checked like any others; only a `%r` without a known runtime directory cannot be.
   */
  readonly usesRuntimeDir: boolean;
  readonly symlinkPath: string;
  readonly mountPoint: string;
  readonly keys: readonly DeclaredKey[];
  /** The manifest's gnupgHome (a GnuPG home sops may decrypt pgp recipients with), when set. */
  readonly gnupgHome?: string;
  readonly secrets: readonly DeclaredSecret[];
  readonly templates: readonly DeclaredTemplate[];
  /** Generations sops-install-secrets keeps (pruneGenerations, main.go:792); 0 keeps all. */
  readonly keepGenerations: number;
  /** The SOPS_AGE_* variables `sops.environment` sets for sops-install-secrets, read from its entry point. */
  readonly environment?: ScopeEnvironment;
}

/**
 * What sops reads from the environment sops-nix gives it (sops age/keysource.go:329-339, :413-435).
 * SOPS_AGE_KEY holds private keys: only what sops parses out of it (public recipients, or the line
 * that does not parse) is kept, never the value.
 */
export interface ScopeEnvironment {
  /** SOPS_AGE_KEY_FILE */
  readonly ageKeyFile?: string;
  /** SOPS_AGE_SSH_PRIVATE_KEY_FILE */
  readonly ageSshKeyFile?: string;
  /** SOPS_AGE_KEY, as sops parses it. */
  readonly ageKeyInline?: IdentityFileParse;
  /**
   * SOPS_AGE_KEY_CMD / SOPS_AGE_SSH_PRIVATE_KEY_CMD are set: commands sops runs for each recipient
   * (keysource.go v3.12.2:342-357, :429-438). Only that they are set is kept: the agent never runs them,
   * and a command line may carry a token.
   */
  readonly ageKeyCommand?: true;
  readonly ageSshKeyCommand?: true;
}

/** One passwd or group entry, as far as the checks need it. */
export interface Account {
  readonly name: string;
  readonly id: number;
}

export interface PasswdEntry extends Account {
  readonly gid: number;
  readonly home: string;
}

export interface GroupEntry extends Account {
  /** The group's member list (supplementary members; primary members are in passwd); absent: none known. */
  readonly members?: readonly string[];
}

export interface Accounts {
  readonly users: ReadonlyMap<string, PasswdEntry>;
  readonly groups: ReadonlyMap<string, GroupEntry>;
  /**
   * Databases read only in part (larger than the agent reads): a name missing from them may well exist,
   * so it is not reported unknown. Absent: both were read whole (or not at all).
   */
  readonly partial?: { readonly users: boolean; readonly groups: boolean; readonly limitBytes: number };
  /**
   * nix-darwin names absent from /etc/passwd and /etc/group that Directory Services could not be asked
   * about (under --root, on another OS, no answer in time): they may well exist.
   */
  readonly unverifiable?: { readonly users: ReadonlySet<string>; readonly groups: ReadonlySet<string> };
}
