// node:child_process is loaded when a command is first run, not at start-up: with node:net and node:dgram,
// which it loads, it is ~3 ms of a one-shot `status`, and a check under --root (or on a host without
// systemd, or off macOS) runs no command at all. createRequire: an ESM import cannot be deferred in
// synchronous code, and the check is synchronous.

import { createRequire } from "node:module";

type ChildProcess = typeof import("node:child_process");

let lib: ChildProcess | null = null;

export function childProcess(): ChildProcess {
  lib ??= createRequire(import.meta.url)("node:child_process") as ChildProcess;
  return lib;
}
