// Issue 9.4: `run --root` stays inside the root. An image whose /home and /run are absolute links
// (/home -> /persist/home) must be read and watched through links resolved inside the image: the daemon's
// file-system calls are traced with strace, and none may reach the running host through such a link.

import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { checkHost } from "../src/host/check-host.js";
import { startReadyAgent, waitFor } from "./helpers/agent.js";
import { cleanupRoots, healthyHost, tempRoot } from "./helpers/host.js";
import { requireTool } from "./helpers/tools.js";

afterEach(cleanupRoots);

/** Moves `/<top>` of the image to `/persist/<top>` and leaves an absolute link in its place. */
function linkTop(root: string, top: string): void {
  fs.mkdirSync(`${root}/persist`, { recursive: true });
  fs.renameSync(`${root}/${top}`, `${root}/persist/${top}`);
  fs.symlinkSync(`/persist/${top}`, `${root}/${top}`);
}

interface Call {
  readonly syscall: string;
  readonly path: string;
  readonly line: string;
}

/** Syscalls (from strace -e trace=%file) whose path argument names a final symlink without following it. */
function followsFinal(call: Call): boolean {
  if (
    /^(lstat|lstat64|readlink|readlinkat|unlink|unlinkat|rename|renameat2?|symlink|symlinkat|lchown|lgetxattr|llistxattr)$/.test(
      call.syscall,
    )
  )
    return false;
  if (/^(newfstatat|fstatat64|statx|faccessat2?|utimensat)$/.test(call.syscall))
    return !call.line.includes("AT_SYMLINK_NOFOLLOW");
  if (/^(open|openat|openat2)$/.test(call.syscall)) return !call.line.includes("O_NOFOLLOW");
  if (call.syscall === "inotify_add_watch") return !call.line.includes("IN_DONT_FOLLOW");
  return true;
}

function callsOf(log: string): Call[] {
  const calls: Call[] = [];
  for (const line of log.split("\n")) {
    // `1234 openat(AT_FDCWD, "/path", O_RDONLY…) = 3` or `inotify_add_watch(18, "/path", IN_…) = 1`
    const m = /^(?:\[pid\s+)?\d*\]?\s*([a-z0-9_]+)\((?:AT_FDCWD, |\d+, )?"([^"]*)"/.exec(line);
    if (m?.[1] && m[2]?.startsWith("/")) calls.push({ syscall: m[1], path: m[2], line });
  }
  return calls;
}

/** Why a traced call leaves the root, or null. Paths inside: no link may be crossed on the way. */
function escapeOf(root: string, call: Call): string | null {
  const p = path.posix.normalize(call.path);
  if (p === root || p.startsWith(`${root}/`)) {
    const parts = p.slice(root.length).split("/").filter(Boolean);
    let at = root;
    for (const [i, part] of parts.entries()) {
      at = `${at}/${part}`;
      const last = i === parts.length - 1;
      let isLink = false;
      try {
        isLink = fs.lstatSync(at).isSymbolicLink();
      } catch {
        return null; // the rest does not exist: the kernel stopped here
      }
      if (isLink && (!last || followsFinal(call))) return `crosses the image's link ${at}`;
    }
    return null;
  }
  // Outside the root: the host's own files the agent must never look at. Node's runtime and the agent's
  // own configuration (/etc/sops-agent) are its business, not the image's.
  if (!/^\/(home|run|etc|nix|persist|root|var|Users|Library)(\/|$)/.test(p)) return null;
  if (p === "/etc" && call.syscall === "readlink") return null; // realpath of a runtime file
  if (
    /^\/etc\/(ld\.so\.(cache|preload)|localtime|ssl\/|(svc|netsvc|resolv|nsswitch|host|gai)\.conf$|hosts$|sops-agent(\/|$))/.test(
      p,
    )
  )
    return null;
  return "reads the running host";
}

describe("run --root on an image with absolute /home and /run links", () => {
  it("checks the image through its links (the tree is healthy)", () => {
    const host = healthyHost();
    linkTop(host.root, "home");
    linkTop(host.root, "run");
    const run = checkHost({ root: host.root, manifests: null, env: {} });
    expect(run.document.problems.filter((p) => p.severity === "critical")).toEqual([]);
    expect(run.document.scopes.map((s) => s.scope)).toContain("user:alice");
  });

  it("never calls the kernel on a path outside the root (strace)", async (ctx) => {
    const strace = requireTool(ctx, "strace");
    const host = healthyHost();
    linkTop(host.root, "home");
    linkTop(host.root, "run");
    const log = `${tempRoot("sops-agent-strace-")}/trace`;
    const agent = await startReadyAgent(host.root, [], [strace, "-f", "-qq", "-e", "trace=%file", "-o", log]);
    try {
      // A change in a watched directory: the agent re-checks through the same watches.
      fs.rmSync(`${host.root}/persist/run/secrets.d/1/db-password`);
      await waitFor(
        "the deleted secret",
        () => agent.metrics(),
        (m) => /code="missing"/.test(m),
      );
    } finally {
      // SIGTERM to strace would detach it and leave the agent running: stop the agent itself, the first
      // process of the trace.
      const pid = Number(/^(\d+)\s/.exec(fs.readFileSync(log, "utf8"))?.[1]);
      if (pid > 0) process.kill(pid, "SIGTERM");
      await new Promise<void>((resolve) => {
        if (agent.child.exitCode !== null) resolve();
        agent.child.once("exit", () => resolve());
      });
    }
    const calls = callsOf(fs.readFileSync(log, "utf8"));
    // The trace is real: the daemon looked at the image and watched it.
    expect(calls.some((c) => c.path.startsWith(`${host.root}/persist/run/secrets.d/1`))).toBe(true);
    expect(calls.some((c) => c.syscall === "inotify_add_watch")).toBe(true);
    const escapes = calls
      .map((c) => ({ why: escapeOf(host.root, c), line: c.line }))
      .filter((e) => e.why !== null);
    expect(escapes.slice(0, 20)).toEqual([]);
  }, 60_000);
});
