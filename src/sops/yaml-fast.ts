// A fast path for the YAML that sops writes (go-yaml v3: block maps and sequences, 4-space indentation,
// `- key: value` items, `|` literals for the age/pgp data keys, double-quoted timestamps, plain ENC[…]
// scalars). It reads that subset in one pass over the text at a small constant per byte, and answers
// null for anything outside it, so the caller falls back to the full parser, which then decides. It must
// never accept a text that the full parser reads differently: test/sops-yaml-fast.test.ts checks that on
// generated and real sops files. What it accepts is deliberately narrow: a key or value that would need a
// YAML rule to resolve (numbers other than plain integers, floats, timestamps, escapes, flow collections,
// folded scalars, anchors, tags, documents markers, tabs) sends the whole file to the full parser.

/** Generic parsed data, before it is reduced to types. Maps keep order and cannot be prototype-polluted. */
export type Value = string | number | boolean | null | readonly Value[] | ReadonlyMap<string, Value>;

/** Thrown inside the fast path when the text leaves the subset; never escapes this module. */
const BAIL: unique symbol = Symbol("bail");

// Control characters, NEL, line/paragraph separators, BOM, surrogates, tabs and CRs: characters on which
// YAML versions and parsers differ, or that need escapes. Any of them sends the file to the full parser.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const OUTSIDE_SUBSET = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\ufeff\ud800-\udfff]/;

const SPACE = 32;
const NEWLINE = 10;
const HASH = 35;
const COLON = 58;
const DASH = 45;
const QUOTE = 34;
const APOSTROPHE = 39;

/** A plain key that resolves to itself under the YAML 1.2 core schema. */
const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_.\-/]*$/;
/** Plain words the core schema reads as booleans or null (also as keys: `True:` is the key "true"). */
const RESERVED = /^(?:true|false|null)$/i;
const PLAIN_INT = /^(?:0|[1-9][0-9]{0,14})$/;
const VERSIONISH = /^[0-9]+\.[0-9]+\.[0-9A-Za-z.+_-]*$/;
/** Digits and letters with at least one letter: a fingerprint, never a core-schema integer. */
const ALNUM = /^[0-9]*[A-Za-z][0-9A-Za-z]*$/;
const NUMBERISH = /^(?:0[xo]|[0-9]+[eE][0-9]+$)/;
const DOUBLE_QUOTED = /^"([^"\\]*)"$/;
const SINGLE_QUOTED = /^'([^']*)'$/;

/**
 * The document's top-level map, or null when the text is not in the subset (the full parser decides then).
 * `maxDepth` is the full parser's nesting limit: deeper documents are left to it, so it refuses them.
 */
export function parseSopsYamlFast(text: string, maxDepth: number): ReadonlyMap<string, Value> | null {
  if (OUTSIDE_SUBSET.test(text)) return null;
  try {
    const p = new FastParser(text, maxDepth);
    if (!p.next() || p.indent !== 0) return null;
    const root = p.map(0, 0);
    // Anything left (a less indented line cannot exist at indent 0) means a stray line: not the subset.
    if (p.next()) return null;
    return root;
  } catch (err) {
    if (err === BAIL) return null;
    throw err;
  }
}

class FastParser {
  private readonly text: string;
  private readonly maxDepth: number;
  /** Start of the line after the current one. */
  private pos = 0;
  /** The current meaningful line: its indentation, where its content starts, where it ends. */
  indent = 0;
  private start = 0;
  private end = 0;
  /** Whether the current line has been read by next() and not yet consumed. */
  private pending = false;
  /** Set by key(): a field, not a returned object, since it runs once per line. */
  private afterKey = 0;

  constructor(text: string, maxDepth: number) {
    this.text = text;
    this.maxDepth = maxDepth;
  }

  /** Moves to the next line that is neither blank nor a comment; false at the end of the text. */
  next(): boolean {
    if (this.pending) return true;
    const t = this.text;
    while (this.pos < t.length) {
      const lineStart = this.pos;
      let end = t.indexOf("\n", lineStart);
      if (end === -1) end = t.length;
      this.pos = end + 1;
      let i = lineStart;
      while (i < end && t.charCodeAt(i) === SPACE) i++;
      if (i === end || t.charCodeAt(i) === HASH) continue;
      this.indent = i - lineStart;
      this.start = i;
      this.end = end;
      this.pending = true;
      return true;
    }
    return false;
  }

  /** A block map whose keys sit at `indent`; the current line is its first entry. */
  map(indent: number, depth: number): Map<string, Value> {
    if (depth >= this.maxDepth) throw BAIL;
    const out = new Map<string, Value>();
    while (this.next()) {
      if (this.indent < indent) break;
      if (this.indent > indent) throw BAIL;
      const t = this.text;
      const key = this.key();
      if (out.has(key)) throw BAIL;
      // Just past the colon: the rest of the line is the value, or nothing for a nested block.
      let v = this.afterKey;
      while (v < this.end && t.charCodeAt(v) === SPACE) v++;
      this.pending = false;
      if (v === this.end) {
        out.set(key, this.nested(indent, depth));
        continue;
      }
      const value = t.slice(v, this.end).trimEnd();
      if (value === "|" || value === "|-") out.set(key, this.literal(indent, value === "|"));
      else out.set(key, scalar(value));
    }
    return out;
  }

  /** A block sequence whose dashes sit at `indent`; the current line is its first item. */
  seq(indent: number, depth: number): Value[] {
    if (depth >= this.maxDepth) throw BAIL;
    const out: Value[] = [];
    const t = this.text;
    while (this.next()) {
      if (this.indent < indent) break;
      if (this.indent > indent) throw BAIL;
      // `- ` and exactly one space: the item's content is then at indent + 2, where go-yaml puts it.
      if (t.charCodeAt(this.start) !== DASH || t.charCodeAt(this.start + 1) !== SPACE) throw BAIL;
      const c = this.start + 2;
      if (c >= this.end || t.charCodeAt(c) === SPACE) throw BAIL;
      if (this.isKeyAt(c)) {
        // `- key: value`: a map whose keys sit at indent + 2, starting on this very line.
        this.indent = indent + 2;
        this.start = c;
        out.push(this.map(indent + 2, depth + 1));
        continue;
      }
      this.pending = false;
      const value = t.slice(c, this.end).trimEnd();
      if (value === "|" || value === "|-") throw BAIL;
      out.push(scalar(value));
    }
    return out;
  }

  /** The value of `key:` with nothing after the colon: a more indented block, or null. */
  private nested(indent: number, depth: number): Value {
    if (!this.next()) return null;
    const t = this.text;
    const isItem =
      t.charCodeAt(this.start) === DASH &&
      this.end > this.start + 1 &&
      t.charCodeAt(this.start + 1) === SPACE;
    if (this.indent <= indent) {
      // A sequence at the key's own indentation belongs to the key in YAML; go-yaml never writes that.
      if (isItem || (t.charCodeAt(this.start) === DASH && this.end === this.start + 1)) throw BAIL;
      return null;
    }
    return isItem ? this.seq(this.indent, depth + 1) : this.map(this.indent, depth + 1);
  }

  /** A `|` (clip) or `|-` (strip) literal below a key at `parentIndent`. */
  private literal(parentIndent: number, clip: boolean): string {
    const t = this.text;
    const lines: string[] = [];
    let contentIndent = -1;
    while (this.pos < t.length) {
      const lineStart = this.pos;
      let end = t.indexOf("\n", lineStart);
      if (end === -1) end = t.length;
      if (end === lineStart) {
        lines.push("");
        this.pos = end + 1;
        continue;
      }
      let i = lineStart;
      while (i < end && t.charCodeAt(i) === SPACE) i++;
      // Lines of spaces only have rules of their own (they may set the indentation); not the subset.
      if (i === end) throw BAIL;
      const spaces = i - lineStart;
      if (spaces <= parentIndent) break;
      if (contentIndent === -1) contentIndent = spaces;
      else if (spaces < contentIndent) throw BAIL;
      lines.push(t.slice(lineStart + contentIndent, end));
      this.pos = end + 1;
    }
    // An empty literal, or one that starts with empty lines, is decided by the full parser.
    if (contentIndent === -1 || lines[0] === "") throw BAIL;
    while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
    // The last line of a file without a final newline: YAML still clips to one newline.
    return clip ? `${lines.join("\n")}\n` : lines.join("\n");
  }

  /** The key at the current line's content start; `afterKey` is then the position just after its colon. */
  private key(): string {
    const t = this.text;
    const s = this.start;
    const c = t.charCodeAt(s);
    if (c === QUOTE || c === APOSTROPHE) {
      const close = t.indexOf(c === QUOTE ? '"' : "'", s + 1);
      if (close === -1 || close >= this.end) throw BAIL;
      const colon = close + 1;
      if (t.charCodeAt(colon) !== COLON || !endsToken(t, colon + 1, this.end)) throw BAIL;
      const key = t.slice(s + 1, close);
      // A backslash is an escape in double quotes: left to the full parser.
      if (c === QUOTE && key.includes("\\")) throw BAIL;
      this.afterKey = colon + 1;
      return key;
    }
    const colon = t.indexOf(":", s);
    if (colon === -1 || colon >= this.end || !endsToken(t, colon + 1, this.end)) throw BAIL;
    const key = t.slice(s, colon);
    if (!PLAIN_KEY.test(key) || RESERVED.test(key)) throw BAIL;
    this.afterKey = colon + 1;
    return key;
  }

  /** Whether a plain or quoted key and its colon start at `c` (an item of `- key: value`). */
  private isKeyAt(c: number): boolean {
    const t = this.text;
    const first = t.charCodeAt(c);
    if (first === QUOTE || first === APOSTROPHE) {
      const close = t.indexOf(first === QUOTE ? '"' : "'", c + 1);
      return (
        close !== -1 &&
        close < this.end &&
        t.charCodeAt(close + 1) === COLON &&
        endsToken(t, close + 2, this.end)
      );
    }
    let i = c;
    while (i < this.end && isKeyChar(t.charCodeAt(i))) i++;
    return i > c && t.charCodeAt(i) === COLON && endsToken(t, i + 1, this.end);
  }
}

function isKeyChar(c: number): boolean {
  return (
    (c >= 97 && c <= 122) ||
    (c >= 65 && c <= 90) ||
    (c >= 48 && c <= 57) ||
    c === 95 ||
    c === 46 ||
    c === 45 ||
    c === 47
  );
}

/** A colon ends a key when a space or the end of the line follows it. */
function endsToken(t: string, i: number, end: number): boolean {
  return i === end || t.charCodeAt(i) === SPACE || t.charCodeAt(i) === NEWLINE;
}

/** A scalar in the subset: quoted without escapes, a plain integer, a boolean, null, or a plain string. */
function scalar(v: string): Value {
  const c = v.charCodeAt(0);
  if (c === QUOTE) {
    const m = DOUBLE_QUOTED.exec(v);
    if (m === null) throw BAIL;
    return m[1] as string;
  }
  if (c === APOSTROPHE) {
    const m = SINGLE_QUOTED.exec(v);
    if (m === null) throw BAIL;
    return m[1] as string;
  }
  if (v === "[]") return [];
  if (v === "{}") return new Map();
  if (v === "true" || v === "True" || v === "TRUE") return true;
  if (v === "false" || v === "False" || v === "FALSE") return false;
  if (v === "null" || v === "Null" || v === "NULL" || v === "~") return null;
  if (PLAIN_INT.test(v)) return Number(v);
  // sops' `version: 3.9.0` (two dots: no core-schema number has more than one) and pgp fingerprints
  // (`fp: 7FB8…`: digits and letters, not hex `0x…`, octal `0o…` or an exponent `1e5`).
  if (c >= 48 && c <= 57) {
    if (VERSIONISH.test(v) || (ALNUM.test(v) && !NUMBERISH.test(v))) return v;
    throw BAIL;
  }
  // A plain string must start with a letter, `_`, `/` or `^` (nothing YAML reads as an indicator, a number
  // or a special float) and hold nothing that ends a plain scalar or starts a comment.
  if (!((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 47 || c === 94)) throw BAIL;
  if (v.includes(" #") || v.includes(": ") || v.endsWith(":")) throw BAIL;
  return v;
}
