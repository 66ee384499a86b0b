# Stand-ins for the few parts of nixpkgs the modules (ours and the vendored home-manager / nix-darwin
# ones) touch, so `lib.evalModules` runs offline without a nixpkgs checkout.
#
# A "derivation" here is an attribute set with `type = "derivation"` and a made-up store path derived
# from its inputs, so `lib.isDerivation`, `types.package`, `lib.getExe` and string interpolation work
# as with real packages. Nothing is built: each fake keeps what it would be built from (`text`,
# `script`, `env`) so a test can read the file a user would get.
{ lib, system }:

let
  inherit (lib) types;

  fakeDrv =
    name: attrs:
    {
      type = "derivation";
      inherit name;
      outPath = "/nix/store/${
        builtins.substring 0 32 (builtins.hashString "sha256" (builtins.toJSON ({ inherit name; } // attrs)))
      }-${name}";
    }
    // attrs;

  package =
    name:
    fakeDrv name {
      pname = name;
      meta.mainProgram = name;
    };

  # nixpkgs' pkgs/pkgs-lib/formats.nix: the value type of `formats.json`/`formats.yaml`.
  jsonValue =
    let
      valueType =
        types.nullOr (
          types.oneOf [
            types.bool
            types.int
            types.float
            types.str
            types.path
            (types.attrsOf valueType)
            (types.listOf valueType)
          ]
        )
        // {
          description = "JSON value";
        };
    in
    valueType;
in
lib.fix (self: {
  # YAML is a superset of JSON: the fake renders JSON, which the agent's YAML parser reads as the
  # YAML nixpkgs would write (remarshal) means the same document.
  formats = {
    yaml =
      { }:
      {
        type = jsonValue;
        generate = name: value: fakeDrv name { text = builtins.toJSON value; };
      };
    json =
      { }:
      {
        type = jsonValue;
        generate = name: value: fakeDrv name { text = builtins.toJSON value; };
      };
    ini =
      {
        listsAsDuplicateKeys ? false,
        ...
      }:
      {
        type = types.attrsOf (types.attrsOf jsonValue);
        generate = name: value: fakeDrv name { text = lib.generators.toINI { inherit listsAsDuplicateKeys; } value; };
      };
  };

  # A real file in the (temporary) store, so a test can read what home-manager links from it.
  writeText = name: text: {
    type = "derivation";
    inherit name text;
    outPath = builtins.toFile name text;
  };
  # home-manager links `writeTextFile { destination = "/x.service"; } + "/x.service"`. That path is
  # made real: the text goes to the (temporary) store with builtins.toFile, and the caller reads it
  # from the part of the path before the destination (test/helpers/nix.ts, storeText).
  writeTextFile =
    {
      name,
      text,
      destination ? "",
      executable ? false,
      ...
    }:
    {
      type = "derivation";
      inherit
        name
        text
        destination
        executable
        ;
      outPath = builtins.toFile name text;
    };
  writeScript =
    name: text:
    fakeDrv name {
      inherit text;
      executable = true;
    };
  writeScriptBin =
    name: text:
    fakeDrv name {
      inherit text;
      executable = true;
    };
  runCommand = name: env: script: fakeDrv name { inherit env script; };
  symlinkJoin = args: fakeDrv args.name { paths = args.paths or [ ]; };
  emptyDirectory = fakeDrv "empty-directory" { };

  # Enough of nixpkgs' callPackage to evaluate nix/package.nix and the flake's outputs.
  callPackage =
    f: overrides:
    let
      fn = if builtins.isFunction f then f else import f;
    in
    fn (builtins.intersectAttrs (builtins.functionArgs fn) (self // { inherit lib; }) // overrides);

  # The package builders record their arguments: the tests read what nix/package.nix asks for.
  # (Their store paths hash only name and output hash: `src` is a lib.fileset, which this Nix cannot read.)
  stdenv = {
    hostPlatform = lib.systems.elaborate system;
    mkDerivation =
      args:
      fakeDrv (args.name or "${args.pname}-${args.version}") { outputHash = args.outputHash or null; }
      // {
        inherit args;
      };
  };
  stdenvNoCC = {
    hostPlatform = lib.systems.elaborate system;
    mkDerivation = args: fakeDrv args.name { outputHash = args.outputHash or null; } // { inherit args; };
  };
  buildNpmPackage =
    args:
    fakeDrv "${args.pname}-${args.version}" { inherit (args) pname version; }
    // {
      inherit args;
      inherit (args) pname version;
      meta = args.meta or { };
    }
    // (args.passthru or { });
  importNpmLock = {
    npmConfigHook = package "import-npm-lock-npm-config-hook";
  };
  nodejs = package "nodejs" // {
    version = "22.0.0-stub";
    meta.mainProgram = "node";
  };
  nodejs_20 = throw "nodejs_20 is marked insecure in current nixpkgs: evaluation refuses it";

  coreutils = package "coreutils";
  bash = package "bash";
  systemd = package "systemd" // {
    meta.mainProgram = "systemctl";
  };
  sd-switch = package "sd-switch";
  sops-agent = package "sops-agent" // {
    version = "0.0.0-stub";
  };
})
