// Problem codes are a public contract: they are metric labels and JSON fields users alert on.
// Add codes on purpose, never rename them; the README documents every one.

import type { ScopeName } from "./model.js";

export type Severity = "critical" | "warning" | "info";
export const SEVERITIES = ["critical", "warning", "info"] as const satisfies readonly Severity[];

export const PROBLEM_CODES = {
  // manifests and discovery
  manifest_invalid: "A manifest cannot be read or does not have the shape sops-nix writes",
  manifest_missing: "A manifest named by an activation script or unit is absent",
  no_manifests: "No sops-nix manifest was found on the host",
  // generation
  symlink_missing: "The scope's symlinkPath does not exist",
  symlink_not_symlink: "The scope's symlinkPath is not a symlink",
  symlink_outside_mount: "The scope's symlinkPath points outside its secretsMountPoint",
  generation_missing: "The generation directory the symlinkPath points to is absent",
  mount_not_ramfs: "The mount point is not ramfs or tmpfs: secrets sit on a persistent disk",
  user_session_inactive: "The user's runtime directory does not exist (not logged in)",
  // secrets and templates
  missing: "A declared secret or template is absent from the current generation",
  not_regular_file: "A declared secret or template is not a regular file",
  wrong_mode: "The file's mode differs from the declared mode",
  wrong_owner: "The file's owner differs from the declared owner",
  wrong_group: "The file's group differs from the declared group",
  unknown_owner: "The declared owner is not in the host's passwd: sops-nix aborts every secret",
  unknown_group: "The declared group is not in the host's group database: sops-nix aborts every secret",
  unreadable: "The agent is not allowed to look at the file",
  owner_unverifiable:
    "A nix-darwin owner or group is not in /etc/passwd or /etc/group and Directory Services cannot be asked",
  owner_cannot_read:
    "The declared owner or group cannot reach or read the file: a directory on the way refuses them",
  link_missing: "The declared path outside symlinkPath does not exist",
  link_wrong_target: "The declared path is not a symlink to <symlinkPath>/<name>",
  link_dangling: "The declared path is a symlink whose target is gone",
  unrendered_placeholder: "A rendered template still contains a <SOPS:…:PLACEHOLDER>",
  // leftovers of earlier generations
  orphan_link:
    "A path link an earlier generation declared still points into the secrets, but nothing declares it now",
  orphan_file: "A file in the current generation that the manifest does not declare",
  // secrets in use
  activation_failed: "The last sops-nix activation of the scope failed",
  consumer_stale: "A unit that reads the secret runs since before its declaration changed",
  old_generation: "A generation sops-install-secrets should have pruned still holds decrypted secrets",
  gnupg_home_missing: "The GnuPG home the manifest names does not exist",
  template_source_missing:
    "A template's source file does not exist: sops-install-secrets aborts the activation",
  // decryption keys
  key_missing: "A decryption key the manifest names is absent",
  key_dangling: "A decryption key is a symlink whose target is gone",
  key_is_symlink: "A decryption key is a symlink: at boot sops-nix runs before home-manager links it",
  key_insecure_mode: "Group or others can read a decryption key",
  key_unavailable_at_boot: "A key exists now but will not when sops-install-secrets runs at boot (preflight)",
  key_unparseable: "sops cannot use a decryption key: a line of an age key file or an unconvertible ssh key",
  // decryption readiness (sops files)
  sops_file_missing: "The encrypted sops file is absent",
  sops_file_unparseable: "The encrypted sops file cannot be parsed",
  sops_key_absent: "The declared key is not in the sops document",
  sops_key_unreachable: "The declared key is nested in a JSON file: sops-nix walks nested keys only in YAML",
  sops_value_not_string: "The declared key's value is not a string: sops-nix fails at activation",
  host_not_recipient: "The identities sops will hold for the scope cannot open the sops file's data key",
  recipient_unverifiable:
    "Only what public data cannot match (pgp, kms, an unreadable key) could open the file",
  sops_file_hash_mismatch: "The sops file no longer matches the sopsFileHash its generation was built with",
  // the agent's own limits
  input_too_large: "A file is larger than the agent reads: what lies past the limit was not checked",
} as const;

export type ProblemCode = keyof typeof PROBLEM_CODES;
export const ALL_PROBLEM_CODES = Object.keys(PROBLEM_CODES) as ProblemCode[];

export interface Problem {
  readonly code: ProblemCode;
  readonly severity: Severity;
  readonly scope: ScopeName | "host";
  /** The secret or template name; a path for key files and stray links; symlinkPath for generation problems. */
  readonly subject: string;
  readonly path: string;
  /** What is wrong and how to fix it. Never contains a secret value. */
  readonly message: string;
}

const SEVERITY_RANK: Record<Severity, number> = { critical: 0, warning: 1, info: 2 };

/** Sorting is needed for predictable output: by scope, severity, subject, code. */
export function compareProblems(a: Problem, b: Problem): number {
  return (
    cmp(a.scope, b.scope) ||
    SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] ||
    cmp(a.subject, b.subject) ||
    cmp(a.code, b.code)
  );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
