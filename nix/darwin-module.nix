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
  # The config by its store path: nix-darwin reloads a daemon only when its plist changes, so a new
  # config must change the plist. /etc/sops-agent/config.yaml stays for `sops-agent status`.
  args = common.runArgs cfg "${configFile}";
in
{
  # `sops-agent preflight` before a switch (services.sops-agent.preflight.enable): ./preflight.nix.
  imports = [ (import ./preflight.nix { inherit lib; }).darwin ];

  options.services.sops-agent = common.options { inherit pkgs configPath; };

  config = lib.mkIf cfg.enable {
    assertions = common.assertions cfg;

    environment.etc."sops-agent/config.yaml".source = configFile;
    environment.systemPackages = [ cfg.package ];

    # launchd creates the log files but not their directory, and nix-darwin (re)loads daemons
    # between preActivation and postActivation: create it first, as nix-darwin's own modules do.
    system.activationScripts.preActivation.text = ''
      mkdir -p ${lib.escapeShellArg logDir}
    '';

    # Runs as root: macOS has no CAP_DAC_READ_SEARCH, and secrets belong to arbitrary users with
    # modes like 0400. The agent only reads them.
    launchd.daemons.sops-agent = {
      serviceConfig = {
        Label = "org.nix-community.sops-agent";
        # The Nix store volume may be mounted after launchd starts daemons at boot. No `&&`: nix-darwin
        # releases before XML escaping write strings into the plist verbatim, and `&` breaks it.
        ProgramArguments = [
          "/bin/sh"
          "-c"
          "/bin/wait4path /nix/store || exit 1; exec ${lib.escapeShellArgs args}"
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
