// Which age recipients a scope can decrypt for, from the keys its manifest names. Reads go through RootFs.

import { createHash } from "node:crypto";
import type { DeclaredKey, DeclaredScope } from "../core/model.js";
import type { HostRecipient } from "../core/report.js";
import type { RootFs } from "../host/rootfs.js";
import {
  ageFromIdentityFile,
  ageFromOpenSshPrivateKey,
  ageFromSshPublicKey,
  type RecipientResult,
} from "./age.js";

/** Key files are tiny; a larger file is not a key and is not read further. */
const MAX_KEY_BYTES = 64 * 1024;

/**
 * The scope's age recipients, in key order, without duplicates. A missing or unreadable key yields
 * nothing here: the key checks report it. ssh-gpg keys (RSA imported into GPG) never match an age
 * recipient, so they yield nothing either.
 */
export function scopeIdentities(fs: RootFs, scope: DeclaredScope): HostRecipient[] {
  const out: HostRecipient[] = [];
  const seen = new Set<string>();
  for (const key of scope.keys) {
    for (const recipient of keyRecipients(fs, key)) {
      if (seen.has(recipient)) continue;
      seen.add(recipient);
      out.push({ scope: scope.scope, recipient, source: key.path });
    }
  }
  return out;
}

export function keyRecipients(fs: RootFs, key: DeclaredKey): readonly string[] {
  switch (key.role) {
    case "ssh-gpg":
    case "extra":
      return [];
    case "age-key-file":
      return recipientsOf(read(fs, key.path), ageFromIdentityFile);
    case "age-ssh":
      return sshKeyRecipients(fs, key.path);
  }
}

function sshKeyRecipients(fs: RootFs, path: string): readonly string[] {
  // A key that is not there cannot decrypt, whatever a leftover .pub says.
  if (fs.resolve(path).state !== "resolved") return [];
  // The .pub is world-readable where the private key is not, so an unprivileged agent still gets an answer.
  const fromPub = recipientsOf(read(fs, `${path}.pub`), ageFromSshPublicKey);
  if (fromPub.length > 0) return fromPub;
  return recipientsOf(read(fs, path), ageFromOpenSshPrivateKey);
}

function read(fs: RootFs, path: string): string | null {
  const text = fs.readText(path, MAX_KEY_BYTES);
  return typeof text === "string" ? text : null;
}

/**
 * Deriving a recipient from an AGE-SECRET-KEY is a scalar multiplication, done on every check for the
 * same few files: remember results by a digest of the file (never by its text, which is private).
 */
const derived = new Map<string, readonly string[]>();
const MAX_DERIVED = 256;

function recipientsOf(text: string | null, parse: (text: string) => RecipientResult): readonly string[] {
  if (text === null) return [];
  const digest = createHash("sha256").update(parse.name).update("\0").update(text).digest("base64");
  const known = derived.get(digest);
  if (known !== undefined) return known;
  const result = parse(text);
  const recipients = result.ok ? result.recipients : [];
  if (derived.size >= MAX_DERIVED) derived.clear();
  derived.set(digest, recipients);
  return recipients;
}
