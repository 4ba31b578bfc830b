import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { z } from "zod";
import { CutoverError, ErrorCode, notSet } from "../../../errors.js";
import type { StepDefinition, StepDeps } from "../../define-step.js";
import { defineStep } from "../../define-step.js";

const Input = z.object({
  /** the environment variable holding the database URL */
  urlEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/),
  table: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/),
  rows: z.number().int().min(1).max(100_000_000),
  batch: z.number().int().min(1).max(100_000).default(1_000),
  /** a pause between batches, for rehearsals that want to watch (or interrupt) it */
  pauseMs: z.number().int().min(0).max(60_000).default(0),
});
type Input = z.infer<typeof Input>;

export const dbWriteProbe = defineStep({
  type: "db.write-probe",
  description: "write numbered rows into a table in batches, checkpointing, to prove a database takes writes",
  input: Input,
  configSections: [],
  mutating: true,
  stallWatch: true,
  checkpoints: { done: z.number() },
});

const PROGRESS_TABLE = "_cutover_progress";

/** Connects to the database named by `urlEnv`, saying what to set when it is missing. */
async function connect(input: Input, env: NodeJS.ProcessEnv): Promise<pg.Client> {
  const url = env[input.urlEnv];
  if (!url) {
    throw notSet(input.urlEnv, {
      hint: `Set ${input.urlEnv} to the database URL this step writes to, then run it again.`,
    });
  }
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  // A connection dropped between queries is an 'error' event: unheard, it would end the whole
  // process. The query in hand (or the next one) fails instead, and the step is retried.
  client.on("error", () => undefined);
  try {
    await client.connect();
  } catch (err) {
    throw new CutoverError(
      ErrorCode.Unreachable,
      `Could not connect to the database in ${input.urlEnv}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return client;
}

async function writtenSoFar(client: pg.Client, key: string): Promise<number> {
  const res = await client.query<{ done: string }>(`SELECT done FROM ${PROGRESS_TABLE} WHERE key = $1`, [
    key,
  ]);
  return res.rows[0] ? Number(res.rows[0].done) : 0;
}

async function tableExists(client: pg.Client, name: string): Promise<boolean> {
  const res = await client.query("SELECT to_regclass($1) IS NOT NULL AS ok", [name]);
  return Boolean(res.rows[0]?.ok);
}

/**
 * `db.write-probe`: writes rows 1…N into a table in batches. Each batch and its progress marker
 * commit in one transaction in the same database, so after a crash at any instant the next
 * attempt continues from the last committed batch: every row is written exactly once. It proves
 * a database takes writes, and it is the engine's own crash-and-resume witness.
 */
export function createDbWriteProbeStep({ env }: StepDeps): StepDefinition<Input> {
  return dbWriteProbe.implement({
    async plan(input) {
      const client = await connect(input, env);
      try {
        const exists = await tableExists(client, input.table);
        const progress = (await tableExists(client, PROGRESS_TABLE))
          ? await writtenSoFar(client, input.table)
          : 0;
        const left = input.rows - progress;
        return {
          summary:
            left > 0
              ? `would write ${left} of ${input.rows} rows into ${input.table}`
              : `${input.table} already holds all ${input.rows} rows`,
          changes: [
            ...(exists ? [] : [{ action: "create" as const, target: `table ${input.table}` }]),
            {
              action: left > 0 ? ("create" as const) : ("none" as const),
              target: `${left} rows`,
              detail: `batches of ${input.batch}`,
            },
          ],
        };
      } finally {
        await client.end();
      }
    },
    async run(input, ctx) {
      const client = await connect(input, env);
      const table = client.escapeIdentifier(input.table);
      try {
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${table} (n bigint NOT NULL, run_id uuid NOT NULL, written_at timestamptz NOT NULL DEFAULT now())`,
        );
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${PROGRESS_TABLE} (key text PRIMARY KEY, done bigint NOT NULL)`,
        );
        let done = await writtenSoFar(client, input.table);
        if (done > 0) ctx.log.info({ done }, "resuming after the last committed batch");
        while (done < input.rows) {
          ctx.signal.throwIfAborted();
          const upto = Math.min(input.rows, done + input.batch);
          await client.query("BEGIN");
          try {
            await client.query(
              `INSERT INTO ${table} (n, run_id) SELECT g, $3 FROM generate_series($1::bigint, $2::bigint) g`,
              [done + 1, upto, ctx.run.id],
            );
            await client.query(
              `INSERT INTO ${PROGRESS_TABLE} (key, done) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET done = EXCLUDED.done`,
              [input.table, upto],
            );
            await client.query("COMMIT");
          } catch (err) {
            await client.query("ROLLBACK").catch(() => undefined);
            throw err;
          }
          done = upto;
          await ctx.checkpoint.set("done", done);
          ctx.progress({ done, total: input.rows, unit: "rows", message: `writing ${input.table}` });
          if (input.pauseMs > 0) await sleep(input.pauseMs, undefined, { signal: ctx.signal });
        }
        return { summary: `${input.rows} rows in ${input.table}`, figures: { rows: input.rows } };
      } finally {
        await client.end();
      }
    },
    async verify(input) {
      const client = await connect(input, env);
      try {
        const res = await client.query<{
          total: string;
          distinct_n: string;
          lo: string | null;
          hi: string | null;
        }>(
          `SELECT count(*) AS total, count(DISTINCT n) AS distinct_n, min(n) AS lo, max(n) AS hi FROM ${client.escapeIdentifier(input.table)}`,
        );
        const row = res.rows[0]!;
        const total = Number(row.total);
        const distinct = Number(row.distinct_n);
        const ok =
          total === input.rows &&
          distinct === input.rows &&
          Number(row.lo) === 1 &&
          Number(row.hi) === input.rows;
        return {
          ok,
          summary: ok
            ? `${total} rows, each of 1…${input.rows} exactly once`
            : `${total} rows, ${distinct} distinct, expected ${input.rows} rows numbered 1…${input.rows}`,
          figures: { rows: total, distinct },
        };
      } finally {
        await client.end();
      }
    },
    async undo(input) {
      const client = await connect(input, env);
      try {
        await client.query(`DROP TABLE IF EXISTS ${client.escapeIdentifier(input.table)}`);
        if (await tableExists(client, PROGRESS_TABLE)) {
          await client.query(`DELETE FROM ${PROGRESS_TABLE} WHERE key = $1`, [input.table]);
        }
      } finally {
        await client.end();
      }
    },
  });
}
