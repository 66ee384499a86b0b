// Flag parsing for every command: node:util's parseArgs, with its errors turned into one short line.

import { type ParseArgsConfig, parseArgs } from "node:util";
import { parseDuration } from "../core/duration.js";
import { UsageError } from "./io.js";

type Parsed<T extends ParseArgsConfig> = ReturnType<typeof parseArgs<T>>;

/**
 * parseArgs (strict unless told otherwise); a bad flag is a UsageError with parseArgs' first sentence
 * (without its advice about `--`).
 */
export function parseFlags<T extends ParseArgsConfig>(config: T): Parsed<T> {
  try {
    return parseArgs(config);
  } catch (err) {
    if (isParseArgsError(err)) throw new UsageError(firstSentence(err.message));
    throw err;
  }
}

export function isParseArgsError(err: unknown): err is Error & { code: string } {
  return (
    err instanceof Error &&
    "code" in err &&
    typeof err.code === "string" &&
    err.code.startsWith("ERR_PARSE_ARGS")
  );
}

function firstSentence(message: string): string {
  const sentence = message.split(/\.(?:\s|$)/)[0] ?? message;
  return sentence.charAt(0).toLowerCase() + sentence.slice(1);
}

/** A duration flag's value in milliseconds; a UsageError naming the flag otherwise. */
export function durationFlag(flag: string, text: string): number {
  const d = parseDuration(text);
  if (!d.ok) throw new UsageError(`${flag}: "${text}" ${d.reason}`);
  return d.ms;
}

/** The value of whichever spelling of a flag was given; a UsageError when two disagree. */
export function oneOf(values: Record<string, unknown>, names: readonly string[]): string | undefined {
  let found: { name: string; value: string } | undefined;
  for (const name of names) {
    const v = values[name];
    if (typeof v !== "string") continue;
    if (found !== undefined && found.value !== v)
      throw new UsageError(`--${found.name} and --${name} give different values`);
    found = { name, value: v };
  }
  return found?.value;
}
