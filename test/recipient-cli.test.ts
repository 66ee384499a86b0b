import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { CliIo } from "../src/cli/io.js";
import { main } from "../src/cli.js";
import { cleanupRoots, healthyHost, TEST_AGE_RECIPIENT } from "./helpers/host.js";
import { requireTool } from "./helpers/tools.js";

const ASSETS = fileURLToDir(new URL("./fixtures/sops-nix/test-assets/", import.meta.url));
const AGE_SSH = "age1a8pk4akrdamj7nvqy3zywgtny8dxz7t5xzu7u8v9mhrayp9freqsqatyrs";

function fileURLToDir(url: URL): string {
  return decodeURIComponent(url.pathname);
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  cleanupRoots();
});

async function run(args: string[], cwd = ASSETS): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    stdout: (s) => {
      stdout += s;
    },
    stderr: (s) => {
      stderr += s;
    },
    env: {},
    cwd,
    isTTY: false,
  };
  const code = await main(["recipient", ...args], io);
  return { code, stdout, stderr };
}

describe("sops-agent recipient FILE...", () => {
  it("prints one recipient per file, in order, with paths relative to cwd", async () => {
    const r = await run(["ssh-ed25519-key.pub", "age-keys.txt", "./ssh-ed25519-key.pub"]);
    expect(r).toEqual({ code: 0, stdout: `${AGE_SSH}\n${TEST_AGE_RECIPIENT}\n${AGE_SSH}\n`, stderr: "" });
  });

  it("ignores --root for FILE arguments", async () => {
    const r = await run(["--root", "/nonexistent", path.join(ASSETS, "age-keys.txt")], "/");
    expect(r.stdout).toBe(`${TEST_AGE_RECIPIENT}\n`);
  });

  it("exits 2 naming the file when it is missing or not a key, and prints nothing else", async () => {
    const missing = await run(["age-keys.txt", "nope.pub"]);
    expect(missing.code).toBe(2);
    expect(missing.stdout).toBe("");
    expect(missing.stderr).toBe(
      "sops-agent recipient: nope.pub: cannot read (ENOENT); see 'sops-agent recipient --help'\n",
    );
    const rsa = await run(["ssh-key.pub"]);
    expect(rsa.code).toBe(2);
    expect(rsa.stderr).toMatch(/^sops-agent recipient: ssh-key\.pub: ssh-rsa key: only ssh-ed25519/);
    const encrypted = await run(["secrets.yaml"]);
    expect(encrypted.code).toBe(2);
    expect(encrypted.stderr).toMatch(/secrets\.yaml: not an ssh public key/);
  });

  it("--help and bad options", async () => {
    const help = await run(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: sops-agent recipient/);
    const bad = await run(["--frobnicate"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/frobnicate/);
  });

  it("never prints private key material", async (ctx) => {
    const sshKeygen = requireTool(ctx, "ssh-keygen");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sops-agent-cli-"));
    dirs.push(dir);
    execFileSync(sshKeygen, ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "id")]);
    fs.writeFileSync(
      path.join(dir, "broken"),
      fs.readFileSync(path.join(dir, "id"), "utf8").replace("b3BlbnNzaC1rZXktdjE", "AAAA"),
    );
    const secretAge = fs.readFileSync(path.join(ASSETS, "age-keys.txt"), "utf8").split("\n")[2] ?? "";
    fs.writeFileSync(path.join(dir, "badage"), `${secretAge.slice(0, -2)}QQ\n`);
    const good = await run(
      ["id", "age-keys.txt"].map((f) => (f === "id" ? path.join(dir, f) : path.join(ASSETS, f))),
    );
    const broken = await run([path.join(dir, "broken")]);
    const badAge = await run([path.join(dir, "badage")]);
    expect(good.code).toBe(0);
    expect(broken.code).toBe(2);
    expect(badAge.code).toBe(2);
    const privateLines = fs
      .readFileSync(path.join(dir, "id"), "utf8")
      .split("\n")
      .filter((l) => /^[A-Za-z0-9+/=]{20,}$/.test(l));
    for (const out of [good, broken, badAge].flatMap((r) => [r.stdout, r.stderr])) {
      for (const line of privateLines) expect(out).not.toContain(line);
      expect(out).not.toContain("AGE-SECRET-KEY-1");
      expect(out).not.toContain(secretAge.slice(16, 40));
    }
  });
});

describe("sops-agent recipient (host)", () => {
  it("prints the recipients of every scope of the host under --root", async () => {
    const host = healthyHost();
    const r = await run(["--root", host.root]);
    expect(r.code).toBe(0);
    const lines = r.stdout
      .trim()
      .split("\n")
      .map((l) => l.split("\t"));
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const [scope, recipient, source] of lines) {
      expect(scope).toMatch(/^(system|for-users|user:.+)$/);
      expect(recipient).toBe(TEST_AGE_RECIPIENT);
      expect(source).toMatch(/keys?\.txt$/);
    }
    expect(lines.map((l) => l[0])).toContain("system");
  });

  it("exits 1 when the host has no manifest", async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "sops-agent-empty-"));
    dirs.push(empty);
    const r = await run(["--root", empty]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no age recipient found/);
  });
});
