// Decryption readiness: would the next activation be able to decrypt each declared secret? Answered from
// public data only — the sops file's plaintext keys, value types and recipient list, and the age
// recipients derived from the scope's keys. Independent of the user session: files and keys are on disk.

import type { DeclaredScope, DeclaredSecret } from "../core/model.js";
import type { Problem } from "../core/problems.js";
import type { HostRecipient } from "../core/report.js";
import type { SopsFileView } from "../sops/model.js";
import { viewFor } from "../sops/model.js";
import { ageRecipients, describeNode, isStringNode, lookupKey, type SopsDocument } from "../sops/parse.js";
import { problem } from "./common.js";
import type { CheckFamily, CheckInput } from "./family.js";

export const sopsFamily: CheckFamily = { name: "sops", run };

function run(input: CheckInput): Problem[] {
  const problems: Problem[] = [];
  for (const { declared } of input.scopes) {
    const identities = input.sops.identities.get(declared.scope) ?? [];
    // Many secrets share a file: decide recipients once per file and scope, not once per secret.
    const verdicts = new Map<SopsDocument, RecipientVerdict | null>();
    for (const secret of declared.secrets) {
      const view = viewFor(input.sops.files.get(secret.sopsFile), secret.format);
      for (const p of checkSecret(declared, secret, view, identities, verdicts)) problems.push(p);
    }
  }
  return problems;
}

export function checkSecret(
  scope: DeclaredScope,
  secret: DeclaredSecret,
  view: SopsFileView,
  identities: readonly HostRecipient[],
  verdicts: Map<SopsDocument, RecipientVerdict | null> = new Map(),
): readonly Problem[] {
  const at = (code: Problem["code"], severity: Problem["severity"], message: string): Problem =>
    problem(code, severity, scope.scope, secret.name, secret.sopsFile, message);
  switch (view.state) {
    case "absent":
      return [
        at(
          "sops_file_missing",
          "critical",
          `The sops file ${secret.sopsFile} of secret ${secret.name} does not exist: the activation that installed this manifest was incomplete, or the store path was garbage-collected. Rebuild and switch the configuration.`,
        ),
      ];
    case "unparseable":
      return [
        at(
          "sops_file_unparseable",
          "critical",
          `The sops file ${secret.sopsFile} of secret ${secret.name} cannot be read as ${secret.format}: ${view.reason}. Check the secret's format and re-encrypt the file with sops.`,
        ),
      ];
    case "parsed": {
      let verdict = verdicts.get(view.document);
      if (verdict === undefined) {
        verdict = recipientVerdict(scope, view.document, identities);
        verdicts.set(view.document, verdict);
      }
      const keyProblems = checkKey(secret, view.document, at);
      return verdict === null
        ? keyProblems
        : [...keyProblems, at(verdict.code, verdict.severity, verdict.message(secret))];
    }
  }
}

/** Shared by every healthy secret: no array per secret per check. */
const NONE: readonly Problem[] = Object.freeze([]);

type At = (code: Problem["code"], severity: Problem["severity"], message: string) => Problem;

function checkKey(secret: DeclaredSecret, document: SopsDocument, at: At): readonly Problem[] {
  const found = lookupKey(document, secret.key);
  if (found.kind === "whole-file") return NONE;
  if (found.kind === "absent") {
    const why =
      found.why === "missing"
        ? `'${found.at}' is not in the document`
        : `'${found.at || "(top level)"}' is not a map, so the path cannot continue`;
    return [
      at(
        "sops_key_absent",
        "critical",
        `Secret ${secret.name} reads key '${secret.key}' of ${secret.sopsFile}, but ${why}. Add the key with \`sops edit\`, or fix sops.secrets.${secret.name}.key.`,
      ),
    ];
  }
  if (isStringNode(found.node)) return NONE;
  return [
    at(
      "sops_value_not_string",
      "critical",
      `Key '${secret.key}' of ${secret.sopsFile} holds ${describeNode(found.node)}, but sops-install-secrets only writes strings and will fail at activation (sops-nix #848). Quote the value in the sops file, or point the key at a string leaf.`,
    ),
  ];
}

/**
 * Decisions:
 * - The file's X25519 age recipients (with an encrypted data key) are matched against the scope's.
 * - No such recipient in the file (only pgp, cloud KMS, native ssh, post-quantum or plugin recipients):
 *   nothing public to compare, so `recipient_unverifiable` (info).
 * - The scope has no age identity at all (its keys are missing, unreadable or RSA/GPG only): also
 *   `recipient_unverifiable`; the keys family already reports missing and unreadable keys.
 * - No age match, but the file has pgp recipients and the scope imports ssh keys into GPG: the GPG
 *   fingerprint cannot be derived from public data, so `recipient_unverifiable` rather than a critical
 *   that may be false. Any other miss is `host_not_recipient` (critical), one per secret.
 */
/** The recipient problem every secret of one file shares, if any; only the message names the secret. */
interface RecipientVerdict {
  readonly code: "recipient_unverifiable" | "host_not_recipient";
  readonly severity: Problem["severity"];
  readonly message: (secret: DeclaredSecret) => string;
}

function recipientVerdict(
  scope: DeclaredScope,
  document: SopsDocument,
  identities: readonly HostRecipient[],
): RecipientVerdict | null {
  const fileAge = ageRecipients(document);
  const others = otherKinds(document);
  if (fileAge.length === 0) {
    return {
      code: "recipient_unverifiable",
      severity: "info",
      message: (secret) =>
        `${secret.sopsFile} has no age recipient (only ${others.join(", ") || "none"}), so the agent cannot tell whether this host can decrypt secret ${secret.name}.${sshHint(others)}`,
    };
  }
  if (identities.length === 0) {
    return {
      code: "recipient_unverifiable",
      severity: "info",
      message: (secret) =>
        `No age recipient could be derived from the keys of scope ${scope.scope} (missing, unreadable or RSA/GPG only), so the agent cannot tell whether it can decrypt ${secret.sopsFile}.`,
    };
  }
  const mine = new Set(identities.map((i) => i.recipient));
  if (fileAge.some((r) => mine.has(r))) return null;
  if (others.includes("pgp") && scope.keys.some((k) => k.role === "ssh-gpg")) {
    return {
      code: "recipient_unverifiable",
      severity: "info",
      message: (secret) =>
        `None of scope ${scope.scope}'s age identities is a recipient of ${secret.sopsFile}; it may still decrypt through GPG (sops.gnupg.sshKeyPaths), which the agent cannot verify.`,
    };
  }
  const hostRecipient = identities[0]?.recipient ?? "";
  const withoutEnc = document.metadata.recipients.some((r) => mine.has(r.id) && !r.hasEnc);
  return {
    code: "host_not_recipient",
    severity: "critical",
    message: (secret) =>
      `None of scope ${scope.scope}'s age identities (${identities.map((i) => i.recipient).join(", ")}) is a recipient of ${secret.sopsFile}${withoutEnc ? " with an encrypted data key" : ""}: activation will fail with "0 successful groups required, got 0". Add ${hostRecipient} to the matching creation rule in .sops.yaml and run \`sops updatekeys\` on the file.${sshHint(others)}`,
  };
}

function otherKinds(document: SopsDocument): string[] {
  const kinds = new Set<string>();
  for (const r of document.metadata.recipients) {
    if (r.kind === "age" && !r.hasEnc) kinds.add("age without enc");
    else if (r.kind !== "age") kinds.add(r.kind);
  }
  return [...kinds].sort();
}

function sshHint(kinds: readonly string[]): string {
  return kinds.includes("ssh_ed25519") || kinds.includes("ssh_rsa")
    ? " Native ssh recipients cannot be used by sops-nix's converted identity (sops-nix #824, #955): encrypt to the host's age recipient (`sops-agent recipient`) instead."
    : "";
}
