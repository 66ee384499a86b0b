// Decryption readiness: can the identities sops will hold for a scope open a sops file's data key?
// Pure: the identities and the file's public metadata in, a verdict out. `preflight` calls it too.
//
// How sops decides (v3.12.2, the version sops-nix 56b24064 pins):
// - sops.go:836-867 GetDataKeyWithKeyServices: every key group is tried; with more than one group the file
//   needs at least `shamir_threshold` opened groups, with one group that group must open.
// - sops.go:875-890 decryptKeyGroup: a group opens when any one of its master keys decrypts its share.
// - age/keysource.go:238-268 MasterKey.Decrypt: an age entry decrypts with whatever identities were loaded;
//   filippo.io/age v1.3.1 age.go:332-377 tries native identities (X25519, hybrid) before plugin and ssh
//   ones, and an identity for another stanza type is skipped (ErrIncorrectIdentity).
// - An entry without its `enc` cannot decrypt anything.

import { pluginOfRecipient } from "./identity-file.js";
import type { SopsMetadata, SopsRecipient } from "./parse.js";

/** One identity sops will hold, with where it comes from (a path or an environment variable). */
export type HeldIdentity =
  | { readonly kind: "x25519"; readonly recipient: string; readonly source: string }
  /** Hybrid post-quantum; `recipient` from the `# public key:` comment, null when none. */
  | { readonly kind: "pq"; readonly recipient: string | null; readonly source: string }
  /** An age plugin identity; `recipients` are those named beside it in its file's comments. */
  | {
      readonly kind: "plugin";
      readonly plugin: string;
      readonly recipients: readonly string[];
      readonly source: string;
    }
  /**
   * An ssh private key sops reads itself (`SOPS_AGE_SSH_PRIVATE_KEY_FILE`, `~/.ssh/id_ed25519`,
   * `~/.ssh/id_rsa`): it opens native `ssh-ed25519`/`ssh-rsa` recipients with the same public key.
   * A passphrase-protected key needs a prompt, which a service never answers.
   */
  | {
      readonly kind: "ssh";
      readonly keyType: "ssh-ed25519" | "ssh-rsa";
      /** base64 of the public key blob. */
      readonly publicKey: string;
      readonly passphrase: boolean;
      readonly source: string;
    }
  /** GnuPG keys (sops.gnupg.sshKeyPaths, gnupg.home): their fingerprints cannot be known from public data. */
  | { readonly kind: "gpg"; readonly source: string }
  /**
   * A source whose identities the agent cannot see (a key it may not read, a key command): it may open
   * age recipients (an age identity file, a converted ssh key) or native ssh ones (an ssh key sops reads).
   */
  | {
      readonly kind: "unknown";
      readonly could: "age" | "ssh";
      readonly source: string;
      readonly why: string;
    };

/** Which identity opens which entry of the file. */
export interface Opening {
  readonly recipient: string;
  readonly source: string;
  /** Matched through a comment in the identity file, not derived from the key itself. */
  readonly byComment: boolean;
}

export type Readiness =
  | { readonly verdict: "decrypts"; readonly openings: readonly Opening[] }
  /** Only what the agent cannot see could open enough groups. */
  | {
      readonly verdict: "unverifiable";
      readonly reasons: readonly string[];
      readonly openings: readonly Opening[];
    }
  | {
      readonly verdict: "cannot";
      /** Groups the file needs, groups it has, groups the held identities open. */
      readonly needed: number;
      readonly groups: number;
      readonly opened: number;
      readonly openings: readonly Opening[];
      /** Why entries nothing opens could not be opened (native ssh, plugin, passphrase, …). */
      readonly hints: readonly string[];
    };

type EntryResult =
  | { readonly state: "opens"; readonly opening: Opening }
  | { readonly state: "maybe"; readonly reason: string }
  | { readonly state: "no"; readonly hint: string | null };

export function readiness(identities: readonly HeldIdentity[], metadata: SopsMetadata): Readiness {
  const groups = groupsOf(metadata);
  // sops.go:852-866: several groups need the threshold (sops always writes it with them); one group must open.
  const needed =
    groups.length > 1
      ? metadata.shamirThreshold !== null && metadata.shamirThreshold > 0
        ? metadata.shamirThreshold
        : groups.length
      : 1;
  const openings: Opening[] = [];
  const reasons = new Set<string>();
  const hints = new Set<string>();
  let opened = 0;
  let maybe = 0;
  for (const group of groups) {
    let groupMaybe = false;
    let groupOpening: Opening | null = null;
    for (const entry of group) {
      const r = entryResult(identities, entry);
      if (r.state === "opens") {
        groupOpening = r.opening;
        break;
      }
      if (r.state === "maybe") {
        groupMaybe = true;
        reasons.add(r.reason);
      } else if (r.hint !== null) hints.add(r.hint);
    }
    if (groupOpening !== null) {
      opened++;
      openings.push(groupOpening);
    } else if (groupMaybe) maybe++;
  }
  if (groups.length > 0 && opened >= needed) return { verdict: "decrypts", openings };
  if (groups.length > 0 && opened + maybe >= needed)
    return { verdict: "unverifiable", reasons: [...reasons], openings };
  return {
    verdict: "cannot",
    needed,
    groups: groups.length,
    opened,
    openings,
    hints: [...hints],
  };
}

function groupsOf(metadata: SopsMetadata): SopsRecipient[][] {
  const groups: SopsRecipient[][] = Array.from({ length: metadata.keyGroups }, () => []);
  for (const r of metadata.recipients) groups[r.group]?.push(r);
  return groups;
}

function entryResult(identities: readonly HeldIdentity[], entry: SopsRecipient): EntryResult {
  if (!entry.hasEnc) return { state: "no", hint: `${entry.id || entry.kind} has no encrypted data key` };
  const could = entry.kind === "ssh_ed25519" || entry.kind === "ssh_rsa" ? "ssh" : "age";
  const unknown = identities.find((i) => i.kind === "unknown" && i.could === could);
  const unseen = (hint: string | null): EntryResult =>
    unknown !== undefined && unknown.kind === "unknown"
      ? { state: "maybe", reason: `${unknown.source} ${unknown.why}` }
      : { state: "no", hint };
  switch (entry.kind) {
    case "age": {
      const id = identities.find((i) => i.kind === "x25519" && i.recipient === entry.id);
      if (id !== undefined) return opens(entry, id.source, false);
      return unseen(null);
    }
    case "age_pq": {
      for (const i of identities) {
        if (i.kind !== "pq") continue;
        if (i.recipient === entry.id) return opens(entry, i.source, true);
      }
      const anonymous = identities.find((i) => i.kind === "pq" && i.recipient === null);
      if (anonymous !== undefined)
        return {
          state: "maybe",
          reason: `the post-quantum identity in ${anonymous.source} has no \`# public key:\` comment to match`,
        };
      return unseen(
        `${short(entry.id)} is a post-quantum recipient and no AGE-SECRET-KEY-PQ identity matches it`,
      );
    }
    case "age_plugin": {
      const plugin = pluginOfRecipient(entry.id);
      const same = identities.filter((i) => i.kind === "plugin" && i.plugin === plugin);
      for (const i of same) {
        if (i.kind === "plugin" && i.recipients.includes(entry.id.toLowerCase()))
          return opens(entry, i.source, true);
      }
      const first = same[0];
      if (first !== undefined)
        return {
          state: "maybe",
          reason: `only age-plugin-${plugin} can tell whether the plugin identity in ${first.source} opens ${short(entry.id)}`,
        };
      return unseen(
        `${short(entry.id)} needs an AGE-PLUGIN-${(plugin ?? "?").toUpperCase()}-1… identity (age-plugin-${plugin ?? "?"}), and the scope holds none`,
      );
    }
    case "ssh_ed25519":
    case "ssh_rsa": {
      const [type, blob] = entry.id.split(/\s+/);
      const key = identities.find((i) => i.kind === "ssh" && i.keyType === type && i.publicKey === blob);
      if (key !== undefined && key.kind === "ssh") {
        if (!key.passphrase) return opens(entry, key.source, false);
        return {
          state: "no",
          hint: `${key.source} matches ${type} recipient but is passphrase-protected: sops asks for the passphrase, which the activation cannot answer`,
        };
      }
      return unseen(
        `${type} is a native ssh recipient: only that ssh private key, read by sops itself (SOPS_AGE_SSH_PRIVATE_KEY_FILE, or ~/.ssh/id_ed25519 and ~/.ssh/id_rsa where HOME is set), opens it; sops-nix's converted ssh identity never does (sops-nix #824, #955)`,
      );
    }
    case "pgp": {
      const gpg = identities.find((i) => i.kind === "gpg");
      if (gpg !== undefined)
        return {
          state: "maybe",
          reason: `pgp recipients cannot be matched from public data (GnuPG keys from ${gpg.source})`,
        };
      // sops-nix main.go:1386-1397: without sshKeyPaths or gnupgHome, gpg runs in HOME=/var/empty and
      // holds no key.
      return {
        state: "no",
        hint: `pgp recipient ${entry.id || "?"} needs a GnuPG key, and the scope has neither sops.gnupg.sshKeyPaths nor sops.gnupg.home`,
      };
    }
    case "kms":
    case "gcp_kms":
    case "azure_kv":
    case "hc_vault":
    case "hckms":
      return {
        state: "maybe",
        reason: `${entry.kind} keys depend on cloud credentials the agent cannot check`,
      };
    case "age_unknown":
      return { state: "no", hint: `${short(entry.id)} is not a recipient sops can use` };
  }
}

function opens(entry: SopsRecipient, source: string, byComment: boolean): EntryResult {
  return { state: "opens", opening: { recipient: entry.id, source, byComment } };
}

function short(recipient: string): string {
  return recipient.length > 24 ? `${recipient.slice(0, 20)}…` : recipient;
}
