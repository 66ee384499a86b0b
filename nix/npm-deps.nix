# The npm dependencies of the build, read from package.json and package-lock.json at evaluation time.
#
# The lockfile records no `resolved` URLs (the project never writes a registry host into a committed
# file), so nixpkgs' fetchNpmDeps/importNpmLock find nothing to fetch. This function pins each package
# by what the lockfile does record — name, version and `integrity` — and hands them to `fetchTarball`
# (nix/package.nix: a fixed-output derivation whose hash IS the integrity). It returns the
# package.json and package-lock.json that nixpkgs' importNpmLock.npmConfigHook installs offline: the
# same files, with `resolved = "file:<tarball in the store>"`, as importNpmLock itself writes them.
#
# Pure over its arguments, so test/npm-deps.test.ts evaluates it offline and checks every pin against
# the lockfile, and installs the result with npm --offline.
{
  lib,
  packageJson,
  packageLock,
  # { name, version, hash, path } -> a store path (or derivation) of the package's tarball.
  fetchTarball,
  # The platform the package is built on: packages whose os/cpu/libc exclude it are not fetched
  # (npm skips them too).
  hostPlatform,
  # Development dependencies the build needs (`npm run build` is tsc); the others (test runner,
  # linter and their per-platform binaries) are left out of the build's lockfile and not fetched.
  buildDependencies ? [
    "typescript"
    "@types/node"
  ],
}:

let
  inherit (lib)
    attrNames
    filterAttrs
    mapAttrs
    optionalAttrs
    ;

  packages = packageLock.packages or (throw "package-lock.json: no `packages` (lockfileVersion 2 or 3 is required)");
  root = packages."" or { };

  # "node_modules/a/node_modules/@s/b" -> "node_modules/a"; "node_modules/a" -> "".
  parentOf =
    path:
    let
      m = builtins.match "(.*)/node_modules/(@[^/]+/[^/]+|[^/]+)" path;
    in
    if m == null then "" else builtins.head m;

  # The name npm installs at `path` (an alias records its real name in `name`).
  nameAt =
    path: entry:
    entry.name or (
      let
        m = builtins.match "(.*/)?node_modules/(@[^/]+/[^/]+|[^/]+)" path;
      in
      if m == null then throw "package-lock.json: cannot read a package name from `packages.\"${path}\"`" else lib.last m
    );

  # Node's module resolution over the lockfile's tree: node_modules/<name> next to `from`, then up.
  resolve =
    from: name:
    let
      candidate = (if from == "" then "" else "${from}/") + "node_modules/${name}";
    in
    if packages ? ${candidate} then
      candidate
    else if from == "" then
      null
    else
      resolve (parentOf from) name;

  # What a package pulls in: dependencies, optional ones and required peers (npm 7+ installs peers).
  requiredPeers =
    entry:
    filterAttrs (n: _: !((entry.peerDependenciesMeta or { }).${n}.optional or false)) (entry.peerDependencies or { });
  requires =
    path: entry:
    let
      hard = (entry.dependencies or { }) // requiredPeers entry;
      soft = entry.optionalDependencies or { };
      found = name: resolve path name;
      need =
        name:
        let
          p = found name;
        in
        if p == null then
          throw "package-lock.json: `${if path == "" then "package.json" else path}` needs `${name}`, which the lockfile does not install"
        else
          p;
    in
    map need (attrNames hard) ++ lib.filter (p: p != null) (map found (attrNames soft));

  # The build's packages: everything the package depends on at run time, plus the build tools.
  wanted =
    (attrNames (root.dependencies or packageJson.dependencies or { }))
    ++ (attrNames (root.optionalDependencies or { }))
    ++ buildDependencies;
  closure = map (x: x.key) (
    builtins.genericClosure {
      startSet = map (name: {
        key =
          let
            p = resolve "" name;
          in
          if p == null then throw "package-lock.json: `${name}` is not installed by the lockfile" else p;
      }) wanted;
      operator = item: map (key: { inherit key; }) (requires item.key packages.${item.key});
    }
  );
  inClosure = lib.genAttrs closure (_: true);

  # npm's os/cpu/libc fields: allowed values, or "!value" to exclude one.
  npmCpu =
    {
      x86_64 = "x64";
      aarch64 = "arm64";
      i686 = "ia32";
      armv7l = "arm";
      armv6l = "arm";
      powerpc64le = "ppc64";
      riscv64 = "riscv64";
      s390x = "s390x";
    }
    .${hostPlatform.parsed.cpu.name} or hostPlatform.parsed.cpu.name;
  npmOs = if hostPlatform.isDarwin then "darwin" else hostPlatform.parsed.kernel.name;
  npmLibc = if hostPlatform.isMusl then "musl" else "glibc";
  allows =
    list: value:
    let
      excluded = map (lib.removePrefix "!") (lib.filter (lib.hasPrefix "!") list);
      included = lib.filter (v: !lib.hasPrefix "!" v) list;
    in
    !(builtins.elem value excluded) && (included == [ ] || builtins.elem value included);
  runsHere =
    entry:
    allows (entry.os or [ ]) npmOs
    && allows (entry.cpu or [ ]) npmCpu
    && (!hostPlatform.isLinux || allows (entry.libc or [ ]) npmLibc);

  kept = filterAttrs (path: _: inClosure ? ${path}) packages;

  # A lock entry that npm installs from a tarball: not the root, not a symlink to a workspace.
  fetched = filterAttrs (_: entry: !(entry.link or false) && runsHere entry) kept;

  sources = mapAttrs (
    path: entry:
    let
      name = nameAt path entry;
      version =
        entry.version or (throw "package-lock.json: `packages.\"${path}\"` has no version: run npm install to complete the lockfile");
      hash =
        entry.integrity
          or (throw "package-lock.json: `packages.\"${path}\"` has no integrity: run npm install to complete the lockfile");
    in
    {
      inherit
        path
        name
        version
        hash
        ;
      # Checked here, not only where a fetcher reads them: a bad lockfile fails with its own message.
      src = builtins.seq version (
        builtins.seq hash (fetchTarball {
          inherit
            path
            name
            version
            hash
            ;
        })
      );
    }
  ) fetched;

  resolvedAt = path: if sources ? ${path} then "file:${sources.${path}.src}" else null;

  buildDevDependencies = lib.genAttrs buildDependencies (
    name:
    (root.devDependencies or packageJson.devDependencies or { }).${name}
      or (throw "package.json: the build dependency `${name}` is not a devDependency")
  );

  lockedRoot = root // optionalAttrs (root ? devDependencies) { devDependencies = buildDevDependencies; };

  # As importNpmLock writes them: package.json names the top-level tarballs directly.
  fromStore = mapAttrs (name: spec: let r = resolvedAt "node_modules/${name}"; in if r == null then spec else r);
in
{
  # One entry per fetched package (keyed by its lockfile path), for the tests and for inspection.
  inherit sources;

  packageLock = packageLock // {
    packages =
      {
        "" = lockedRoot;
      }
      // mapAttrs (
        path: entry:
        (removeAttrs entry [
          "resolved"
          "link"
          "funding"
        ])
        // optionalAttrs (sources ? ${path}) { resolved = resolvedAt path; }
      ) (removeAttrs kept [ "" ]);
  };

  packageJson =
    packageJson
    // optionalAttrs (packageJson ? dependencies) { dependencies = fromStore packageJson.dependencies; }
    // optionalAttrs (packageJson ? devDependencies) { devDependencies = fromStore buildDevDependencies; };
}
