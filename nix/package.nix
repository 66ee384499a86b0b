# The sops-agent package, built from this repository with buildNpmPackage.
#
# npmDepsHash pins the npm dependencies of package-lock.json. It must be updated whenever
# package-lock.json changes. The value below is a placeholder (lib.fakeHash): the first build fails with
#   error: hash mismatch in fixed-output derivation ...
#            specified: sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
#               got:    sha256-<the real hash>
# Put the `got:` value here. Or compute it without building:
#   nix run nixpkgs#prefetch-npm-deps -- package-lock.json
{
  lib,
  buildNpmPackage,
  nodejs_20,
}:

let
  packageJson = lib.importJSON ../package.json;
in
buildNpmPackage {
  pname = "sops-agent";
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
    ];
  };

  nodejs = nodejs_20;
  npmDepsHash = lib.fakeHash;

  # `npm run build` is tsc; the tests need root, real host trees and Debian tools: they run in CI.
  npmBuildScript = "build";
  doCheck = false;

  meta = {
    description = "Watches the health of decrypted sops-nix secrets and exports Prometheus metrics";
    homepage = "https://github.com/nix-community/sops-agent";
    license = lib.licenses.mit;
    mainProgram = "sops-agent";
    platforms = lib.platforms.linux ++ lib.platforms.darwin;
  };
}
