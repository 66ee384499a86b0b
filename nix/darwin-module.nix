# nix-darwin module: services.sops-agent, the system agent as a LaunchDaemon
# (deploy/launchd/org.nix-community.sops-agent-daemon.plist). It checks /run/secrets and the
# home-manager scopes of every user it discovers.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.sops-agent;
  common = import ./common.nix { inherit lib; };
  configPath = "/etc/sops-agent/config.yaml";
  configFile = common.configFile pkgs cfg;
  logDir = "/var/log/sops-agent";
  args = common.runArgs cfg configPath;
in
{
  options.services.sops-agent = common.options { inherit pkgs configPath; };

  config = lib.mkIf cfg.enable {
    environment.etc."sops-agent/config.yaml".source = configFile;
    environment.systemPackages = [ cfg.package ];

    # launchd creates the log files but not their directory.
    system.activationScripts.postActivation.text = lib.mkAfter ''
      mkdir -p ${lib.escapeShellArg logDir}
    '';

    # Runs as root: macOS has no CAP_DAC_READ_SEARCH, and secrets belong to arbitrary users with
    # modes like 0400. The agent only reads them.
    launchd.daemons.sops-agent = {
      serviceConfig = {
        Label = "org.nix-community.sops-agent";
        # The Nix store volume may be mounted after launchd starts daemons at boot.
        ProgramArguments = [
          "/bin/sh"
          "-c"
          "/bin/wait4path /nix/store && exec ${lib.escapeShellArgs args}"
        ];
        RunAtLoad = true;
        KeepAlive = true;
        ThrottleInterval = 10;
        ProcessType = "Background";
        StandardOutPath = "${logDir}/sops-agent.log";
        StandardErrorPath = "${logDir}/sops-agent.err.log";
      };
    };
  };
}
