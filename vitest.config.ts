import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Tests lay out real host trees with real owners and share no state; two workers match the 2-core machines.
    maxWorkers: 2,
  },
});
