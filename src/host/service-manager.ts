// What the host's service manager says of units and jobs: systemd through `systemctl show`, launchd through
// `launchctl print`, each bounded by a timeout and asked once per check. Only on the live host: under --root
// the units of the image are not running.

import type { Manager, UnitState } from "../core/usage.js";
import { childProcess } from "./child-process.js";

export interface ServiceManager {
  /** States of the given units of one manager; units it does not answer for are absent. */
  unitStates(manager: Manager, units: readonly string[]): Map<string, UnitState>;
  /** The last journal line of a system unit this boot, or null when the journal cannot be read. */
  lastLogLine(manager: Manager, unit: string): string | null;
  /** The last exit status of a launchd job (`system/<label>`, `gui/<uid>/<label>`), or null. */
  launchdExitCode(target: string): number | null;
}

/** Runs a command and returns its stdout, or null when it fails, times out or is not there. */
export type Runner = (command: string, args: readonly string[]) => string | null;

const TIMEOUT_MS = 3000;
const MAX_OUTPUT = 4 << 20;
/** Units per `systemctl show`: one call per manager and check, in pieces that keep argv short. */
const BATCH = 200;
const MAX_LOG_LINE = 300;

export const execRunner: Runner = (command, args) => {
  try {
    return childProcess().execFileSync(command, [...args], {
      encoding: "utf8",
      timeout: TIMEOUT_MS,
      maxBuffer: MAX_OUTPUT,
      stdio: ["ignore", "pipe", "ignore"],
      env: { ...process.env, SYSTEMD_PAGER: "", SYSTEMD_COLORS: "0", LC_ALL: "C" },
    });
  } catch {
    return null;
  }
};

const PROPERTIES = "Id,LoadState,ActiveState,Result,ActiveEnterTimestamp,ExecMainStatus";

export class SystemServiceManager implements ServiceManager {
  private readonly run: Runner;

  constructor(run: Runner = execRunner) {
    this.run = run;
  }

  unitStates(manager: Manager, units: readonly string[]): Map<string, UnitState> {
    const states = new Map<string, UnitState>();
    for (let i = 0; i < units.length; i += BATCH) {
      const out = this.run("systemctl", [
        ...managerArgs(manager),
        "show",
        "--timestamp=unix",
        `--property=${PROPERTIES}`,
        "--",
        ...units.slice(i, i + BATCH),
      ]);
      if (out === null) continue;
      for (const state of parseSystemctlShow(out)) states.set(state.unit, state);
    }
    return states;
  }

  lastLogLine(manager: Manager, unit: string): string | null {
    // A user unit's journal lines are the user's to read, mixed with every other user's under --user-unit.
    if (manager !== "system") return null;
    const out = this.run("journalctl", ["-u", unit, "-b", "-n", "1", "-o", "cat", "--no-pager", "-q"]);
    if (out === null) return null;
    const line = out.trim().split("\n").pop()?.trim() ?? "";
    return line === "" ? null : line.slice(0, MAX_LOG_LINE);
  }

  launchdExitCode(target: string): number | null {
    const out = this.run("launchctl", ["print", target]);
    return out === null ? null : parseLaunchctlExitCode(out);
  }
}

function managerArgs(manager: Manager): string[] {
  return manager === "system" ? [] : ["--user", `--machine=${manager.slice(5)}@`];
}

/** `systemctl show` output: blocks of `Key=value` lines separated by blank lines, one per unit. */
export function parseSystemctlShow(text: string): UnitState[] {
  const states: UnitState[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const props = new Map<string, string>();
    for (const line of block.split("\n")) {
      const eq = line.indexOf("=");
      if (eq > 0) props.set(line.slice(0, eq), line.slice(eq + 1));
    }
    const unit = props.get("Id");
    if (unit === undefined || unit === "") continue;
    states.push({
      unit,
      loadState: props.get("LoadState") ?? "",
      activeState: props.get("ActiveState") ?? "",
      result: props.get("Result") ?? "",
      activeEnterSeconds: unixTimestamp(props.get("ActiveEnterTimestamp")),
      mainStatus: integer(props.get("ExecMainStatus")),
    });
  }
  return states;
}

/** `--timestamp=unix` prints `@1700000000`; an empty value means never. */
function unixTimestamp(value: string | undefined): number | null {
  const m = value === undefined ? null : /^@([0-9]+)$/.exec(value.trim());
  return m === null ? null : Number(m[1]);
}

function integer(value: string | undefined): number | null {
  return value !== undefined && /^-?[0-9]+$/.test(value.trim()) ? Number(value.trim()) : null;
}

/** `launchctl print` names the last exit status as `last exit code = N` (or `(never exited)`). */
export function parseLaunchctlExitCode(text: string): number | null {
  const m = /^\s*last exit code = (-?[0-9]+)/m.exec(text);
  return m === null ? null : Number(m[1]);
}
