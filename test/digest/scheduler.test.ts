import { Writable } from "node:stream";
import { WebClient } from "@slack/web-api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PNG_SIGNATURE, pngSize } from "../../src/charts/png.js";
import { ManualClock } from "../../src/clock.js";
import { slackImageUploader } from "../../src/cloud/slack-files.js";
import { parseMigrationFile } from "../../src/config/load.js";
import { type DigestDeps, type DigestSources, publishDigest } from "../../src/digest/publish.js";
import {
  claimDigestDay,
  type DigestScheduler,
  localDay,
  localTime,
  startDigestScheduler,
} from "../../src/digest/scheduler.js";
import type { KpiDigest } from "../../src/digest/types.js";
import { CutoverError, ErrorCode } from "../../src/errors.js";
import { createLogger } from "../../src/log.js";
import { FakeSlack } from "../../src/sandbox/FakeSlack.js";
import { createPrismaClient, type Db } from "../../src/store/client.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { runToEnd } from "../helpers/process.js";
import { waitUntil } from "../helpers/wait.js";

const CHANNEL = "C0DIGEST";
const TOKEN = "xoxb-digest-test";

function digestConfig(digest = 'digest: { time: "09:00", timezone: Asia/Singapore }'): string {
  return `version: 1
project: testco
environment: test
slack: { channel: ${CHANNEL} }
access:
  operators: [U0OPERATOR]
  approvers: [U0APPROVER]
  channels: [${CHANNEL}]
cost: { monthlyTarget: 85, budgetAlert: 100 }
${digest}
runbook:
  phases:
    - id: check
      title: Check
      steps:
        - { id: functional, uses: verify.functional }
`;
}

const file = parseMigrationFile(digestConfig(), { checkEnv: false });
const log = createLogger({
  secrets: [],
  level: "silent",
  destination: new Writable({ write: (_c, _e, cb) => cb() }),
});

const kpi: KpiDigest = {
  window: {
    from: new Date("2026-11-17T16:00:00Z"),
    to: new Date("2026-11-18T16:00:00Z"),
    label: "yesterday",
  },
  figures: { availabilityPct: 99.97, avgMs: 131, p95Ms: 240, errorRatePct: 0.01, dbMs: 4.2, samples: 1440 },
  targets: { availabilityPct: 99.9, avgMs: 200, dbMs: 50, errorRatePct: 0.1 },
  daily: Array.from({ length: 7 }, (_, i) => ({
    date: `2026-11-${String(12 + i).padStart(2, "0")}`,
    availabilityPct: 99.9 + i * 0.01,
    avgMs: 120 + i * 3,
    p95Ms: 220 + i * 5,
  })),
};

/** KPIs fine; Cost Explorer refuses, as it does for a role without ce:GetCostAndUsage. */
const sources: DigestSources = {
  kpi: async () => kpi,
  cost: async () => {
    throw new CutoverError(
      ErrorCode.AwsPermissionDenied,
      "Cost Explorer refused: AccessDeniedException — the role lacks ce:GetCostAndUsage",
    );
  },
};

let state: TestDatabase;
let dbs: Db[] = [];
let fake: FakeSlack;
let client: WebClient;

function deps(db: Db, over: Partial<DigestDeps> = {}): DigestDeps {
  return {
    db,
    file,
    log,
    slack: {
      uploader: slackImageUploader(client),
      async post(channel, reply) {
        const res = await client.chat.postMessage({ channel, text: reply.text, blocks: reply.blocks });
        return res.ts as string;
      },
    },
    sources,
    ...over,
  };
}

function replica(db: Db, clock: ManualClock, id: string, over: Partial<DigestDeps> = {}): DigestScheduler {
  return startDigestScheduler({
    db,
    file,
    log,
    clock,
    instanceId: id,
    publish: (day, now) => publishDigest(deps(db, over), day, now),
  });
}

/** 09:00 in Singapore is 01:00 UTC. */
const sgt = (day: string, hhmm: string) => new Date(`${day}T${hhmm}:00+08:00`);

beforeAll(async () => {
  state = await createTestDatabase("digest");
  dbs = [createPrismaClient(state.url), createPrismaClient(state.url), createPrismaClient(state.url)];
  fake = new FakeSlack({ expectedToken: TOKEN });
  await fake.start();
  client = new WebClient(TOKEN, { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 } });
});

afterAll(async () => {
  await Promise.all(dbs.map((d) => d.$disconnect()));
  await fake?.stop();
  await state?.drop();
});

describe("local time in the digest's timezone", () => {
  it("names the day and the time in Singapore, not UTC", () => {
    const at = new Date("2026-11-18T17:30:00Z");
    expect(localDay(at, "Asia/Singapore")).toBe("2026-11-19");
    expect(localTime(at, "Asia/Singapore")).toBe("01:30");
    expect(localDay(at, "UTC")).toBe("2026-11-18");
  });
});

describe("the digest schedule", () => {
  it("posts exactly one digest at 09:00 Singapore time with two replicas, and none again after a restart", async () => {
    const [a, b] = [new ManualClock(sgt("2026-11-19", "08:59")), new ManualClock(sgt("2026-11-19", "08:59"))];
    const first = replica(dbs[0]!, a, "replica-a");
    const second = replica(dbs[1]!, b, "replica-b");
    // both checked at start-up (not due yet) and now sleep until 09:00 local
    await waitUntil("both replicas to sleep", () => a.waiting === 1 && b.waiting === 1);
    expect(first.nextRunAt?.toISOString()).toBe("2026-11-19T01:00:00.000Z");
    expect(fake.messages(CHANNEL)).toHaveLength(0);

    a.set(sgt("2026-11-19", "09:00"));
    b.set(sgt("2026-11-19", "09:00"));
    await waitUntil(
      "the digest row to be posted",
      async () =>
        (await dbs[2]!.digest.count({ where: { env: "test", day: "2026-11-19", status: "posted" } })) === 1,
    );
    // both loops are asleep again, until tomorrow 09:00
    await waitUntil("both replicas to sleep again", () => a.waiting === 1 && b.waiting === 1);
    expect(first.nextRunAt?.toISOString()).toBe("2026-11-20T01:00:00.000Z");

    const messages = fake.messages(CHANNEL);
    expect(messages).toHaveLength(1);
    const digest = messages[0]!;
    expect(digest.files?.map((f) => f.name)).toEqual(["cost-2026-11-19.png", "kpi-2026-11-19.png"]);
    const blocks = JSON.stringify(digest.blocks);
    expect(blocks).toContain("Daily digest — testco (test)");
    expect(blocks).toContain("KPIs yesterday");
    // Cost Explorer refused: the digest still posts and says why
    expect(blocks).toContain("*Cost* — unavailable: Cost Explorer refused: AccessDeniedException");

    // the charts are real PNGs of a sensible size
    const files = fake.files().filter((f) => f.channel === CHANNEL);
    expect(files).toHaveLength(2);
    for (const f of files) {
      expect(f.bytes.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
      const size = pngSize(f.bytes)!;
      expect(size.width).toBeGreaterThan(600);
      expect(size.height).toBeGreaterThan(300);
      expect(f.bytes.length).toBeGreaterThan(5_000);
    }
    const kpiPng = files.find((f) => f.name.startsWith("kpi"))!;
    expect(kpiPng.bytes.length).toBeGreaterThan(20_000); // a drawn chart, not the placeholder

    // a restart at 09:00:30: the new process checks at start-up and finds the day taken
    await first.stop();
    const c = new ManualClock(sgt("2026-11-19", "09:00"));
    c.advance(30_000);
    const restarted = replica(dbs[0]!, c, "replica-a-restarted");
    expect(await restarted.tick()).toEqual({ kind: "taken", day: "2026-11-19" });
    await waitUntil("the restarted replica to sleep", () => c.waiting === 1);
    expect(fake.messages(CHANNEL)).toHaveLength(1);

    // the next morning: one more
    b.set(sgt("2026-11-20", "09:00"));
    c.set(sgt("2026-11-20", "09:00"));
    await waitUntil(
      "the second day's digest",
      async () => (await dbs[2]!.digest.count({ where: { day: "2026-11-20", status: "posted" } })) === 1,
    );
    await waitUntil("both replicas to sleep again", () => b.waiting === 1 && c.waiting === 1);
    expect(fake.messages(CHANNEL)).toHaveLength(2);
    await Promise.all([second.stop(), restarted.stop()]);
  });

  it("across the end of a month: nothing more at 23:59 on the 31st or at midnight, the 1st's digest at 09:00 on the 1st", async () => {
    const asked: Array<{ source: string; day?: string; now: string }> = [];
    const recording: DigestSources = {
      kpi: async (a) => {
        asked.push({ source: "kpi", day: a.day, now: a.now.toISOString() });
        return kpi;
      },
      cost: async (a) => {
        asked.push({ source: "cost", now: a.now.toISOString() });
        return sources.cost(a);
      },
    };
    // the 31st's digest went out that morning
    await dbs[2]!.digest.create({
      data: {
        env: "test",
        day: "2027-01-31",
        claimedBy: "earlier",
        claimedAt: sgt("2027-01-31", "09:00"),
        status: "posted",
      },
    });
    const clock = new ManualClock(sgt("2027-01-31", "23:59"));
    const r = replica(dbs[0]!, clock, "month-end", { sources: recording });
    await waitUntil("the replica to sleep", () => clock.waiting === 1);
    expect(r.nextRunAt?.toISOString()).toBe("2027-02-01T01:00:00.000Z");
    clock.set(sgt("2027-02-01", "00:00"));
    await waitUntil("the replica to sleep on", () => clock.waiting === 1);
    expect(await dbs[2]!.digest.count({ where: { day: "2027-02-01" } })).toBe(0);
    expect(asked).toEqual([]);

    clock.set(sgt("2027-02-01", "09:00"));
    await waitUntil(
      "the 1st's digest",
      async () => (await dbs[2]!.digest.count({ where: { day: "2027-02-01", status: "posted" } })) === 1,
    );
    // its KPIs are of the 31st (the day before the 1st, in Singapore); cost is asked at 01:00 UTC on the 1st
    expect(asked).toEqual(
      expect.arrayContaining([
        { source: "kpi", day: "2027-02-01", now: "2027-02-01T01:00:00.000Z" },
        { source: "cost", now: "2027-02-01T01:00:00.000Z" },
      ]),
    );
    expect(asked).toHaveLength(2);
    const posted = fake.messages(CHANNEL).at(-1)!;
    expect(posted.files?.map((f) => f.name)).toEqual(["cost-2027-02-01.png", "kpi-2027-02-01.png"]);
    await r.stop();
  });

  it("takes over a claim whose process died before posting, after the lease", async () => {
    const day = "2026-11-21";
    const now = sgt(day, "09:20");
    await dbs[2]!.digest.create({
      data: { env: "test", day, claimedBy: "dead-replica", claimedAt: sgt(day, "09:00") },
    });
    const opts = { env: "test", day, now, leaseMs: 15 * 60_000, retryMs: 5 * 60_000 };
    // two replicas race for the stale claim: one gets it
    const won = await Promise.all([
      claimDigestDay(dbs[0]!, { ...opts, by: "x" }),
      claimDigestDay(dbs[1]!, { ...opts, by: "y" }),
    ]);
    expect(won.filter(Boolean)).toHaveLength(1);
    // a fresh claim is not taken over
    expect(await claimDigestDay(dbs[0]!, { ...opts, by: "z", now: sgt(day, "09:21") })).toBe(false);
  });

  it("posts without the charts, saying why, when the upload is refused", async () => {
    const before = fake.messages(CHANNEL).length;
    fake.failNext("files.getUploadURLExternal", "missing_scope");
    const result = await publishDigest(deps(dbs[0]!), "2026-11-22", sgt("2026-11-22", "09:00"));
    expect(result.fileIds).toEqual([]);
    expect(result.chartsNote).toContain("missing_scope");
    const msgs = fake.messages(CHANNEL);
    expect(msgs.length - before).toBe(1);
    expect(JSON.stringify(msgs.at(-1)!.blocks)).toContain("The charts could not be attached");
  });

  it("bounds a KPI source that hangs", async () => {
    const hanging: DigestSources = { ...sources, kpi: () => new Promise(() => undefined) };
    const result = await publishDigest(
      deps(dbs[0]!, { sources: hanging, sourceTimeoutMs: 300 }),
      "2026-11-23",
      sgt("2026-11-23", "09:00"),
    );
    expect(result.fileIds).toHaveLength(2);
    expect(JSON.stringify(fake.messages(CHANNEL).at(-1)!.blocks)).toContain(
      "*KPIs* — unavailable: the KPI store did not answer within 300 ms",
    );
  });

  it("retries a digest that failed to post", async () => {
    const day = "2026-11-24";
    const clock = new ManualClock(sgt(day, "08:00"));
    let calls = 0;
    const s = startDigestScheduler({
      db: dbs[0]!,
      file,
      log,
      clock,
      instanceId: "flaky",
      retryMs: 5 * 60_000,
      publish: async (d, now) => {
        calls += 1;
        if (calls === 1) throw new Error("Slack is down");
        return publishDigest(deps(dbs[0]!), d, now);
      },
    });
    await waitUntil("sleep", () => clock.waiting === 1);
    clock.set(sgt(day, "09:00"));
    await waitUntil(
      "the failure to be recorded",
      async () => (await dbs[2]!.digest.count({ where: { day, status: "failed" } })) === 1,
    );
    await waitUntil("sleep until the retry", () => clock.waiting === 1);
    expect(s.nextRunAt?.toISOString()).toBe(sgt(day, "09:05").toISOString());
    clock.set(sgt(day, "09:05"));
    await waitUntil(
      "the retry to post",
      async () => (await dbs[2]!.digest.count({ where: { day, status: "posted" } })) === 1,
    );
    expect(calls).toBe(2);
    await s.stop();
  });
});

describe("digest settings in the migration file", () => {
  it("refuses an invalid timezone with a clear message", () => {
    let err: unknown;
    try {
      parseMigrationFile(digestConfig('digest: { time: "09:00", timezone: Asia/Singapur }'), {
        checkEnv: false,
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CutoverError);
    expect((err as CutoverError).code).toBe(ErrorCode.ConfigInvalid);
    const message = (err as Error).message;
    expect(message).toContain("digest.timezone");
    expect(message).toContain("is not an IANA time zone");
    expect(message).toContain("Asia/Singapore");
  });

  it("refuses a time that is not HH:MM", () => {
    expect(() => parseMigrationFile(digestConfig('digest: { time: "9am" }'), { checkEnv: false })).toThrow(
      /digest\.time.*not a time of day/s,
    );
  });

  it("reads 09:00 Asia/Singapore from the shipped example", async () => {
    const { readFileSync } = await import("node:fs");
    const example = parseMigrationFile(
      readFileSync(new URL("../../migration.example.yml", import.meta.url), "utf8"),
      { checkEnv: false },
    );
    expect(example.digest).toMatchObject({
      time: "09:00",
      timezone: "Asia/Singapore",
      stabilisationDays: 14,
    });
  });
});

describe("two bot processes", () => {
  it("post one digest between them when both check at 09:00", async () => {
    const { fileURLToPath } = await import("node:url");
    const child = fileURLToPath(new URL("./replica-child.ts", import.meta.url));
    const day = "2026-11-30";
    const before = fake.messages(CHANNEL).length;
    const run = async (id: string): Promise<{ id: string; outcome: string }> => {
      const job = {
        dbUrl: state.url,
        slackApiUrl: fake.apiUrl,
        token: TOKEN,
        config: digestConfig(),
        now: sgt(day, "09:00").toISOString(),
        id,
      };
      const { code, out, err } = await runToEnd(process.execPath, [
        "--import",
        "tsx",
        child,
        JSON.stringify(job),
      ]);
      if (code !== 0) throw new Error(`${id}: ${err}`);
      return JSON.parse(out.trim().split("\n").at(-1)!);
    };
    const results = await Promise.all([run("process-1"), run("process-2")]);
    expect(results.map((r) => r.outcome).sort()).toEqual(["posted", "taken"]);
    expect(fake.messages(CHANNEL).length - before).toBe(1);
    const row = await dbs[2]!.digest.findUniqueOrThrow({ where: { env_day: { env: "test", day } } });
    expect(row.status).toBe("posted");
    expect(results.find((r) => r.outcome === "posted")!.id).toBe(row.claimedBy);
  }, 60_000);
});
