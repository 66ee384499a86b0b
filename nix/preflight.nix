# Pre-switch checks: `sops-agent preflight` runs on the target before NixOS, nix-darwin or home-manager
# activates a generation, and refuses the switch when that generation's secrets would not install here
# (exit 1). One module per system, each imported by that system's module; on by default with
# `services.sops-agent.enable`, off with `services.sops-agent.preflight.enable = false`.
#
# Only exit 1 (the switch would leave secrets broken) blocks. Any other failure of the preflight itself
# (exit 2, a crash) is reported and the switch goes on: a broken checker must never lock a host out of
# its own fixes.
{ lib }:

let
  skipVar = "SOPS_AGENT_SKIP_PREFLIGHT";

  enableOption =
    what:
    lib.mkOption {
      type = lib.types.bool;
      default = true;
      example = false;
      description = ''
        Run `sops-agent preflight` before ${what} activates a generation, and refuse the switch when
        that generation's secrets would not install on this host (this host not a recipient of a sops
        file, a key that is missing or will not exist at boot, an owner the generation does not create,
        a key missing from its sops file). Skip it once with `${skipVar}=1` in the environment.
      '';
    };

  # `generation`: the shell variable holding the new generation in the activation context.
  run =
    {
      cfg,
      generation,
      overrideHint,
    }:
    ''
      sops_agent_rc=0
      ${lib.getExe cfg.package} preflight --override-hint ${lib.escapeShellArg overrideHint} "''$${generation}" || sops_agent_rc=$?
      if [ "$sops_agent_rc" -eq 1 ]; then
        exit 1
      elif [ "$sops_agent_rc" -ne 0 ]; then
        echo "sops-agent preflight could not check ''$${generation} (exit $sops_agent_rc); not blocking the switch" >&2
      fi
    '';

  skipped = ''
    echo "sops-agent preflight: skipped (${skipVar}=1)" >&2
  '';
in
{
  # nixpkgs nixos/modules/system/activation/pre-switch-check.nix (087f644f): switch-to-configuration runs
  # every fragment in a subshell with the new toplevel as $1 and the action (switch, boot, test,
  # dry-activate) as $2, before it changes anything; NIXOS_NO_CHECK=1 skips them all.
  nixos =
    { config, ... }:
    let
      cfg = config.services.sops-agent;
    in
    {
      options.services.sops-agent.preflight.enable = enableOption "`nixos-rebuild switch`/`boot`/`test` (and Colmena or deploy-rs, which run switch-to-configuration)";

      config = lib.mkIf (cfg.enable && cfg.preflight.enable) {
        system.preSwitchChecks.sops-agent = ''
          if [ "''${NIXOS_NO_CHECK:-}" = 1 ] || [ "''${${skipVar}:-}" = 1 ]; then
            ${skipped}
          elif [ "''${2:-}" = dry-activate ]; then
            : # dry-activate changes nothing: no secret is installed
          else
            ${run {
              inherit cfg;
              generation = "1";
              overrideHint = "sudo env ${skipVar}=1 nixos-rebuild switch (or NIXOS_NO_CHECK=1 to skip every pre-switch check); to turn it off for this host: services.sops-agent.preflight.enable = false";
            }}
          fi
        '';
      };
    };

  # nix-darwin modules/system/checks.nix and activation-scripts.nix (a1fa429e): `system.checks.text` runs
  # in the activate script before anything is activated, with $systemConfig the new toplevel, under
  # `set -e`; a failure there fails darwin-rebuild. `darwin-rebuild check` runs them too.
  darwin =
    { config, ... }:
    let
      cfg = config.services.sops-agent;
    in
    {
      options.services.sops-agent.preflight.enable = enableOption "`darwin-rebuild switch`";

      config = lib.mkIf (cfg.enable && cfg.preflight.enable) {
        system.checks.text = lib.mkAfter ''
          if [ "''${${skipVar}:-}" = 1 ]; then
            ${skipped}
          else
            ${run {
              inherit cfg;
              generation = "systemConfig";
              overrideHint = "sudo env ${skipVar}=1 darwin-rebuild switch; to turn it off for this host: services.sops-agent.preflight.enable = false";
            }}
          fi
        '';
      };
    };

  # home-manager modules/home-environment.nix (ec1a8fdf): entries before `writeBoundary` are the check
  # phase, nothing is written yet; the activation runs under `set -eu` with $newGenPath the new generation.
  homeManager =
    { config, ... }:
    let
      cfg = config.services.sops-agent;
    in
    {
      options.services.sops-agent.preflight.enable = enableOption "`home-manager switch`";

      config = lib.mkIf (cfg.enable && cfg.preflight.enable) {
        home.activation.sopsAgentPreflight = lib.hm.dag.entryBefore [ "writeBoundary" ] ''
          if [ "''${${skipVar}:-}" = 1 ]; then
            ${skipped}
          else
            ${run {
              inherit cfg;
              generation = "newGenPath";
              overrideHint = "${skipVar}=1 home-manager switch; to turn it off: services.sops-agent.preflight.enable = false";
            }}
          fi
        '';
      };
    };
}
