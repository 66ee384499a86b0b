# home-manager module: services.sops-agent for one user's sops-nix secrets.
# Linux: a systemd user unit ordered after sops-nix.service (deploy/systemd/sops-agent-user.service).
# macOS: a LaunchAgent with logs in ~/Library/Logs/sops-agent/ (deploy/launchd/org.nix-community.sops-agent.plist).
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.sops-agent;
  common = import ./common.nix { inherit lib; };
  configPath = "${config.xdg.configHome}/sops-agent/config.yaml";
  configFile = common.configFile pkgs cfg;
  logDir = "${config.home.homeDirectory}/Library/Logs/sops-agent";
  args = common.runArgs cfg configPath;
  # launchd jobs name the config by its store path: home-manager reloads an agent only when its plist
  # changes, so a new config must change the plist.
  launchdArgs = common.runArgs cfg "${configFile}";
in
{
  # `sops-agent preflight` before a switch (services.sops-agent.preflight.enable): ./preflight.nix.
  imports = [ (import ./preflight.nix { inherit lib; }).homeManager ];

  options.services.sops-agent = common.options { inherit pkgs configPath; };

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        assertions = common.assertions cfg;
        xdg.configFile."sops-agent/config.yaml".source = configFile;
        home.packages = [ cfg.package ];
      }

      (lib.mkIf pkgs.stdenv.hostPlatform.isLinux {
        systemd.user.services.sops-agent = {
          Unit = {
            Description = "sops-agent: health of my decrypted sops-nix secrets (Prometheus exporter)";
            Documentation = [ "https://github.com/nix-community/sops-agent" ];
            # sops-nix.service (its home-manager module) writes the secrets: check right after it.
            # Ordered only: it is a oneshot without RemainAfterExit, so Wants= would decrypt every
            # secret again on each start of the agent.
            After = [ "sops-nix.service" ];
            X-Reload-Triggers = [ "${configFile}" ];
          };
          Service = {
            Type = "simple";
            ExecStart = lib.escapeShellArgs args;
            # Two glibc malloc arenas instead of one per thread, large blocks mapped on their own
            # (see deploy/systemd/sops-agent.service).
            Environment = [
              "MALLOC_ARENA_MAX=2"
              "MALLOC_MMAP_THRESHOLD_=65536"
            ];
            ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
            Restart = "on-failure";
            RestartSec = "5s";
            TimeoutStopSec = "10s";
            NoNewPrivileges = true;
            RestrictSUIDSGID = true;
            LockPersonality = true;
            RestrictRealtime = true;
            RestrictNamespaces = true;
            RestrictAddressFamilies = [
              "AF_INET"
              "AF_INET6"
              "AF_UNIX"
            ];
            SystemCallArchitectures = "native";
            SystemCallFilter = [
              "@system-service"
              "~@privileged @resources @mount @obsolete @debug @cpu-emulation @swap @reboot @raw-io @module @clock"
            ];
            SystemCallErrorNumber = "EPERM";
            UMask = "0077";
          };
          Install.WantedBy = [ "default.target" ];
        };
      })

      (lib.mkIf pkgs.stdenv.hostPlatform.isDarwin {
        # launchd creates the log files but not their directory.
        home.activation.sopsAgentLogDir = lib.hm.dag.entryBefore [ "setupLaunchAgents" ] ''
          run mkdir -p ${lib.escapeShellArg logDir}
        '';

        # Labelled org.nix-community.home.sops-agent by home-manager.
        launchd.agents.sops-agent = {
          enable = true;
          # home-manager starts it through `/bin/sh -c "/bin/wait4path /nix/store && exec ..."`
          # (waitForNixStore): the Nix store volume may be mounted after launchd starts agents.
          config = {
            ProgramArguments = launchdArgs;
            RunAtLoad = true;
            KeepAlive = true;
            ThrottleInterval = 10;
            ProcessType = "Background";
            StandardOutPath = "${logDir}/sops-agent.log";
            StandardErrorPath = "${logDir}/sops-agent.err.log";
          };
        };
      })
    ]
  );
}
