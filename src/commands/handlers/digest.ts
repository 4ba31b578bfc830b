import { digestChannel, localDay, publishDigest } from "../../digest/index.js";
import { describeError } from "../../errors.js";
import { audit, lastAuditEvent } from "../../store/audit.js";
import { noticeView } from "../../views/help.js";
import type { Caller, CommandDeps } from "../context.js";
import { type Answer, failed, ok, refused } from "../context.js";

/**
 * After a digest asked for with `/migrate digest` is posted, further requests within this time
 * post nothing and point at the one just posted: a burst of requests (twenty people, a
 * double-click, a script) is one digest in the channel.
 */
export const DIGEST_COOLDOWN_MS = 30_000;

/** The advisory lock held while a requested digest is posted: one at a time per environment, in any replica. */
export function digestLockKey(env: string): string {
  return `cutover-digest:${env}`;
}

const seconds = (ms: number) => Math.max(1, Math.round(ms / 1000));
/** A Slack user as a mention; the terminal's local operator by name. */
const who = (actor: string) => (/^[UW][A-Z0-9]+$/.test(actor) ? `<@${actor}>` : actor);

/**
 * `/migrate digest`: posts today's daily digest (progress, KPIs, cost and the two charts) to the
 * digest channel now, through the same `publishDigest` the schedule uses. It does not take the
 * day's scheduled digest: that one still posts at `digest.time`. One request at a time per
 * environment (the others are told one is on its way), and none within
 * {@link DIGEST_COOLDOWN_MS} of the last one posted. Every request is audited, whatever came of it.
 */
export async function digestHandler(caller: Caller, deps: CommandDeps): Promise<Answer> {
  const { file, db } = deps;
  const env = file.environment;
  // Declined for the state of things (no digest, one just posted), not for who asked: audited as
  // `info` with the reason; `refused` is the access check's (src/commands/dispatch.ts).
  const refuse = async (reason: string, text: string): Promise<Answer> => {
    await audit(db, {
      actor: caller.user,
      action: "command.digest",
      target: env,
      outcome: "info",
      details: { reason, channel: caller.channel, via: caller.via },
    });
    return refused(noticeView(text));
  };
  if (!file.digest.enabled)
    return refuse(
      "digest-disabled",
      "⛔ This migration file has no daily digest (`digest: { enabled: false }`), so there is none to post. Set `digest.enabled: true` in the migration file and restart the bot, then ask again.",
    );
  const channel = digestChannel(file);
  if (!channel)
    return refuse(
      "no-channel",
      "⛔ The migration file names no channel for the digest. Set `digest.channel` (or `slack.channel`) to the channel's id, e.g. `C0123ABCD`, and restart the bot.",
    );
  const digest = deps.digest;
  if (!digest)
    return refuse(
      "no-slack",
      "⛔ This front end of Cutover has no Slack token to post with: set SLACK_BOT_TOKEN (the bot's, and SLACK_API_URL if it is not Slack's) to post from here, or use `/migrate digest` in Slack.",
    );

  let answer: Answer | undefined;
  const ran = await deps.runner.locks.exclusive(digestLockKey(env), async () => {
    const now = deps.now();
    const last = await lastAuditEvent(db, "command.digest", env, "ok");
    const lastAt = Date.parse(String((last?.details as { postedAt?: string } | undefined)?.postedAt ?? ""));
    if (last && Number.isFinite(lastAt) && now.getTime() - lastAt < DIGEST_COOLDOWN_MS) {
      answer = await refuse(
        "cooldown",
        `⏳ ${who(last.actor)} had the digest posted to <#${channel}> ${seconds(now.getTime() - lastAt)} s ago; it is there to read. Ask again in ${seconds(lastAt + DIGEST_COOLDOWN_MS - now.getTime())} s for a fresh one.`,
      );
      return;
    }
    const day = localDay(now, file.digest.timezone);
    try {
      const posted = await publishDigest(digest, day, now);
      await audit(db, {
        actor: caller.user,
        action: "command.digest",
        target: env,
        outcome: "ok",
        details: {
          day,
          channel: posted.channel,
          via: caller.via,
          postedAt: now.toISOString(),
          files: posted.fileIds.length,
          ...(posted.chartsNote ? { chartsNote: posted.chartsNote } : {}),
        },
      });
      answer = ok(
        noticeView(
          `✅ The digest of ${day} is posted to <#${posted.channel}>${posted.chartsNote ? `, without its charts: ${posted.chartsNote}` : ", with its two charts"}.`,
        ),
      );
    } catch (err) {
      const error = describeError(err);
      deps.log.warn({ err: error, day }, "a requested digest could not be posted");
      await audit(db, {
        actor: caller.user,
        action: "command.digest",
        target: env,
        outcome: "failed",
        details: { day, channel, via: caller.via, error },
      });
      answer = failed(noticeView(`⚠️ The digest could not be posted to <#${channel}>: ${error}`));
    }
  });
  if (!ran)
    return refuse(
      "in-progress",
      `⏳ A digest is being posted to <#${channel}> right now (asked for just before you); it will be there in a moment, so this request posts nothing.`,
    );
  return answer!;
}
