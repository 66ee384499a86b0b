// Problem codes and metric names are a public contract: the README documents every one of them.

import * as fs from "node:fs";
import { describe, expect, it } from "vitest";
import { ALL_PROBLEM_CODES } from "../src/core/problems.js";

const readme = fs.readFileSync(new URL("../README.md", import.meta.url), "utf8");
const golden = fs.readFileSync(new URL("./golden/metrics.txt", import.meta.url), "utf8");

describe("the README documents the contract", () => {
  it.each(ALL_PROBLEM_CODES)("problem code %s", (code) => {
    expect(readme).toMatch(new RegExp(`^\\|\\s*\`${code}\`\\s*\\|\\s*(critical|warning|info)`, "m"));
  });

  const metricNames = [...new Set([...golden.matchAll(/^# TYPE (sops_\w+)/gm)].map((m) => m[1] ?? ""))];
  it("sees the agent's metrics in the golden file", () => {
    expect(metricNames.length).toBeGreaterThan(15);
  });
  it.each(metricNames)("metric %s", (name) => {
    expect(readme).toMatch(new RegExp(`^\\|\\s*\`${name}\`\\s*\\|`, "m"));
  });
});
