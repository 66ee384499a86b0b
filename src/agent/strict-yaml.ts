// Strict YAML reading shared by the agent's config and web config: every error names the file, the line
// and the key, like blackbox_exporter's strict decoding, so an operator finds a typo without guessing.

import type { LineCounter, Node, YAMLMap } from "yaml";
import { yamlLib } from "../core/yaml-lib.js";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly file: string;
  readonly line: number;

  constructor(file: string, line: number, message: string) {
    super(`${file}:${line}: ${message}`);
    this.file = file;
    this.line = line;
  }
}

/** A parsed file and a way to turn a node into a line number. */
export class YamlSource {
  readonly file: string;
  readonly root: Node | null;
  private readonly lines: LineCounter;

  private constructor(file: string, root: Node | null, lines: LineCounter) {
    this.file = file;
    this.root = root;
    this.lines = lines;
  }

  /** Parses text; a syntax error becomes a ConfigError at its line. */
  static parse(file: string, text: string): YamlSource {
    const { LineCounter, isScalar, parseDocument } = yamlLib();
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
    const first = doc.errors[0];
    if (first !== undefined) {
      const line = first.linePos?.[0].line ?? lines.linePos(first.pos[0]).line;
      throw new ConfigError(file, line, `invalid YAML: ${first.message.split("\n")[0] ?? first.code}`);
    }
    const contents = doc.contents;
    // An empty file or one holding only `null` means "all defaults".
    const root = contents === null || (isScalar(contents) && contents.value === null) ? null : contents;
    return new YamlSource(file, root, lines);
  }

  line(node: Node | null | undefined): number {
    const offset = node?.range?.[0];
    return offset === undefined ? 1 : this.lines.linePos(offset).line;
  }

  error(node: Node | null | undefined, message: string): ConfigError {
    return new ConfigError(this.file, this.line(node), message);
  }
}

/** One key of a mapping with its key and value nodes, for line numbers. */
export interface Entry {
  readonly key: string;
  readonly keyNode: Node;
  readonly value: Node | null;
}

/** The entries of a mapping node, rejecting keys not in `allowed`. `where` prefixes nested key names. */
export function mappingEntries(
  src: YamlSource,
  node: Node | null,
  allowed: readonly string[] | null,
  where: string,
): Entry[] {
  if (node === null) return [];
  const { isMap, isScalar } = yamlLib();
  if (!isMap(node)) throw src.error(node, `${where === "" ? "the file" : `"${where}"`} must be a mapping`);
  const entries: Entry[] = [];
  for (const pair of (node as YAMLMap<unknown, unknown>).items) {
    const keyNode = pair.key as Node;
    if (!isScalar(keyNode) || typeof keyNode.value !== "string")
      throw src.error(keyNode, `keys${where === "" ? "" : ` of "${where}"`} must be strings`);
    const key = keyNode.value;
    const full = where === "" ? key : `${where}.${key}`;
    if (allowed !== null && !allowed.includes(key)) throw src.error(keyNode, `unknown key "${full}"`);
    entries.push({ key, keyNode, value: (pair.value as Node | null) ?? null });
  }
  return entries;
}

export function stringValue(src: YamlSource, entry: Entry, name: string): string {
  const v = entry.value;
  const { isScalar } = yamlLib();
  if (!isScalar(v) || typeof v.value !== "string")
    throw src.error(v ?? entry.keyNode, `"${name}" must be a string`);
  return v.value;
}

export function booleanValue(src: YamlSource, entry: Entry, name: string): boolean {
  const v = entry.value;
  const { isScalar } = yamlLib();
  if (!isScalar(v) || typeof v.value !== "boolean")
    throw src.error(v ?? entry.keyNode, `"${name}" must be true or false`);
  return v.value;
}

export function integerValue(src: YamlSource, entry: Entry, name: string): number {
  const v = entry.value;
  const { isScalar } = yamlLib();
  if (!isScalar(v) || typeof v.value !== "number" || !Number.isInteger(v.value))
    throw src.error(v ?? entry.keyNode, `"${name}" must be an integer`);
  return v.value;
}

export function stringList(src: YamlSource, entry: Entry, name: string): string[] {
  const v = entry.value;
  if (v === null) return [];
  const { isScalar, isSeq } = yamlLib();
  if (!isSeq(v)) throw src.error(v, `"${name}" must be a list of strings`);
  return v.items.map((item, i) => {
    const n = item as Node;
    if (!isScalar(n) || typeof n.value !== "string") throw src.error(n, `"${name}[${i}]" must be a string`);
    return n.value;
  });
}
