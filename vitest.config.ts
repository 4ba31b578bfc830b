import { defineConfig } from "vitest/config";

/**
 * The unit tier: views, parsers, schemas, handlers called with built arguments, steps against
 * in-memory stand-ins, and the fakes' own protocol tests. Nothing here needs the global setup's
 * build, template database or second PostgreSQL, so `npm run test:fast` starts at once; a file
 * that comes to need them moves to `world`.
 */
const FAST = [
  "test/charts/**/*.test.ts",
  "test/commands/handlers/**/*.test.ts",
  "test/commands/reply-pool.test.ts",
  "test/commands/parse.test.ts",
  "test/commands/migrate.test.ts",
  "test/commands/confirm-run.test.ts",
  "test/commands/cancel-run.test.ts",
  "test/commands/rollback-button.test.ts",
  "test/commands/outcome.test.ts",
  "test/config/**/*.test.ts",
  "test/cloud/cloudflare.test.ts",
  "test/cloud/postgres.test.ts",
  "test/cloud/probe.test.ts",
  "test/cloud/slack-files.test.ts",
  "test/digest/compose.test.ts",
  "test/docs/**/*.test.ts",
  "test/jobs/host/lightsail-instance.test.ts",
  "test/jobs/host/lightsail-instance-memory.test.ts",
  "test/jobs/host/registry.test.ts",
  "test/jobs/storage/engine.test.ts",
  "test/jobs/storage/listing.test.ts",
  "test/jobs/step-executor.test.ts",
  "test/jobs/watchdog-timers.test.ts",
  "test/sandbox/cloudflare-fake.test.ts",
  "test/sandbox/fake-slack.test.ts",
  "test/sandbox/lightsail-fake.test.ts",
  "test/sandbox/slack-sender.test.ts",
  "test/sandbox/ssh-keys.test.ts",
  "test/text/**/*.test.ts",
  "test/util/**/*.test.ts",
  "test/views/**/*.test.ts",
];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Two cores: more workers than that only adds contention with the servers under test.
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: "fast", include: FAST } },
      {
        extends: true,
        test: {
          // the local world: real receiver, databases, moto, crash and kill campaigns, the rehearsal
          name: "world",
          include: ["test/**/*.test.ts"],
          // the real-host tier (minutes, root): `npm run test:e2e` (vitest.e2e.config.ts)
          exclude: [...FAST, "test/e2e/**", "**/node_modules/**"],
          globalSetup: ["test/global-setup.ts"],
        },
      },
    ],
  },
});
