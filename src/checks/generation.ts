// Generation-level checks: the scope's symlink, the generation it points to, and the mount point.

import { activationLog } from "../core/activation-log.js";
import type { ObservedScope } from "../core/observation.js";
import type { Problem } from "../core/problems.js";
import { describeFacts, problem } from "./common.js";
import type { CheckFamily } from "./family.js";

/** statfs magic numbers of the RAM-backed file systems sops-nix mounts. */
const RAMFS_MAGIC = 0x858458f6;
const TMPFS_MAGIC = 0x01021994;

export const generationFamily: CheckFamily = {
  name: "generation",
  run: (input) => input.scopes.flatMap(checkGeneration),
};

export function checkGeneration(observed: ObservedScope): Problem[] {
  const { declared: scope } = observed;
  const at = (
    code: Parameters<typeof problem>[0],
    message: string,
    severity: "critical" | "warning" | "info" = "critical",
  ) => problem(code, severity, scope.scope, scope.symlinkPath, scope.symlinkPath, message);

  if (observed.session === "inactive" || observed.session === "unknown") {
    const why =
      observed.session === "inactive"
        ? `the runtime directory ${scope.runtimeDir ?? "?"} does not exist, so the user is not logged in`
        : "its runtime directory (%r) cannot be known for this user from here";
    return [
      at(
        "user_session_inactive",
        `Secrets of ${scope.scope} were not checked: ${why}. They are decrypted when the user's sops-nix service runs at login.`,
        "info",
      ),
    ];
  }

  const link = observed.link;
  if (link.state === "absent") {
    return [
      at(
        "symlink_missing",
        `${scope.symlinkPath} does not exist: sops-nix has not installed secrets since boot. Check the activation log (${activationLog(scope)}) and run the switch again.`,
      ),
    ];
  }
  if (link.state === "inaccessible") {
    return [
      at(
        "unreadable",
        `The agent may not look at ${scope.symlinkPath} (${link.errno}); run it as root or with CAP_DAC_READ_SEARCH.`,
        "warning",
      ),
    ];
  }
  if (link.type !== "symlink") {
    return [
      at(
        "symlink_not_symlink",
        `${scope.symlinkPath} is ${describeFacts(link)}, not a symlink into ${scope.mountPoint}; sops-nix cannot swap generations. Move it away and re-run the activation.`,
      ),
    ];
  }
  const problems: Problem[] = [];
  const generation = observed.generation;
  if (generation !== null && !generation.insideMount) {
    problems.push(
      at(
        "symlink_outside_mount",
        `${scope.symlinkPath} points to ${generation.target}, outside ${scope.mountPoint}: it was not made by sops-nix or the mount point changed. Remove the link and re-run the activation.`,
      ),
    );
  }
  if (generation !== null) {
    const r = generation.resolution;
    if (r.state === "inaccessible") {
      // What the agent cannot see is not broken: the generation may well be there.
      problems.push(
        at(
          "unreadable",
          `The agent may not look at ${generation.target} (${r.errno}), where ${scope.symlinkPath} points; run it as root or with CAP_DAC_READ_SEARCH.`,
          "warning",
        ),
      );
    } else if (r.state !== "resolved" || r.facts.type !== "directory") {
      problems.push(
        at(
          "generation_missing",
          `${scope.symlinkPath} points to ${generation.target}, which is ${r.state === "resolved" ? `a ${r.facts.type}` : "gone"}: the generation was deleted (a reboot empties ramfs) or never written. Re-run the activation.`,
        ),
      );
    }
  }
  if (
    observed.mountFsType !== null &&
    observed.mountFsType !== RAMFS_MAGIC &&
    observed.mountFsType !== TMPFS_MAGIC
  ) {
    problems.push(
      problem(
        "mount_not_ramfs",
        "warning",
        scope.scope,
        scope.symlinkPath,
        scope.mountPoint,
        `${scope.mountPoint} is not a ramfs or tmpfs mount (file system 0x${observed.mountFsType.toString(16)}): decrypted secrets are on a persistent disk. Check that sops-install-secrets could mount it.`,
      ),
    );
  }
  return problems;
}
