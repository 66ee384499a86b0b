# NixOS module: services.sops-agent, the system agent as a hardened systemd unit.
# It renders the same unit as deploy/systemd/sops-agent.service; keep the two in step.
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
  checkedConfig = common.configFile pkgs cfg;
in
{
  # `sops-agent preflight` before a switch (services.sops-agent.preflight.enable): ./preflight.nix.
  imports = [ (import ./preflight.nix { inherit lib; }).nixos ];

  options.services.sops-agent = common.options { inherit pkgs configPath; } // {
    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open `port` in the firewall, for a Prometheus server on another host.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = common.assertions cfg;

    warnings = lib.optional (cfg.openFirewall && lib.hasPrefix "127." cfg.listenAddress) ''
      services.sops-agent.openFirewall is set but the agent listens on ${cfg.listenAddress} only:
      set services.sops-agent.listenAddress for other hosts to reach it.
    '';

    environment.etc."sops-agent/config.yaml".source = checkedConfig;
    environment.systemPackages = [ cfg.package ];

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [ cfg.port ];

    systemd.services.sops-agent = {
      description = "sops-agent: health of decrypted sops-nix secrets (Prometheus exporter)";
      documentation = [ "https://github.com/nix-community/sops-agent" ];
      wantedBy = [ "multi-user.target" ];
      # sops-install-secrets*.service exist with systemd-based activation (sysusers, userborn);
      # with classic activation the secrets are written before any unit starts.
      wants = [
        "network-online.target"
        "sops-install-secrets.service"
        "sops-install-secrets-for-users.service"
      ];
      after = [
        "network-online.target"
        "sops-install-secrets.service"
        "sops-install-secrets-for-users.service"
      ];
      # A new config is applied with SIGHUP (the agent keeps the old one if the new one is bad).
      reloadTriggers = [ checkedConfig ];

      # Two glibc malloc arenas instead of one per thread, large blocks mapped on their own
      # (see deploy/systemd/sops-agent.service).
      environment.MALLOC_ARENA_MAX = "2";
      environment.MALLOC_MMAP_THRESHOLD_ = "65536";

      serviceConfig = {
        Type = "simple";
        ExecStart = lib.escapeShellArgs (common.runArgs cfg configPath);
        ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
        Restart = "on-failure";
        RestartSec = "5s";
        TimeoutStopSec = "10s";
        # A ceiling far above use (see deploy/systemd/sops-agent.service and BENCHMARKS.md).
        MemoryMax = "512M";
        # The status socket for `sops-agent status` (see deploy/systemd/sops-agent.service).
        RuntimeDirectory = "sops-agent";
        RuntimeDirectoryMode = "0700";

        # See deploy/systemd/sops-agent.service for why and what exactly is read: a throwaway user that
        # may read and search any file (secrets owned by other users, 0400 templates, public halves of
        # keys, the age key file) and nothing else.
        DynamicUser = true;
        AmbientCapabilities = [ "CAP_DAC_READ_SEARCH" ];
        CapabilityBoundingSet = [ "CAP_DAC_READ_SEARCH" ];
        NoNewPrivileges = true;
        SecureBits = "noroot-locked";
        RestrictSUIDSGID = true;
        RemoveIPC = true;
        KeyringMode = "private";
        UMask = "0077";

        ProtectSystem = "strict";
        # read-only, not "yes": home-manager scopes live under /home and /run/user.
        ProtectHome = "read-only";
        # Password hashes are no business of a health check.
        InaccessiblePaths = [
          "-/etc/shadow"
          "-/etc/gshadow"
        ];
        PrivateTmp = true;
        PrivateMounts = true;
        PrivateDevices = true;
        DevicePolicy = "closed";
        ProtectProc = "invisible";
        ProcSubset = "pid";
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        # PrivateUsers would map every file owner to nobody; MemoryDenyWriteExecute aborts V8 at its first
        # baseline compile on default flags (checked under prctl PR_SET_MDWE, the same rule).
        PrivateUsers = false;
        MemoryDenyWriteExecute = false;

        # Internet sockets to serve Prometheus; AF_UNIX for the local status socket `sops-agent status` asks.
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_UNIX"
        ];
        RestrictNamespaces = true;
        LockPersonality = true;
        RestrictRealtime = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged @resources @mount @obsolete @debug @cpu-emulation @swap @reboot @raw-io @module @clock"
        ];
        SystemCallErrorNumber = "EPERM";
      };
    };
  };
}
