# Evaluates one of the project's modules the way NixOS, home-manager or nix-darwin would, offline:
# nixpkgs' `lib.evalModules` (vendored), the vendored home-manager / nix-darwin modules that turn
# `systemd.user.services` and `launchd.*` into files, and small stand-ins (options of the host
# system the modules write to, and ./stubs.nix for `pkgs`).
#
#   import ./eval.nix { platform = "nixos"; modules = [ { services.sops-agent.enable = true; } ]; }
#
# gives { config, options, failedAssertions, warnings, lib, pkgs }. Used by test/helpers/nix.ts.
{
  # "nixos" | "home-manager" | "darwin"
  platform,
  modules ? [ ],
  # The host platform: home-manager's module differs between Linux and macOS.
  system ? if platform == "darwin" then "aarch64-darwin" else "x86_64-linux",
  # The module under test; the flake's wrapped modules can be passed here instead.
  module ? null,
}:

let
  vendor = ./vendor;
  nixpkgsLib = import (vendor + "/nixpkgs-lib/lib");
  # home-manager's modules want its extended lib (lib.hm.dag, lib.hm.assertions, ...).
  lib =
    if platform == "home-manager" then
      import (vendor + "/home-manager/modules/lib/stdlib-extended.nix") nixpkgsLib
    else
      nixpkgsLib;
  inherit (lib) mkOption types;

  pkgs = import ./stubs.nix { inherit lib system; };

  anyAttrs = types.attrsOf types.anything;
  # A file entry as environment.etc / xdg.configFile / home.file declare it (source or text).
  fileEntries = types.attrsOf (
    types.submodule {
      freeformType = anyAttrs;
      options = {
        source = mkOption {
          type = types.nullOr types.anything;
          default = null;
        };
        text = mkOption {
          type = types.nullOr types.lines;
          default = null;
        };
      };
    }
  );

  # Every host system has these (nixos/modules/misc/assertions.nix and its home-manager / nix-darwin twins).
  checks = {
    options.assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    options.warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    # Never read here: the vendored lib has no maintainer list, so `meta.maintainers` stays unforced.
    options.meta = mkOption {
      type = types.lazyAttrsOf types.raw;
      default = { };
    };
  };

  # nixos/lib/systemd-unit-options.nix: what a unit setting may be.
  unitValue =
    let
      primitive = types.oneOf [
        types.bool
        types.int
        types.str
        types.path
      ];
    in
    types.either primitive (types.listOf primitive);

  nixosHost = {
    options = {
      environment.etc = mkOption {
        type = fileEntries;
        default = { };
      };
      environment.systemPackages = mkOption {
        type = types.listOf types.package;
        default = [ ];
      };
      networking.firewall.allowedTCPPorts = mkOption {
        type = types.listOf types.port;
        default = [ ];
      };
      # nixos/modules/system/activation/pre-switch-check.nix: shell fragments run before a switch.
      system.preSwitchChecks = mkOption {
        type = types.attrsOf types.str;
        default = { };
      };
      # The options of nixos/lib/systemd-unit-options.nix the modules use, with their types;
      # anything else is kept as given.
      systemd.services = mkOption {
        default = { };
        type = types.attrsOf (
          types.submodule {
            freeformType = anyAttrs;
            options = {
              description = mkOption {
                type = types.str;
                default = "";
              };
              documentation = mkOption {
                type = types.listOf types.str;
                default = [ ];
              };
              wantedBy = mkOption {
                type = types.listOf types.str;
                default = [ ];
              };
              wants = mkOption {
                type = types.listOf types.str;
                default = [ ];
              };
              requires = mkOption {
                type = types.listOf types.str;
                default = [ ];
              };
              after = mkOption {
                type = types.listOf types.str;
                default = [ ];
              };
              before = mkOption {
                type = types.listOf types.str;
                default = [ ];
              };
              environment = mkOption {
                type = types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ]));
                default = { };
              };
              path = mkOption {
                type = types.listOf (types.oneOf [ types.package types.str ]);
                default = [ ];
              };
              serviceConfig = mkOption {
                type = types.attrsOf unitValue;
                default = { };
              };
              unitConfig = mkOption {
                type = types.attrsOf unitValue;
                default = { };
              };
              reloadTriggers = mkOption {
                type = types.listOf unitValue;
                default = [ ];
              };
              restartTriggers = mkOption {
                type = types.listOf unitValue;
                default = [ ];
              };
              preStart = mkOption {
                type = types.lines;
                default = "";
              };
              script = mkOption {
                type = types.lines;
                default = "";
              };
            };
          }
        );
      };
    };
  };

  homeManagerHost =
    { config, ... }:
    {
      options = {
        home.username = mkOption {
          type = types.str;
          default = "alice";
        };
        home.homeDirectory = mkOption {
          type = types.str;
          default = if pkgs.stdenv.hostPlatform.isDarwin then "/Users/alice" else "/home/alice";
        };
        home.packages = mkOption {
          type = types.listOf types.package;
          default = [ ];
        };
        home.file = mkOption {
          type = fileEntries;
          default = { };
        };
        home.activation = mkOption {
          type = lib.hm.types.dagOf types.str;
          default = { };
        };
        home.extraBuilderCommands = mkOption {
          type = types.lines;
          default = "";
        };
        xdg.configHome = mkOption {
          type = types.str;
          default = "${config.home.homeDirectory}/.config";
        };
        xdg.configFile = mkOption {
          type = fileEntries;
          default = { };
        };
        xdg.dataFile = mkOption {
          type = fileEntries;
          default = { };
        };
      };
    };

  darwinHost = {
    options = {
      environment.etc = mkOption {
        type = fileEntries;
        default = { };
      };
      environment.systemPackages = mkOption {
        type = types.listOf types.package;
        default = [ ];
      };
      # nix-darwin's modules/system/launchd.nix: one plist per job, `text` is the file.
      environment.launchAgents = mkOption {
        type = fileEntries;
        default = { };
      };
      environment.launchDaemons = mkOption {
        type = fileEntries;
        default = { };
      };
      environment.userLaunchAgents = mkOption {
        type = fileEntries;
        default = { };
      };
      # nix-darwin's modules/system/checks.nix: shell run in the activate script before activation.
      system.checks.text = mkOption {
        type = types.lines;
        default = "";
      };
      system.requiresPrimaryUser = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      # nix-darwin's modules/system/activation-scripts.nix: preActivation runs before the launchd
      # jobs are (re)loaded, postActivation after.
      system.activationScripts = mkOption {
        type = types.attrsOf (
          types.submodule {
            options.text = mkOption {
              type = types.lines;
              default = "";
            };
          }
        );
        default = { };
      };
    };
  };

  platformModules =
    {
      nixos = [
        nixosHost
        ../../nix/nixos-module.nix
      ];
      home-manager = [
        homeManagerHost
        (vendor + "/home-manager/modules/systemd.nix")
        (vendor + "/home-manager/modules/launchd")
        ../../nix/home-manager-module.nix
      ];
      darwin = [
        darwinHost
        (vendor + "/nix-darwin/modules/launchd")
        ../../nix/darwin-module.nix
      ];
    }
    .${platform};

  moduleUnderTest = if module == null then [ ] else [ module ];

  result = lib.evalModules {
    modules =
      [
        checks
        { _module.args.pkgs = pkgs; }
      ]
      # With `module` the caller brings the module under test (the flake's wrapper imports it).
      ++ (if module == null then platformModules else lib.init platformModules ++ moduleUnderTest)
      ++ modules;
  };
in
{
  inherit (result) config options;
  inherit lib pkgs;
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) result.config.assertions);
  inherit (result.config) warnings;
}
