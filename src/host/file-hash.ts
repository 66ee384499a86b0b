// The sha256 of a sops file as Nix hashed it (`sopsFileHash`), shared by `preflight` and the usage
// observation of every check. Its own module: `status` would otherwise load all of preflight's
// (boot mounts, declaration diffs, generation accounts, template origins) for this one function.

import * as nodeFs from "node:fs";
import { sha256Hex } from "../checks/preflight.js";
import type { RootFs } from "./rootfs.js";

/** Larger files are not sops files Nix hashed; they are not read. */
const MAX_HASHED_BYTES = 4 << 20;

/** sha256 (hex) of a file's bytes, as `builtins.hashFile "sha256"` gives it; null when it cannot be read. */
export function hashOf(fs: RootFs, hostPath: string): string | null {
  const resolved = fs.resolve(hostPath);
  if (
    resolved.state !== "resolved" ||
    resolved.facts.type !== "file" ||
    resolved.facts.size > MAX_HASHED_BYTES
  )
    return null;
  // Bytes, not text: the hash is of the file as Nix read it. No link is followed and no FIFO waited on.
  let fd: number | undefined;
  try {
    fd = nodeFs.openSync(
      fs.real(resolved.path),
      nodeFs.constants.O_RDONLY | nodeFs.constants.O_NOFOLLOW | nodeFs.constants.O_NONBLOCK,
    );
    const st = nodeFs.fstatSync(fd);
    if (!st.isFile() || st.size > MAX_HASHED_BYTES) return null;
    const bytes = Buffer.alloc(st.size);
    let done = 0;
    while (done < st.size) {
      const n = nodeFs.readSync(fd, bytes, done, st.size - done, done);
      if (n === 0) break;
      done += n;
    }
    return sha256Hex(bytes.subarray(0, done));
  } catch {
    return null;
  } finally {
    if (fd !== undefined) nodeFs.closeSync(fd);
  }
}
