import * as fs from "node:fs";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { planWatches, SecretsWatcher, wantedPaths } from "../src/agent/watcher.js";
import { RootFs } from "../src/host/rootfs.js";
import { cleanupRoots, tempRoot } from "./helpers/host.js";

afterAll(() => cleanupRoots());
const logger = pino({ level: "silent" });

describe("planWatches", () => {
  it("watches existing directories, and the nearest ancestor of missing ones for one entry", () => {
    const root = tempRoot();
    fs.mkdirSync(`${root}/run/secrets.d/4/rendered`, { recursive: true });
    fs.mkdirSync(`${root}/home/alice`, { recursive: true });
    const plan = planWatches(
      [
        { kind: "entry", path: "/run/secrets" },
        { kind: "dir", path: "/run/secrets.d/4/rendered" },
        { kind: "dir", path: "/home/alice/.config/systemd/user", stopAt: "/home/alice" },
        { kind: "dir", path: "/home/bob/.config/systemd/user", stopAt: "/home/bob" },
        { kind: "entry", path: "/var/lib/sops-nix/key.txt" },
      ],
      new RootFs(root),
    );
    expect(
      Object.fromEntries([...plan].map(([k, v]) => [k.slice(root.length), v === "all" ? v : [...v]])),
    ).toEqual({
      "/run": ["secrets"],
      "/run/secrets.d/4/rendered": "all",
      "/home/alice": [".config"],
      "/": ["var"],
    });
  });

  it("wants the discovery entry points even before sops-nix ran", () => {
    const wanted = wantedPaths({ run: null, extraKeyPaths: ["/k"], homes: ["/home/a"], platform: "linux" });
    expect(wanted.map((w) => `${w.kind} ${w.path}`)).toEqual([
      "entry /run/current-system",
      "entry /etc/systemd/system/sops-install-secrets.service",
      "entry /etc/systemd/system/sops-install-secrets-for-users.service",
      "entry /etc/passwd",
      "entry /etc/group",
      "entry /home/a/.config/systemd/user/sops-nix.service",
      "entry /k",
    ]);
  });
});

describe("SecretsWatcher", () => {
  it("debounces a burst into one change and ignores unrelated entries", async () => {
    const root = tempRoot();
    fs.mkdirSync(`${root}/run`, { recursive: true });
    let changes = 0;
    let events = 0;
    const w = new SecretsWatcher({
      logger,
      onChange: () => changes++,
      onEvent: () => events++,
      debounceMs: 30,
    });
    await w.retarget(new Map([[`${root}/run`, new Set(["secrets"])]]));
    await new Promise((r) => setTimeout(r, 100));
    fs.writeFileSync(`${root}/run/unrelated`, "x");
    await new Promise((r) => setTimeout(r, 100));
    expect(changes).toBe(0);
    for (let i = 0; i < 5; i++) {
      fs.symlinkSync(`/run/secrets.d/${i}`, `${root}/run/tmp${i}`);
      fs.renameSync(`${root}/run/tmp${i}`, `${root}/run/secrets`);
    }
    await new Promise((r) => setTimeout(r, 150));
    expect(changes).toBe(1);
    expect(events).toBeGreaterThan(0);
    await w.close();
  });

  it("falls back to polling with a warning, and still sees changes", async () => {
    const root = tempRoot();
    fs.mkdirSync(`${root}/d`, { recursive: true });
    const warnings: unknown[] = [];
    const log = pino({ level: "warn" }, { write: (s: string) => warnings.push(JSON.parse(s)) });
    let changes = 0;
    let polling = false;
    const w = new SecretsWatcher({
      logger: log,
      onChange: () => changes++,
      onPolling: (p) => {
        polling = p;
      },
      debounceMs: 10,
      pollingIntervalMs: 50,
    });
    await w.retarget(new Map([[`${root}/d`, "all"]]));
    w.fallBackToPolling("ENOSPC");
    expect(polling).toBe(true);
    expect(warnings).toMatchObject([{ event: "watch_polling", reason: "ENOSPC" }]);
    await new Promise((r) => setTimeout(r, 150));
    const before = changes;
    fs.writeFileSync(`${root}/d/new`, "x");
    await new Promise((r) => setTimeout(r, 400));
    expect(changes).toBeGreaterThan(before);
    await w.close();
  });
});
