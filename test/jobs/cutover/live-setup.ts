import { randomBytes } from "node:crypto";
import type { LiveContext, LiveDeps } from "../../../src/jobs/cutover/live.js";
import type { StepDefinition } from "../../../src/jobs/define-step.js";
import { createDbSteps } from "../../../src/jobs/steps/db/index.js";
import { LIVE_SHOP_SCHEMA } from "../../../src/sandbox/live-shop.js";
import { createPrismaClient, type Db } from "../../../src/store/client.js";
import { createTestDatabase, queryOnce, type TestDatabase } from "../../helpers/db.js";
import { createLogicalPair, type LogicalPair } from "../../helpers/logical.js";
import { makeStepContext } from "../../helpers/step-context.js";
import { dbConfig, makeDeps } from "../db/fixture.js";

/**
 * A live migration ready to switch, on real servers: the shop's tables on the source (the
 * machine's PostgreSQL 15) with an app role of its own, copied by the product's db.dump and
 * db.restore onto an embedded PostgreSQL 17 (two servers, two majors, as Neon and RDS), forward
 * replication running (db.replicate), and a state database for the audit trail the freezes live in.
 */
export interface LiveSetup {
  env: string;
  appRole: string;
  /** Cutover's own connections: the source's owner, the target's administrator (an RDS master user) */
  source: { url: string };
  target: { url: string };
  stateUrl: string;
  db: Db;
  live: LiveDeps;
  steps: Map<string, StepDefinition<unknown>>;
  /** the migration file (YAML) and the environment it reads, for a child process */
  config: string;
  fileEnv: Record<string, string>;
  /** the URL as the app role */
  asRole(url: string): string;
  /** a context for calling the live sequences directly; pass the same map to resume */
  ctx(checkpoints?: Map<string, unknown>): LiveContext;
  drop(): Promise<void>;
}

/** One statement on a connection of its own (the suite's queryOnce). */
export const sql = queryOnce;

export async function createLiveSetup(label: string): Promise<LiveSetup> {
  const env = `${label}_${randomBytes(3).toString("hex")}`;
  const appRole = `${env}_app`;
  const grants = `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${appRole}; GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ${appRole}`;
  const [state, pair]: [TestDatabase, LogicalPair] = await Promise.all([
    createTestDatabase(`${label}_state`),
    createLogicalPair(label),
  ]);
  const source = { url: pair.source.url };
  const target = { url: pair.target.adminUrl };
  const db = createPrismaClient(state.url);
  for (const server of [pair.source.serverAdminUrl, pair.target.serverAdminUrl])
    await sql(
      server,
      `DROP ROLE IF EXISTS ${appRole}; CREATE ROLE ${appRole} LOGIN NOSUPERUSER PASSWORD 'shop'`,
    );
  await sql(source.url, LIVE_SHOP_SCHEMA);
  await sql(
    source.url,
    "INSERT INTO live_orders (ref, customer) SELECT gen_random_uuid(), 'seed-' || g FROM generate_series(1, 300) g",
  );
  await sql(source.url, grants);
  const config = dbConfig()
    .replace("environment: test", `environment: ${env}`)
    .replace(
      "runbook:",
      `replication:\n  appRoles: { source: ${appRole}, target: ${appRole} }\n  maxLagSeconds: 5\n  inflightMs: 300\nrunbook:`,
    );
  // the copy steps without the state store (their audit rows need a run); the live sequences with it
  const copy = await makeDeps(source.url, target.url, { config });
  const steps = new Map(createDbSteps(copy).map((s) => [s.type, s]));
  const live: LiveDeps = { step: { ...copy, db }, db, now: () => new Date() };
  for (const type of ["db.dump", "db.restore"]) {
    const s = steps.get(type)!;
    await s.run(s.parse({ jobs: 2 }), makeStepContext());
  }
  // the new app's role gets its privileges on the target, as the deploy would give them
  await sql(target.url, grants);
  const r = steps.get("db.replicate")!;
  await r.run(r.parse({}), makeStepContext());
  return {
    env,
    appRole,
    source,
    target,
    stateUrl: state.url,
    db,
    live,
    steps,
    config,
    fileEnv: {
      SOURCE_DATABASE_URL: source.url,
      TARGET_DATABASE_URL: target.url,
      RDS_MASTER_PASSWORD: "not-used-in-tests",
    },
    asRole(url) {
      const u = new URL(url);
      u.username = appRole;
      u.password = "shop";
      return u.toString();
    },
    ctx(checkpoints = new Map<string, unknown>()) {
      const c = makeStepContext({ checkpoints });
      return {
        checkpoint: c.checkpoint,
        signal: c.signal,
        progress: c.progress,
        actor: "U0OPERATOR",
        runId: null,
      };
    },
    async drop() {
      const t = steps.get("db.replication-teardown")!;
      await t.run(t.parse({}), makeStepContext()).catch(() => undefined);
      await db.$disconnect();
      await Promise.all([state.drop(), pair.drop()]);
      for (const server of [pair.source.serverAdminUrl, pair.target.serverAdminUrl])
        await sql(server, `DROP ROLE IF EXISTS ${appRole}`).catch(() => undefined);
    },
  };
}
