// Log lines as Prometheus exporters write them: the level as a word, ISO-8601 time, JSON or logfmt.

import { describe, expect, it } from "vitest";
import { createLogger, toLogfmt } from "../src/agent/logger.js";

async function lines(format: "json" | "logfmt"): Promise<string[]> {
  const out: string[] = [];
  const log = await createLogger({
    level: "info",
    format,
    pretty: false,
    destination: { write: (s: string) => void out.push(s) },
  });
  log.warn(
    { event: "problem_appeared", code: "missing", scope: "system", subject: "db password" },
    "problem appeared",
  );
  log.debug("not at info");
  return out;
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe("createLogger", () => {
  it("writes JSON with a string level and an ISO-8601 time", async () => {
    const out = await lines("json");
    expect(out).toHaveLength(1);
    const record = JSON.parse(out[0] ?? "") as Record<string, unknown>;
    expect(record).toMatchObject({
      level: "warn",
      name: "sops-agent",
      event: "problem_appeared",
      msg: "problem appeared",
    });
    expect(record.time).toMatch(ISO);
  });

  it("writes logfmt with time, level and msg first", async () => {
    const out = await lines("logfmt");
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(
      /^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=warn msg="problem appeared" name=sops-agent event=problem_appeared code=missing scope=system subject="db password"\n$/,
    );
  });
});

describe("toLogfmt", () => {
  it.each([
    [{ msg: "a b", n: 3, ok: true }, 'msg="a b" n=3 ok=true'],
    [{ level: "info", list: ["a", "b"] }, 'level=info list="[\\"a\\",\\"b\\"]"'],
    [{ path: "/run/secrets/x=y" }, 'path="/run/secrets/x=y"'],
    [{ msg: "line\nbreak\u001b[31m" }, 'msg="line\\nbreak\\u001b[31m"'],
    [{ "odd key": "" }, 'odd_key=""'],
  ])("%j → %s", (record, text) => {
    expect(toLogfmt(record)).toBe(text);
  });
});
