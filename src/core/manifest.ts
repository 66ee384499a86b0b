// Parsing of a sops-nix manifest (the JSON sops-install-secrets reads) into the declared model. Pure.
//
// Exactly as tolerant as sops-install-secrets (pkgs/sops-install-secrets/main.go:30-87, sops-nix 56b24064):
// it decodes with encoding/json into plain Go fields, so a JSON null leaves a field at its zero value (uid
// 0, "" for strings, false), absent lists are empty, and unknown fields are ignored. What sops-install-
// secrets would refuse (a wrong type, a mode ParseUint rejects, a template without text) makes that *item*
// a problem: the other items are still declared and checked, so a real failure elsewhere is still seen.
// Only what the agent relies on is validated. Error messages name the file, the field, and at most a type, a mode or a format:
// manifests hold no secret values, but template `content` may hold anything, so no value is ever echoed
// except the offending mode or format string.

import { createHash } from "node:crypto";
import {
  type DeclaredKey,
  type DeclaredScope,
  type DeclaredSecret,
  type DeclaredTemplate,
  type KeyRole,
  type Platform,
  type Principal,
  type ScopeName,
  type ScopeUser,
  SECRET_FORMATS,
  type SecretFormat,
  type TemplateSource,
} from "./model.js";

export interface ManifestContext {
  readonly manifestPath: string;
  readonly scope: ScopeName;
  readonly platform: Platform;
  readonly user: ScopeUser | null;
  /** What `%r` expands to for this scope; null when it cannot be known (no session, no temp dir). */
  readonly runtimeDir: string | null;
}

export interface ManifestError {
  readonly file: string;
  /** A JSON path such as `secrets[3].mode`, or `(document)` when the text is not a JSON object. */
  readonly field: string;
  /** What is wrong with the field, without the file and field names. */
  readonly message: string;
}

/** A secret or template sops-install-secrets would refuse; the rest of the scope is still declared. */
export interface ManifestItemError extends ManifestError {
  /** The item's name when it has one, else its field (`secrets[3]`). */
  readonly subject: string;
}

export type ManifestResult =
  | { readonly ok: true; readonly scope: DeclaredScope; readonly itemErrors: readonly ManifestItemError[] }
  | { readonly ok: false; readonly error: ManifestError };

/** `<file>: <field>: <message>`, the text shown to users. */
export function manifestErrorMessage(e: ManifestError): string {
  return `${e.file}: ${e.field}: ${e.message}`;
}

const OCTAL_DIGITS = /^[0-7]+$/;
const DOCUMENT = "(document)";

export function parseManifest(text: string, ctx: ManifestContext): ManifestResult {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // JSON.parse's message quotes the text around the error: it must not reach a log.
    return failure(ctx, DOCUMENT, "not valid JSON");
  }
  try {
    const itemErrors: ManifestItemError[] = [];
    const scope = declaredScope(json, ctx, (e) => itemErrors.push({ file: ctx.manifestPath, ...e }));
    return { ok: true, scope, itemErrors };
  } catch (err) {
    if (err instanceof FieldError) return failure(ctx, err.field, err.message);
    throw err;
  }
}

function failure(ctx: ManifestContext, field: string, message: string): ManifestResult {
  return { ok: false, error: { file: ctx.manifestPath, field, message } };
}

// ---------------------------------------------------------------------------------------------------------
// The model

type ItemErrorSink = (e: Omit<ManifestItemError, "file">) => void;

function declaredScope(json: unknown, ctx: ManifestContext, itemError: ItemErrorSink): DeclaredScope {
  const doc = object(json, DOCUMENT, "a JSON object");
  const userMode = optionalBoolean(doc, "userMode", "") ?? false;
  const paths = pathExpander(userMode, ctx.runtimeDir);
  const symlinkPath = paths.expand(requiredString(doc, "symlinkPath", "", true));
  const mountPoint = paths.expand(requiredString(doc, "secretsMountPoint", "", true));
  const keys = declaredKeys(doc);
  const gnupgHome = optionalNullableString(doc, "gnupgHome", "");
  const ownership = sharedPrincipals(ownershipRule(ctx));
  const shared = new Interner();
  const secretDir = `${symlinkPath}/`;
  const templateDir = `${symlinkPath}/rendered/`;
  const secrets = items(list(doc, "secrets", ""), "secrets", itemError, (item, field) =>
    declaredSecret(item, field, secretDir, paths, ownership, shared),
  );
  const templates = items(list(doc, "templates", ""), "templates", itemError, (item, field) =>
    declaredTemplate(item, field, templateDir, paths, ownership, shared),
  );
  return {
    scope: ctx.scope,
    manifestPath: ctx.manifestPath,
    platform: ctx.platform,
    userMode,
    user: ctx.user,
    runtimeDir: ctx.runtimeDir,
    usesRuntimeDir: paths.used(),
    symlinkPath,
    mountPoint,
    keys,
    ...(typeof gnupgHome === "string" && gnupgHome !== "" ? { gnupgHome } : {}),
    secrets,
    templates,
    // Go's int field: absent or null leaves 0, which keeps every generation (pruneGenerations, main.go:793).
    keepGenerations: optionalInteger(doc, "keepGenerations", "") ?? 0,
  };
}

/** Each item parsed on its own: one sops-install-secrets would refuse is reported and left out. */
function items<T>(
  all: readonly unknown[],
  field: string,
  itemError: ItemErrorSink,
  parse: (item: unknown, field: string) => T,
): T[] {
  const parsed: T[] = [];
  for (let i = 0; i < all.length; i++) {
    const item = all[i];
    try {
      parsed.push(parse(item, `${field}[${i}]`));
    } catch (err) {
      if (!(err instanceof FieldError)) throw err;
      const name = typeof item === "object" && item !== null ? (item as JsonObject).name : undefined;
      itemError({
        subject: typeof name === "string" && name !== "" ? name : `${field}[${i}]`,
        field: err.field,
        message: err.message,
      });
    }
  }
  return parsed;
}

/** An integer field, absent or null as undefined (json.Unmarshal into a Go int). */
function optionalInteger(o: JsonObject, key: string, parent: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "number" && Number.isInteger(v)) return v;
  throw new FieldError(fieldName(parent, key), `expected an integer, got ${describe(v)}`);
}

const NO_UNITS: readonly string[] = [];

/** restartUnits/reloadUnits: NixOS manifests only; most secrets have none, and share one empty list. */
function unitList(o: JsonObject, key: string, parent: string): readonly string[] {
  const v = o[key];
  if (v === undefined || v === null || (Array.isArray(v) && v.length === 0)) return NO_UNITS;
  return stringList(o, key, parent);
}

/** Fields common to secrets and templates. */
interface FileFields {
  readonly name: string;
  readonly path: string;
  readonly mode: number;
  readonly modeText: string;
  readonly owner: Principal;
  readonly group: Principal;
}

function declaredSecret(
  item: unknown,
  field: string,
  /** Where a secret without a `path` lands: `<symlinkPath>/`. */
  defaultDir: string,
  paths: PathExpander,
  ownership: OwnershipRule,
  shared: Interner,
): DeclaredSecret {
  const o = object(item, field, "an object");
  const common = fileFields(o, field, defaultDir, paths, ownership, shared);
  // A null or absent key is Go's "": the whole file (main.go:367-386).
  const key = optionalNullableString(o, "key", field) ?? "";
  // Every field written out, not spread: a spread object keeps its fields in a separate property array,
  // ~70 bytes more per secret for as long as the manifest is cached.
  return {
    kind: "secret",
    name: common.name,
    path: common.path,
    mode: common.mode,
    modeText: common.modeText,
    owner: common.owner,
    group: common.group,
    // The usual key (the name) and the few sops files are held once, not once per secret as JSON.parse
    // returns them.
    key: key === common.name ? common.name : key,
    format: secretFormat(o, field),
    sopsFile: shared.get(requiredString(o, "sopsFile", field, false)),
    // Nix-only (modules/sops/default.nix:51): sops-install-secrets ignores it, the agent uses it to tell a
    // re-encrypted sops file from an unchanged one between generations.
    // Not in sops-install-secrets' struct, so any JSON type passes there: only a string is used here.
    sopsFileHash: shared.get(typeof o.sopsFileHash === "string" ? o.sopsFileHash : ""),
    restartUnits: unitList(o, "restartUnits", field),
    reloadUnits: unitList(o, "reloadUnits", field),
  };
}

function declaredTemplate(
  item: unknown,
  field: string,
  /** Where a template without a `path` lands: `<symlinkPath>/rendered/`. */
  defaultDir: string,
  paths: PathExpander,
  ownership: OwnershipRule,
  shared: Interner,
): DeclaredTemplate {
  const o = object(item, field, "an object");
  const common = fileFields(o, field, defaultDir, paths, ownership, shared);
  // The agent never needs what a template contains, only whether its source changed between generations.
  const content = optionalNullableString(o, "content", field) ?? "";
  const file = optionalNullableString(o, "file", field) ?? "";
  // sops-install-secrets main.go:701-712: neither text nor file aborts the activation.
  if (content === "" && file === "")
    throw new FieldError(
      `${field}.content`,
      "neither content nor file is set: sops-install-secrets refuses it",
    );
  return {
    kind: "template",
    name: common.name,
    path: common.path,
    mode: common.mode,
    modeText: common.modeText,
    owner: common.owner,
    group: common.group,
    source: templateSource(content, file, shared),
    restartUnits: unitList(o, "restartUnits", field),
    reloadUnits: unitList(o, "reloadUnits", field),
  };
}

/** sops-install-secrets main.go:702 (sops-nix 56b2406): a non-empty `content` wins over `file`. */
function templateSource(content: string, file: string, shared: Interner): TemplateSource {
  if (content !== "") return { kind: "content", sha256: createHash("sha256").update(content).digest("hex") };
  if (file !== "") return { kind: "file", path: shared.get(file) };
  return { kind: "none" };
}

function fileFields(
  o: JsonObject,
  field: string,
  defaultDir: string,
  paths: PathExpander,
  ownership: OwnershipRule,
  shared: Interner,
): FileFields {
  const name = requiredString(o, "name", field, true);
  const declaredPath = optionalNullableString(o, "path", field) ?? "";
  // A null or absent mode is Go's "", which ParseUint refuses: sops-nix's modules always write one.
  const modeText = optionalNullableString(o, "mode", field) ?? "";
  const mode = permissionBits(modeText, field);
  const ownerName = optionalNullableString(o, "owner", field);
  const uid = optionalId(o, "uid", field);
  const groupName = optionalNullableString(o, "group", field);
  const gid = optionalId(o, "gid", field);
  return {
    name,
    path: declaredPath === "" ? `${defaultDir}${name}` : paths.expand(declaredPath),
    mode,
    modeText: shared.get(modeText),
    owner: ownership.owner(ownerName, uid),
    group: ownership.group(groupName, gid),
  };
}

/**
 * sops-install-secrets parses modes with `strconv.ParseUint(mode, 8, 16)` (main.go:592-598): octal digits
 * only (no sign, prefix or `_`, which Go allows with base 0 alone), any number of them, at most 0o177777.
 * The result is an os.FileMode, and os.WriteFile and Chmod apply only its permission bits (Go's
 * syscallMode takes Perm() plus Go's own setuid/setgid/sticky flags, which sit far above bit 15): so a
 * declared 2750 lands as 0750. The model keeps what is applied.
 */
function permissionBits(text: string, parent: string): number {
  const value = OCTAL_DIGITS.test(text) ? Number.parseInt(text, 8) : Number.NaN;
  if (!(value <= 0xffff))
    throw new FieldError(fieldName(parent, "mode"), `${quote(text)} is not an octal mode`);
  return value & 0o777;
}

function secretFormat(o: JsonObject, parent: string): SecretFormat {
  const text = optionalNullableString(o, "format", parent) ?? "";
  // FormatType.UnmarshalJSON (main.go:117-131) keeps the zero value for a string it does not know, and
  // validateSecret (main.go:641-643) turns "" into yaml: an unknown format is decrypted as yaml.
  return KNOWN_FORMATS.has(text) ? (text as SecretFormat) : "yaml";
}

const KNOWN_FORMATS: ReadonlySet<string> = new Set(SECRET_FORMATS);

function declaredKeys(doc: JsonObject): DeclaredKey[] {
  const keys: DeclaredKey[] = [];
  const add = (paths: readonly string[], role: KeyRole) => {
    for (const path of paths) keys.push({ path, role });
  };
  add(stringList(doc, "ageSshKeyPaths", ""), "age-ssh");
  add(stringList(doc, "sshKeyPaths", ""), "ssh-gpg");
  const ageKeyFile = optionalNullableString(doc, "ageKeyFile", "");
  if (typeof ageKeyFile === "string" && ageKeyFile !== "") add([ageKeyFile], "age-key-file");
  return keys;
}

// ---------------------------------------------------------------------------------------------------------
// Ownership

interface OwnershipRule {
  owner(name: string | null | undefined, uid: number): Principal;
  group(name: string | null | undefined, gid: number): Principal;
}

function ownershipRule(ctx: ManifestContext): OwnershipRule {
  // for-users runs with -ignore-passwd: sops-install-secrets chowns everything to 0:0.
  if (ctx.scope === "for-users") return fixedOwnership(0, 0);
  // User mode never chowns: the files belong to the account that ran sops-install-secrets.
  if (ctx.user !== null) return fixedOwnership(ctx.user.uid, ctx.user.gid);
  // System scopes (and nix-darwin's, written with owner root / group staff) follow the manifest as written.
  // A user-mode manifest whose account is unknown also lands here: there is no better guess.
  return { owner: byNameOrId, group: byNameOrId };
}

function fixedOwnership(uid: number, gid: number): OwnershipRule {
  const owner: Principal = { kind: "id", id: uid };
  const group: Principal = { kind: "id", id: gid };
  return { owner: () => owner, group: () => group };
}

/**
 * The same rule, handing out one Principal object per distinct owner or group instead of one per secret.
 * The rule is asked only for a name or id not seen before: it would allocate a Principal per secret.
 */
function sharedPrincipals(rule: OwnershipRule): OwnershipRule {
  // Names and ids cannot collide as keys: one is a string, the other a number. A fixed rule ignores both,
  // and byNameOrId decides by them alone, so the pair is the whole key.
  const owner = new PrincipalCache(rule.owner);
  const group = new PrincipalCache(rule.group);
  return { owner: (name, uid) => owner.get(name, uid), group: (name, gid) => group.get(name, gid) };
}

/** One Principal per name or id; the last one asked is compared first, as most secrets share an owner. */
class PrincipalCache {
  private readonly make: (name: string | null | undefined, id: number) => Principal;
  private readonly seen = new Map<string | number, Principal>();
  private lastKey: string | number | null = null;
  private last: Principal | null = null;

  constructor(make: (name: string | null | undefined, id: number) => Principal) {
    this.make = make;
  }

  get(name: string | null | undefined, id: number): Principal {
    const key = typeof name === "string" ? name : id;
    if (key === this.lastKey && this.last !== null) return this.last;
    let p = this.seen.get(key);
    if (p === undefined) {
      p = this.make(name, id);
      this.seen.set(key, p);
    }
    this.lastKey = key;
    this.last = p;
    return p;
  }
}

/** One copy of each repeated string (sops file paths, modes) of a manifest. */
class Interner {
  private readonly seen = new Map<string, string>();

  get(s: string): string {
    const seen = this.seen.get(s);
    if (seen !== undefined) return seen;
    this.seen.set(s, s);
    return s;
  }
}

/**
 * sops-install-secrets' rule (main.go:615-637): a name that is present — even "" — is looked up in
 * passwd/group (and "" is never found), a null or absent one means the numeric id.
 */
function byNameOrId(name: string | null | undefined, id: number): Principal {
  return typeof name === "string" ? { kind: "name", name } : { kind: "id", id };
}

// ---------------------------------------------------------------------------------------------------------
// `%r` expansion

interface PathExpander {
  expand(path: string): string;
  /** Whether any expanded path contained `%r`. */
  used(): boolean;
}

/**
 * sops-install-secrets expands `%r` (the runtime directory) and `%%` only in user mode; a system manifest's
 * paths are taken literally. Without a known runtime directory the path is kept verbatim, `%r` visible,
 * so the checks can report the session as unknown instead of probing a made-up path.
 */
function pathExpander(userMode: boolean, runtimeDir: string | null): PathExpander {
  let used = false;
  return {
    expand(path) {
      if (!userMode) return path;
      const parts = path.split("%%");
      if (!parts.some((part) => part.includes("%r"))) return parts.join("%");
      used = true;
      if (runtimeDir === null) return path;
      return parts.map((part) => part.replaceAll("%r", runtimeDir)).join("%");
    },
    used: () => used,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Typed field readers. Each throws a FieldError naming the JSON path of the field.

type JsonObject = { readonly [key: string]: unknown };

class FieldError extends Error {
  readonly field: string;

  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

function object(value: unknown, field: string, expected: string): JsonObject {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) return value as JsonObject;
  throw new FieldError(field, `expected ${expected}, got ${describe(value)}`);
}

function requiredString(o: JsonObject, key: string, parent: string, nonEmpty: boolean): string {
  const value = o[key];
  if (typeof value === "string" && !(nonEmpty && value === "")) return value;
  const field = fieldName(parent, key);
  if (value === undefined)
    throw new FieldError(field, `missing (expected a ${nonEmpty ? "non-empty " : ""}string)`);
  if (typeof value !== "string") throw new FieldError(field, `expected a string, got ${describe(value)}`);
  throw new FieldError(field, "must not be empty");
}

function optionalNullableString(o: JsonObject, key: string, parent: string): string | null | undefined {
  const value = o[key];
  if (value === undefined || value === null || typeof value === "string") return value;
  throw new FieldError(fieldName(parent, key), `expected a string or null, got ${describe(value)}`);
}

function optionalBoolean(o: JsonObject, key: string, parent: string): boolean | undefined {
  const value = o[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value === "boolean") return value;
  throw new FieldError(fieldName(parent, key), `expected a boolean, got ${describe(value)}`);
}

/** A uid or gid; absent or null means 0, Go's zero value (the modules' `nullOr int`). */
function optionalId(o: JsonObject, key: string, parent: string): number {
  const value = o[key];
  if (value === undefined || value === null) return 0;
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return value;
  throw new FieldError(fieldName(parent, key), `expected a non-negative integer, got ${describe(value)}`);
}

/** A list; absent or null is Go's nil slice: none. */
function list(o: JsonObject, key: string, parent: string): readonly unknown[] {
  const value = o[key];
  if (value === undefined || value === null) return NONE;
  if (Array.isArray(value)) return value;
  throw new FieldError(fieldName(parent, key), `expected a list, got ${describe(value)}`);
}

/** A list of strings; absent or null means none. */
function stringList(o: JsonObject, key: string, parent: string): string[] {
  const all = list(o, key, parent);
  const out: string[] = [];
  for (let i = 0; i < all.length; i++) {
    const item = all[i];
    if (typeof item !== "string")
      throw new FieldError(`${fieldName(parent, key)}[${i}]`, `expected a string, got ${describe(item)}`);
    out.push(item);
  }
  return out;
}

const NONE: readonly unknown[] = [];

/**
 * The JSON path of a field: `key` at the top level, else `parent.key`. Built only for an error: a 10k-secret
 * manifest read a dozen fields per secret, and naming each up front was ~120k strings of garbage.
 */
function fieldName(parent: string, key: string): string {
  return parent === "" ? key : `${parent}.${key}`;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  switch (typeof value) {
    case "string":
      return "a string";
    case "number":
      return Number.isInteger(value) ? (value < 0 ? "a negative number" : "a number") : "a fractional number";
    case "boolean":
      return "a boolean";
    case "object":
      return "an object";
    default:
      return typeof value;
  }
}

/** Quotes a mode or format string for a message; bounded so a pathological value cannot flood a log. */
function quote(text: string): string {
  return JSON.stringify(text.length > 32 ? `${text.slice(0, 32)}…` : text);
}
