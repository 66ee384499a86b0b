// pino: JSON lines on stdout for journald and launchd, readable lines on a terminal. Logs carry names,
// paths and problem codes only — never a secret value, and nothing here ever reads one.

import { type DestinationStream, type Logger, pino } from "pino";
import type { LogLevel } from "./config.js";

export type { Logger };

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Pretty output for a person at a terminal. */
  readonly pretty: boolean;
  /** Where lines go; stdout when absent. */
  readonly destination?: DestinationStream;
}

export async function createLogger(opts: LoggerOptions): Promise<Logger> {
  const options = { level: opts.level, base: { name: "sops-agent" } };
  if (opts.destination !== undefined) return pino(options, opts.destination);
  // Synchronous streams, not worker transports: a daemon that is killed loses no line, and no thread is started.
  // pino-pretty is loaded only for a terminal: a daemon never needs it, and it costs ~6 MB resident.
  const dest = opts.pretty
    ? (await import("pino-pretty")).default({
        sync: true,
        colorize: true,
        translateTime: "SYS:HH:MM:ss.l",
        ignore: "pid,hostname,name",
      })
    : pino.destination({ dest: 1, sync: true });
  return pino(options, dest);
}
