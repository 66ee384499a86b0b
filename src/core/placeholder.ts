// sops-nix's placeholder: `<SOPS:` + hex(sha256(secret name)) + `:PLACEHOLDER>` (modules/sops/templates).

const PLACEHOLDER = /<SOPS:[0-9a-f]{64}:PLACEHOLDER>/;
/** `<SOPS:` + 64 hex digits + `:PLACEHOLDER>`. */
const PLACEHOLDER_LENGTH = 6 + 64 + 13;

export function hasUnrenderedPlaceholder(text: string): boolean {
  return PLACEHOLDER.test(text);
}

/**
 * Finds a placeholder in a file handed over in chunks, in bounded memory: the last bytes of each chunk
 * are kept and scanned again with the next, so a placeholder cut by a chunk boundary is still found.
 * Bytes are read as latin1: the placeholder is ASCII, and ASCII bytes never occur inside a multi-byte
 * UTF-8 sequence, so a match on the bytes is a match on the text.
 */
export class PlaceholderScanner {
  private tail = "";
  private seen = false;

  get found(): boolean {
    return this.seen;
  }

  /** Scans one more chunk; true once a placeholder was found (the caller may stop reading). */
  push(chunk: Buffer, length: number): boolean {
    if (this.seen) return true;
    const text = this.tail + chunk.toString("latin1", 0, length);
    this.seen = PLACEHOLDER.test(text);
    this.tail = text.slice(-(PLACEHOLDER_LENGTH - 1));
    return this.seen;
  }
}
