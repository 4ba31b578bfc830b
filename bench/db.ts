import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { libpqEnvironment, runTool, toolErrorText } from "../src/cloud/postgres.js";
import { createDbSteps } from "../src/jobs/steps/db/index.js";
import { generateShopDatabase } from "../src/sandbox/shop-data.js";
import { dbStepDeps, runDbStep } from "./_db-steps.js";

/**
 * `npm run bench -- db [--size-mb 1024] [--seed 1] [--jobs 2]`: generates a shop database of the
 * given size, then times, in the same run and on the same server:
 *   (a) the raw tools: `pg_dump -Fd -j N` (its default compression) + `pg_restore -j N`
 *   (b) pgcopydb (`pgcopydb clone`, N table jobs and N index jobs)
 *   (c) this migration without verify: db.preflight, db.dump, db.restore (run + their checks)
 *   (d) db.verify alone
 * and prints one JSON object with the times and the ratios of (c) and (d) to the faster of (a)
 * and (b). Progress goes to stderr. Server: BENCH_PG (default the machine's PostgreSQL).
 */

const log = (msg: string) => process.stderr.write(`[bench db] ${msg}\n`);

function serverUrl(db: string): string {
  const u = new URL(
    process.env.BENCH_PG ?? process.env.CUTOVER_TEST_PG ?? "postgresql://postgres@127.0.0.1:5432",
  );
  u.pathname = `/${db}`;
  return u.toString();
}

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl("postgres") });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

async function timed<T>(label: string, fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  log(`${label}…`);
  const started = performance.now();
  const value = await fn();
  const seconds = Math.round((performance.now() - started) / 10) / 100;
  log(`${label}: ${seconds} s`);
  return { seconds, value };
}

async function tool(cmd: string, args: string[], url: string): Promise<void> {
  const env = await libpqEnvironment(url);
  try {
    const res = await runTool(cmd, args, { env: env.env, captureStdout: false });
    if (res.code !== 0) throw new Error(`${cmd} failed: ${toolErrorText(res)}`);
  } finally {
    await env.cleanup();
  }
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      "size-mb": { type: "string", default: "1024" },
      seed: { type: "string", default: "1" },
      jobs: { type: "string", default: "2" },
      keep: { type: "boolean", default: false },
    },
  });
  const sizeMb = Number(values["size-mb"]);
  const jobs = Number(values.jobs);
  const tag = `${Date.now().toString(36)}`;
  const names = {
    src: `bench_db_src_${tag}`,
    a: `bench_db_a_${tag}`,
    b: `bench_db_b_${tag}`,
    c: `bench_db_c_${tag}`,
  };
  const work = await mkdtemp(path.join(tmpdir(), "cutover-bench-db-"));
  for (const n of Object.values(names)) await admin(`CREATE DATABASE ${n} TEMPLATE template0`);
  try {
    const gen = await timed(`generating a ${sizeMb} MB shop database`, () =>
      generateShopDatabase(serverUrl(names.src), { sizeMb, seed: Number(values.seed), onProgress: log }),
    );

    // (a) the raw tools, as an operator would type them
    const dumpA = path.join(work, "raw-dump");
    const a = await timed(`(a) pg_dump -Fd -j ${jobs} + pg_restore -j ${jobs}`, async () => {
      await tool("pg_dump", ["-Fd", `-j${jobs}`, "-f", dumpA], serverUrl(names.src));
      await tool("pg_restore", [`-j${jobs}`, `--dbname=${names.a}`, dumpA], serverUrl(names.a));
    });
    await rm(dumpA, { recursive: true, force: true });

    // (b) pgcopydb
    let b: { seconds: number } | undefined;
    let pgcopydbNote: string | undefined;
    const have = await runTool("pgcopydb", ["--version"], { env: {} }).catch(() => undefined);
    if (have && have.code === 0) {
      const dirB = path.join(work, "pgcopydb");
      b = await timed(`(b) pgcopydb clone --table-jobs ${jobs} --index-jobs ${jobs}`, async () => {
        const res = await runTool(
          "pgcopydb",
          [
            "clone",
            "--source",
            serverUrl(names.src),
            "--target",
            serverUrl(names.b),
            "--table-jobs",
            String(jobs),
            "--index-jobs",
            String(jobs),
            "--dir",
            dirB,
          ],
          { env: {}, captureStdout: false },
        );
        if (res.code !== 0) throw new Error(`pgcopydb failed: ${toolErrorText(res)}`);
      });
      await rm(dirB, { recursive: true, force: true });
    } else {
      pgcopydbNote = "pgcopydb is not installed (apt-get install pgcopydb); its anchor is missing";
      log(pgcopydbNote);
    }

    // (c) this migration, without verify; (d) verify alone
    const deps = dbStepDeps({
      sourceUrl: serverUrl(names.src),
      targetUrl: serverUrl(names.c),
      dataDir: work,
      jobs,
    });
    const steps = new Map(createDbSteps(deps).map((s) => [s.type, s]));
    const parts: Record<string, number> = {};
    let restorePhases: Record<string, unknown> = {};
    const c = await timed("(c) this migration: preflight + dump + restore", async () => {
      for (const type of ["db.preflight", "db.dump", "db.restore"]) {
        const t = await timed(`  ${type}`, () => runDbStep(steps.get(type)!, { jobs }));
        parts[type] = t.seconds;
        if (type === "db.restore")
          restorePhases = Object.fromEntries(Object.entries(t.value).filter(([k]) => k.endsWith("Seconds")));
      }
    });
    const d = await timed("(d) db.verify", () => runDbStep(steps.get("db.verify")!, { jobs }));

    const anchors = [a.seconds, ...(b ? [b.seconds] : [])];
    const fastest = Math.min(...anchors);
    const ratio = (x: number) => Math.round((x / fastest) * 1000) / 1000;
    const result = {
      benchmark: "db",
      sizeMb,
      databaseBytes: gen.value.bytes,
      rows: gen.value.rows,
      jobs,
      cores: availableParallelism(),
      generateSeconds: gen.seconds,
      seconds: {
        rawTools: a.seconds,
        pgcopydb: b?.seconds ?? null,
        migration: c.seconds,
        verify: d.seconds,
      },
      migrationParts: parts,
      restorePhases,
      fastestAnchor: b && b.seconds < a.seconds ? "pgcopydb" : "rawTools",
      ratios: { migration: ratio(c.seconds), verify: ratio(d.seconds) },
      targets: { migration: 1.0, verify: 0.3 },
      met: { migration: ratio(c.seconds) <= 1.0, verify: ratio(d.seconds) <= 0.3 },
      identical: d.value.identical === true,
      ...(pgcopydbNote ? { note: pgcopydbNote } : {}),
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    if (!values.keep) {
      for (const n of Object.values(names))
        await admin(`DROP DATABASE IF EXISTS ${n} WITH (FORCE)`).catch(() => undefined);
      await rm(work, { recursive: true, force: true });
    }
  }
}
