// Exit codes: each means one thing, the same for every command. Documented in `--help` and the README.
// Codes above 2 follow sysexits.h, so a unit can tell a restart that may help (could not bind) from one
// that cannot (config invalid: `RestartPreventExitStatus=78`).

export const EXIT = {
  /** Healthy; the command did what was asked. */
  ok: 0,
  /** Something critical on the host (status), no recipient found (recipient), the agent failed at run time. */
  critical: 1,
  /** The user's mistake on the command line: a bad flag or value, a --manifest that is absent or not JSON. */
  usage: 2,
  /** run: the listen address could not be bound (in use, not permitted, not on this host). EX_UNAVAILABLE. */
  cannotBind: 69,
  /** A bug: an unexpected exception. EX_SOFTWARE. */
  internal: 70,
  /** run: the config file or web config file is invalid or unreadable. EX_CONFIG. */
  configInvalid: 78,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
