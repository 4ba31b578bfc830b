import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // the real-host tier (minutes, root): `npm run test:e2e` (vitest.e2e.config.ts)
    exclude: ["test/e2e/**", "**/node_modules/**"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Two cores: more workers than that only adds contention with the servers under test.
    maxWorkers: 2,
  },
});
