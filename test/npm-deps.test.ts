// The Nix package's npm dependencies (nix/npm-deps.nix, nix/package.nix): every pin comes from
// package-lock.json, and the lockfile the build installs works offline. The Nix side is evaluated with
// the vendored nixpkgs lib (test/helpers/nix.ts); the install runs the same `npm install --offline`
// as nixpkgs' importNpmLock.npmConfigHook, fed with the registry tarballs from npm's own cache.

import { spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it, type TestContext } from "vitest";
import { evalExpr, evalExprOk, STUBS, VENDORED_LIB } from "./helpers/nix.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

interface LockEntry {
  version?: string;
  integrity?: string;
  resolved?: string;
  dev?: boolean;
}
const lock = JSON.parse(fs.readFileSync(path.join(ROOT, "package-lock.json"), "utf8")) as {
  packages: Record<string, LockEntry>;
};
const packageJson = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
  name: string;
  version: string;
  dependencies: Record<string, string>;
};

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sops-agent-npm-deps-"));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** The package derivation's arguments, evaluated with the stub nixpkgs on `system`. */
function packageExpr(system: string, select: string): string {
  return `let lib = import ${VENDORED_LIB}; pkgs = import ${STUBS} { inherit lib; system = "${system}"; }; p = pkgs.callPackage ${path.join(ROOT, "nix/package.nix")} { }; in ${select}`;
}

interface Fetcher {
  name: string;
  outputHash: string;
  outputHashMode: string;
  buildCommand: string;
}

/** nix/npm-deps.nix over a given lockfile, with a fetcher that names where each tarball goes. */
function depsExpr(opts: {
  system: string;
  lockFile: string;
  packageFile: string;
  tarballDir: string;
}): string {
  return `let lib = import ${VENDORED_LIB}; in import ${path.join(ROOT, "nix/npm-deps.nix")} {
    inherit lib;
    packageJson = lib.importJSON ${opts.packageFile};
    packageLock = lib.importJSON ${opts.lockFile};
    hostPlatform = lib.systems.elaborate "${opts.system}";
    fetchTarball = s: "${opts.tarballDir}/" + builtins.replaceStrings [ "/" "@" ] [ "+" "" ] s.path + ".tgz";
  }`;
}

describe("the package's npm pins", () => {
  it("the lockfile records no resolved URLs (so no registry host) and an integrity for every package", () => {
    for (const [key, entry] of Object.entries(lock.packages)) {
      if (key === "") continue;
      expect(entry.resolved, key).toBeUndefined();
      expect(entry.integrity, key).toMatch(/^sha512-[A-Za-z0-9+/]+=*$/);
    }
  });

  it.for(["x86_64-linux", "aarch64-darwin"])(
    "on %s every tarball is pinned by the lockfile's integrity of that name@version",
    (system, ctx) => {
      const fetchers = evalExprOk<Record<string, Fetcher>>(
        ctx,
        packageExpr(system, "builtins.mapAttrs (_: d: d.args) p.npmSources"),
      );
      const paths = Object.keys(fetchers);
      // The run-time dependencies and the build's compiler are all there.
      for (const dep of [...Object.keys(packageJson.dependencies), "typescript", "@types/node"])
        expect(paths).toContain(`node_modules/${dep}`);
      for (const [lockPath, f] of Object.entries(fetchers)) {
        const entry = lock.packages[lockPath];
        expect(entry, `${lockPath} is not in package-lock.json`).toBeDefined();
        expect(f.outputHash, lockPath).toBe(entry?.integrity);
        expect(f.outputHashMode).toBe("flat");
        const name = lockPath.slice(lockPath.lastIndexOf("node_modules/") + "node_modules/".length);
        // lib.escapeShellArg quotes only names that need it (scoped ones do not).
        const spec = `${name}@${entry?.version}`;
        expect(
          [`npm pack --ignore-scripts --pack-destination "$TMPDIR/packed" ${spec}\n`, `'${spec}'\n`].some(
            (s) => f.buildCommand.includes(s),
          ),
          f.buildCommand,
        ).toBe(true);
        expect(f.name).toMatch(/^[A-Za-z0-9+._?=-]+\.tgz$/);
      }
      // The test runner and the linter are not part of the build.
      expect(paths.some((p) => /vitest|biome|esbuild|rollup/.test(p))).toBe(false);
    },
  );

  it("builds with the default nodejs, importNpmLock's hook and no placeholder hash", (ctx) => {
    const drv = evalExprOk<{ nodejs: string; hook: string; depsHash: boolean; placeholder: boolean }>(
      ctx,
      packageExpr(
        "x86_64-linux",
        `{ nodejs = p.args.nodejs.name; hook = p.args.npmConfigHook.name; depsHash = p.args ? npmDepsHash; placeholder = builtins.any (f: f.args.outputHash == lib.fakeHash || f.args.outputHash == lib.fakeSha256) (builtins.attrValues p.npmSources); }`,
      ),
    );
    expect(drv).toEqual({
      nodejs: "nodejs",
      hook: "import-npm-lock-npm-config-hook",
      depsHash: false,
      placeholder: false,
    });
    const source = fs.readFileSync(path.join(ROOT, "nix/package.nix"), "utf8");
    expect(source).not.toMatch(/fakeHash|fakeSha256|nodejs_\d+|AAAAAAAA/);
  });
});

describe("nix/npm-deps.nix over a lockfile", () => {
  const lockWith = (packages: Record<string, unknown>) => {
    const dir = tempDir();
    const pkg = {
      name: "demo",
      version: "1.0.0",
      dependencies: { a: "^1.0.0" },
      devDependencies: { typescript: "^5.0.0", "@types/node": "^20.0.0", vitest: "^4.0.0" },
    };
    const lockFile = path.join(dir, "package-lock.json");
    const packageFile = path.join(dir, "package.json");
    fs.writeFileSync(packageFile, JSON.stringify(pkg));
    fs.writeFileSync(
      lockFile,
      JSON.stringify({
        lockfileVersion: 3,
        packages: {
          "": {
            name: "demo",
            version: "1.0.0",
            dependencies: pkg.dependencies,
            devDependencies: pkg.devDependencies,
          },
          ...packages,
        },
      }),
    );
    return { lockFile, packageFile, tarballDir: "/tarballs" };
  };
  const entry = (version: string, extra: Record<string, unknown> = {}) => ({
    version,
    integrity: `sha512-${Buffer.from(`${version}${JSON.stringify(extra)}`).toString("base64")}`,
    ...extra,
  });
  const base = {
    "node_modules/a": entry("1.0.0", {
      dependencies: { b: "^2.0.0" },
      optionalDependencies: { "a-linux-x64": "1.0.0", "a-darwin-arm64": "1.0.0" },
    }),
    "node_modules/b": entry("1.0.0"),
    "node_modules/a/node_modules/b": entry("2.0.0"),
    "node_modules/a-linux-x64": entry("1.0.0", {
      optional: true,
      os: ["linux"],
      cpu: ["x64"],
      libc: ["glibc"],
    }),
    "node_modules/a-darwin-arm64": entry("1.0.0", { optional: true, os: ["darwin"], cpu: ["arm64"] }),
    "node_modules/typescript": entry("5.9.3", { dev: true }),
    "node_modules/@types/node": entry("20.19.0", { dev: true, dependencies: { "undici-types": "~6" } }),
    "node_modules/undici-types": entry("6.0.0", { dev: true }),
    "node_modules/vitest": entry("4.0.0", { dev: true }),
  };

  it.for([
    ["x86_64-linux", "node_modules/a-linux-x64", "node_modules/a-darwin-arm64"],
    ["aarch64-darwin", "node_modules/a-darwin-arm64", "node_modules/a-linux-x64"],
  ] as const)(
    "on %s: fetches what npm installs there, from the right place in the tree",
    ([system, here, elsewhere], ctx) => {
      const files = lockWith(base);
      const out = evalExprOk<{
        sources: Record<string, { name: string; version: string }>;
        lock: { packages: Record<string, LockEntry> };
        pkg: { devDependencies: Record<string, string> };
      }>(
        ctx,
        `let d = ${depsExpr({ system, ...files })}; in { sources = builtins.mapAttrs (_: s: { inherit (s) name version; }) d.sources; lock = d.packageLock; pkg = d.packageJson; }`,
      );
      expect(Object.keys(out.sources).sort()).toEqual(
        [
          "node_modules/a",
          "node_modules/a/node_modules/b",
          here,
          "node_modules/typescript",
          "node_modules/@types/node",
          "node_modules/undici-types",
        ].sort(),
      );
      // `a` requires b ^2: the nested copy, not the top-level b@1 that nothing in the build needs.
      expect(out.sources["node_modules/a/node_modules/b"]).toEqual({ name: "b", version: "2.0.0" });
      expect(out.lock.packages[elsewhere]?.resolved).toBeUndefined();
      expect(out.lock.packages[here]?.resolved).toBe(`file:/tarballs/${here.replaceAll("/", "+")}.tgz`);
      expect(out.lock.packages["node_modules/vitest"]).toBeUndefined();
      expect(Object.keys(out.pkg.devDependencies).sort()).toEqual(["@types/node", "typescript"]);
    },
  );

  it("names the lock entry that has no integrity", (ctx) => {
    const files = lockWith({
      ...base,
      "node_modules/b": { version: "1.0.0" },
      "node_modules/a/node_modules/b": { version: "2.0.0" },
    });
    const forced = evalExpr(ctx, `(${depsExpr({ system: "x86_64-linux", ...files })}).packageLock`);
    expect(forced.ok).toBe(false);
    if (!forced.ok)
      expect(forced.error).toContain('`packages."node_modules/a/node_modules/b"` has no integrity');
  });

  it("names a dependency the lockfile does not install", (ctx) => {
    // Node would find b next to a or at the top: neither is there.
    const files = lockWith({
      ...base,
      "node_modules/b": undefined,
      "node_modules/a/node_modules/b": undefined,
    });
    const r = evalExpr(ctx, `(${depsExpr({ system: "x86_64-linux", ...files })}).packageLock`);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain("`node_modules/a` needs `b`");
  });
});

/** Where npm's cache keeps the content with this integrity (cacache, content-v2). */
function cachedTarball(cacheDir: string, integrity: string): string {
  const hex = Buffer.from(integrity.slice("sha512-".length), "base64").toString("hex");
  return path.join(
    cacheDir,
    "_cacache",
    "content-v2",
    "sha512",
    hex.slice(0, 2),
    hex.slice(2, 4),
    hex.slice(4),
  );
}

function npmCacheDir(): string {
  const r = spawnSync("npm", ["config", "get", "cache"], { encoding: "utf8" });
  return r.stdout.trim();
}

function needCachedTarballs(ctx: TestContext, missing: string[]): void {
  if (missing.length === 0) return;
  const message = `npm's cache lacks ${missing.length} tarballs of the lockfile (${missing.slice(0, 3).join(", ")}…): run npm ci first`;
  if (process.env.CI === "true") throw new Error(`${message}; CI runs npm ci before the tests`);
  ctx.skip(message);
}

describe("the build's lockfile installs offline", () => {
  it("npm install --offline from the pinned tarballs, then tsc, then `sops-agent --version`", {
    timeout: 180_000,
  }, (ctx) => {
    const dir = tempDir();
    const tarballDir = path.join(dir, "tarballs");
    const build = path.join(dir, "build");
    fs.mkdirSync(tarballDir);
    fs.mkdirSync(build);
    const out = evalExprOk<{
      packageJson: unknown;
      packageLock: unknown;
      sources: { path: string; hash: string; src: string }[];
    }>(
      ctx,
      `let d = ${depsExpr({ system: "x86_64-linux", lockFile: path.join(ROOT, "package-lock.json"), packageFile: path.join(ROOT, "package.json"), tarballDir })}; in { inherit (d) packageJson packageLock; sources = builtins.attrValues d.sources; }`,
    );

    // What each fixed-output derivation would produce: the bytes whose sha512 is the lockfile's integrity.
    const cache = npmCacheDir();
    const missing = out.sources
      .filter((s) => !fs.existsSync(cachedTarball(cache, s.hash)))
      .map((s) => s.path);
    needCachedTarballs(ctx, missing);
    for (const s of out.sources) {
      const bytes = fs.readFileSync(cachedTarball(cache, s.hash));
      expect(`sha512-${crypto.createHash("sha512").update(bytes).digest("base64")}`, s.path).toBe(s.hash);
      fs.writeFileSync(s.src, bytes);
    }

    for (const f of ["tsconfig.json", "tsconfig.build.json"])
      fs.copyFileSync(path.join(ROOT, f), path.join(build, f));
    // What nix/package.nix's fileset holds: the sources and the script that records the revision.
    for (const d of ["src", "scripts"])
      fs.cpSync(path.join(ROOT, d), path.join(build, d), { recursive: true });
    fs.writeFileSync(path.join(build, "package.json"), JSON.stringify(out.packageJson, null, 2));
    fs.writeFileSync(path.join(build, "package-lock.json"), JSON.stringify(out.packageLock, null, 2));

    // importNpmLock.npmConfigHook's install, with an empty cache: only the file: tarballs can serve it.
    const env = {
      ...process.env,
      HOME: dir,
      npm_config_cache: path.join(dir, "npm-cache"),
      npm_config_offline: "true",
      npm_config_update_notifier: "false",
    };
    const npm = (...args: string[]) => spawnSync("npm", args, { cwd: build, env, encoding: "utf8" });
    const install = npm("install", "--ignore-scripts", "--no-audit", "--no-fund");
    expect(install.status, `npm install --offline failed:\n${install.stdout}\n${install.stderr}`).toBe(0);
    const built = npm("run", "build");
    expect(built.status, `npm run build failed:\n${built.stdout}\n${built.stderr}`).toBe(0);
    const version = spawnSync(process.execPath, [path.join(build, "dist/cli.js"), "--version"], {
      encoding: "utf8",
    });
    expect(version.stdout.trim()).toContain(packageJson.version);
  });
});
