// Where a JSON text first breaks, as line and column, with what was expected there. Pure and iterative
// (a deeply nested document cannot overflow the stack). Used only after JSON.parse has failed: V8's
// messages quote the text around the error (which must not reach a terminal or a log) and give a position
// only sometimes. Never echoes the text.

export interface JsonSyntaxError {
  /** 1-based. */
  readonly line: number;
  /** 1-based, in UTF-16 code units. */
  readonly column: number;
  readonly message: string;
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const ESCAPES = new Set(['"', "\\", "/", "b", "f", "n", "r", "t"]);
const HEX4 = /^[0-9a-fA-F]{4}$/;

class Broken {
  readonly at: number;
  readonly message: string;

  constructor(at: number, message: string) {
    this.at = at;
    this.message = message;
  }
}

/** The first syntax error of `text`, or null when it is valid JSON. */
export function jsonSyntaxError(text: string): JsonSyntaxError | null {
  try {
    scan(text);
    return null;
  } catch (err) {
    if (!(err instanceof Broken)) throw err;
    return { ...lineColumn(text, err.at), message: err.message };
  }
}

function scan(text: string): void {
  const n = text.length;
  let i = 0;
  const stack: ("{" | "[")[] = [];
  const ws = () => {
    while (i < n && (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r")) i++;
  };
  const fail = (message: string): never => {
    throw new Broken(i, i >= n ? "unexpected end of the file" : message);
  };
  const string = () => {
    if (text[i] !== '"') fail("expected a string");
    i++;
    for (;;) {
      if (i >= n) fail("unterminated string");
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail("control character in a string");
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === "u" && HEX4.test(text.slice(i + 2, i + 6))) i += 6;
        else if (e !== undefined && ESCAPES.has(e)) i += 2;
        else fail("bad escape in a string");
      } else i++;
    }
  };
  const key = () => {
    ws();
    if (text[i] !== '"') fail("expected a property name in double quotes");
    string();
    ws();
    if (text[i] !== ":") fail("expected ':' after a property name");
    i++;
  };
  for (;;) {
    // A value.
    ws();
    const c = text[i];
    if (c === "{" || c === "[") {
      stack.push(c);
      i++;
      ws();
      const close = c === "{" ? "}" : "]";
      if (text[i] === close) {
        stack.pop();
        i++;
      } else {
        if (c === "{") key();
        continue;
      }
    } else if (c === '"') string();
    else if (text.startsWith("true", i)) i += 4;
    else if (text.startsWith("false", i)) i += 5;
    else if (text.startsWith("null", i)) i += 4;
    else {
      NUMBER.lastIndex = i;
      if (!NUMBER.test(text)) fail("expected a value");
      i = NUMBER.lastIndex;
    }
    // After a value: close containers until one continues.
    for (;;) {
      ws();
      const top = stack.at(-1);
      if (top === undefined) {
        if (i < n) fail("unexpected text after the document");
        return;
      }
      const close = top === "{" ? "}" : "]";
      if (text[i] === close) {
        stack.pop();
        i++;
        continue;
      }
      if (text[i] !== ",") fail(`expected ',' or '${close}'`);
      i++;
      if (top === "{") key();
      break;
    }
  }
}

function lineColumn(text: string, at: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let j = text.indexOf("\n"); j !== -1 && j < at; j = text.indexOf("\n", j + 1)) {
    line++;
    start = j + 1;
  }
  return { line, column: at - start + 1 };
}
