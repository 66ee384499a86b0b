// Packaging and deployment files: systemd units (hardening measured by systemd-analyze), launchd plists,
// Nix files, Prometheus rules and their tests, the Grafana dashboard. The tools come from Debian
// packages that .ci/run installs; outside CI a missing tool skips its test.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { ALL_PROBLEM_CODES } from "../src/core/problems.js";
import { asDict, parsePlist } from "./helpers/plist.js";
import { requireTool } from "./helpers/tools.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const at = (...parts: string[]) => path.join(ROOT, ...parts);

const MAX_EXPOSURE = 1.6;

/** The metric names sops-agent exports (README contract), plus Prometheus' own `up`. */
const CONTRACT_METRICS = new Set([
  "sops_activation_success",
  "sops_consumer_stale",
  "sops_orphans",
  "sops_secret_ok",
  "sops_secret_info",
  "sops_secret_modified_timestamp_seconds",
  "sops_problem",
  "sops_problems",
  "sops_healthy",
  "sops_generation",
  "sops_generation_switches_total",
  "sops_generation_switch_timestamp_seconds",
  "sops_agent_build_info",
  "sops_agent_check_duration_seconds_bucket",
  "sops_agent_check_duration_seconds_sum",
  "sops_agent_check_duration_seconds_count",
  "sops_agent_last_check_timestamp_seconds",
  "sops_agent_check_success",
  "sops_agent_watch_events_total",
  "sops_agent_config_last_reload_successful",
  "sops_file_last_modified_timestamp_seconds",
  "sops_file_recipients",
  "up",
]);

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sops-agent-packaging-"));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Run {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: "utf8", env: { ...process.env, ...env } });
  if (r.error !== undefined) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function expectSuccess(r: Run, what: string): void {
  expect(r.status, `${what} failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
}

/** A fake executable for ExecStart, because `systemd-analyze verify` checks the binary exists. */
function unitWithFakeBinary(unitFile: string, from: string): string {
  const dir = tempDir();
  const bin = path.join(dir, "sops-agent");
  fs.writeFileSync(bin, "#!/bin/sh\n", { mode: 0o755 });
  const unit = fs.readFileSync(at(unitFile), "utf8").replaceAll(from, bin);
  const out = path.join(dir, path.basename(unitFile));
  fs.writeFileSync(out, unit);
  return out;
}

/** `[Section] Key=value` lines, for checking the settings the spec asks for. */
function unitSettings(file: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  let section = "";
  for (const raw of fs.readFileSync(at(file), "utf8").split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header?.[1] !== undefined) {
      section = header[1];
      continue;
    }
    const eq = line.indexOf("=");
    const key = `${section}.${line.slice(0, eq)}`;
    settings.set(key, [...(settings.get(key) ?? []), line.slice(eq + 1)]);
  }
  return settings;
}

const words = (values: string[] | undefined) => (values ?? []).flatMap((v) => v.split(/\s+/));

describe("systemd units", () => {
  it(`the system unit's exposure is at most ${MAX_EXPOSURE}`, (ctx) => {
    const analyze = requireTool(ctx, "systemd-analyze");
    const r = run(analyze, [
      "security",
      "--offline=true",
      "--no-pager",
      at("deploy/systemd/sops-agent.service"),
    ]);
    const out = `${r.stdout}\n${r.stderr}`;
    const match = /Overall exposure level for sops-agent\.service:\s*([0-9.]+)/.exec(out);
    expect(match, `no exposure level in:\n${out}`).not.toBeNull();
    const exposure = Number(match?.[1]);
    expect(exposure).toBeLessThanOrEqual(MAX_EXPOSURE);
  });

  it.for([
    ["deploy/systemd/sops-agent.service", "/usr/local/bin/sops-agent"],
    ["deploy/systemd/sops-agent-user.service", "%h/.nix-profile/bin/sops-agent"],
  ] as const)("systemd-analyze verify accepts %s", ([file, binary], ctx) => {
    const analyze = requireTool(ctx, "systemd-analyze");
    // The user unit is verified by the system manager: a container has no user manager to ask.
    const r = run(analyze, ["verify", "--man=no", unitWithFakeBinary(file, binary)]);
    expectSuccess(r, `systemd-analyze verify ${file}`);
  });

  it("the system unit runs `sops-agent run` after sops-nix, reads files only, keeps V8 working", () => {
    const s = unitSettings("deploy/systemd/sops-agent.service");
    expect(s.get("Service.ExecStart")?.[0]).toMatch(/\/sops-agent run(\s|$)/);
    for (const unit of ["sops-install-secrets.service", "sops-install-secrets-for-users.service"]) {
      expect(words(s.get("Unit.After"))).toContain(unit);
      expect(words(s.get("Unit.Wants"))).toContain(unit);
    }
    expect(s.get("Service.DynamicUser")).toEqual(["yes"]);
    expect(s.get("Service.CapabilityBoundingSet")).toEqual(["CAP_DAC_READ_SEARCH"]);
    expect(s.get("Service.AmbientCapabilities")).toEqual(["CAP_DAC_READ_SEARCH"]);
    expect(s.get("Service.ProtectSystem")).toEqual(["strict"]);
    expect(s.get("Service.ProtectHome")).toEqual(["read-only"]);
    expect(s.get("Service.NoNewPrivileges")).toEqual(["yes"]);
    expect(s.get("Service.SystemCallFilter")?.[0]).toBe("@system-service");
    expect(s.has("Service.MemoryDenyWriteExecute")).toBe(false);
    expect(s.has("Service.PrivateUsers")).toBe(false);
    // Issue 9.11: what nixpkgs' exporters set where it works here, and no password hashes.
    expect(words(s.get("Service.InaccessiblePaths"))).toEqual(["-/etc/shadow", "-/etc/gshadow"]);
    expect(s.get("Service.MemoryMax")).toEqual(["512M"]);
    // AF_UNIX for the local status socket; nothing else beside the Internet families.
    expect(words(s.get("Service.RestrictAddressFamilies")).sort()).toEqual([
      "AF_INET",
      "AF_INET6",
      "AF_UNIX",
    ]);
  });

  it("the user unit runs after home-manager's sops-nix.service", () => {
    const s = unitSettings("deploy/systemd/sops-agent-user.service");
    expect(s.get("Service.ExecStart")?.[0]).toMatch(/\/sops-agent run(\s|$)/);
    expect(words(s.get("Unit.After"))).toContain("sops-nix.service");
    // sops-nix's user unit is a oneshot without RemainAfterExit: pulling it in re-runs decryption.
    expect(s.has("Unit.Wants")).toBe(false);
    expect(s.has("Unit.Requires")).toBe(false);
    expect(s.get("Install.WantedBy")).toEqual(["default.target"]);
    expect(s.has("Service.MemoryDenyWriteExecute")).toBe(false);
  });
});

describe("launchd plists", () => {
  it("the strict plist parser rejects what launchd would reject", () => {
    const head =
      '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n';
    expect(
      parsePlist(
        `${head}<plist version="1.0"><dict><key>A</key><array><string>x &amp; y</string><true/></array></dict></plist>`,
      ),
    ).toEqual({ A: ["x & y", true] });
    for (const bad of [
      "<plist><dict><key>A</key></dict></plist>",
      "<plist><dict><key>A</key><string>x & y</string></dict></plist>",
      "<plist><dict><key>A</key><true/><key>A</key><false/></dict></plist>",
      "<plist><dict><key>A</key><bool>1</bool></dict></plist>",
      "<plist><dict><key>A</key><string>x</dict></plist>",
      "<plist><dict/></plist><plist/>",
    ]) {
      expect(() => parsePlist(`${head}${bad}`), bad).toThrow(/plist line/);
    }
  });

  it.each([
    ["deploy/launchd/org.nix-community.sops-agent.plist", "/Users/USER/Library/Logs/sops-agent/"],
    ["deploy/launchd/org.nix-community.sops-agent-daemon.plist", "/var/log/sops-agent/"],
  ])("%s is a valid launchd job", (file, logDir) => {
    const job = asDict(parsePlist(fs.readFileSync(at(file), "utf8")));
    expect(job.Label).toBe("org.nix-community.sops-agent");
    expect(job.RunAtLoad).toBe(true);
    expect(job.KeepAlive).toBe(true);
    const args = job.ProgramArguments;
    expect(Array.isArray(args) && args.every((a) => typeof a === "string")).toBe(true);
    expect((args as string[]).join(" ")).toMatch(/\/sops-agent run(\s|$)/);
    for (const key of ["StandardOutPath", "StandardErrorPath"]) {
      const p = job[key];
      expect(typeof p === "string" && p.startsWith(logDir), `${key} = ${String(p)}`).toBe(true);
    }
    // launchd expands neither ~ nor $HOME.
    expect(JSON.stringify(job)).not.toMatch(/~|\$HOME/);
  });
});

function nixFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "node_modules" || entry.name === "dist" || entry.name.startsWith(".")) continue;
    const p = path.join(dir, entry.name);
    // Vendored upstream Nix libraries are evaluated by test/nix-modules.test.ts, not ours to parse.
    if (path.relative(ROOT, p) === path.join("test", "nix", "vendor")) continue;
    if (entry.isDirectory()) out.push(...nixFiles(p));
    else if (entry.name.endsWith(".nix")) out.push(p);
  }
  return out.sort();
}

describe("Nix files", () => {
  const files = nixFiles(ROOT);

  it("include the flake, the package and the three modules", () => {
    const rel = files.map((f) => path.relative(ROOT, f));
    for (const f of [
      "flake.nix",
      "nix/package.nix",
      "nix/nixos-module.nix",
      "nix/home-manager-module.nix",
      "nix/darwin-module.nix",
    ])
      expect(rel).toContain(f);
  });

  it.for(files.map((f) => [path.relative(ROOT, f), f] as const))("%s parses", ([, file], ctx) => {
    const nix = requireTool(ctx, "nix-instantiate");
    // Debian's nix-bin names a build users group the container lacks; parsing needs none.
    const r = run(nix, ["--parse", file], { NIX_CONFIG: "build-users-group =" });
    expectSuccess(r, `nix-instantiate --parse ${file}`);
  });

  it("the flake exports the package, the modules and the overlay", () => {
    const flake = fs.readFileSync(at("flake.nix"), "utf8");
    for (const output of [
      "nixosModules",
      "homeManagerModules",
      "darwinModules",
      "overlays.default",
      "packages",
    ])
      expect(flake).toContain(output);
    // The npm dependencies come from the lockfile's integrity pins (test/npm-deps.test.ts), not a hash.
    expect(fs.readFileSync(at("nix/package.nix"), "utf8")).toMatch(
      /buildNpmPackage[\s\S]*importNpmLock\.npmConfigHook/,
    );
  });
});

const RULES = "deploy/prometheus/sops-agent.rules.yml";
const SHARED_FACT_ALERTS = new Set(["SopsFileOld", "SopsAgentTargetsAbsent"]);
const RUNBOOK = "docs/runbook.md";
const RUNBOOK_URL = "https://github.com/nix-community/sops-agent/blob/main/docs/runbook.md#";

/** GitHub's anchor for a Markdown heading: lower case, punctuation but - and _ dropped, spaces to -. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

/** The runbook's sections: anchor -> body (up to the next heading of the same or a higher level). */
function runbookSections(): Map<string, string> {
  const sections = new Map<string, string>();
  const text = fs.readFileSync(at(RUNBOOK), "utf8");
  const headings = [...text.matchAll(/^(#{2,3}) (.+)$/gm)];
  headings.forEach((h, i) => {
    const start = (h.index ?? 0) + h[0].length;
    const end =
      headings.slice(i + 1).find((n) => (n[1]?.length ?? 0) <= (h[1]?.length ?? 0))?.index ?? text.length;
    sections.set(anchor(h[2] ?? ""), text.slice(start, end));
  });
  return sections;
}
const RULE_TESTS = "deploy/prometheus/sops-agent.rules.test.yml";

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const rules = (): Rule[] =>
  (parseYaml(fs.readFileSync(at(RULES), "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap(
    (g) => g.rules,
  );

describe("Prometheus rules", () => {
  it("promtool check rules", (ctx) => {
    const promtool = requireTool(ctx, "promtool");
    expectSuccess(run(promtool, ["check", "rules", at(RULES)]), "promtool check rules");
  });

  it("promtool test rules", (ctx) => {
    const promtool = requireTool(ctx, "promtool");
    expectSuccess(run(promtool, ["test", "rules", at(RULE_TESTS)]), "promtool test rules");
  });

  it("promtool check config accepts the scrape config example", (ctx) => {
    const promtool = requireTool(ctx, "promtool");
    expectSuccess(
      run(promtool, ["check", "config", at("deploy/prometheus/scrape-config.example.yml")]),
      "promtool check config",
    );
  });

  it("the rule tests see every alert both firing and not firing", () => {
    const doc = parseYaml(fs.readFileSync(at(RULE_TESTS), "utf8")) as {
      tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
    };
    const cases = doc.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const rule of rules()) {
      if (rule.alert === undefined) continue;
      const mine = cases.filter((c) => c.alertname === rule.alert);
      expect(
        mine.some((c) => (c.exp_alerts ?? []).length > 0),
        `${rule.alert} never fires`,
      ).toBe(true);
      expect(
        mine.some((c) => (c.exp_alerts ?? []).length === 0),
        `${rule.alert} never stays quiet`,
      ).toBe(true);
    }
  });

  it("every alert has a severity, a summary and a description naming what is wrong where", () => {
    const alerts = rules().filter((r) => r.alert !== undefined);
    expect(alerts.map((r) => r.alert)).toEqual(
      expect.arrayContaining([
        "SopsSecretMissing",
        "SopsSecretWrong",
        "SopsDecryptionKeyMissing",
        "SopsHostNotRecipient",
        "SopsFileOld",
        "SopsAgentDown",
        "SopsAgentChecksStale",
      ]),
    );
    for (const rule of alerts) {
      expect(["critical", "warning", "info"], `${rule.alert}`).toContain(rule.labels?.severity);
      const text = `${rule.annotations?.summary ?? ""} ${rule.annotations?.description ?? ""}`;
      expect(rule.annotations?.summary, `${rule.alert}`).toBeTruthy();
      expect(rule.annotations?.description, `${rule.alert}`).toBeTruthy();
      // Shared facts alert once, not per host: a sops file, the whole scrape job.
      if (!SHARED_FACT_ALERTS.has(rule.alert ?? ""))
        expect(text, `${rule.alert}`).toContain("$labels.instance");
      if (rule.expr.includes("sops_problem")) {
        expect(text, `${rule.alert}`).toContain("$labels.scope");
        expect(text, `${rule.alert}`).toContain("$labels.subject");
      }
      for (const name of metricNames(rule.expr))
        expect(CONTRACT_METRICS.has(name) || name.includes(":"), `${rule.alert}: ${name}`).toBe(true);
    }
  });

  it("every alert links its runbook section, and every section it can link exists", () => {
    const sections = runbookSections();
    for (const rule of rules()) {
      if (rule.alert === undefined) continue;
      const url = rule.annotations?.runbook_url ?? "";
      expect(url.startsWith(RUNBOOK_URL), `${rule.alert}: ${url}`).toBe(true);
      const target = url.slice(RUNBOOK_URL.length);
      // A problem alert links the section of its code; any code can reach it.
      const anchors = target === "{{ $labels.code }}" ? ALL_PROBLEM_CODES.map(anchor) : [target];
      for (const a of anchors)
        expect(sections.has(a), `${rule.alert}: no section #${a} in ${RUNBOOK}`).toBe(true);
    }
  });

  it.for(ALL_PROBLEM_CODES)(
    "the runbook explains %s: what it means, how sops-nix got there, how to fix it",
    (code) => {
      const body = runbookSections().get(anchor(code));
      expect(
        body,
        `${RUNBOOK} has no section "## ${code}": add one (what it means, how sops-nix got there, how to fix it)`,
      ).toBeDefined();
      for (const part of ["What it means", "How sops-nix got there", "How to fix it"])
        expect(body, `${RUNBOOK} § ${code}: missing "**${part}.**"`).toContain(`**${part}.**`);
    },
  );

  it("every problem code raises exactly one alert of its severity, critical or warning; info raises none", (ctx) => {
    const promtool = requireTool(ctx, "promtool");
    const dir = tempDir();
    const severities = ["critical", "warning", "info"] as const;
    const series = ALL_PROBLEM_CODES.flatMap((code) =>
      severities.map((severity) => ({
        series: `sops_problem{job="sops-agent",instance="${code}-${severity}",scope="system",subject="s",code="${code}",severity="${severity}"}`,
        values: "1x60",
      })),
    );
    // Facts with a metric and an alert of their own, which the problem alerts leave to them.
    const alertedElsewhere = new Set([
      "activation_failed/critical", // SopsActivationFailed: sops_activation_success == 0
      "consumer_stale/warning", // SopsConsumerStale: sops_consumer_stale == 1, naming the unit
    ]);
    const firing = (eval_time: string, alerting: readonly string[]) => ({
      expr: 'count by (code, severity) (ALERTS{alertstate="firing",code!=""})',
      eval_time,
      exp_samples: ALL_PROBLEM_CODES.flatMap((code) =>
        alerting
          .filter((severity) => !alertedElsewhere.has(`${code}/${severity}`))
          .map((severity) => ({ labels: `{code="${code}",severity="${severity}"}`, value: 1 })),
      ),
    });
    fs.writeFileSync(
      path.join(dir, "codes.test.yml"),
      stringifyYaml({
        rule_files: [at(RULES)],
        evaluation_interval: "1m",
        tests: [
          {
            interval: "1m",
            input_series: series,
            // Critical problems fire after their `for:`, warnings only after their longer one.
            promql_expr_test: [firing("10m", ["critical"]), firing("45m", ["critical", "warning"])],
          },
        ],
      }),
    );
    expectSuccess(
      run(promtool, ["test", "rules", path.join(dir, "codes.test.yml")]),
      "promtool test rules (every code)",
    );
  });

  it("amtool accepts the Alertmanager example, which pages critical alerts and tickets warnings", (ctx) => {
    const amtool = requireTool(ctx, "amtool");
    const config = at("deploy/alertmanager/alertmanager.example.yml");
    expectSuccess(run(amtool, ["check-config", config]), "amtool check-config");
    for (const rule of rules()) {
      if (rule.alert === undefined) continue;
      const severity = rule.labels?.severity ?? "";
      const r = run(amtool, [
        "config",
        "routes",
        "test",
        `--config.file=${config}`,
        `alertname=${rule.alert}`,
        `severity=${severity}`,
        "instance=gnomeregan",
      ]);
      expectSuccess(r, `amtool config routes test ${rule.alert}`);
      expect(r.stdout.trim(), rule.alert).toBe(severity === "critical" ? "pager" : "tickets");
    }
  });

  it("the secret-missing alert waits out a switch in progress", () => {
    const missing = rules().find((r) => r.alert === "SopsSecretMissing");
    expect(missing?.for).toMatch(/^[1-9]\d*m$/);
  });
});

const PROMQL_KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "offset",
]);
const PROMQL_SET_OPERATORS = new Set(["and", "or", "unless"]);

/** The metric names a PromQL expression reads (not functions, labels, keywords or Grafana variables). */
function metricNames(expr: string): string[] {
  const e = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    .replace(/\$\{?\w+\}?/g, " ");
  const names: string[] = [];
  for (const m of e.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const name = m[0];
    const after = e.slice((m.index ?? 0) + name.length);
    if (/^\s*\(/.test(after)) continue;
    if (PROMQL_KEYWORDS.has(name) || PROMQL_SET_OPERATORS.has(name)) continue;
    names.push(name);
  }
  return names;
}

interface GrafanaDatasource {
  type?: string;
  uid?: string;
}

describe("Grafana dashboard", () => {
  const dashboard = JSON.parse(fs.readFileSync(at("deploy/grafana/sops-agent.json"), "utf8")) as {
    __inputs?: unknown;
    panels: {
      type: string;
      title: string;
      datasource?: GrafanaDatasource;
      targets?: { expr: string; datasource?: GrafanaDatasource }[];
    }[];
    annotations: { list: { expr?: string; datasource?: GrafanaDatasource; builtIn?: number }[] };
    templating: {
      list: {
        name: string;
        type: string;
        query?: unknown;
        datasource?: GrafanaDatasource;
        definition?: string;
      }[];
    };
  };

  // Provisioned dashboards (NixOS services.grafana.provision) get no `__inputs` substitution: the
  // datasource is a template variable, which an import fills the same way.
  it("takes its datasource from a `datasource` template variable, imported or provisioned", () => {
    expect(dashboard.__inputs).toBeUndefined();
    expect(fs.readFileSync(at("deploy/grafana/sops-agent.json"), "utf8")).not.toMatch(/\$\{?DS_/);
    expect(dashboard.templating.list[0]).toMatchObject({
      name: "datasource",
      type: "datasource",
      query: "prometheus",
    });
    const sources = [
      ...dashboard.panels
        .filter((p) => p.type !== "row")
        .flatMap((p) => [p.datasource, ...(p.targets ?? []).map((t) => t.datasource)]),
      ...dashboard.annotations.list.filter((a) => a.builtIn !== 1).map((a) => a.datasource),
      ...dashboard.templating.list.filter((v) => v.type !== "datasource").map((v) => v.datasource),
    ];
    expect(sources.length).toBeGreaterThan(5);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template.
    for (const ds of sources) expect(ds).toEqual({ type: "prometheus", uid: "${datasource}" });
  });

  it("shows scope health, the problems table and generation switches as annotations", () => {
    const exprs = dashboard.panels.flatMap((p) =>
      (p.targets ?? []).map((t) => ({ type: p.type, expr: t.expr })),
    );
    expect(exprs.some((e) => e.expr.includes("sops_healthy"))).toBe(true);
    expect(exprs.some((e) => e.type === "table" && /^sops_problem\b/.test(e.expr))).toBe(true);
    expect(dashboard.annotations.list.some((a) => /sops_generation_switch/.test(a.expr ?? ""))).toBe(true);
  });

  it("every query is valid PromQL once Grafana has filled in its variables (promtool)", (ctx) => {
    const promtool = requireTool(ctx, "promtool");
    const filled = (expr: string) =>
      expr.replaceAll("$__rate_interval", "5m").replaceAll("$instance", ".*").replaceAll("$scope", ".*");
    const queries = [
      ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
      ...dashboard.annotations.list.flatMap((a) => (a.expr === undefined ? [] : [a.expr])),
    ];
    expect(queries.length).toBeGreaterThan(10);
    const file = path.join(tempDir(), "dashboard-queries.rules.yml");
    fs.writeFileSync(
      file,
      stringifyYaml({
        groups: [
          {
            name: "dashboard",
            rules: queries.map((q, i) => ({ record: `dashboard:query_${i}`, expr: filled(q) })),
          },
        ],
      }),
    );
    expectSuccess(run(promtool, ["check", "rules", file]), "promtool check rules (dashboard queries)");
  });

  it("queries only metrics of the contract", () => {
    const queries = [
      ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
      ...dashboard.annotations.list.flatMap((a) => (a.expr === undefined ? [] : [a.expr])),
      ...dashboard.templating.list.flatMap((v) => {
        const m = /^label_values\((.*),\s*\w+\)$/.exec(v.definition ?? "");
        return m?.[1] === undefined ? [] : [m[1]];
      }),
    ];
    expect(queries.length).toBeGreaterThan(10);
    const used = new Set(queries.flatMap(metricNames));
    expect(used.size).toBeGreaterThan(5);
    for (const name of used) expect(CONTRACT_METRICS.has(name), `not a contract metric: ${name}`).toBe(true);
  });

  it("the metric name extraction ignores functions, labels and keywords", () => {
    expect(
      metricNames(
        'histogram_quantile(0.9, sum by (le, instance) (rate(sops_agent_check_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval]))) or vector(0)',
      ),
    ).toEqual(["sops_agent_check_duration_seconds_bucket"]);
    expect(metricNames('(time() - a_b{x="y"}) / 86400 > on () group_left () c:d')).toEqual(["a_b", "c:d"]);
  });
});

describe("install from a clone (npm pack), the path without Nix", () => {
  it("the packed tarball installs into a prefix and `sops-agent --version` runs from it", {
    timeout: 180_000,
  }, (ctx) => {
    if (!fs.existsSync(at("dist/cli.js"))) {
      if (process.env.CI === "true") throw new Error("dist/cli.js is missing: npm test builds it first");
      ctx.skip("dist/cli.js is missing: run npm run build");
    }
    const dir = tempDir();
    const env = { npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" };
    // What docs/deploy.md tells users: npm pack in the clone, then npm install -g of the tarball.
    const packed = run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], env);
    expectSuccess(packed, "npm pack");
    const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    expect(info?.files.map((f) => f.path)).toContain("dist/cli.js");
    expect(info?.files.some((f) => f.path.startsWith("src/") || f.path.startsWith("test/"))).toBe(false);
    const tarball = path.join(dir, info?.filename ?? "");
    // As a user would: npm resolves the dependencies (the registry's metadata: this needs the network,
    // as npm ci before the tests does); the tarballs come from npm's cache where npm ci left them.
    const prefix = path.join(dir, "prefix");
    const installed = run(
      "npm",
      ["install", "--global", "--prefer-offline", "--prefix", prefix, tarball],
      env,
    );
    expectSuccess(installed, "npm install --global <tarball>");
    const version = spawnSync(path.join(prefix, "bin", "sops-agent"), ["--version"], { encoding: "utf8" });
    expect(version.status, version.stderr).toBe(0);
    const pkg = JSON.parse(fs.readFileSync(at("package.json"), "utf8")) as { version: string };
    expect(version.stdout).toContain(pkg.version);
  });
});
