import { createHash } from "node:crypto";
import { readdirSync } from "node:fs";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeError, ErrorCode } from "../../src/errors.js";
import { createPrismaClient } from "../../src/store/client.js";
import { applyMigrations, DEFAULT_MIGRATIONS_DIR } from "../../src/store/migrate.js";
import { createEmptyDatabase, createTestDatabase, queryOnce, type TestDatabase } from "../helpers/db.js";
import { cutoverErrorOf } from "../helpers/errors.js";

const INIT = "20261125000000_init";
/** Every migration shipped in prisma/migrations, in the order they apply. */
const ALL = readdirSync(DEFAULT_MIGRATIONS_DIR, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();

const query = queryOnce;

/** A copy of prisma/migrations the test may edit. */
async function copyOfMigrations(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "cutover-migrations-"));
  await cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
  return dir;
}

const refusal = cutoverErrorOf;

describe("applyMigrations", () => {
  const dbs: TestDatabase[] = [];
  const dirs: string[] = [];
  async function emptyDb(label: string): Promise<TestDatabase> {
    const db = await createEmptyDatabase(label);
    dbs.push(db);
    return db;
  }
  async function migrationsCopy(): Promise<string> {
    const dir = await copyOfMigrations();
    dirs.push(dir);
    return dir;
  }
  afterAll(async () => {
    await Promise.all(dbs.map((db) => db.drop()));
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it("applies every migration once, in order, and records each as Prisma does", async () => {
    const db = await emptyDb("migrate_twice");
    expect(ALL[0]).toBe(INIT);
    expect(await applyMigrations(db.url)).toEqual({ applied: ALL });
    expect(await applyMigrations(db.url)).toEqual({ applied: [] });

    const bytes = await readFile(path.join(DEFAULT_MIGRATIONS_DIR, INIT, "migration.sql"));
    const rows = await query(db.url, "SELECT * FROM _prisma_migrations ORDER BY started_at");
    expect(rows.map((r) => r.migration_name)).toEqual(ALL);
    const row = rows[0]!;
    expect(row).toMatchObject({
      migration_name: INIT,
      checksum: createHash("sha256").update(bytes).digest("hex"),
      logs: null,
      rolled_back_at: null,
      applied_steps_count: 1,
    });
    expect(row.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(row.finished_at).toBeInstanceOf(Date);
    expect(row.finished_at.getTime()).toBeGreaterThanOrEqual(row.started_at.getTime());

    // The table itself is Prisma's, column for column, so `prisma migrate deploy` can take over.
    const columns = await query(
      db.url,
      `SELECT column_name, data_type, character_maximum_length AS len, is_nullable, column_default
         FROM information_schema.columns WHERE table_name = '_prisma_migrations' ORDER BY ordinal_position`,
    );
    expect(columns).toEqual([
      { column_name: "id", data_type: "character varying", len: 36, is_nullable: "NO", column_default: null },
      {
        column_name: "checksum",
        data_type: "character varying",
        len: 64,
        is_nullable: "NO",
        column_default: null,
      },
      {
        column_name: "finished_at",
        data_type: "timestamp with time zone",
        len: null,
        is_nullable: "YES",
        column_default: null,
      },
      {
        column_name: "migration_name",
        data_type: "character varying",
        len: 255,
        is_nullable: "NO",
        column_default: null,
      },
      { column_name: "logs", data_type: "text", len: null, is_nullable: "YES", column_default: null },
      {
        column_name: "rolled_back_at",
        data_type: "timestamp with time zone",
        len: null,
        is_nullable: "YES",
        column_default: null,
      },
      {
        column_name: "started_at",
        data_type: "timestamp with time zone",
        len: null,
        is_nullable: "NO",
        column_default: "now()",
      },
      {
        column_name: "applied_steps_count",
        data_type: "integer",
        len: null,
        is_nullable: "NO",
        column_default: "0",
      },
    ]);
  });

  it("refuses when an applied migration's file was changed, and names it", async () => {
    const db = await emptyDb("migrate_tampered");
    const dir = await migrationsCopy();
    await applyMigrations(db.url, { dir });
    const file = path.join(dir, INIT, "migration.sql");
    const original = await readFile(file, "utf8");

    // A checkout with Windows line endings is the same migration, as Prisma sees it.
    await writeFile(file, original.replace(/\n/g, "\r\n"));
    expect(await applyMigrations(db.url, { dir })).toEqual({ applied: [] });

    await writeFile(file, original.replace('"note" TEXT,', '"note" TEXT,\n    "reason" TEXT,'));
    const err = await refusal(applyMigrations(db.url, { dir }));
    expect(err.code).toBe(ErrorCode.ConfigInvalid);
    expect(err.message).toContain(`Migration ${INIT} was changed after it was applied`);
    expect(describeError(err)).toContain(`git checkout -- prisma/migrations/${INIT}/migration.sql`);
    expect(describeError(err)).toContain("new migration folder");
  });

  it("refuses after a migration failed and was never resolved, and says how to resolve it", async () => {
    const db = await emptyDb("migrate_failed");
    await applyMigrations(db.url);
    // What `prisma migrate deploy` leaves behind when a migration fails half-way.
    await query(
      db.url,
      `INSERT INTO _prisma_migrations (id, checksum, migration_name, logs, started_at, applied_steps_count)
       VALUES ('5d1f1c9e-2f4b-4e8e-9d55-0d6a1f0b2c3d', 'abc', '20261201000000_add_regions', 'ERROR: relation "x" does not exist', now(), 0)`,
    );
    const err = await refusal(applyMigrations(db.url));
    expect(err.code).toBe(ErrorCode.ConfigInvalid);
    expect(err.message).toContain("Migration 20261201000000_add_regions failed");
    expect(err.message).toContain("never resolved");
    const text = describeError(err);
    expect(text).toContain("npx prisma migrate resolve --rolled-back 20261201000000_add_regions");
    expect(text).toContain("UPDATE _prisma_migrations SET rolled_back_at = now()");

    await query(db.url, "UPDATE _prisma_migrations SET rolled_back_at = now() WHERE finished_at IS NULL");
    expect(await applyMigrations(db.url)).toEqual({ applied: [] });
  });

  it("rolls back a failing migration, records the attempt, and applies it once fixed", async () => {
    const db = await emptyDb("migrate_broken");
    const dir = await migrationsCopy();
    const name = "20261202000000_broken";
    await mkdir(path.join(dir, name));
    const file = path.join(dir, name, "migration.sql");
    await writeFile(
      file,
      `-- CreateTable\nCREATE TABLE "regions" ("id" TEXT NOT NULL);\n\nSELECT "nope" FROM "runs";\n`,
    );

    const err = await refusal(applyMigrations(db.url, { dir }));
    expect(err.message).toContain(`Migration ${name} failed and was rolled back`);
    expect(err.message).toContain('column "nope" does not exist (line 4: SELECT "nope" FROM "runs";)');
    expect(await query(db.url, "SELECT to_regclass('regions') AS t")).toEqual([{ t: null }]);
    expect(
      await query(
        db.url,
        "SELECT migration_name, finished_at IS NULL AS failed, rolled_back_at IS NOT NULL AS rolled_back FROM _prisma_migrations ORDER BY started_at",
      ),
    ).toEqual([
      ...ALL.map((m) => ({ migration_name: m, failed: false, rolled_back: false })),
      { migration_name: name, failed: true, rolled_back: true },
    ]);

    await writeFile(file, `-- CreateTable\nCREATE TABLE "regions" ("id" TEXT NOT NULL);\n`);
    expect(await applyMigrations(db.url, { dir })).toEqual({ applied: [name] });
    expect(await query(db.url, "SELECT to_regclass('regions')::text AS t")).toEqual([{ t: "regions" }]);
  });

  it("applies once when two replicas start together", async () => {
    const db = await emptyDb("migrate_race");
    const results = await Promise.all([
      applyMigrations(db.url),
      applyMigrations(db.url),
      applyMigrations(db.url),
    ]);
    expect(results.map((r) => r.applied).sort()).toEqual([[], [], ALL]);
    expect(await query(db.url, "SELECT count(*)::int AS n FROM _prisma_migrations")).toEqual([
      { n: ALL.length },
    ]);
  });

  it("names host, port and database, never the password, when the database cannot be reached", async () => {
    const err = await refusal(applyMigrations("postgresql://cutover:hunter2-secret@127.0.0.1:1/state"));
    expect(err.code).toBe(ErrorCode.Unreachable);
    expect(err.message).toContain("state on 127.0.0.1:1");
    expect(`${describeError(err)} ${JSON.stringify(err.details)}`).not.toContain("hunter2");
  });
});

describe("createPrismaClient", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase("prisma_client");
  });
  afterAll(async () => {
    await db.drop();
  });

  it("writes and reads a run with its steps on the migrated schema", async () => {
    const prisma = createPrismaClient(db.url);
    try {
      const created = await prisma.run.create({
        data: {
          env: "production",
          kind: "phase",
          target: "database",
          requestedBy: "U123",
          idempotencyKey: "slack:1",
          steps: {
            create: [
              { position: 0, step: "preflight" },
              { position: 1, step: "dump" },
            ],
          },
        },
      });
      const run = await prisma.run.findUniqueOrThrow({
        where: { idempotencyKey: "slack:1" },
        include: { steps: { orderBy: { position: "asc" } } },
      });
      expect(run.id).toBe(created.id);
      expect(run).toMatchObject({ status: "queued", dryRun: false, options: {}, channel: null });
      expect(run.steps.map((s) => [s.position, s.step, s.status, s.attempts])).toEqual([
        [0, "preflight", "pending", 0],
        [1, "dump", "pending", 0],
      ]);
      await prisma.run.delete({ where: { id: run.id } });
      expect(await prisma.stepExecution.count()).toBe(0); // ON DELETE CASCADE
    } finally {
      await prisma.$disconnect();
    }
  });
});
