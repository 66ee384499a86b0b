# The flake's outputs with the stand-in nixpkgs (./stubs.nix) as its `nixpkgs` input: what
# `nix flake show` would list, evaluated offline. `self` is the outputs themselves, as in a flake.
let
  lib = import ./vendor/nixpkgs-lib/lib;
  flake = import ../../flake.nix;
  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs [
      "x86_64-linux"
      "aarch64-linux"
      "x86_64-darwin"
      "aarch64-darwin"
    ] (system: import ./stubs.nix { inherit lib system; });
  };
  self = flake.outputs { inherit self nixpkgs; };
in
self
