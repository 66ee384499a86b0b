// The one SSH wire reader of the key code: lengths past the end are refused, never read past.

import { describe, expect, it } from "vitest";
import { SshWireReader } from "../src/sops/ssh-wire.js";

describe("SshWireReader", () => {
  it("reads uint32s unsigned and strings as views", () => {
    const bytes = Uint8Array.from([0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 2, 0x61, 0x62, 0, 0, 0, 0]);
    const r = new SshWireReader(bytes);
    expect(r.u32()).toBe(0xfffffffe);
    expect(Array.from(r.string() ?? [])).toEqual([0x61, 0x62]);
    expect(r.string()?.length).toBe(0);
    expect(r.u32()).toBeNull();
  });

  it("refuses a string whose length runs past the end", () => {
    expect(new SshWireReader(Uint8Array.from([0, 0, 0, 5, 1, 2])).string()).toBeNull();
    expect(new SshWireReader(Uint8Array.from([0, 0, 1])).string()).toBeNull();
    expect(new SshWireReader(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 1])).string()).toBeNull();
  });
});
