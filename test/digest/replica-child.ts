/**
 * One bot replica's digest schedule, in its own process, for the "two processes, one digest"
 * test: builds the real schedule over the state database and the fake Slack, runs its start-up
 * check at the given instant, prints the outcome as JSON and exits.
 */
import { Writable } from "node:stream";
import { WebClient } from "@slack/web-api";
import { parseMigrationFile } from "../../src/config/load.js";
import { ManualClock, startDailyDigest } from "../../src/digest/index.js";
import { createLogger } from "../../src/log.js";
import { createPrismaClient } from "../../src/store/client.js";

const job = JSON.parse(process.argv[2] ?? "{}") as {
  dbUrl: string;
  slackApiUrl: string;
  token: string;
  config: string;
  now: string;
  id: string;
};
const db = createPrismaClient(job.dbUrl);
const file = parseMigrationFile(job.config, { checkEnv: false });
const log = createLogger({
  secrets: [],
  level: "silent",
  destination: new Writable({ write: (_c, _e, cb) => cb() }),
});
const digest = startDailyDigest({
  db,
  file,
  log,
  client: new WebClient(job.token, { slackApiUrl: job.slackApiUrl, retryConfig: { retries: 0 } }),
  clock: new ManualClock(new Date(job.now)),
  instanceId: job.id,
  sources: {
    kpi: async () => ({ unavailable: "no KPI samples are stored yet" }),
    cost: async () => ({ unavailable: "not configured in this test" }),
  },
});
// the start-up check is under way; tick() joins it
const outcome = await digest!.tick();
await digest!.stop();
await db.$disconnect();
process.stdout.write(`${JSON.stringify({ id: job.id, outcome: outcome.kind })}\n`);
