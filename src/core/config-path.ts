// Where the agent's config file lives when `--config` is not given: shared by the agent and by `status`,
// which loads the config parser (and the yaml package) only when such a file exists. Pure: whether a path
// exists is asked of the caller.

import * as path from "node:path";

export const SYSTEM_CONFIG_PATH = "/etc/sops-agent/config.yaml";

/**
 * The system file when present, else the per-user file for a non-root user when present, else none
 * (built-in defaults).
 */
export function defaultConfigPath(
  env: NodeJS.ProcessEnv,
  uid: number,
  exists: (p: string) => boolean,
): string | null {
  if (exists(SYSTEM_CONFIG_PATH)) return SYSTEM_CONFIG_PATH;
  if (uid === 0) return null;
  const base = env.XDG_CONFIG_HOME ?? (env.HOME === undefined ? null : path.join(env.HOME, ".config"));
  if (base === null) return null;
  const user = path.join(base, "sops-agent", "config.yaml");
  return exists(user) ? user : null;
}
