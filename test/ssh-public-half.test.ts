// Least privilege (issue 9.11): an ssh key with its `.pub` beside it is judged from the `.pub` and the
// private key's clear header (OPENSSH_HEADER_BYTES), never from its secret part. Keys made by ssh-keygen;
// what is read is counted by a RootFs that records the bytes each read returned.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { declaredScope } from "../src/example/declared.js";
import { RootFs } from "../src/host/rootfs.js";
import { ageFromSshPublicKey } from "../src/sops/age.js";
import { scopeKeyring } from "../src/sops/identities.js";
import { OPENSSH_HEADER_BYTES } from "../src/sops/ssh-key.js";
import { cleanupRoots, tempRoot } from "./helpers/host.js";
import { requireTool } from "./helpers/tools.js";

afterEach(() => cleanupRoots());

/** A RootFs that remembers the most bytes any read of each path returned. */
class CountingFs extends RootFs {
  readonly bytes = new Map<string, number>();
  override readPrefix(hostPath: string, maxBytes: number, expect = {}): ReturnType<RootFs["readPrefix"]> {
    const r = super.readPrefix(hostPath, maxBytes, expect);
    if (!("error" in r))
      this.bytes.set(hostPath, Math.max(this.bytes.get(hostPath) ?? 0, Buffer.byteLength(r.text)));
    return r;
  }
}

function keyring(root: string, keyPath: string) {
  const counting = new CountingFs(root);
  const ring = scopeKeyring(counting, declaredScope([], { keys: [{ path: keyPath, role: "age-ssh" }] }));
  return { ring, read: counting.bytes.get(keyPath) ?? 0 };
}

function sshKeygen(tool: string, file: string, passphrase = ""): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  execFileSync(tool, ["-q", "-t", "ed25519", "-N", passphrase, "-C", "host", "-f", file]);
}

const recipientOf = (pubFile: string) => {
  const r = ageFromSshPublicKey(fs.readFileSync(pubFile, "utf8"));
  return r.ok ? r.recipients : [];
};

describe("ssh host keys with a .pub", () => {
  it("are usable from the .pub and the clear header; the secret part is never read", (ctx) => {
    const tool = requireTool(ctx, "ssh-keygen");
    const root = tempRoot();
    const key = "/etc/ssh/ssh_host_ed25519_key";
    sshKeygen(tool, path.join(root, key));
    const { ring, read } = keyring(root, key);
    expect(ring.sources[0]?.status).toEqual({ state: "usable" });
    expect(ring.identities).toEqual([
      expect.objectContaining({ kind: "x25519", recipient: recipientOf(path.join(root, `${key}.pub`))[0] }),
    ]);
    expect(fs.statSync(path.join(root, key)).size).toBeGreaterThan(OPENSSH_HEADER_BYTES + 1);
    expect(read).toBeGreaterThan(0);
    expect(read).toBeLessThanOrEqual(OPENSSH_HEADER_BYTES + 1);
  });

  it("still tell a passphrase-protected key from its clear header", (ctx) => {
    const tool = requireTool(ctx, "ssh-keygen");
    const root = tempRoot();
    const key = "/etc/ssh/ssh_host_ed25519_key";
    sshKeygen(tool, path.join(root, key), "correct horse");
    const { ring, read } = keyring(root, key);
    expect(ring.sources[0]?.status).toMatchObject({ state: "invalid", reason: /passphrase-protected/ });
    expect(ring.identities).toEqual([]);
    expect(read).toBeLessThanOrEqual(OPENSSH_HEADER_BYTES + 1);
  });

  it("read the whole key when the .pub is another key's, and trust the key", (ctx) => {
    const tool = requireTool(ctx, "ssh-keygen");
    const root = tempRoot();
    const key = "/etc/ssh/ssh_host_ed25519_key";
    sshKeygen(tool, path.join(root, key));
    const own = recipientOf(path.join(root, `${key}.pub`));
    sshKeygen(tool, path.join(root, "/tmp/other"));
    fs.copyFileSync(path.join(root, "/tmp/other.pub"), path.join(root, `${key}.pub`));
    const { ring, read } = keyring(root, key);
    expect(ring.identities).toEqual([expect.objectContaining({ recipient: own[0] })]);
    expect(read).toBe(fs.statSync(path.join(root, key)).size);
  });
});
