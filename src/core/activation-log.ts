// Where to read what sops-install-secrets said when it last ran for a scope: every hint that says "check
// the log" names it. Pure.

import type { DeclaredScope } from "./model.js";

/**
 * The log of a scope's activation, as a command or a file to read.
 * - NixOS: with systemd activation (sysusers/userborn) the units sops-install-secrets(-for-users).service
 *   run it (modules/sops/default.nix, sops-nix 56b2406); with the classic activation script its lines are
 *   in the boot's journal, under the switch's unit.
 * - home-manager on Linux: the user unit sops-nix.service (modules/home-manager/sops.nix).
 * - home-manager on macOS: the LaunchAgent writes ~/Library/Logs/SopsNix/stderr (home-manager/sops.nix:404).
 * - nix-darwin: the LaunchDaemon keeps no log file: the output of darwin-rebuild switch.
 */
export function activationLog(scope: Pick<DeclaredScope, "scope" | "platform" | "user">): string {
  if (scope.platform === "darwin") {
    return scope.user === null
      ? "the output of darwin-rebuild switch"
      : `${scope.user.home}/Library/Logs/SopsNix/stderr`;
  }
  if (scope.user !== null) return "journalctl --user -b -u sops-nix.service";
  const unit = scope.scope === "for-users" ? "sops-install-secrets-for-users" : "sops-install-secrets";
  return `journalctl -b -u ${unit}.service, or the output of the switch`;
}
