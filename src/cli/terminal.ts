// Text from the host (names, paths, owners, problem messages that quote them) printed on a terminal or
// into a pipe someone will `cat`: a control character in a secret's name must not move the cursor, ring
// the bell, set the window title or start a new line that looks like another report line. JSON output does
// not go through here: JSON.stringify escapes what it must and stays exact.

/**
 * C0 controls (including newline, tab, ESC, BEL), DEL, the C1 controls U+0080–U+009F (an 8-bit CSI is
 * U+009B) and the Unicode line and paragraph separators.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

const NAMED: Readonly<Record<string, string>> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** `s` with every control character written as a visible escape (`\n`, `\x1b`, `\u009b`). */
export function escapeTerminal(s: string): string {
  CONTROL.lastIndex = 0;
  if (!CONTROL.test(s)) return s;
  return s.replace(CONTROL, (c) => {
    const named = NAMED[c];
    if (named !== undefined) return named;
    const code = c.charCodeAt(0);
    return code < 0x80 ? `\\x${hex(code, 2)}` : `\\u${hex(code, 4)}`;
  });
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, "0");
}
