// Where the agent's status socket lives (src/agent/status-socket.ts): shared by the agent and by `status`,
// which must not load the agent's modules to find it. Pure.

import * as path from "node:path";

/** Where the agent listens and `status` asks, unless told otherwise. */
export function defaultStatusSocket(env: NodeJS.ProcessEnv, uid: number): string | null {
  // systemd's RuntimeDirectory=sops-agent (the units set it): /run/sops-agent, owned by the agent's user.
  if (env.RUNTIME_DIRECTORY !== undefined && env.RUNTIME_DIRECTORY !== "")
    return path.join(env.RUNTIME_DIRECTORY.split(":")[0] ?? "", "status.sock");
  if (uid === 0) return "/run/sops-agent/status.sock";
  if (env.XDG_RUNTIME_DIR !== undefined && env.XDG_RUNTIME_DIR !== "")
    return path.join(env.XDG_RUNTIME_DIR, "sops-agent", "status.sock");
  return null;
}
