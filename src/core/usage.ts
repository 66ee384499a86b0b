// Secrets in use: which units read a secret, what systemd or launchd says of them and of sops-nix's own
// activation, and what a generation left behind. Data only: src/host/usage.ts fills it in, src/checks/usage.ts
// judges it.

import type { PathFacts } from "./facts.js";
import type { DeclaredFile, ScopeName } from "./model.js";

/** The service manager a unit belongs to: the system's, or a user's (home-manager scopes). */
export type Manager = "system" | `user:${string}`;

/** What systemd says of a unit, as far as the checks need it (`systemctl show`). */
export interface UnitState {
  readonly unit: string;
  /** LoadState: loaded, not-found, masked, … */
  readonly loadState: string;
  /** ActiveState: active, reloading, inactive, failed, activating, deactivating. */
  readonly activeState: string;
  /** Result of the last run: success, exit-code, signal, timeout, … */
  readonly result: string;
  /** ActiveEnterTimestamp: when the unit last entered the active state, unix seconds; null when never. */
  readonly activeEnterSeconds: number | null;
  /** ExecMainStatus: exit status of the main process of the last run. */
  readonly mainStatus: number | null;
}

/** A unit that reads a declared secret or template. */
export interface Consumer {
  readonly manager: Manager;
  readonly unit: string;
  /** restartUnits/reloadUnits of the manifest, or the unit file whose directives name the file's path. */
  readonly via:
    | { readonly kind: "restartUnits" | "reloadUnits" }
    | { readonly kind: "unit-file"; readonly file: string };
}

/** How the last sops-nix activation of a scope went, from the evidence its activation kind leaves. */
export type ActivationEvidence =
  /** systemd activation (sops-install-secrets.service) or home-manager's user unit (sops-nix.service). */
  | {
      readonly kind: "unit";
      readonly manager: Manager;
      readonly unit: string;
      readonly state: UnitState;
      readonly lastLog: string | null;
    }
  /** launchd job: nix-darwin's daemon or home-manager's agent on macOS. */
  | { readonly kind: "launchd"; readonly label: string; readonly lastExitCode: number }
  /**
   * Classic NixOS activation: every run of setupSecrets writes a new generation (prepareSecretsDir,
   * main.go:404-436), before the activation script points /run/current-system at the new system.
   */
  | { readonly kind: "classic"; readonly switchedSeconds: number; readonly generationSeconds: number };

/** What decides a file's content, as declared: two fingerprints, never the value. */
export interface Fingerprint {
  /** The key and format (secrets) or the template's source: a change here changes what is written. */
  readonly strong: number;
  /** The sops file and its hash: changes with every edit of any key in the file, and with `sops updatekeys`. */
  readonly file: number;
}

/** A previous declaration of a scope, reduced to fingerprints per file: did its declaration change? */
export interface PreviousDeclaration {
  readonly generation: string;
  /** By `kind:name`. */
  readonly fingerprints: ReadonlyMap<string, Fingerprint>;
}

export interface ScopeUsage {
  readonly activation: ActivationEvidence | null;
  /** Units whose unit files name a declared file, by `kind:name`. */
  readonly discovered: ReadonlyMap<string, readonly Consumer[]>;
  readonly previous: PreviousDeclaration | null;
  /** When the current generation was written (its directory's mtime), unix seconds. */
  readonly installedSeconds: number | null;
  /** Numbered generation directories in the mount point (the current one included). */
  readonly generations: readonly number[];
  /** lstat of the manifest's gnupgHome, when it names one. */
  readonly gnupgHome: PathFacts | null;
  /** lstat of template `file` sources outside the Nix store, by template name. */
  readonly templateSources: ReadonlyMap<string, PathFacts>;
  /** sha256 of each sops file whose declaration carries a sopsFileHash, by store path; null when unreadable. */
  readonly sopsFileHashes: ReadonlyMap<string, string | null>;
}

export interface UsageObservation {
  readonly scopes: ReadonlyMap<ScopeName, ScopeUsage>;
  /** Unit states by `manager\0unit`, on a live host only (never under --root). */
  readonly units: ReadonlyMap<string, UnitState>;
  /** Whether unit states were asked for: false under --root, without systemd, or off Linux. */
  readonly live: boolean;
}

export function fileKey(f: Pick<DeclaredFile, "kind" | "name">): string {
  return `${f.kind}:${f.name}`;
}

export function unitKey(manager: Manager, unit: string): string {
  return `${manager}\0${unit}`;
}

/** FNV-1a fingerprints of the fields that decide what sops-install-secrets writes for the file. */
export function declarationFingerprint(f: DeclaredFile): Fingerprint {
  if (f.kind === "secret")
    return { strong: fnv1a(`${f.key}\0${f.format}`), file: fnv1a(`${f.sopsFile}\0${f.sopsFileHash}`) };
  const source =
    f.source.kind === "content" ? f.source.sha256 : f.source.kind === "file" ? f.source.path : "";
  return { strong: fnv1a(`${f.source.kind}\0${source}`), file: 0 };
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
