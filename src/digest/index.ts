import type { WebClient } from "@slack/web-api";
import type { Logger } from "pino";
import type { Clock } from "../clock.js";
import { slackImageUploader } from "../cloud/slack-files.js";
import type { MigrationFile } from "../config/schema.js";
import type { Db } from "../store/client.js";
import { type DigestDeps, type DigestSources, publishDigest } from "./publish.js";
import { type DigestScheduler, startDigestScheduler } from "./scheduler.js";

export { type Clock, ManualClock, systemClock } from "../clock.js";
export { composeDigest, costBlocks, kpiBlocks, kpisGreen } from "./compose.js";
export { readProgress, summariseProgress } from "./progress.js";
export {
  buildDigest,
  type DigestDeps,
  type DigestSources,
  digestChannel,
  type PublishedDigest,
  publishDigest,
} from "./publish.js";
export {
  claimDigestDay,
  type DigestScheduler,
  localDay,
  localTime,
  startDigestScheduler,
  type TickOutcome,
} from "./scheduler.js";
export { cutoverFinishedAt, readStabilisation, stabilisationAt } from "./stabilisation.js";
export type * from "./types.js";
export { isUnavailable } from "./types.js";

/**
 * What a digest is posted with, through Bolt's WebClient (`app.client`): the schedule and
 * `/migrate digest` post through the same calls.
 */
export function digestDeps(opts: {
  db: Db;
  file: MigrationFile;
  log: Logger;
  client: WebClient;
  sources: DigestSources;
}): DigestDeps {
  return {
    db: opts.db,
    file: opts.file,
    log: opts.log,
    sources: opts.sources,
    slack: {
      uploader: slackImageUploader(opts.client),
      async post(channel, reply) {
        const res = await opts.client.chat.postMessage({ channel, text: reply.text, blocks: reply.blocks });
        return res.ts as string;
      },
    },
  };
}

/**
 * The daily digest wired for the bot: posts through Bolt's WebClient (`app.client`) and runs
 * the schedule. For app.ts: `const digest = startDailyDigest({ db, file, log, client: app.client, sources });`
 * then `await digest.stop()` on shutdown. Returns undefined when digest.enabled is false.
 */
export function startDailyDigest(opts: {
  db: Db;
  file: MigrationFile;
  log: Logger;
  client: WebClient;
  sources: DigestSources;
  clock?: Clock;
  instanceId?: string;
}): DigestScheduler | undefined {
  if (!opts.file.digest.enabled) return undefined;
  const deps = digestDeps(opts);
  return startDigestScheduler({
    db: opts.db,
    file: opts.file,
    log: opts.log,
    publish: (day, now) => publishDigest(deps, day, now),
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.instanceId ? { instanceId: opts.instanceId } : {}),
  });
}
