// Decryption readiness: would the next activation be able to decrypt each declared secret? Answered from
// public data only — the sops file's plaintext keys, value types and recipient list, and the age
// recipients derived from the scope's keys. Independent of the user session: files and keys are on disk.

import type { DeclaredScope, DeclaredSecret } from "../core/model.js";
import type { Problem } from "../core/problems.js";
import type { KeySourceState, ScopeKeyring } from "../sops/identities.js";
import type { SopsFileView } from "../sops/model.js";
import { viewFor } from "../sops/model.js";
import { describeNode, isStringNode, lookupKey, type SopsDocument } from "../sops/parse.js";
import type { Readiness } from "../sops/readiness.js";
import { problem } from "./common.js";
import type { CheckFamily, CheckInput } from "./family.js";
import { type ScopeReadiness, scopeReadiness } from "./scope-readiness.js";

export const sopsFamily: CheckFamily = { name: "sops", run };

function run(input: CheckInput): Problem[] {
  const problems: Problem[] = [];
  for (const { declared } of input.scopes) {
    const ready = scopeReadiness(declared, input.sops);
    // Many secrets share a file: decide recipients once per file and scope, not once per secret.
    const verdicts = new Map<string, RecipientVerdict | null>();
    const memo = keyMemoOf(declared);
    const secrets = declared.secrets;
    // A directory's secrets usually come from one file: its view is looked up once for the run of them.
    let last: { readonly file: string; readonly format: string; readonly view: SopsFileView } | null = null;
    for (let i = 0; i < secrets.length; i++) {
      const secret = secrets[i] as DeclaredSecret;
      if (last === null || last.file !== secret.sopsFile || last.format !== secret.format)
        last = {
          file: secret.sopsFile,
          format: secret.format,
          view: viewFor(input.sops.files.get(secret.sopsFile), secret.format),
        };
      const view = last.view;
      for (const p of checkSecret(declared, secret, view, ready, verdicts, memo, i)) problems.push(p);
    }
  }
  return problems;
}

/**
 * The key verdicts of a scope's secrets, by index, with the parsed document each was reached from. A key's
 * verdict depends on nothing else: while the sops file is unchanged (the sops cache hands out the same
 * document) it is reused, and a re-keyed or edited file (a new document) is looked up again.
 */
interface KeyMemo {
  readonly scope: string;
  readonly documents: (SopsDocument | undefined)[];
  readonly problems: (readonly Problem[] | undefined)[];
}

/** By the declarations' array: the manifest cache hands out the same one while the manifest is unchanged. */
const keyMemos = new WeakMap<readonly DeclaredSecret[], KeyMemo>();

function keyMemoOf(scope: DeclaredScope): KeyMemo {
  const known = keyMemos.get(scope.secrets);
  if (known !== undefined && known.scope === scope.scope) return known;
  const memo: KeyMemo = { scope: scope.scope, documents: [], problems: [] };
  keyMemos.set(scope.secrets, memo);
  return memo;
}

let keyLookups = 0;

/** How many secrets' keys were looked up in their documents since the process started (tests count it). */
export function keyLookupCount(): number {
  return keyLookups;
}

export function checkSecret(
  scope: DeclaredScope,
  secret: DeclaredSecret,
  view: SopsFileView,
  ready: ScopeReadiness,
  verdicts: Map<string, RecipientVerdict | null> = new Map(),
  memo?: KeyMemo,
  index = -1,
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
      let verdict = verdicts.get(secret.sopsFile);
      if (verdict === undefined) {
        const r = ready.files.get(secret.sopsFile);
        verdict = r === undefined ? null : recipientVerdict(scope, secret.sopsFile, r, ready.keyring);
        verdicts.set(secret.sopsFile, verdict);
      }
      let keyProblems: readonly Problem[] | undefined;
      if (memo !== undefined && memo.documents[index] === view.document) keyProblems = memo.problems[index];
      if (keyProblems === undefined) {
        keyLookups++;
        keyProblems = checkKey(secret, view.document, at);
        if (memo !== undefined) {
          memo.documents[index] = view.document;
          memo.problems[index] = keyProblems;
        }
      }
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
  // sops-install-secrets main.go:322-326 (sops-nix 56b24064) descends only into
  // map[interface{}]interface{}, which the YAML decoder yields; encoding/json yields map[string]interface{}
  // (main.go:361-363), so any `a/b` key of a JSON file fails with "key 'a' does not refer to a dictionary".
  if (secret.format === "json" && secret.key.includes("/")) {
    const first = secret.key.slice(0, secret.key.indexOf("/"));
    return [
      at(
        "sops_key_unreachable",
        "critical",
        `Secret ${secret.name} reads the nested key '${secret.key}' of the JSON file ${secret.sopsFile}, but sops-install-secrets walks nested keys only through YAML maps: activation fails with "key '${first}' does not refer to a dictionary"${found.kind === "found" ? " although the file has the key" : ""}. Use a top-level key, or declare the file with format = "yaml" (JSON is valid YAML, and sops-nix then walks the path).`,
      ),
    ];
  }
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

/** The recipient problem every secret of one file shares, if any; only the message names the secret. */
interface RecipientVerdict {
  readonly code: "recipient_unverifiable" | "host_not_recipient";
  readonly severity: Problem["severity"];
  readonly message: (secret: DeclaredSecret) => string;
}

/**
 * Decisions (the rules themselves are in sops/readiness.ts):
 * - decrypts: nothing to say.
 * - unverifiable (only pgp, cloud KMS, a key the agent may not read, or a plugin identity whose recipient
 *   no comment names could open enough groups): `recipient_unverifiable`, info.
 * - cannot: `host_not_recipient`, critical — also when no usable identity is left at all (every key is
 *   missing or does not parse), which sops reports as "0 successful groups required, got 0".
 * - an ageKeyFile sops-install-secrets cannot read aborts the activation: the keys family reports that,
 *   critical, and the files are not judged here.
 */
function recipientVerdict(
  scope: DeclaredScope,
  file: string,
  r: Readiness,
  keyring: ScopeKeyring,
): RecipientVerdict | null {
  if (keyring.aborts !== null) return null;
  switch (r.verdict) {
    case "decrypts":
      return null;
    case "unverifiable":
      return {
        code: "recipient_unverifiable",
        severity: "info",
        message: (secret) =>
          `The agent cannot tell whether scope ${scope.scope} can decrypt ${file} (secret ${secret.name}): ${r.reasons.join("; ")}.`,
      };
    case "cannot":
      return {
        code: "host_not_recipient",
        severity: "critical",
        message: cannotMessage(scope, file, r, keyring),
      };
  }
}

function cannotMessage(
  scope: DeclaredScope,
  file: string,
  r: Extract<Readiness, { verdict: "cannot" }>,
  keyring: ScopeKeyring,
): (secret: DeclaredSecret) => string {
  const hints = r.hints.length > 0 ? ` (${r.hints.join("; ")})` : "";
  const recipients = keyring.identities.flatMap((i) =>
    i.kind === "x25519" ? [i.recipient] : i.kind === "ssh" ? [`${i.keyType} key ${i.source}`] : [],
  );
  const fix = recipients[0] ?? "the host's recipient (`sops-agent recipient`)";
  if (keyring.identities.length === 0) {
    const lost = keyring.sources
      .filter((s) => s.status.state !== "usable")
      .map((s) => `${s.path} ${describeState(s.status)}`);
    return (secret) =>
      `No usable identity is left for scope ${scope.scope}${lost.length > 0 ? ` (${lost.join("; ")})` : ""}, so sops cannot decrypt ${file} and secret ${secret.name} fails at activation ("0 successful groups required, got 0"). Restore the key, or fix the key file.`;
  }
  if (r.groups > 1) {
    return (secret) =>
      `${file} (secret ${secret.name}) is split into ${r.groups} Shamir key groups and needs identities in ${r.needed} of them, but scope ${scope.scope}'s identities open only ${r.opened}${hints}: activation fails. Add ${fix} to enough key groups in .sops.yaml and run \`sops updatekeys\` on the file.`;
  }
  return (secret) =>
    `None of scope ${scope.scope}'s identities (${recipients.join(", ") || "none with a known recipient"}) can open ${file}${hints}: secret ${secret.name} fails at activation with "0 successful groups required, got 0". Add ${fix} to the matching creation rule in .sops.yaml and run \`sops updatekeys\` on the file.`;
}

function describeState(status: KeySourceState): string {
  switch (status.state) {
    case "usable":
      return "usable";
    case "absent":
      return "is absent";
    case "unreadable":
      return `cannot be read (${status.errno})`;
    case "invalid":
      return status.line === null
        ? `cannot be used: ${status.reason}`
        : `does not parse at line ${status.line}`;
  }
}
