// The one duration grammar of the command line and the config: `500ms`, `30s`, `2m`, `1h`, `1d`, and
// sums of them as Prometheus and Go write them (`1m30s`, `1h0m0s`); a bare number means seconds. Pure.

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const TERM = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)/y;
const BARE = /^[0-9]+(?:\.[0-9]+)?$/;

export type DurationResult =
  | { readonly ok: true; readonly ms: number }
  | { readonly ok: false; readonly reason: string };

export const DURATION_EXAMPLES = "e.g. 30s, 1m30s, 500ms, 2h";

export function parseDuration(text: string): DurationResult {
  const t = text.trim();
  if (t === "") return { ok: false, reason: `is not a duration (${DURATION_EXAMPLES})` };
  if (t.startsWith("-")) return { ok: false, reason: "must not be negative" };
  if (BARE.test(t)) return { ok: true, ms: Number(t) * 1000 };
  let ms = 0;
  TERM.lastIndex = 0;
  while (TERM.lastIndex < t.length) {
    const m = TERM.exec(t);
    if (m === null) return { ok: false, reason: `is not a duration (${DURATION_EXAMPLES})` };
    ms += Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
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
