// The one duration grammar of the project: `500ms`, `30s`, `2m`, `1h`, and sums of them as Prometheus and
// Go write them (`1m30s`, `1h0m0s`), down to Go's `us`/`µs` and `ns`. Two dialects of it:
// - "cli" (flags, the config): also `1d`, and a bare number means seconds;
// - "go" (the exporter-toolkit web config, which Go reads with time.ParseDuration): exactly Go's units, no
//   `d`, and the only bare number is `0` (go/src/time/format.go ParseDuration).
// Pure.

const UNIT_MS = {
  ns: 1e-6,
  us: 1e-3,
  "\u00b5s": 1e-3, // MICRO SIGN, as Go accepts it
  "\u03bcs": 1e-3, // GREEK SMALL LETTER MU, as Go accepts it
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
} as const;
// Longer units first, so `ms` is never read as `m` followed by garbage.
const TERM = /([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h|d)/y;
const BARE = /^[0-9]+(?:\.[0-9]+)?$/;

export type DurationDialect = "cli" | "go";

export type DurationResult =
  | { readonly ok: true; readonly ms: number }
  | { readonly ok: false; readonly reason: string };

export const DURATION_EXAMPLES = "e.g. 30s, 1m30s, 500ms, 2h";

export function parseDuration(text: string, dialect: DurationDialect = "cli"): DurationResult {
  const malformed = { ok: false, reason: `is not a duration (${DURATION_EXAMPLES})` } as const;
  let t = dialect === "cli" ? text.trim() : text;
  if (t === "") return malformed;
  if (t.startsWith("-")) return { ok: false, reason: "must not be negative" };
  // Go takes a leading `+` (format.go ParseDuration); the command line never did.
  if (dialect === "go" && t.startsWith("+")) t = t.slice(1);
  if (dialect === "go" ? t === "0" : BARE.test(t)) return { ok: true, ms: Number(t) * 1000 };
  let ms = 0;
  TERM.lastIndex = 0;
  while (TERM.lastIndex < t.length) {
    const m = TERM.exec(t);
    if (m === null) return malformed;
    const unit = m[2] as keyof typeof UNIT_MS;
    if (dialect === "go" && unit === "d") return malformed;
    ms += Number(m[1]) * UNIT_MS[unit];
  }
  return Number.isFinite(ms) ? { ok: true, ms } : { ok: false, reason: "is too long" };
}

/** `4s`, `1m30s`, `2h`: the shortest text `parseDuration` reads back, rounded down to whole seconds. */
export function formatDuration(ms: number): string {
  let s = Math.floor(ms / 1000);
  if (s === 0) return "0s";
  const parts: string[] = [];
  for (const [unit, size] of [
    ["d", 86_400],
    ["h", 3600],
    ["m", 60],
    ["s", 1],
  ] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  return parts.join("");
}
