// Reads the public part of an encrypted sops file: the plaintext key tree, the value types sops records in
// each `ENC[…,type:…]`, and the recipient metadata. Pure: text in, data out. Nothing here decrypts.
//
// The input is untrusted (any file a manifest names), so every step is bounded: size, structure count,
// nesting depth and list indices are capped, YAML aliases are refused outright (sops never writes them),
// and a failure is a value, never an exception. Reasons name key paths, types and line numbers only:
// the ENC blobs are ciphertext, but a file with a plaintext value must not leak it into logs.

import type { LineCounter, Node as YamlNode } from "yaml";
import type { SecretFormat } from "../core/model.js";
import { yamlLib as yaml } from "../core/yaml-lib.js";
import { parseSopsYamlFast, type Value } from "./yaml-fast.js";

/** Real sops files are kilobytes; above this the agent refuses instead of spending memory. */
export const MAX_INPUT_BYTES = 16 * 1024 * 1024;
/**
 * The yaml package costs ~2 µs and ~2 KB per token, so the number of lines and flow separators is capped:
 * 100k is far above any real sops file (a value line has ~5) and keeps the worst case near a second.
 */
export const MAX_STRUCTURE = 100_000;
/** Deeper than any real secrets document; keeps every recursion here far from the stack limit. */
export const MAX_DEPTH = 64;

export const ENC_TYPES = ["str", "int", "float", "bool", "bytes", "time", "comment"] as const;
export type EncType = (typeof ENC_TYPES)[number];
export type PlainType = "string" | "number" | "boolean" | "null";

/** The document tree with the values dropped: only structure and types are kept. */
export type SopsNode =
  /** An `ENC[AES256_GCM,…,type:T]` value. */
  | { readonly kind: "enc"; readonly type: EncType }
  /** A value sops left unencrypted (`unencrypted_suffix`, `unencrypted_regex`, …). */
  | { readonly kind: "plain"; readonly type: PlainType }
  | { readonly kind: "map"; readonly entries: ReadonlyMap<string, SopsNode> }
  | { readonly kind: "list"; readonly items: readonly SopsNode[] };

export type SopsMapNode = Extract<SopsNode, { kind: "map" }>;

export type RecipientKind =
  | "age"
  | "age_pq"
  | "age_plugin"
  | "ssh_ed25519"
  | "ssh_rsa"
  | "age_unknown"
  | "pgp"
  | "kms"
  | "gcp_kms"
  | "azure_kv"
  | "hc_vault"
  | "hckms";

export interface SopsRecipient {
  readonly kind: RecipientKind;
  /** The age recipient, ssh public key (type and base64) or pgp fingerprint; "" for cloud key services. */
  readonly id: string;
  /** Whether the entry carries its encrypted data key (`enc`); without it the entry cannot decrypt. */
  readonly hasEnc: boolean;
  /** The key group (0-based) the entry belongs to; the flat lists form group 0. */
  readonly group: number;
}

export interface SopsMetadata {
  /**
   * The key entries sops uses: the top-level lists when any is non-empty (they form one group and
   * `key_groups` is then ignored), else every `key_groups` entry (sops stores/stores.go:377-399, v3.12.2).
   */
  readonly recipients: readonly SopsRecipient[];
  /** `lastmodified` in seconds since the epoch; null when absent or not RFC 3339. */
  readonly lastModified: number | null;
  /** Number of key groups sops sees: 1 for the flat lists, 0 when the file has no key at all. */
  readonly keyGroups: number;
  readonly shamirThreshold: number | null;
}

export interface SopsDocument {
  readonly format: SecretFormat;
  /** The document without its `sops` metadata. binary: `{data}`; ini: one map per section. */
  readonly tree: SopsMapNode;
  readonly metadata: SopsMetadata;
}

export type SopsParse =
  | { readonly ok: true; readonly document: SopsDocument }
  | { readonly ok: false; readonly reason: string };

class Refusal extends Error {}

function refuse(reason: string): never {
  throw new Refusal(reason);
}

/** Parses an encrypted sops file. Never throws, never returns a value from the file in a reason. */
export function parseSopsFile(text: string, format: SecretFormat, meter?: WorkMeter): SopsParse {
  try {
    checkBounds(text);
    const root = parseByFormat(text, format, meter);
    return { ok: true, document: toDocument(root, format) };
  } catch (err) {
    if (err instanceof Refusal) return { ok: false, reason: err.message };
    // The yaml package recurses per nesting level; whatever slipped past the bounds ends here.
    if (err instanceof RangeError) return { ok: false, reason: "too deeply nested to parse" };
    return { ok: false, reason: `internal parser error (${err instanceof Error ? err.name : "unknown"})` };
  }
}

function checkBounds(text: string): void {
  const reason = boundsRefusal(text);
  if (reason !== null) refuse(reason);
}

/**
 * Why a text is refused before any parser sees it, or null. A loop over every character in JavaScript cost
 * ~20 ms over a 10k-secret host's sops files in a cold `status`, more than parsing them; so does one native
 * search per comma. Here the structure is counted only for a text long enough to exceed its bound, and the
 * openers and line-head dashes (capped just past the nesting bound) decide whether the exact nesting scan
 * is needed at all. `boundsRefusalExact` is the
 * specification; a property test holds the two to the same answers.
 */
export function boundsRefusal(text: string): string | null {
  // UTF-16 length is at most the UTF-8 length, so this is a sound lower bound of the file size.
  if (text.length > MAX_INPUT_BYTES) return `file is larger than ${MAX_INPUT_BYTES} bytes`;
  if (text.includes("\u0000")) return "file contains NUL bytes: binary data, not a sops text file";
  // Each counted token is one character, so a text no longer than the bound cannot exceed it: real sops
  // files (kilobytes) skip the count.
  if (text.length > MAX_STRUCTURE) {
    const cap = MAX_STRUCTURE + 1;
    // \n , [ {  — the tokens that make the yaml package slow; brackets also bound flow nesting.
    const structure =
      occurrences(text, "\n", cap) +
      occurrences(text, ",", cap) +
      occurrences(text, "[", cap) +
      occurrences(text, "{", cap);
    if (structure > MAX_STRUCTURE) return `file has more than ${MAX_STRUCTURE} lines and separators`;
  }
  // Nesting deeper than the bound needs more openers, or more `- ` / `-\t` pairs, than the bound.
  const limit = MAX_DEPTH * 4;
  const over = limit + 1;
  if (
    occurrences(text, "[", over) + occurrences(text, "{", over) <= limit &&
    occurrences(text, "- ", over) + occurrences(text, "-\t", over) <= limit
  )
    return null;
  return boundsRefusalExact(text);
}

/** How often `s` occurs in `text`, counting no further than `cap`. */
function occurrences(text: string, s: string, cap: number): number {
  let n = 0;
  for (let i = text.indexOf(s); i !== -1 && n < cap; i = text.indexOf(s, i + 1)) n++;
  return n;
}

/** The bounds by one scan over every character: the definition `boundsRefusal` takes its shortcuts from. */
export function boundsRefusalExact(text: string): string | null {
  if (text.length > MAX_INPUT_BYTES) return `file is larger than ${MAX_INPUT_BYTES} bytes`;
  if (text.includes("\u0000")) return "file contains NUL bytes: binary data, not a sops text file";
  let structure = 0;
  let depth = 0;
  let maxDepth = 0;
  // Compact nested block sequences (`- - - … x`: one level per indicator at a line's head) open no
  // bracket. Given 50,000 of them, the yaml package's parser makes V8's regexp compiler run out of memory
  // on the third parse in a process, which aborts Node: they are counted here and never reach it.
  let lineHead = true;
  let dashes = 0;
  let maxDashes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || c === 44 || c === 91 || c === 123) structure++;
    if (c === 91 || c === 123) {
      depth++;
      if (depth > maxDepth) maxDepth = depth;
    } else if ((c === 93 || c === 125) && depth > 0) depth--;
    if (c === 10) {
      lineHead = true;
      dashes = 0;
    } else if (lineHead) {
      const next = text.charCodeAt(i + 1);
      if (c === 45 && (next === 32 || next === 9)) {
        dashes++;
        if (dashes > maxDashes) maxDashes = dashes;
      } else if (c !== 32 && c !== 9) lineHead = false;
    }
  }
  if (structure > MAX_STRUCTURE) return `file has more than ${MAX_STRUCTURE} lines and separators`;
  // Counted without regard to quoting, so the bound is generous (ENC[…] itself opens one bracket).
  if (maxDepth > MAX_DEPTH * 4 || maxDashes > MAX_DEPTH * 4)
    return `file is nested deeper than ${MAX_DEPTH} levels`;
  return null;
}

function parseByFormat(
  text: string,
  format: SecretFormat,
  meter: WorkMeter | undefined,
): ReadonlyMap<string, Value> {
  switch (format) {
    case "yaml":
      return parseYaml(text);
    case "json":
    case "binary":
      checkStrictJson(text);
      return parseYaml(text);
    case "dotenv":
      return parseDotenv(text, meter);
    case "ini":
      return parseIni(text, meter);
  }
}

// ---------------------------------------------------------------------------------------------------------
// YAML and JSON

function checkStrictJson(text: string): void {
  try {
    JSON.parse(text);
  } catch (err) {
    // V8 quotes the offending text in its message; keep only the position.
    const position = err instanceof Error ? /position (\d+)/.exec(err.message)?.[1] : undefined;
    const where = position === undefined ? "" : ` at line ${lineOf(text, Number(position))}`;
    refuse(`not valid JSON${where}`);
  }
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function parseYaml(text: string): ReadonlyMap<string, Value> {
  return parseSopsYamlFast(text, MAX_DEPTH) ?? parseYamlFull(text);
}

/**
 * The YAML tree of a sops file by one path only, for the test that holds the fast path to the full parser.
 * Not for other uses: parseSopsFile is the API.
 */
export function yamlTreeForTest(
  text: string,
  path: "fast" | "full",
): { ok: true; tree: ReadonlyMap<string, Value> } | { ok: false; reason: string } | null {
  try {
    checkBounds(text);
    const tree = path === "fast" ? parseSopsYamlFast(text, MAX_DEPTH) : parseYamlFull(text);
    return tree === null ? null : { ok: true, tree };
  } catch (err) {
    if (err instanceof Refusal) return { ok: false, reason: err.message };
    throw err;
  }
}

function parseYamlFull(text: string): ReadonlyMap<string, Value> {
  const { LineCounter, parseDocument } = yaml();
  const lines = new LineCounter();
  // uniqueKeys is quadratic in the yaml package; duplicates are found below with a Set instead.
  // Aliases are refused while walking, so they are never expanded (no billion laughs).
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false, prettyErrors: false });
  const first = doc.errors[0];
  if (first !== undefined) {
    const pos = first.pos[0];
    // The package's messages can quote source text; its error code and our line number cannot.
    const line = lines.linePos(pos).line;
    if (first.code === "RESOURCE_EXHAUSTION")
      refuse(`too deeply nested or too large to parse (line ${line})`);
    refuse(`YAML syntax error ${first.code} at line ${line}`);
  }
  const contents = doc.contents;
  if (contents === null) refuse("the document is empty");
  const root = yamlValue(contents, [], 0, lines);
  if (!(root instanceof Map)) refuse("the top level is not a map");
  return root;
}

function yamlValue(node: unknown, path: readonly string[], depth: number, lines: LineCounter): Value {
  const { isAlias, isMap, isScalar, isSeq } = yaml();
  if (depth > MAX_DEPTH) refuse(`nested deeper than ${MAX_DEPTH} levels at ${showPath(path)}`);
  const line = (): number => lineAt(node, lines);
  if (isAlias(node)) refuse(`YAML alias at line ${line()}: sops never writes anchors or aliases`);
  if (isScalar(node)) return scalarValue(node.value);
  if (isSeq(node))
    return node.items.map((item, i) => yamlValue(item, [...path, String(i)], depth + 1, lines));
  if (isMap(node)) {
    const out = new Map<string, Value>();
    for (const pair of node.items) {
      if (!isScalar(pair.key)) refuse(`a key at line ${lineAt(pair.key, lines)} is not a plain scalar`);
      const key = String(pair.key.value);
      if (out.has(key))
        refuse(`duplicate key ${showPath([...path, key])} at line ${lineAt(pair.key, lines)}`);
      out.set(key, yamlValue(pair.value, [...path, key], depth + 1, lines));
    }
    return out;
  }
  // `key:` with nothing after it.
  if (node === null) return null;
  return refuse(`unexpected YAML node at line ${line()}`);
}

function lineAt(node: unknown, lines: LineCounter): number {
  const range = (node as YamlNode | null)?.range;
  return range ? lines.linePos(range[0]).line : 0;
}

function scalarValue(v: unknown): Value {
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean" || v === null) return v;
  if (typeof v === "bigint") return Number(v);
  // Custom tags (`!!binary`, …) are not something sops writes; what matters is that it is not a string.
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// dotenv and ini (flat formats: sops stores its metadata as `sops_age__list_0__map_recipient=…`)

const SOPS_PREFIX = "sops_";

function parseDotenv(text: string, meter: WorkMeter | undefined): ReadonlyMap<string, Value> {
  const data = new Map<string, Value>();
  const flat = new Map<string, string>();
  const lines = text.split("\n");
  for (const [i, line] of lines.entries()) {
    // Like sops: empty lines are skipped, `#` starts a comment, everything else is KEY=VALUE.
    if (line === "" || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq === -1) refuse(`line ${i + 1} has no '=': not a dotenv line`);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key.startsWith(SOPS_PREFIX)) {
      const name = key.slice(SOPS_PREFIX.length);
      if (flat.has(name)) refuse(`duplicate key ${key} at line ${i + 1}`);
      flat.set(name, value);
    } else {
      if (data.has(key)) refuse(`duplicate key ${key} at line ${i + 1}`);
      data.set(key, value);
    }
  }
  if (flat.size > 0) data.set("sops", unflatten(flat, meter));
  return data;
}

function parseIni(text: string, meter: WorkMeter | undefined): ReadonlyMap<string, Value> {
  const sections = new Map<string, Map<string, string>>();
  let current = "DEFAULT";
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith(";") || line.startsWith("#")) continue;
    if (line.startsWith("[")) {
      if (!line.endsWith("]")) refuse(`line ${i + 1}: unterminated section header`);
      current = line.slice(1, -1).trim();
      continue;
    }
    // go-ini accepts both `=` and `:` as the delimiter; the first one wins.
    const m = /[=:]/.exec(line);
    if (m === null) refuse(`line ${i + 1} has no '=': not an ini key`);
    const key = line.slice(0, m.index).trim();
    const value = line.slice(m.index + 1).trim();
    let section = sections.get(current);
    if (section === undefined) {
      section = new Map();
      sections.set(current, section);
    }
    if (section.has(key)) refuse(`duplicate key ${key} in section [${current}] at line ${i + 1}`);
    section.set(key, value);
  }
  const out = new Map<string, Value>();
  for (const [name, entries] of sections) {
    // go-ini always has an empty DEFAULT section; sops drops it too.
    if (name === "DEFAULT" && entries.size === 0) continue;
    out.set(name, name === "sops" ? unflatten(entries, meter) : entries);
  }
  return out;
}

const MAP_SEP = "__map_";
const LIST_SEP = "__list_";

type Token = { readonly map: string } | { readonly list: number };

/**
 * Counts the work of unflattening (nodes placed, list slots allocated), so tests can assert that it grows
 * linearly with the input instead of timing it.
 */
export interface WorkMeter {
  units: number;
}

/** sops' flatten encoding: `a__map_b__list_0` is `a.b[0]`. stores/flatten.go tokenize (sops 15e36f97a). */
function tokenize(path: string): Token[] {
  const tokens: Token[] = [];
  const re = new RegExp(`${MAP_SEP}|${LIST_SEP}`, "g");
  let start = 0;
  let kind: "map" | "list" = "map";
  const push = (end: number): void => {
    const text = path.slice(start, end);
    if (kind === "map") {
      tokens.push({ map: text });
      return;
    }
    // sops ignores Atoi's error (stores/flatten.go:49), so a non-number is index 0. An index that does not
    // fit is never complete (below), whatever its exact value.
    tokens.push({ list: /^[+-]?\d+$/.test(text) ? Number(text) : 0 });
  };
  for (let m = re.exec(path); m !== null; m = re.exec(path)) {
    push(m.index);
    kind = m[0] === MAP_SEP ? "map" : "list";
    start = m.index + m[0].length;
  }
  push(path.length);
  return tokens;
}

/**
 * sops' unflatten node (stores/flatten.go:72-76): a value, map entries or list entries by index. Indices are
 * kept in a Map, never as array slots: an attacker-chosen `__list_99999` costs one entry, not 100,000.
 */
interface FlatNode {
  value: string | undefined;
  subkeys: Map<string, FlatNode> | undefined;
  indices: Map<number, FlatNode> | undefined;
}

function newNode(meter: WorkMeter | undefined): FlatNode {
  if (meter !== undefined) meter.units++;
  return { value: undefined, subkeys: undefined, indices: undefined };
}

function unflatten(flat: ReadonlyMap<string, string>, meter: WorkMeter | undefined): Value {
  const root = newNode(meter);
  for (const [path, value] of flat) {
    const tokens = tokenize(path);
    if (tokens.length > MAX_DEPTH) refuse(`metadata key sops_${path} is nested too deeply`);
    place(root, tokens, value, path, meter);
  }
  return convert(root, "", meter);
}

/** stores/flatten.go place (sops 15e36f97a): walks or creates one node per token. */
function place(
  root: FlatNode,
  tokens: readonly Token[],
  value: string,
  path: string,
  meter: WorkMeter | undefined,
): void {
  let node = root;
  for (const token of tokens) {
    let next: FlatNode | undefined;
    if ("map" in token) {
      node.subkeys ??= new Map();
      next = node.subkeys.get(token.map);
      if (next === undefined) {
        next = newNode(meter);
        node.subkeys.set(token.map, next);
      }
    } else {
      node.indices ??= new Map();
      next = node.indices.get(token.list);
      if (next === undefined) {
        next = newNode(meter);
        node.indices.set(token.list, next);
      }
    }
    node = next;
  }
  if (node.value !== undefined) refuse(`duplicate metadata key sops_${path}`);
  node.value = value;
}

/**
 * stores/flatten.go convert (sops 15e36f97a): a node is a value, a map or a list, never two of them; a list
 * must hold every index from 0 to its largest ("Incomplete list"), so the array allocated is exactly as
 * long as the entries given.
 */
function convert(node: FlatNode, where: string, meter: WorkMeter | undefined): Value {
  const kinds =
    (node.value !== undefined ? 1 : 0) +
    (node.subkeys !== undefined ? 1 : 0) +
    (node.indices !== undefined ? 1 : 0);
  if (kinds > 1) refuse(`metadata key sops_${where} mixes a value, a map and a list`);
  if (node.value !== undefined) return node.value;
  if (node.indices !== undefined) {
    const size = node.indices.size;
    for (const index of node.indices.keys()) {
      if (!(Number.isInteger(index) && index >= 0 && index < size))
        refuse(`metadata list sops_${where} is incomplete: ${size} entries, but index ${index}`);
    }
    if (meter !== undefined) meter.units += size;
    const items = new Array<Value>(size);
    for (const [index, child] of node.indices)
      items[index] = convert(child, `${where}${LIST_SEP}${index}`, meter);
    return items;
  }
  const out = new Map<string, Value>();
  // sops sorts map keys (stores/flatten.go:137); nothing here depends on their order.
  for (const [key, child] of node.subkeys ?? [])
    out.set(key, convert(child, where === "" ? key : `${where}${MAP_SEP}${key}`, meter));
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// From generic data to the document

function toDocument(root: ReadonlyMap<string, Value>, format: SecretFormat): SopsDocument {
  const meta = root.get("sops");
  if (meta === undefined) refuse("no `sops` metadata: this is not an encrypted sops file");
  if (!(meta instanceof Map)) refuse("the `sops` metadata is not a map");
  const entries = new Map<string, SopsNode>();
  for (const [key, value] of root) {
    if (key !== "sops") entries.set(key, classify(value, NO_PATH, key));
  }
  if (format === "binary" && entries.get("data")?.kind !== "enc") {
    refuse("binary sops file has no encrypted `data` value");
  }
  return { format, tree: { kind: "map", entries }, metadata: readMetadata(meta) };
}

// sops writes `ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:<t>]`; empty values have empty data.
const ENC_SHAPE =
  /^ENC\[AES256_GCM,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]+,tag:[A-Za-z0-9+/=]+,type:[a-z]+\]$/;

/**
 * Leaves are shared: a cached document lives as long as its file is unchanged, and one object per value
 * (with its own copy of the type string) cost ~100 bytes per secret.
 */
const ENC_NODES: Readonly<Record<EncType, SopsNode>> = Object.freeze(
  Object.fromEntries(ENC_TYPES.map((type) => [type, Object.freeze({ kind: "enc", type })])) as Record<
    EncType,
    SopsNode
  >,
);
const PLAIN_NODES: Readonly<Record<PlainType, SopsNode>> = Object.freeze({
  string: Object.freeze({ kind: "plain", type: "string" }),
  number: Object.freeze({ kind: "plain", type: "number" }),
  boolean: Object.freeze({ kind: "plain", type: "boolean" }),
  null: Object.freeze({ kind: "plain", type: "null" }),
});

const NO_PATH: readonly string[] = [];

/**
 * The node of the value at `parent` + `key`. The path is only extended for a map or list, never per leaf:
 * at 10,000 secrets, one array per value was a good part of the garbage of reading the sops files.
 */
function classify(value: Value, parent: readonly string[], key: string): SopsNode {
  if (typeof value === "string") {
    if (!value.startsWith("ENC[")) return PLAIN_NODES.string;
    const type = encType(value);
    if (type === null) refuse(`malformed ENC[] value at ${showPath([...parent, key])}`);
    return ENC_NODES[type];
  }
  if (typeof value === "number") return PLAIN_NODES.number;
  if (typeof value === "boolean") return PLAIN_NODES.boolean;
  if (value === null) return PLAIN_NODES.null;
  const path = [...parent, key];
  if (value instanceof Map) {
    const entries = new Map<string, SopsNode>();
    for (const [k, v] of value) entries.set(k, classify(v, path, k));
    return { kind: "map", entries };
  }
  return {
    kind: "list",
    items: (value as readonly Value[]).map((v, i) => classify(v, path, String(i))),
  };
}

/** The type of a well-formed ENC[] value, else null; sops' usual `type:str` without a match array. */
function encType(value: string): EncType | null {
  if (!ENC_SHAPE.test(value)) return null;
  if (value.endsWith(",type:str]")) return "str";
  // The shape ends in `,type:[a-z]+]` and base64 has no `:`: the type follows the last colon.
  const type = value.slice(value.lastIndexOf(":") + 1, -1);
  return isEncType(type) ? type : null;
}

function isEncType(t: string | undefined): t is EncType {
  return (ENC_TYPES as readonly (string | undefined)[]).includes(t);
}

const SERVICE_KINDS = ["kms", "gcp_kms", "azure_kv", "hc_vault", "hckms"] as const;

function readMetadata(meta: ReadonlyMap<string, Value>): SopsMetadata {
  const flat: SopsRecipient[] = [];
  readKeyLists(meta, "sops", 0, flat);
  const grouped: SopsRecipient[] = [];
  const groups = listField(meta, "key_groups", "sops");
  for (const [i, group] of groups.entries()) {
    const where = `sops.key_groups[${i}]`;
    if (!(group instanceof Map)) refuse(`${where} is not a map`);
    readKeyLists(group, where, i, grouped);
  }
  // sops stores/stores.go:377-399 (v3.12.2): any non-empty top-level list wins over key_groups.
  const useFlat = flat.length > 0;
  const threshold = meta.get("shamir_threshold");
  return {
    recipients: useFlat ? flat : grouped,
    lastModified: epochSeconds(meta.get("lastmodified")),
    keyGroups: useFlat ? 1 : groups.length,
    shamirThreshold:
      typeof threshold === "number" ? threshold : typeof threshold === "string" ? toInt(threshold) : null,
  };
}

function readKeyLists(
  meta: ReadonlyMap<string, Value>,
  where: string,
  group: number,
  out: SopsRecipient[],
): void {
  for (const [i, entry] of listField(meta, "age", where).entries()) {
    const e = entryMap(entry, `${where}.age[${i}]`);
    const recipient = e.get("recipient");
    if (typeof recipient !== "string") refuse(`${where}.age[${i}].recipient is not a string`);
    out.push({ kind: ageRecipientKind(recipient), id: detached(recipient.trim()), hasEnc: hasEnc(e), group });
  }
  for (const [i, entry] of listField(meta, "pgp", where).entries()) {
    const e = entryMap(entry, `${where}.pgp[${i}]`);
    const fp = e.get("fp");
    out.push({ kind: "pgp", id: typeof fp === "string" ? detached(fp) : "", hasEnc: hasEnc(e), group });
  }
  for (const kind of SERVICE_KINDS) {
    for (const [i, entry] of listField(meta, kind, where).entries()) {
      out.push({ kind, id: "", hasEnc: hasEnc(entryMap(entry, `${where}.${kind}[${i}]`)), group });
    }
  }
}

/**
 * A copy of a string cut from the file's text that does not hold that text: V8 keeps a substring as a
 * slice of its parent, so one kept recipient kept the whole ~15 KB file alive in a long-running agent
 * (1.4 MB at 100 sops files). The parse keeps only recipients; the cache holds them as long as the file.
 */
function detached(s: string): string {
  return Buffer.from(s, "utf8").toString("utf8");
}

function listField(meta: ReadonlyMap<string, Value>, name: string, where: string): readonly Value[] {
  const v = meta.get(name);
  // sops' JSON writer emits `"kms": null` for an empty list.
  if (v === undefined || v === null || v === "") return [];
  if (!Array.isArray(v)) refuse(`${where}.${name} is not a list`);
  return v as readonly Value[];
}

function entryMap(v: Value, where: string): ReadonlyMap<string, Value> {
  if (!(v instanceof Map)) refuse(`${where} is not a map`);
  return v;
}

function hasEnc(entry: ReadonlyMap<string, Value>): boolean {
  const enc = entry.get("enc");
  return typeof enc === "string" && enc.trim() !== "";
}

/** The same rules as sops' age key source; bech32 has no `1` in its alphabet, so a second `1` is a plugin. */
export function ageRecipientKind(recipient: string): RecipientKind {
  const r = recipient.trim();
  if (r.startsWith("age1pq1")) return "age_pq";
  if (r.startsWith("age1") && r.indexOf("1", 4) !== -1) return "age_plugin";
  if (r.startsWith("age1")) return "age";
  if (r.startsWith("ssh-ed25519 ")) return "ssh_ed25519";
  if (r.startsWith("ssh-rsa ")) return "ssh_rsa";
  return "age_unknown";
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function epochSeconds(v: Value | undefined): number | null {
  if (typeof v !== "string" || !RFC3339.test(v)) return null;
  const ms = Date.parse(v);
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : null;
}

function toInt(s: string): number | null {
  return /^\d{1,9}$/.test(s) ? Number(s) : null;
}

function showPath(path: readonly string[]): string {
  return path.length === 0 ? "the top level" : `'${path.join("/")}'`;
}

// ---------------------------------------------------------------------------------------------------------
// Lookups

export type KeyLookup =
  /** binary, dotenv and ini files, and an empty key: sops-nix uses the whole file. */
  | { readonly kind: "whole-file" }
  | { readonly kind: "found"; readonly node: SopsNode }
  /** `at` is the prefix that is missing, or that is not a map so the path cannot continue. */
  | { readonly kind: "absent"; readonly at: string; readonly why: "missing" | "not-a-map" };

/** Walks a `/`-separated key like sops-install-secrets does: maps only, no list indices. */
export function lookupKey(document: SopsDocument, key: string): KeyLookup {
  if (key === "" || (document.format !== "yaml" && document.format !== "json")) return { kind: "whole-file" };
  if (!key.includes("/")) {
    // Most keys are top-level names: no array to split into.
    if (document.tree.kind !== "map") return { kind: "absent", at: "", why: "not-a-map" };
    const node = document.tree.entries.get(key);
    return node === undefined ? { kind: "absent", at: key, why: "missing" } : { kind: "found", node };
  }
  let node: SopsNode = document.tree;
  // Part by part along the slashes, without an array of parts, and the failing prefix only cut on failure:
  // this runs once per declared secret per check (`svc/name` keys are the usual sops-nix layout).
  let start = 0;
  for (;;) {
    const slash = key.indexOf("/", start);
    const end = slash === -1 ? key.length : slash;
    if (node.kind !== "map")
      return { kind: "absent", at: key.slice(0, Math.max(0, start - 1)), why: "not-a-map" };
    const next: SopsNode | undefined = node.entries.get(key.slice(start, end));
    if (next === undefined) return { kind: "absent", at: key.slice(0, end), why: "missing" };
    node = next;
    if (slash === -1) return { kind: "found", node };
    start = slash + 1;
  }
}

/** sops-install-secrets only writes strings (sops-nix #848). */
export function isStringNode(node: SopsNode): boolean {
  return (node.kind === "enc" && node.type === "str") || (node.kind === "plain" && node.type === "string");
}

export function describeNode(node: SopsNode): string {
  switch (node.kind) {
    case "enc":
      return `type:${node.type}`;
    case "plain":
      return `unencrypted ${node.type}`;
    case "map":
      return "a map";
    case "list":
      return "a list";
  }
}

/** The X25519 age recipients that can decrypt the file (they carry an encrypted data key). */
export function ageRecipients(document: SopsDocument): string[] {
  return document.metadata.recipients.filter((r) => r.kind === "age" && r.hasEnc).map((r) => r.id);
}

export function recipientCounts(document: SopsDocument): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of document.metadata.recipients) counts[r.kind] = (counts[r.kind] ?? 0) + 1;
  return counts;
}
