import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { systemClock } from "../../src/clock.js";
import { createObjectStore, type ObjectStore } from "../../src/cloud/object-store.js";
import { parseMigrationFile } from "../../src/config/load.js";
import { CutoverError, ErrorCode } from "../../src/errors.js";
import type { StepDeps } from "../../src/jobs/catalogue.js";
import {
  createDecommissionStep,
  decommissionDeps,
  requestDecommissionApproval,
} from "../../src/jobs/steps/ops/decommission.js";
import { createLogger } from "../../src/log.js";
import { createPorts } from "../../src/ports.js";
import { decideApproval } from "../../src/store/approvals.js";
import { createPrismaClient, type Db } from "../../src/store/client.js";
import { storeSamples } from "../../src/store/kpi.js";
import { createEmptyDatabase, createTestDatabase, databaseUrl, type TestDatabase } from "../helpers/db.js";
import { type MotoHandle, useMoto } from "../helpers/moto.js";
import { makeStepContext } from "../helpers/step-context.js";

const OPERATOR = "U0123456789";
const APPROVER = "U0987654321";
const REGION = "ap-southeast-1";
const bucket = `decom-${randomBytes(4).toString("hex")}`;

// The shipped plan, with a bucket of this test's own on moto.
const file = parseMigrationFile(
  readFileSync(new URL("../../migration.example.yml", import.meta.url), "utf8").replace(
    "  s3:\n    bucket: gogojap-media",
    `  s3:\n    bucket: ${bucket}`,
  ),
  { checkEnv: false },
);
const log = createLogger({
  secrets: [],
  level: "silent",
  destination: new Writable({ write: (_c, _e, cb) => cb() }),
});

let state: TestDatabase;
let source: TestDatabase;
let db: Db;
let moto: MotoHandle;
let dataDir: string;
let env: NodeJS.ProcessEnv;
let now: Date;

function target(): ObjectStore {
  return createObjectStore({
    side: "target",
    provider: "S3",
    bucket,
    region: REGION,
    endpoint: moto.endpoint,
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    credentialSource: "test",
    forcePathStyle: true,
  });
}

/** The step deps the bot builds: the target bucket is this test's own on moto; the calendar reads `now`. */
function deps(): StepDeps {
  const ports = createPorts({ env }, file);
  return {
    env,
    ports: { ...ports, s3: { ...ports.s3, target } },
    file,
    dataDir,
    log,
    db,
    clock: { now: () => now, sleep: systemClock.sleep },
  };
}

/** What /migrate decommission hands the approval request: the deps the step derives. */
const requestDeps = () => decommissionDeps(deps());

const WITH = { notBeforeDays: 14, scratchUrlEnv: "SCRATCH_PG_URL" };

/**
 * A successful DNS cutover at `at`, and the KPI probe's samples since: an hourly round, every one
 * answered in 140 ms (`green`), or 8 of every 1,000 failed, 99.2 % available (`red`), or none.
 */
async function cutoverAt(at: Date, kpis: "green" | "red" | "none" = "green"): Promise<void> {
  // within the window the step reads: from the cutover, 14 days at most
  const span = Math.min(now.getTime() - at.getTime(), 14 * 86_400_000);
  const hours = Math.floor(span / 3_600_000);
  if (kpis !== "none") {
    const n = kpis === "green" ? hours : 1000;
    await storeSamples(
      db,
      Array.from({ length: n }, (_, i) => {
        const ok = kpis === "green" || i % 125 !== 0;
        return {
          at: new Date(at.getTime() + ((i + 0.5) * span) / n),
          target: "api-health",
          ok,
          status: ok ? 200 : 503,
          latencyMs: 140,
          error: ok ? null : "HTTP 503",
        };
      }),
    );
  }
  await db.run.create({
    data: {
      env: file.environment,
      kind: "step",
      target: "dns-cutover",
      requestedBy: OPERATOR,
      status: "succeeded",
      steps: {
        create: [{ step: "dns-cutover", position: 0, status: "succeeded", startedAt: at, finishedAt: at }],
      },
    },
  });
}

async function archives(): Promise<string[]> {
  const store = target();
  try {
    return (await store.listPage({ prefix: "cutover-archive/" })).objects.map((o) => o.key);
  } finally {
    store.destroy();
  }
}

async function runStep(withBlock: unknown = WITH) {
  const step = createDecommissionStep(deps());
  // a real run row: the audit trail refers to it
  const run = await db.run.create({
    data: { env: file.environment, kind: "step", target: "decommission", requestedBy: OPERATOR },
  });
  const ctx = makeStepContext({ run: { id: run.id, env: file.environment, requestedBy: OPERATOR } });
  const input = step.parse(withBlock);
  return { step, ctx, input, result: step.run(input, ctx) };
}

beforeAll(async () => {
  [state, source] = await Promise.all([createTestDatabase("decom"), createEmptyDatabase("decom_src")]);
  db = createPrismaClient(state.url);
  const c = new pg.Client({ connectionString: source.url });
  await c.connect();
  await c.query(`
    CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2));
    CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE NOT NULL);
    INSERT INTO products (name, price) SELECT 'item ' || g, g * 1.5 FROM generate_series(1, 500) g;
    INSERT INTO users (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 50) g;`);
  await c.end();
  moto = await useMoto();
  const s3 = new S3Client({
    region: REGION,
    endpoint: moto.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  });
  await s3.send(
    new CreateBucketCommand({ Bucket: bucket, CreateBucketConfiguration: { LocationConstraint: REGION } }),
  );
  s3.destroy();
  dataDir = await mkdtemp(path.join(tmpdir(), "cutover-decom-"));
  env = {
    NEON_DATABASE_URL: source.url,
    SCRATCH_PG_URL: databaseUrl("postgres"),
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
  };
}, 120_000);

afterAll(async () => {
  await db?.$disconnect();
  await Promise.all([state?.drop(), source?.drop()]);
  await moto?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

beforeEach(async () => {
  await db.approval.deleteMany({});
  await db.auditEvent.deleteMany({});
  await db.run.deleteMany({});
  const store = target();
  const keys = await archives();
  if (keys.length) await store.deleteMany(keys);
  store.destroy();
  await db.kpiSample.deleteMany({});
  now = new Date("2026-12-10T02:00:00Z");
});

describe("decommission", () => {
  it("refuses before the DNS cutover", async () => {
    const { result } = await runStep();
    await expect(result).rejects.toMatchObject({ code: ErrorCode.CutoverNotReady });
    await expect((await runStep()).result).rejects.toThrow(/DNS cutover has not happened yet/);
    expect(await archives()).toEqual([]);
  });

  it("refuses before the stabilisation window has passed, saying which day it is", async () => {
    await cutoverAt(new Date(now.getTime() - 5.5 * 86_400_000));
    const { result } = await runStep();
    await expect(result).rejects.toThrow(/stabilisation window is not over: day 6 of 14/);
    expect(await archives()).toEqual([]);
    const refused = await db.auditEvent.findMany({
      where: { action: "decommission.execute", outcome: "refused" },
    });
    expect(refused).toHaveLength(1);
  });

  it("refuses when the KPIs were not green over the window", async () => {
    await cutoverAt(new Date(now.getTime() - 15 * 86_400_000), "red");
    await expect((await runStep()).result).rejects.toThrow(
      /KPIs were not green over the window: availability 99.2 % \(target ≥ 99.9 %\)/,
    );
    await expect(
      requestDecommissionApproval(requestDeps(), WITH, OPERATOR, "C0123456789"),
    ).rejects.toMatchObject({
      code: ErrorCode.CutoverNotReady,
    });
  });

  it("refuses without KPI samples over the window unless told to go on without them", async () => {
    await cutoverAt(new Date(now.getTime() - 15 * 86_400_000), "none");
    await expect((await runStep()).result).rejects.toThrow(
      /no KPI samples over the window: is the kpi.monitor step running\?/,
    );
    // told to go on without them, it gets as far as asking for the approval
    await expect((await runStep({ ...WITH, requireKpiGreen: false })).result).rejects.toMatchObject({
      code: ErrorCode.ApprovalInvalid,
    });
  });

  it("needs a second person's approval, even after the window", async () => {
    await cutoverAt(new Date(now.getTime() - 15 * 86_400_000));
    await expect((await runStep()).result).rejects.toThrow(/needs a second person's approval/);
    const { approval } = await requestDecommissionApproval(requestDeps(), WITH, OPERATOR, "C0123456789");
    // the requester cannot approve their own request
    expect(await decideApproval(db, approval.id, { by: OPERATOR, approve: true, now })).toMatchObject({
      ok: false,
      reason: "self",
    });
    await expect((await runStep()).result).rejects.toMatchObject({ code: ErrorCode.ApprovalInvalid });
    expect(await archives()).toEqual([]);
  });

  it("after approval: archives the source into the bucket, restores it into a scratch database, lists what to shut down", async () => {
    await cutoverAt(new Date(now.getTime() - 15 * 86_400_000));
    const { approval, change } = await requestDecommissionApproval(
      requestDeps(),
      WITH,
      OPERATOR,
      "C0123456789",
    );
    expect(change.checklist.join("\n")).toContain("Zeabur");
    expect(await decideApproval(db, approval.id, { by: APPROVER, approve: true, now })).toMatchObject({
      ok: true,
    });

    const { step, ctx, input, result } = await runStep();
    const outcome = await result;
    const keys = await archives();
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(/^cutover-archive\/gogojap-production-final-20261210T020000Z\.dump$/);
    expect(outcome.figures).toMatchObject({
      archiveKey: keys[0],
      restoreCheck: "scratch",
      tables: 2,
      restoredTables: 2,
    });
    expect(Number(outcome.figures?.archiveBytes)).toBeGreaterThan(1000);
    // the checklist of what to shut down by hand: Zeabur, Neon, R2
    expect(outcome.summary).toContain("Shut down by hand now:");
    expect(outcome.summary).toMatch(
      /1\. Zeabur: stop and delete the service at https:\/\/gogojap\.zeabur\.app/,
    );
    expect(outcome.summary).toMatch(
      /2\. Neon: check the archive s3:\/\/decom-[0-9a-f]+\/cutover-archive\/.*NEON_DATABASE_URL/,
    );
    expect(outcome.summary).toMatch(/3\. Cloudflare R2: delete the bucket `gogojap-media`/);
    expect(outcome.summary).not.toContain(source.url);

    // the archive's object carries its hash; verify checks it independently
    expect(await step.verify(input, ctx)).toMatchObject({ ok: true });
    const store = target();
    const head = await store.head(keys[0]!);
    store.destroy();
    expect(head?.metadata.sha256).toBe(outcome.figures?.sha256);

    // the approval is used once; the scratch database is gone; the audit trail has it all
    expect((await db.approval.findUniqueOrThrow({ where: { id: approval.id } })).status).toBe("used");
    const scratch = new pg.Client({ connectionString: databaseUrl("postgres") });
    await scratch.connect();
    const left = await scratch.query(
      "SELECT datname FROM pg_database WHERE datname LIKE 'cutover_restore_check_%'",
    );
    await scratch.end();
    expect(left.rows).toEqual([]);
    const actions = (await db.auditEvent.findMany({ orderBy: { id: "asc" } })).map(
      (a) => `${a.action}:${a.outcome}`,
    );
    expect(actions).toEqual(
      expect.arrayContaining([
        "decommission.request:ok",
        "decommission.execute:started",
        "decommission.archive:ok",
        "decommission.execute:ok",
      ]),
    );

    // a second run cannot reuse the approval
    await expect((await runStep()).result).rejects.toMatchObject({ code: ErrorCode.ApprovalInvalid });
  });

  it("without a scratch server, proves the archive with pg_restore --list on the copy read back", async () => {
    await cutoverAt(new Date(now.getTime() - 20 * 86_400_000));
    now = new Date(now.getTime() + 60_000);
    const { approval } = await requestDecommissionApproval(
      requestDeps(),
      { notBeforeDays: 14 },
      OPERATOR,
      null,
    );
    await decideApproval(db, approval.id, { by: APPROVER, approve: true, now });
    const outcome = await (await runStep({ notBeforeDays: 14 })).result;
    expect(outcome.figures).toMatchObject({ restoreCheck: "list", tables: 2 });
    expect(Number(outcome.figures?.tocEntries)).toBeGreaterThan(4);
    expect(outcome.summary).toContain("pg_restore --list reads");
  });

  it("voids an approval when what it would do changed (another bucket prefix)", async () => {
    await cutoverAt(new Date(now.getTime() - 15 * 86_400_000));
    const { approval } = await requestDecommissionApproval(requestDeps(), WITH, OPERATOR, null);
    await decideApproval(db, approval.id, { by: APPROVER, approve: true, now });
    const run = await runStep({ ...WITH, prefix: "elsewhere/" });
    await expect(run.result).rejects.toThrow(/no longer what was approved/);
    expect((await db.approval.findUniqueOrThrow({ where: { id: approval.id } })).status).toBe("void");
  });

  it("plans without changing anything: the gate, the archive and the checklist", async () => {
    await cutoverAt(new Date(now.getTime() - 3 * 86_400_000));
    const step = createDecommissionStep(deps());
    const plan = await step.plan(step.parse(WITH), makeStepContext());
    expect(plan.summary).toMatch(/^would refuse: the stabilisation window is not over: day 4 of 14/);
    const targets = plan.changes.map((c) => `${c.action} ${c.target}`);
    expect(targets).toContain(`copy s3://${bucket}/cutover-archive/`);
    expect(plan.changes.filter((c) => c.target === "by hand afterwards").length).toBeGreaterThanOrEqual(3);
    expect(await archives()).toEqual([]);
  });

  it("rejects a bad with: block", () => {
    const step = createDecommissionStep(deps());
    expect(() => step.parse({ notBeforeDays: -1 })).toThrow(CutoverError);
    expect(() => step.parse({ prefix: "../../etc" })).not.toThrow(); // a key prefix, not a path: harmless
    expect(() => step.parse({ prefix: "has space/" })).toThrow(/not a safe key prefix/);
  });
});
