// The SSH wire format (RFC 4251 §5) as far as key files need it: big-endian uint32 and length-prefixed
// strings, read without copying. One reader for the key conversion (age.ts) and the key inspection
// (ssh-key.ts). Pure.

export class SshWireReader {
  private offset = 0;
  private readonly bytes: Uint8Array;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  /** A uint32, or null when fewer than 4 bytes are left. */
  u32(): number | null {
    const b = this.bytes;
    const o = this.offset;
    if (o + 4 > b.length) return null;
    this.offset += 4;
    return (((b[o] ?? 0) << 24) | ((b[o + 1] ?? 0) << 16) | ((b[o + 2] ?? 0) << 8) | (b[o + 3] ?? 0)) >>> 0;
  }

  /** A length-prefixed string (a view into the input), or null when it runs past the end. */
  string(): Uint8Array | null {
    const n = this.u32();
    if (n === null || this.offset + n > this.bytes.length) return null;
    const out = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }
}
