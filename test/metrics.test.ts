import { crc32, gunzipSync, inflateRawSync } from "node:zlib";
import { Gauge, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { AgentMetrics, type PublishedState, renderState } from "../src/agent/metrics.js";
import type { DeclaredSecret } from "../src/core/model.js";
import type { FileObservation, ObservedScope } from "../src/core/observation.js";
import type { Problem } from "../src/core/problems.js";
import type { CheckRun } from "../src/core/report.js";
import { buildStatus } from "../src/core/status.js";
import { declaredScope, declaredSecret } from "../src/example/declared.js";
import { REVISION } from "../src/version.js";

function secret(name: string, owner: DeclaredSecret["owner"] = { kind: "id", id: 0 }): DeclaredSecret {
  return declaredSecret(name, {
    owner,
    group: { kind: "name", name: "keys" },
    sopsFile: "/nix/store/x-secrets.yaml",
  });
}

function scope(names: readonly string[], generation = 3): ObservedScope {
  const secrets = names.map((n, i) =>
    secret(n, i === 0 ? { kind: "name", name: "nginx" } : { kind: "id", id: 0 }),
  );
  const declared = declaredScope(secrets, { manifestPath: "/nix/store/m-manifest.json" });
  const files: FileObservation[] = secrets.map((d, i) => ({
    declared: d,
    generationPath: `/run/secrets.d/${generation}/${d.name}`,
    facts: {
      state: "present",
      type: "file",
      mode: 0o400,
      uid: 0,
      gid: 62,
      size: 10,
      mtimeMs: 1_700_000_000_000 + i * 1000,
      ino: 100 + i,
    },
    unrenderedPlaceholder: null,
    searchPath: null,
    link: null,
  }));
  return {
    declared,
    session: "not-applicable",
    link: {
      state: "present",
      type: "symlink",
      mode: 0o777,
      uid: 0,
      gid: 0,
      size: 0,
      mtimeMs: 0,
      ino: 1,
      linkTarget: `/run/secrets.d/${generation}`,
    },
    generation: {
      target: `/run/secrets.d/${generation}`,
      number: generation,
      insideMount: true,
      resolution: { state: "absent", path: "" },
    },
    mountFsType: 0x858458f6,
    files,
    keys: [],
  };
}

function run(observed: ObservedScope[], problems: Problem[] = []): CheckRun {
  return {
    document: buildStatus(observed, problems, [], []),
    families: [
      { family: "files", ok: true, durationSeconds: 0.001 },
      { family: "sops", ok: false, durationSeconds: 0.002, error: "boom" },
    ],
    observed,
    sopsFiles:
      observed.length === 0
        ? []
        : [
            {
              scope: "system",
              file: "/nix/store/x-secrets.yaml",
              lastModifiedSeconds: 1_760_000_000,
              recipients: { age: 2, pgp: 0 },
            },
          ],
    homes: [],
    startedAt: 1_800_000_000,
    durationSeconds: 0.01,
  };
}

const missing: Problem = {
  code: "missing",
  severity: "critical",
  scope: "system",
  subject: "b",
  path: "/run/secrets/b",
  message: "gone",
};

function lines(text: string, prefix: string): string[] {
  return text.split("\n").filter((l) => l.startsWith(prefix));
}

describe("AgentMetrics", () => {
  it("renders the contract series of a healthy run", async () => {
    const m = new AgentMetrics("1.2.3", { processMetrics: false });
    await m.publish({
      run: run([scope(["a", "b"])]),
      switches: new Map([["system", { count: 2, lastSeconds: 1_800_000_001 }]]),
    });
    const text = await m.render();
    expect(lines(text, "sops_secret_ok{")).toEqual([
      'sops_secret_ok{scope="system",kind="secret",name="a"} 1',
      'sops_secret_ok{scope="system",kind="secret",name="b"} 1',
    ]);
    expect(lines(text, "sops_secret_info{")[0]).toBe(
      'sops_secret_info{scope="system",kind="secret",name="a",path="/run/secrets/a",mode="0400",owner="nginx",group="keys"} 1',
    );
    expect(lines(text, "sops_secret_info{")[1]).toContain('owner="0"');
    expect(lines(text, "sops_secret_modified_timestamp_seconds{")[0]).toBe(
      'sops_secret_modified_timestamp_seconds{scope="system",kind="secret",name="a"} 1700000000',
    );
    expect(lines(text, "sops_problems{")).toEqual([
      'sops_problems{scope="system",severity="critical"} 0',
      'sops_problems{scope="system",severity="warning"} 0',
      'sops_problems{scope="system",severity="info"} 0',
      'sops_problems{scope="host",severity="critical"} 0',
      'sops_problems{scope="host",severity="warning"} 0',
      'sops_problems{scope="host",severity="info"} 0',
    ]);
    expect(lines(text, "sops_problem{")).toEqual([]);
    expect(lines(text, "sops_healthy{")).toContain('sops_healthy{scope="system"} 1');
    expect(lines(text, "sops_generation{")).toEqual(['sops_generation{scope="system"} 3']);
    expect(lines(text, "sops_generation_switches_total{")).toEqual([
      'sops_generation_switches_total{scope="system"} 2',
    ]);
    expect(lines(text, "sops_generation_switch_timestamp_seconds{")).toEqual([
      'sops_generation_switch_timestamp_seconds{scope="system"} 1800000001',
    ]);
    expect(lines(text, "sops_file_last_modified_timestamp_seconds{")).toEqual([
      'sops_file_last_modified_timestamp_seconds{scope="system",file="/nix/store/x-secrets.yaml"} 1760000000',
    ]);
    expect(lines(text, "sops_file_recipients{")).toEqual([
      'sops_file_recipients{scope="system",file="/nix/store/x-secrets.yaml",kind="age"} 2',
      'sops_file_recipients{scope="system",file="/nix/store/x-secrets.yaml",kind="pgp"} 0',
    ]);
    expect(lines(text, "sops_agent_check_success{")).toEqual([
      'sops_agent_check_success{check="files"} 1',
      'sops_agent_check_success{check="sops"} 0',
    ]);
    expect(lines(text, "sops_agent_build_info{")).toEqual([
      `sops_agent_build_info{version="1.2.3",revision="${REVISION}",nodejs="${process.version}"} 1`,
    ]);
    expect(lines(text, "sops_agent_last_check_timestamp_seconds ")).toEqual([
      "sops_agent_last_check_timestamp_seconds 1800000000.01",
    ]);
    expect(lines(text, "sops_agent_config_last_reload_successful ")).toEqual([
      "sops_agent_config_last_reload_successful 1",
    ]);
    expect(lines(text, "sops_agent_watch_events_total ")).toEqual(["sops_agent_watch_events_total 0"]);
  });

  it("shows problems while they last and drops series of removed secrets", async () => {
    const m = new AgentMetrics("1", { processMetrics: false });
    await m.publish({ run: run([scope(["a", "b"])], [missing]), switches: new Map() });
    let text = await m.render();
    expect(lines(text, "sops_problem{")).toEqual([
      'sops_problem{scope="system",subject="b",code="missing",severity="critical"} 1',
    ]);
    expect(lines(text, "sops_secret_ok{")).toContain(
      'sops_secret_ok{scope="system",kind="secret",name="b"} 0',
    );
    expect(lines(text, "sops_healthy{")).toContain('sops_healthy{scope="system"} 0');
    expect(lines(text, 'sops_problems{scope="system",severity="critical"}')).toEqual([
      'sops_problems{scope="system",severity="critical"} 1',
    ]);

    await m.publish({ run: run([scope(["a"])]), switches: new Map() });
    text = await m.render();
    expect(lines(text, "sops_problem{")).toEqual([]);
    expect(text).not.toContain('name="b"');

    await m.publish({ run: run([]), switches: new Map() });
    text = await m.render();
    expect(text).not.toContain('scope="system"');
    expect(lines(text, "sops_healthy{")).toEqual(['sops_healthy{scope="host"} 1']);
  });

  it("counts watch events, reloads and polling in the live part", async () => {
    const m = new AgentMetrics("1", { processMetrics: false });
    m.watchEvent();
    m.watchEvent(2);
    m.configReloaded(false);
    m.setWatchPolling(true);
    m.observeCheckDuration(0.02);
    const text = await m.render();
    expect(text).toContain("sops_agent_watch_events_total 3");
    expect(text).toContain("sops_agent_config_last_reload_successful 0");
    expect(text).toContain("sops_agent_watch_polling 1");
    expect(text).toContain("sops_agent_check_duration_seconds_count 1");
  });

  it("serves 10,000 secrets from the text rendered once per publish", async () => {
    const names = Array.from({ length: 10_000 }, (_, i) => `s${i}`);
    const m = new AgentMetrics("1");
    await m.publish({ run: run([scope(names)]), switches: new Map() });
    const [first] = await m.body();
    const [second] = await m.body();
    // The same Buffer for every scrape: nothing of the state is rendered again between publishes.
    expect(second).toBe(first);
    expect(lines(await m.render(), "sops_secret_ok{")).toHaveLength(10_000);
  });

  it("renders the state exactly as prom-client would: escaping, duplicates, numbers", async () => {
    const odd = 'we"ird\\name\nx';
    const dup: Problem = { ...missing, subject: odd, path: "/p1" };
    const r = run([scope(["a", odd])], [dup, { ...dup, path: "/p2", severity: "warning" }, dup]);
    const text = renderState({ run: r, switches: new Map() }).toString("utf8");
    const reg = new Registry();
    const problem = new Gauge({
      name: "sops_problem",
      help: "1 for each active problem; the series disappears when the problem is solved.",
      labelNames: ["scope", "subject", "code", "severity"],
      registers: [reg],
    });
    for (const p of r.document.problems)
      problem.set({ scope: p.scope, subject: p.subject, code: p.code, severity: p.severity }, 1);
    const ok = new Gauge({
      name: "x_ok",
      help: "h",
      labelNames: ["scope", "kind", "name"],
      registers: [reg],
    });
    for (const s of r.document.secrets) ok.set({ scope: s.scope, kind: s.kind, name: s.name }, s.ok ? 1 : 0);
    const expected = await reg.metrics();
    const block = (t: string, name: string) =>
      t.split("\n\n").find((b) => b.startsWith(`# HELP ${name} `)) ?? "";
    expect(block(text, "sops_problem")).toBe(block(expected, "sops_problem").trimEnd());
    expect(lines(text, "sops_secret_ok{")).toEqual(
      lines(expected, "x_ok{").map((l) => l.replace("x_ok", "sops_secret_ok")),
    );
    expect(text.endsWith("\n")).toBe(true);
  });
});

describe("AgentMetrics gzip", () => {
  it("is one gzip member of the whole body, with the state compressed once per publish", async () => {
    const m = new AgentMetrics("1.2.3", { processMetrics: false });
    await m.publish({ run: run([scope(["a", "b"])]), switches: new Map() });
    const first = Buffer.concat(await m.gzipBody());
    const second = Buffer.concat(await m.gzipBody());
    expect(m.stateDeflations).toBe(1);
    const text = await m.render();
    expect(gunzipSync(first).toString("utf8")).toBe(text);
    expect(gunzipSync(second).toString("utf8")).toBe(text);
    // One member: the deflate stream between the 10-byte header and the 8-byte trailer is the whole body,
    // and the trailer's CRC-32 and length are those of the whole body.
    expect(inflateRawSync(first.subarray(10, -8)).toString("utf8")).toBe(text);
    expect(first.readUInt32LE(first.length - 8)).toBe(crc32(Buffer.from(text)) >>> 0);
    expect(first.readUInt32LE(first.length - 4)).toBe(Buffer.byteLength(text));
    await m.publish({ run: run([scope(["a", "b", "c"])], [missing]), switches: new Map() });
    const third = gunzipSync(Buffer.concat(await m.gzipBody())).toString("utf8");
    expect(m.stateDeflations).toBe(2);
    expect(third).toBe(await m.render());
    expect(third).toContain('name="c"');
  });

  it("compresses nothing when nobody asks for gzip", async () => {
    const m = new AgentMetrics("1.2.3", { processMetrics: false });
    await m.publish({ run: run([scope(["a"])]), switches: new Map() });
    await m.render();
    expect(m.stateDeflations).toBe(0);
  });
});

describe("AgentMetrics across publishes", () => {
  it("renders and compresses the state once per change, not once per check", async () => {
    const m = new AgentMetrics("1.2.3", { processMetrics: false });
    const observed = [scope(["a", "b"])];
    await m.publish({ run: run(observed), switches: new Map() });
    await m.gzipBody();
    expect(m.stateRenders).toBe(1);
    // A new check that found the same: same declarations, mtimes, problems; only its time differs.
    const again = { ...run(observed), startedAt: 1_800_000_100 };
    await m.publish({ run: again, switches: new Map() });
    expect(m.lastPublishUnchanged).toBe(true);
    expect(m.stateRenders).toBe(1);
    const gz = gunzipSync(Buffer.concat(await m.gzipBody())).toString("utf8");
    expect(m.stateDeflations).toBe(1);
    // The reused text is still exactly what rendering the new run gives, its check time included.
    expect(
      (await m.render()).startsWith(renderState({ run: again, switches: new Map() }).toString("utf8")),
    ).toBe(true);
    expect(gz).toBe(await m.render());
    expect(gz).toContain("sops_agent_last_check_timestamp_seconds 1800000100.01");

    // Each kind of change renders again.
    const first = observed[0] as ObservedScope;
    const touched: ObservedScope = {
      ...first,
      files: first.files.map((f, i) =>
        i === 1 && f.facts.state === "present"
          ? { ...f, facts: { ...f.facts, mtimeMs: f.facts.mtimeMs + 1 } }
          : f,
      ),
    };
    const changes: PublishedState[] = [
      { run: run([touched]), switches: new Map() },
      { run: run([touched], [missing]), switches: new Map() },
      { run: run([touched], [missing]), switches: new Map([["system", { count: 1, lastSeconds: 5 }]]) },
      {
        run: run([scope(["a", "b"], 4)], [missing]),
        switches: new Map([["system", { count: 1, lastSeconds: 5 }]]),
      },
    ];
    for (const [i, change] of changes.entries()) {
      await m.publish(change);
      expect(m.lastPublishUnchanged).toBe(false);
      expect(m.stateRenders).toBe(2 + i);
      expect((await m.render()).startsWith(renderState(change).toString("utf8"))).toBe(true);
    }
  });
});
