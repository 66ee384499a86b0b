// macOS keeps regular users and groups in Directory Services (opendirectoryd), not in /etc/passwd and
// /etc/group, and sops-install-secrets' user.Lookup on darwin asks the system resolver, which sees them
// (modules/nix-darwin/default.nix defaults owner root, group staff; main.go:600-625). On a live macOS host
// the agent asks the same resolver through `id` and `dscl`, bounded by a timeout. Where it cannot ask (under
// --root, on another OS), a name absent from /etc/passwd is unverifiable, never "unknown".

import { childProcess } from "./child-process.js";

/** Runs a command with a timeout; status null when it did not finish (killed, not found). */
export type Runner = (
  command: string,
  args: readonly string[],
  timeoutMs: number,
) => { readonly status: number | null; readonly stdout: string; readonly stderr: string };

export const execRunner: Runner = (command, args, timeoutMs) => {
  const r = childProcess().spawnSync(command, [...args], {
    encoding: "utf8",
    timeout: timeoutMs,
    stdio: ["ignore", "pipe", "pipe"],
  });
  return { status: r.error === undefined ? r.status : null, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
};

/** A user or group the system resolver knows, does not know, or could not be asked about. */
export type Lookup<T> =
  | { readonly state: "found"; readonly value: T }
  | { readonly state: "absent" }
  | { readonly state: "unknown"; readonly why: string };

export interface DirectoryService {
  user(name: string): Lookup<{ readonly uid: number; readonly gid: number }>;
  group(name: string): Lookup<number>;
}

const TIMEOUT_MS = 2000;
// Account names as macOS allows them; anything else is never handed to a command.
const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/;
const ID = /^[0-9]{1,10}\s*$/;

export function liveDirectoryService(run: Runner = execRunner, timeoutMs = TIMEOUT_MS): DirectoryService {
  return {
    user(name) {
      if (!SAFE_NAME.test(name)) return { state: "unknown", why: "not an account name" };
      const uid = run("id", ["-u", name], timeoutMs);
      if (uid.status === null) return { state: "unknown", why: "id did not answer in time" };
      // id exits 1 with "no such user" for a name the resolver does not know.
      if (uid.status !== 0)
        return /no such user/i.test(uid.stderr)
          ? { state: "absent" }
          : { state: "unknown", why: `id exited ${uid.status}` };
      const gid = run("id", ["-g", name], timeoutMs);
      if (!ID.test(uid.stdout) || gid.status !== 0 || !ID.test(gid.stdout))
        return { state: "unknown", why: "id gave no numeric id" };
      return { state: "found", value: { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) } };
    },
    group(name) {
      if (!SAFE_NAME.test(name)) return { state: "unknown", why: "not an account name" };
      const r = run("dscl", [".", "-read", `/Groups/${name}`, "PrimaryGroupID"], timeoutMs);
      if (r.status === null) return { state: "unknown", why: "dscl did not answer in time" };
      const m = /^PrimaryGroupID:\s*(-?[0-9]{1,10})\s*$/m.exec(r.stdout);
      if (r.status === 0 && m !== null) return { state: "found", value: Number(m[1]) };
      // eDSRecordNotFound (DS Error -14136): the group does not exist.
      if (/eDSRecordNotFound|-14136/.test(`${r.stdout}${r.stderr}`)) return { state: "absent" };
      return { state: "unknown", why: `dscl exited ${r.status}` };
    },
  };
}
