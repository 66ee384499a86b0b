{
  description = "sops-agent: watches the health of decrypted sops-nix secrets and exports Prometheus metrics";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # On their own the modules take `pkgs.sops-agent` (from the overlay) or build nix/package.nix with
      # the host's nixpkgs; through the flake they default to the flake's package. Either way
      # `services.sops-agent.package` overrides it.
      withPackage =
        module:
        { lib, pkgs, ... }:
        {
          imports = [ module ];
          services.sops-agent.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.sops-agent;
        };
    in
    {
      # nix/package.nix pins each npm dependency by its package-lock.json integrity (no hash to update).
      packages = forAllSystems (pkgs: rec {
        sops-agent = pkgs.callPackage ./nix/package.nix { };
        default = sops-agent;
      });

      overlays.default = final: _prev: {
        sops-agent = final.callPackage ./nix/package.nix { };
      };

      nixosModules = {
        sops-agent = withPackage ./nix/nixos-module.nix;
        default = self.nixosModules.sops-agent;
      };

      homeManagerModules = {
        sops-agent = withPackage ./nix/home-manager-module.nix;
        default = self.homeManagerModules.sops-agent;
      };
      homeModules = self.homeManagerModules;

      darwinModules = {
        sops-agent = withPackage ./nix/darwin-module.nix;
        default = self.darwinModules.sops-agent;
      };

      formatter = forAllSystems (pkgs: pkgs.nixfmt-rfc-style);
    };
}
