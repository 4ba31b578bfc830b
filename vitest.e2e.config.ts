import { defineConfig } from "vitest/config";

/**
 * The end-to-end tier on a real host (test/e2e): a Debian box in its own namespaces, set up and
 * deployed to for real. Slow (minutes) and root-only, so not part of `vitest run`'s everyday
 * suite; `npm run test:e2e` runs it, and CI does after `npm test`.
 */
export default defineConfig({
  test: {
    include: ["test/e2e/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 300_000,
    hookTimeout: 600_000,
    pool: "forks",
    // one box at a time: two cores, and each box runs nginx, five gunicorn workers and Celery
    maxWorkers: 1,
    fileParallelism: false,
  },
});
