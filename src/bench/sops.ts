// Decryption readiness at scale: 100 sops files, 10,000 secrets reading one key each. Measures the first
// observation (read + parse everything), a repeat with nothing changed (must not parse again), and the
// pure sops check family alone. Figures are medians; compare ratios, not absolute times.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { sopsFamily } from "../checks/sops.js";
import { emptyAccounts } from "../core/accounts.js";
import type { DeclaredScope } from "../core/model.js";
import type { ObservedScope } from "../core/observation.js";
import { declaredScope, declaredSecret } from "../example/declared.js";
import { RootFs } from "../host/rootfs.js";
import type { SopsObservation } from "../sops/model.js";
import { SopsFileCache } from "../sops/reader.js";

const FILES = 100;
const SECRETS = 10_000;
const RUNS = 7;
// Public test material of sops-nix (MIT): its identity matches the recipient below.
const AGE_KEY = `# public key: age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw
AGE-SECRET-KEY-1NJT5YCS2LWU4V4QAJQ6R4JNU7LXPDX602DZ9NUFANVU5GDTGUWCQ5T59M6
`;
const RECIPIENT = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw";
const ENC =
  "ENC[AES256_GCM,data:2mP+IAdczoEr0g==,iv:voX4IQemcgt0O97oLExy5r2V85nn687cIyWmHNDhUag=,tag:R97qy4fKneU7D9UFhXNvgA==,type:str]";

function sopsYaml(keys: number): string {
  const lines: string[] = [];
  for (let k = 0; k < keys; k++) lines.push(`svc${k}:`, `    password: ${ENC}`);
  lines.push(
    "sops:",
    "    age:",
    `        - recipient: ${RECIPIENT}`,
    "          enc: |",
    "            -----BEGIN AGE ENCRYPTED FILE-----",
    "            YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBOcUlPTGtUY2R1Si9SUnpN",
    "            -----END AGE ENCRYPTED FILE-----",
    '    lastmodified: "2024-05-01T10:00:00Z"',
    `    mac: ${ENC}`,
    "    version: 3.9.0",
  );
  return `${lines.join("\n")}\n`;
}

function storePath(i: number): string {
  return `/nix/store/${String(i).padStart(32, "a")}-secrets-${i}.yaml`;
}

function layout(root: string): DeclaredScope {
  const perFile = SECRETS / FILES;
  for (let i = 0; i < FILES; i++) {
    const real = path.join(root, storePath(i));
    fs.mkdirSync(path.dirname(real), { recursive: true });
    fs.writeFileSync(real, sopsYaml(perFile));
  }
  fs.mkdirSync(path.join(root, "/var/lib/sops-nix"), { recursive: true });
  fs.writeFileSync(path.join(root, "/var/lib/sops-nix/key.txt"), AGE_KEY, { mode: 0o600 });
  const secrets = Array.from({ length: SECRETS }, (_, n) =>
    declaredSecret(`secret-${n}`, {
      sopsFile: storePath(n % FILES),
      key: `svc${Math.floor(n / FILES)}/password`,
    }),
  );
  return declaredScope(secrets, {
    manifestPath: "/nix/store/bench-manifest.json",
    keys: [{ path: "/var/lib/sops-nix/key.txt", role: "age-key-file" }],
  });
}

function runFamily(scope: DeclaredScope, sops: SopsObservation): number {
  const observed: ObservedScope = {
    declared: scope,
    session: "not-applicable",
    link: { state: "absent" },
    generation: null,
    mountFsType: null,
    files: [],
    keys: [],
  };
  return sopsFamily.run({ scopes: [observed], host: { accounts: emptyAccounts(), strayKeyLinks: [] }, sops })
    .length;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

function timed<T>(fn: () => T): [T, number] {
  const t = performance.now();
  const out = fn();
  return [out, performance.now() - t];
}

export async function benchSops(): Promise<string> {
  const root = fs.mkdtempSync(
    path.join(fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir(), "sops-agent-bench-sops-"),
  );
  try {
    const scope = layout(root);
    const rootFs = new RootFs(root);
    const first: number[] = [];
    const again: number[] = [];
    const family: number[] = [];
    let firstParses = 0;
    let againParses = 0;
    for (let r = 0; r < RUNS; r++) {
      const cache = new SopsFileCache();
      const [obs, t1] = timed(() => {
        const o = cache.observe(rootFs, [scope]);
        return { o, problems: runFamily(scope, o) };
      });
      if (obs.problems !== 0) throw new Error(`bench sops files are not healthy: ${obs.problems} problems`);
      first.push(t1);
      firstParses = cache.parseCount;
      const [, t2] = timed(() => cache.observe(rootFs, [scope]));
      again.push(t2);
      againParses = cache.parseCount - firstParses;
      if (againParses !== 0) throw new Error(`unchanged files were parsed again (${againParses})`);
      const [, t3] = timed(() => runFamily(scope, obs.o));
      family.push(t3);
    }
    const ms = (x: number): string => x.toFixed(1);
    return [
      `Sops files: ${FILES} files, ${SECRETS} secrets (median of ${RUNS} runs)`,
      "",
      "| step | ms | files parsed |",
      "|---|---:|---:|",
      `| first observe + sops check (read and parse all) | ${ms(median(first))} | ${firstParses} |`,
      `| second observe, nothing changed | ${ms(median(again))} | ${againParses} |`,
      `| sops check family alone, ${SECRETS} secrets | ${ms(median(family))} | 0 |`,
      "",
    ].join("\n");
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}
