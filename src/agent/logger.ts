// pino: JSON or logfmt lines on stdout for journald and launchd, readable lines on a terminal. Lines carry
// the level as a word and the time as ISO-8601, as Prometheus exporters write them. Logs carry names,
// paths and problem codes only — never a secret value, and nothing here ever reads one.

import { type DestinationStream, type Logger, type LoggerOptions as PinoOptions, pino } from "pino";
import type { LogFormat, LogLevel } from "./config.js";

export type { Logger };

export interface LoggerOptions {
  readonly level: LogLevel;
  readonly format?: LogFormat;
  /** Pretty output for a person at a terminal. */
  readonly pretty: boolean;
  /** Where lines go; stdout when absent. */
  readonly destination?: DestinationStream;
}

export async function createLogger(opts: LoggerOptions): Promise<Logger> {
  const options: PinoOptions = {
    level: opts.level,
    base: { name: "sops-agent" },
    // `"level":"info"`, not pino's `30`; `"time":"2026-…Z"`, not milliseconds since the epoch.
    formatters: { level: (label) => ({ level: label }) },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  // Synchronous streams, not worker transports: a daemon that is killed loses no line, and no thread is started.
  const out = opts.destination ?? pino.destination({ dest: 1, sync: true });
  if (opts.pretty && opts.destination === undefined) {
    // pino-pretty is loaded only for a terminal: a daemon never needs it, and it costs ~6 MB resident.
    const pretty = (await import("pino-pretty")).default({
      sync: true,
      colorize: true,
      translateTime: "SYS:HH:MM:ss.l",
      ignore: "pid,hostname,name",
    });
    return pino(options, pretty);
  }
  return pino(options, opts.format === "logfmt" ? logfmtStream(out) : out);
}

/** Rewrites each JSON line pino writes as one logfmt line: `time=… level=info msg="…" key=value …`. */
export function logfmtStream(out: DestinationStream): DestinationStream {
  return {
    write(line: string) {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        out.write(line);
        return;
      }
      out.write(`${toLogfmt(record)}\n`);
    },
  };
}

const FIRST = ["time", "level", "msg"];

export function toLogfmt(record: Record<string, unknown>): string {
  const keys = [
    ...FIRST.filter((k) => k in record),
    ...Object.keys(record).filter((k) => !FIRST.includes(k)),
  ];
  return keys.map((k) => `${logfmtKey(k)}=${logfmtValue(record[k])}`).join(" ");
}

function logfmtKey(k: string): string {
  return k.replace(/[^A-Za-z0-9_.-]/g, "_");
}

const BARE = /^[A-Za-z0-9_.:/@+,-]+$/;

/** Bare when it is a plain token, else a double-quoted string with JSON's escapes. */
function logfmtValue(v: unknown): string {
  const text = typeof v === "string" ? v : v === undefined ? "" : JSON.stringify(v);
  return BARE.test(text) ? text : JSON.stringify(text);
}
