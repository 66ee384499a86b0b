# Options and the config file shared by the NixOS, home-manager and nix-darwin modules.
# The YAML keys are the agent's config contract (sops-agent run --config): listen, schedule,
# extra_key_paths, log_level, web_config_file, root, manifests. The agent rejects unknown keys.
{ lib }:

let
  inherit (lib) mkOption types;

  # The agent's default listen port; the one place to change it in the Nix modules.
  defaultPort = 29100;

  # HOST:PORT, with brackets around an IPv6 address.
  listen =
    cfg:
    if lib.hasInfix ":" cfg.listenAddress then
      "[${cfg.listenAddress}]:${toString cfg.port}"
    else
      "${cfg.listenAddress}:${toString cfg.port}";
in
{
  inherit defaultPort listen;

  # The agent's command line in every unit and launchd job: `sops-agent run --config FILE` and extraFlags.
  runArgs =
    cfg: configPath:
    [
      (lib.getExe cfg.package)
      "run"
      "--config"
      configPath
    ]
    ++ cfg.extraFlags;

  # `configPath`: where the agent reads its config by default, for the option documentation.
  options =
    { pkgs, configPath }:
    {
      enable = lib.mkEnableOption "sops-agent, the health checker and Prometheus exporter for sops-nix secrets";

      package = mkOption {
        type = types.package;
        default = pkgs.sops-agent or (pkgs.callPackage ./package.nix { });
        defaultText = lib.literalExpression "pkgs.sops-agent";
        description = "The sops-agent package (the flake's overlay provides `pkgs.sops-agent`).";
      };

      listenAddress = mkOption {
        type = types.str;
        default = "127.0.0.1";
        example = "0.0.0.0";
        description = ''
          Address to serve /metrics on. The default is loopback only: set a routable address (and
          `openFirewall` on NixOS) for a Prometheus server on another host to scrape it.
        '';
      };

      port = mkOption {
        type = types.port;
        default = defaultPort;
        description = "Port to serve /metrics on.";
      };

      webConfigFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/run/secrets/sops-agent-web.yml";
        description = ''
          A Prometheus exporter-toolkit web config file (`tls_server_config`, `basic_auth_users`), the
          same format as node_exporter's `--web.config.file`. A string, not a Nix path, so it is not
          copied to the world-readable Nix store: a sops-nix secret is a good place for it.
        '';
      };

      settings = mkOption {
        type = types.submodule {
          freeformType = (pkgs.formats.yaml { }).type;
          options = {
            schedule = mkOption {
              type = types.nullOr types.str;
              default = null;
              example = "*/5 * * * *";
              description = "Cron expression of the full re-check (the agent's default: every 5 minutes).";
            };
            log_level = mkOption {
              # The values of `--log-level` (LOG_LEVELS in src/agent/config.ts; test/nix-modules.test.ts
              # keeps the two lists equal).
              type = types.nullOr (
                types.enum [
                  "fatal"
                  "error"
                  "warn"
                  "info"
                  "debug"
                  "trace"
                  "silent"
                ]
              );
              default = null;
              description = "Log level (the agent's default: info).";
            };
            extra_key_paths = mkOption {
              type = types.listOf types.str;
              default = [ ];
              example = [ "/root/id_infrastructure" ];
              description = "Decryption key files to watch besides those the manifests name.";
            };
            manifests = mkOption {
              type = types.listOf types.str;
              default = [ ];
              description = "sops-nix manifests to check; empty: discover them on the host.";
            };
          };
        };
        default = { };
        description = ''
          sops-agent configuration, rendered to YAML and read from ${configPath}. `listen` and
          `web_config_file` come from `listenAddress`, `port` and `webConfigFile`. Unknown keys are
          rejected by the agent. See `sops-agent run --help`.
        '';
      };

      checkConfig = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Validate the rendered config at build time with `sops-agent run --check-config`. The check
          reads a copy without `web_config_file`: that file (`webConfigFile`) usually exists only at
          run time (a sops-nix secret), and the agent checks it when it starts or reloads.
        '';
      };

      extraFlags = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "--manifest" "/etc/sops-agent/extra-manifest.json" ];
        description = "Extra command-line arguments of `sops-agent run` (flags win over the config file).";
      };
    };

  # The rendered config file: unset (null) keys are left out, so the agent's defaults apply. With
  # `checkConfig` the agent validates it while it is built: a bad setting fails the switch, not the
  # running agent.
  configFile =
    pkgs: cfg:
    let
      settings = lib.filterAttrs (_: v: v != null) (cfg.settings // { listen = listen cfg; });
      render = name: (pkgs.formats.yaml { }).generate name;
      full = render "sops-agent.yaml" (
        settings // lib.optionalAttrs (cfg.webConfigFile != null) { web_config_file = cfg.webConfigFile; }
      );
    in
    if cfg.checkConfig then
      pkgs.runCommand "sops-agent.yaml"
        {
          nativeBuildInputs = [ cfg.package ];
          config = full;
          # Everything but the web config file, which exists only at run time.
          checkable = render "sops-agent-checked.yaml" settings;
        }
        ''
          sops-agent run --check-config --config "$checkable"
          cp "$config" "$out"
        ''
    else
      full;

  # `listen` and `web_config_file` have options of their own; in `settings` they would be overwritten.
  assertions =
    cfg:
    map
      (key: {
        assertion = !(cfg.settings ? ${key});
        message = "services.sops-agent.settings.${key}: set ${
          if key == "listen" then "services.sops-agent.listenAddress and port" else "services.sops-agent.webConfigFile"
        } instead.";
      })
      [
        "listen"
        "web_config_file"
      ];
}
