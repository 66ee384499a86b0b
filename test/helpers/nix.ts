// Evaluates the project's Nix modules offline with `nix-instantiate --eval --strict --json` over
// test/nix/eval.nix: nixpkgs' lib.evalModules and the home-manager / nix-darwin modules vendored under
// test/nix/vendor, with stand-ins for `pkgs` (test/nix/stubs.nix). No nixpkgs, no network: NIX_PATH is
// empty (so <nixpkgs> fails) and the store is a temporary directory (Debian's nix-bin runs without a
// daemon; builtins.toFile writes there).

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { TestContext } from "vitest";
import { requireTool } from "./tools.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const EVAL_NIX = path.join(ROOT, "test/nix/eval.nix");
/** nixpkgs' lib, vendored: `import ${VENDORED_LIB}`. */
export const VENDORED_LIB = path.join(ROOT, "test/nix/vendor/nixpkgs-lib/lib");
/** The stand-in nixpkgs: `import ${STUBS} { inherit lib; system = "x86_64-linux"; }`. */
export const STUBS = path.join(ROOT, "test/nix/stubs.nix");

export type Platform = "nixos" | "home-manager" | "darwin";

export interface EvalOptions {
  readonly platform: Platform;
  /** Nix expressions of modules, e.g. `{ services.sops-agent.enable = true; }`. */
  readonly modules?: readonly string[];
  /** `x86_64-linux` by default, `aarch64-darwin` for nix-darwin. */
  readonly system?: string;
  /** A Nix expression of the module under test instead of nix/<platform>-module.nix (e.g. the flake's). */
  readonly module?: string;
}

export type EvalResult =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: string };

let nixDir: string | null = null;
/** One temporary Nix state/store for the test file; removed when the process exits. */
function nixEnv(): NodeJS.ProcessEnv {
  if (nixDir === null) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sops-agent-nix-"));
    nixDir = dir;
    process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  return {
    ...process.env,
    NIX_PATH: "",
    NIX_STATE_DIR: path.join(nixDir, "state"),
    NIX_STORE_DIR: path.join(nixDir, "store"),
    NIX_LOG_DIR: path.join(nixDir, "log"),
    NIX_CONF_DIR: path.join(nixDir, "etc"),
    // Debian's nix-bin names a build users group the container lacks; evaluation builds nothing.
    NIX_CONFIG: "build-users-group =\nsandbox = false\nsubstituters =\nexperimental-features =",
    HOME: nixDir,
  };
}

/**
 * Evaluates `select` (a Nix expression over `r`, the result of test/nix/eval.nix: config, options,
 * failedAssertions, warnings, lib, pkgs) to JSON. An evaluation error is returned, not thrown, so a
 * test can assert that a bad value is rejected and how.
 */
export function evalNix(ctx: TestContext, opts: EvalOptions, select: string): EvalResult {
  const args = [
    `platform = ${JSON.stringify(opts.platform)};`,
    `modules = [ ${(opts.modules ?? []).map((m) => `(${m})`).join(" ")} ];`,
    opts.system === undefined ? "" : `system = ${JSON.stringify(opts.system)};`,
    opts.module === undefined ? "" : `module = (${opts.module});`,
  ].join(" ");
  return evalExpr(ctx, `let r = import ${EVAL_NIX} { ${args} }; in ${select}`);
}

/** Any Nix expression, evaluated offline to JSON (`VENDORED_LIB` and `STUBS` are at hand to import). */
export function evalExpr(ctx: TestContext, expr: string): EvalResult {
  const nix = requireTool(ctx, "nix-instantiate");
  // --read-write-mode: builtins.toFile (the stub writeText) really writes into the temporary store.
  const r = spawnSync(nix, ["--eval", "--read-write-mode", "--strict", "--json", "--expr", expr], {
    cwd: ROOT,
    encoding: "utf8",
    env: nixEnv(),
  });
  if (r.error !== undefined) throw r.error;
  if (r.status !== 0) return { ok: false, error: r.stderr };
  return { ok: true, value: JSON.parse(r.stdout) as unknown };
}

/** Like evalExpr, but the evaluation must succeed. */
export function evalExprOk<T>(ctx: TestContext, expr: string): T {
  const r = evalExpr(ctx, expr);
  if (!r.ok) throw new Error(`nix evaluation failed:\n${r.error}`);
  return r.value as T;
}

/** Like evalNix, but the evaluation must succeed. */
export function evalNixOk<T>(ctx: TestContext, opts: EvalOptions, select: string): T {
  const r = evalNix(ctx, opts, select);
  if (!r.ok) throw new Error(`nix evaluation failed:\n${r.error}`);
  return r.value as T;
}

/**
 * The text of a file written by the stub `writeTextFile` (a real file in the temporary store): the
 * path may go on into the "directory" (`<store file>/x.service`), as home-manager links units.
 */
export function storeText(file: string): string {
  let p = file;
  while (p !== path.dirname(p)) {
    if (fs.existsSync(p) && fs.statSync(p).isFile()) return fs.readFileSync(p, "utf8");
    p = path.dirname(p);
  }
  throw new Error(`no stub store file for ${file}`);
}
