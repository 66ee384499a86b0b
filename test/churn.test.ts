// 200 generation switches, made the way sops-install-secrets makes them, while scraping: the agent must
// never report a secret not ok (a swap is not a missing secret).

import { afterAll, beforeAll, expect, it } from "vitest";
import { type RunningAgent, startReadyAgent, waitFor } from "./helpers/agent.js";
import { cleanupRoots, healthyHost } from "./helpers/host.js";

let agent: RunningAgent;
const host = healthyHost();

beforeAll(async () => {
  agent = await startReadyAgent(host.root);
}, 120_000);

afterAll(async () => {
  await agent.stop();
  cleanupRoots();
});

it("never reports a secret not ok during 200 switches", async () => {
  const notOk = (text: string) =>
    text
      .split("\n")
      .filter(
        (l) => /^sops_secret_ok\{.*\} 0$/.test(l) || /^sops_problem\{.*severity="critical"\} 1$/.test(l),
      );
  // Whatever the fixture host reports before any switch is not the churn's doing.
  const baseline = new Set(notOk(await agent.metrics()));
  const bad = new Set<string>();
  const check = (text: string) => {
    for (const line of notOk(text)) if (!baseline.has(line)) bad.add(line);
  };
  let generation = 1;
  for (let i = 0; i < 200; i++) {
    generation = host.switchGeneration("system");
    // Scrape without waiting for the agent to settle: it is checking while the next switch happens.
    if (i % 2 === 0) check(await agent.metrics());
    else await new Promise((r) => setTimeout(r, i % 7));
  }
  const final = await waitFor(
    "the last generation",
    () => agent.metrics(),
    (t) => t.includes(`sops_generation{scope="system"} ${generation}`),
  );
  check(final);
  expect([...bad]).toEqual([]);
  expect(final).toMatch(/sops_generation_switches_total\{scope="system"\} [1-9]/);
}, 60_000);
