# The sops-agent package, built from this repository with buildNpmPackage.
#
# How the npm dependencies are fetched, and why not with `npmDepsHash`:
#   package-lock.json records no `resolved` URLs (the project never writes a registry host into a
#   committed file, and the machines run npm with `omit-lockfile-registry-resolved`). nixpkgs'
#   fetchNpmDeps (prefetch-npm-deps) and importNpmLock skip every lock entry without a `resolved` URL
#   (prefetch-npm-deps src/parse/lock.rs keeps only entries whose `resolved` is a URL), so
#   `buildNpmPackage { npmDepsHash = ...; }` would get an empty cache and fail offline.
#
#   Instead nix/npm-deps.nix reads the lockfile at evaluation time and makes one fixed-output
#   derivation per package (below, `fetchNpmTarball`). Its hash is the lockfile's own `integrity`
#   (sha512 of the registry tarball) and it asks npm itself for `name@version`: npm knows its default
#   registry, and `npm_config_registry` in the Nix daemon's environment points it at a mirror, so no
#   registry host is written anywhere in this repository. The result is installed by nixpkgs'
#   importNpmLock.npmConfigHook (`npm install --offline` against a lockfile whose `resolved` are the
#   store paths of those tarballs, the same files importNpmLock writes).
#
#   Trade-offs: there is no separate hash to keep in step — a dependency bump changes the lockfile
#   and with it every pin (test/npm-deps.test.ts recomputes them from the lockfile and installs the
#   result offline in CI); the first build runs one small npm process per package (about 45, each
#   cached in the store afterwards); only the run-time dependencies and the build's tools
#   (typescript, @types/node) are fetched, not the test runner and linter.
{
  lib,
  stdenv,
  stdenvNoCC,
  buildNpmPackage,
  importNpmLock,
  runCommand,
  nodejs,
}:

let
  packageJson = lib.importJSON ../package.json;
  packageLock = lib.importJSON ../package-lock.json;

  # One npm package's tarball, byte for byte what the registry serves: the output hash is the
  # lockfile's integrity, so a tarball that differs fails the build instead of entering the store.
  fetchNpmTarball =
    {
      name,
      version,
      hash,
      ...
    }:
    stdenvNoCC.mkDerivation {
      name = "${lib.strings.sanitizeDerivationName (lib.removePrefix "@" name)}-${version}.tgz";
      nativeBuildInputs = [ nodejs ];
      outputHash = hash;
      outputHashMode = "flat";
      # A mirror (`npm_config_registry`) and proxies come from the Nix daemon's environment.
      impureEnvVars = lib.fetchers.proxyImpureEnvVars ++ [ "npm_config_registry" ];
      preferLocalBuild = true;
      buildCommand = ''
        export HOME="$TMPDIR" npm_config_cache="$TMPDIR/npm-cache"
        mkdir "$TMPDIR/packed"
        # `npm pack <name>@<version>` saves the registry's tarball unchanged (after checking it
        # against the registry's integrity); Nix then checks it against the lockfile's.
        npm pack --ignore-scripts --pack-destination "$TMPDIR/packed" ${lib.escapeShellArg "${name}@${version}"}
        mv "$TMPDIR"/packed/*.tgz "$out"
      '';
    };

  deps = import ./npm-deps.nix {
    inherit lib packageJson packageLock;
    inherit (stdenv) hostPlatform;
    fetchTarball = fetchNpmTarball;
  };

  # What importNpmLock { ... } builds: package.json and package-lock.json naming store tarballs.
  npmDeps =
    runCommand "${packageJson.name}-${packageJson.version}-npm-deps"
      {
        passAsFile = [
          "package"
          "packageLock"
        ];
        package = builtins.toJSON deps.packageJson;
        packageLock = builtins.toJSON deps.packageLock;
      }
      ''
        mkdir $out
        cp "$packagePath" $out/package.json
        cp "$packageLockPath" $out/package-lock.json
      '';
in
buildNpmPackage {
  pname = packageJson.name;
  inherit (packageJson) version;

  # Only what the build reads, so editing docs, tests or deploy files does not rebuild the package.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../package.json
      ../package-lock.json
      ../tsconfig.json
      ../tsconfig.build.json
      ../src
      # `npm run build` runs it to record the revision (dist/REVISION); set SOPS_AGENT_REVISION to name it.
      ../scripts
    ];
  };

  # The default nodejs of the nixpkgs in use (package.json: engines.node >=20.19). nixpkgs' wrapper
  # runs `node dist/cli.js` and ignores the shebang: the agent needs no Node flags.
  inherit nodejs npmDeps;
  npmConfigHook = importNpmLock.npmConfigHook;

  # `npm run build` is tsc; the tests need root, real host trees and Debian tools: they run in CI.
  npmBuildScript = "build";
  doCheck = false;

  passthru = {
    # The pinned tarballs, by lockfile path: `nix eval .#sops-agent.npmSources --apply builtins.attrNames`.
    npmSources = lib.mapAttrs (_: s: s.src) deps.sources;
  };

  meta = {
    description = "Watches the health of decrypted sops-nix secrets and exports Prometheus metrics";
    homepage = "https://github.com/nix-community/sops-agent";
    license = lib.licenses.mit;
    mainProgram = "sops-agent";
    platforms = lib.platforms.linux ++ lib.platforms.darwin;
  };
}
