import { writeFile } from "node:fs/promises";
import path from "node:path";
import type pg from "pg";
import { z } from "zod";
import {
  type ClientTools,
  connect,
  describeContents,
  describeUrl,
  type Endpoint,
  endSessions,
  findClientTools,
  fingerprintUrl,
  ident,
  inspectContents,
  installHint,
  isEmpty,
  libpqEnvironment,
  listArchive,
  resetDatabase,
  runTool,
  type Section,
  type TocItem,
  toolErrorText,
} from "../../../cloud/postgres.js";
import { CutoverError, ErrorCode } from "../../../errors.js";
import type { StepContext, StepDefinition, StepDeps, StepOutcome, VerifyOutcome } from "../../define-step.js";
import { defineStep } from "../../define-step.js";
import {
  type DumpManifest,
  holdsPartialRestore,
  latestDump,
  type ManifestObject,
  type RestoreMarker,
  readMarker,
  writeMarker,
} from "./dump-files.js";
import { targetEndpoint } from "./endpoints.js";
import { refuseForeignDump, refuseSourceAsTarget } from "./identity.js";
import { CommonOptions, dumpRoot, jobsFor } from "./options.js";
import { stopStray } from "./stray-process.js";
import { throttle } from "./throttle.js";

const Input = CommonOptions.extend({
  /** ANALYZE the restored tables so the target's planner has statistics from the first query */
  analyze: z.boolean().default(true),
});
export type RestoreInput = z.infer<typeof Input>;

export const dbRestore = defineStep({
  type: "db.restore",
  description: "restore the dump into the target with pg_restore -j N",
  input: Input,
  configSections: ["target.rds"],
  mutating: true,
  checkpoints: { restore: z.custom<RestoreState>() },
});

type Phase = RestoreMarker["phase"];

/** The restore's resume point: which dump, which phase, and the entries of that phase already done. */
interface RestoreState {
  dump: string;
  /** host:port/db of the target it restores into */
  target: string;
  phase: Phase;
  done: number[];
}

/** application_name of our pg_restore sessions, so a new attempt can end a stray one. */
const APP_PREFIX = "cutover-restore";

/** Entries never restored: they exist on every target already and belong to its administrator. */
function wanted(item: TocItem): boolean {
  return !/^(EXTENSION|COMMENT) - (EXTENSION )?plpgsql\b/.test(item.line.split(" ").slice(3).join(" "));
}

/** libpq conninfo naming only the database (the rest comes from the environment). */
function dbnameConninfo(url: string): string {
  const db = decodeURIComponent(new URL(url).pathname.replace(/^\//, "")) || "postgres";
  return `dbname='${db.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

const EXISTS_SQL: Record<ManifestObject["kind"], string> = {
  index: `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = $1 AND c.relname = $2) AS ok`,
  constraint: `SELECT EXISTS (SELECT 1 FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND k.conname = $2 AND c.relname = $3) AS ok`,
  trigger: `SELECT EXISTS (SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND t.tgname = $2 AND c.relname = $3) AS ok`,
  rule: `SELECT EXISTS (SELECT 1 FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND r.rulename = $2 AND c.relname = $3) AS ok`,
  policy: `SELECT EXISTS (SELECT 1 FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND p.polname = $2 AND c.relname = $3) AS ok`,
  statistics: `SELECT EXISTS (SELECT 1 FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
    WHERE n.nspname = $1 AND s.stxname = $2) AS ok`,
  "event-trigger": "SELECT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = $2 AND $1 = $1) AS ok",
};

/** Whether the object a post-data entry creates is already in the target. */
async function objectExists(client: pg.Client, o: ManifestObject): Promise<boolean> {
  const params = [o.schema, o.name, ...(EXISTS_SQL[o.kind].includes("$3") ? [o.table ?? ""] : [])];
  const res = await client.query<{ ok: boolean }>(EXISTS_SQL[o.kind], params);
  return Boolean(res.rows[0]?.ok);
}

/** Whether a table holds at least one row (of its own, not its partitions'). */
async function hasRows(client: pg.Client, table: string): Promise<boolean> {
  const res = await client.query<{ ok: boolean }>(`SELECT EXISTS (SELECT 1 FROM ONLY ${table}) AS ok`);
  return Boolean(res.rows[0]?.ok);
}

async function toolsFor(input: RestoreInput, manifest?: DumpManifest): Promise<ClientTools> {
  const tools = await findClientTools({
    ...(input.binDir ? { binDir: input.binDir } : {}),
    ...(manifest ? { atLeastMajor: manifest.client.major } : {}),
  });
  if (manifest && tools.major < manifest.client.major) {
    throw new CutoverError(
      ErrorCode.ToolMissing,
      `pg_restore ${tools.version} cannot read a dump made by pg_dump ${manifest.client.version}.`,
      { hint: installHint(manifest.client.major) },
    );
  }
  return tools;
}

/**
 * `db.restore`: `pg_restore -j N` of the newest finished dump into the target, in three passes
 * (pre-data, data, post-data) so that a crash at any instant is followed by a correct target:
 *
 * - pre-data (schemas, types, tables, functions) is small: an interrupted pass is redone from an
 *   emptied target.
 * - data: each table is loaded by one COPY, which commits whole or not at all. Finished entries
 *   are checkpointed as pg_restore reports them; after a crash, an entry not yet checkpointed
 *   whose table already has rows committed just before it, and every other one is loaded again
 *   into its still-empty table. No table is ever loaded twice, so no row is duplicated.
 * - post-data (indexes, constraints, triggers, materialized view data) likewise: an entry whose
 *   object exists in the target is done, the rest run again.
 *
 * Before resuming, a pg_restore a crashed worker left running is stopped (its pid, and its
 * sessions on the target by application_name), so two loads never race. A target that holds
 * anything else is refused unless the run was confirmed with `--replace`; a newer dump than the
 * one partly restored is restored from scratch.
 */
export function createDbRestoreStep(deps: StepDeps): StepDefinition<RestoreInput> {
  return dbRestore.implement({
    async plan(input, ctx) {
      const root = dumpRoot(deps, input);
      const latest = await latestDump(root);
      const target = await targetEndpoint(deps);
      try {
        await refuseSourceAsTarget(deps, target, { timeoutSeconds: input.connectTimeoutSeconds });
        if (latest)
          await refuseForeignDump(deps, latest.manifest, { timeoutSeconds: input.connectTimeoutSeconds });
      } catch (err) {
        if (!(err instanceof CutoverError)) throw err;
        return {
          summary: `would refuse: ${err.message}`,
          changes: [{ action: "none", target: describeUrl(target.url), detail: err.hint ?? err.message }],
        };
      }
      const client = await connect(target, { timeoutSeconds: input.connectTimeoutSeconds, readOnly: true });
      try {
        const contents = await inspectContents(client);
        const where = describeUrl(target.url);
        const source = latest
          ? `${latest.manifest.name} (${Object.keys(latest.manifest.tables).length} tables, taken ${latest.manifest.snapshotAt})`
          : "the dump db.dump takes first";
        const marker = await readMarker(root);
        const changes: StepPlanChange[] = [];
        if (!isEmpty(contents)) {
          if (holdsPartialRestore(marker, target.url)) {
            changes.push({
              action: "update",
              target: where,
              detail: `resume the unfinished restore of ${marker!.dump}`,
            });
          } else if (ctx.run.options.replace === true) {
            changes.push({
              action: "delete",
              target: where,
              detail: `clear ${describeContents(contents)} (--replace)`,
            });
          } else {
            return {
              summary: `would refuse: ${where} is not empty (${describeContents(contents)}); rerun with --replace to overwrite it`,
              changes: [{ action: "none", target: where, detail: describeContents(contents) }],
            };
          }
        }
        changes.push({
          action: "copy",
          target: where,
          detail: `pg_restore -j ${jobsFor(deps, input)} of ${source}`,
        });
        return { summary: `would restore ${source} into ${where}`, changes };
      } finally {
        await client.end().catch(() => undefined);
      }
    },

    async run(input, ctx): Promise<StepOutcome> {
      const started = Date.now();
      const root = dumpRoot(deps, input);
      const latest = await latestDump(root);
      if (!latest) {
        throw new CutoverError(ErrorCode.DumpInvalid, `There is no finished dump in ${root}.`, {
          hint: "Run the db.dump step first (it writes the dump this step restores).",
        });
      }
      const { dir, manifest } = latest;
      const target = await targetEndpoint(deps);
      // Before anything runs: never into the source, never a dump of another database.
      await refuseSourceAsTarget(deps, target, { timeoutSeconds: input.connectTimeoutSeconds });
      await refuseForeignDump(deps, manifest, { timeoutSeconds: input.connectTimeoutSeconds });
      const tools = await toolsFor(input, manifest);
      const jobs = jobsFor(deps, input);
      const client = await connect(target, {
        timeoutSeconds: input.connectTimeoutSeconds,
        appName: "cutover-restore-control",
      });
      try {
        const marker = await readMarker(root);
        // A pg_restore left running by a crashed worker must not race this attempt.
        if (await stopStray(marker?.pid, "pg_restore"))
          ctx.log.warn("stopped a pg_restore left by an earlier attempt");
        const ended = await endSessions(client, APP_PREFIX);
        if (ended) ctx.log.warn({ ended }, "ended restore sessions left by an earlier attempt");

        const fingerprint = fingerprintUrl(target.url);
        let state = await ctx.checkpoint.get("restore");
        // what an earlier attempt of this step left in this target is Cutover's own to clear
        const ownedByUs = state !== undefined && (state.target ?? fingerprint) === fingerprint;
        if (state && (state.dump !== manifest.name || (state.target ?? fingerprint) !== fingerprint)) {
          ctx.log.info(
            { from: state.dump, to: manifest.name },
            "a newer dump (or another target): restoring from the start",
          );
          state = undefined;
        }
        if (!state) {
          const contents = await inspectContents(client);
          if (!isEmpty(contents)) {
            const ours = ownedByUs || holdsPartialRestore(marker, target.url);
            if (ctx.run.options.replace !== true && !ours) {
              throw new CutoverError(
                ErrorCode.TargetNotEmpty,
                `The target database ${describeUrl(target.url)} is not empty: it has ${describeContents(contents)}${contents.examples.length ? ` (${contents.examples.slice(0, 5).join(", ")}…)` : ""}.`,
                {
                  hint: "Rerun with `--replace` after checking it is the right database: its contents will be replaced by the source's.",
                },
              );
            }
            ctx.progress({ done: 0, unit: "objects", message: "clearing the target" });
            ctx.log.warn(
              { contents: describeContents(contents), reason: ours ? "partial restore" : "--replace" },
              "clearing the target before restoring",
            );
            await resetDatabase(client);
          }
          state = { dump: manifest.name, target: fingerprint, phase: "pre-data", done: [] };
          await ctx.checkpoint.set("restore", state);
        }
        const mark = (phase: Phase, pid?: number) =>
          writeMarker(root, {
            target: fingerprint,
            dump: manifest.name,
            runId: ctx.run.id,
            phase,
            ...(pid ? { pid } : {}),
          });
        await mark(state.phase);

        const lists = {
          "pre-data": (await listArchive(tools, dir, "pre-data")).filter(wanted),
          data: (await listArchive(tools, dir, "data")).filter(wanted),
          "post-data": (await listArchive(tools, dir, "post-data")).filter(wanted),
        };
        const total = lists["pre-data"].length + lists.data.length + lists["post-data"].length;
        const before: Record<Phase, number> = {
          "pre-data": 0,
          data: lists["pre-data"].length,
          "post-data": lists["pre-data"].length,
          analyze: total,
          done: total,
        };
        const current = state;
        const resumedPhase = current.phase;
        const done = new Set(current.done);
        let preCount = 0;
        const save = throttle(() => ctx.checkpoint.set("restore", { ...current, done: [...done] }));
        const show = (message: string) =>
          ctx.progress({ done: before[current.phase] + done.size, total, unit: "objects", message });

        const seconds: Record<string, number> = {};
        const restoreSection = async (sections: Section[], items: TocItem[]) => {
          const t0 = Date.now();
          try {
            await restoreItems(sections, items);
          } finally {
            seconds[sections.join("+")] = Math.round((Date.now() - t0) / 100) / 10;
          }
        };
        const restoreItems = async (sections: Section[], items: TocItem[]) => {
          if (items.length === 0) return;
          const section = sections.join("+");
          const listFile = path.join(root, `restore-${section}.list`);
          await writeFile(listFile, `${items.map((i) => i.line).join("\n")}\n`);
          const env = await libpqEnvironment(target.url, {
            appName: `${APP_PREFIX}-${section}`,
            connectTimeoutSeconds: input.connectTimeoutSeconds,
          });
          const serial = section === "pre-data";
          try {
            const res = await runTool(
              tools.pgRestore,
              [
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--verbose",
                ...sections.map((x) => `--section=${x}`),
                `--use-list=${listFile}`,
                `--jobs=${serial ? 1 : jobs}`,
                `--dbname=${dbnameConninfo(target.url)}`,
                dir,
              ],
              {
                env: env.env,
                signal: ctx.signal,
                captureStdout: false,
                onSpawn: (child) => {
                  mark(current.phase, child.pid).catch(() => undefined);
                },
                onLine: (line) => {
                  const finished = /^pg_restore: finished item (\d+) /.exec(line);
                  if (finished) {
                    done.add(Number(finished[1]));
                    save.poke();
                    show(`restoring ${section}`);
                  } else if (serial && /^pg_restore: creating /.test(line)) {
                    ctx.progress({
                      done: Math.min(before["pre-data"] + ++preCount, lists["pre-data"].length),
                      total,
                      unit: "objects",
                      message: "creating the schema",
                    });
                  }
                },
              },
            );
            if (res.code !== 0) {
              throw new CutoverError(
                ErrorCode.RestoreFailed,
                `pg_restore (${section}) failed: ${toolErrorText(res)}`,
                {
                  hint: "Fix what the error names on the target; the next attempt resumes where this one stopped.",
                },
              );
            }
          } finally {
            await env.cleanup();
          }
        };

        if (current.phase === "pre-data") {
          // pre-data is not one transaction (a large schema would exhaust the lock table), so a
          // half-created schema from an interrupted attempt is cleared and created again.
          if (!isEmpty(await inspectContents(client))) {
            ctx.log.info("clearing a partly created schema from an interrupted attempt");
            await resetDatabase(client);
          }
          show("creating the schema");
          await restoreSection(["pre-data"], lists["pre-data"]);
          Object.assign(current, { phase: "data", done: [] });
          done.clear();
          await ctx.checkpoint.set("restore", current);
          await mark("data");
        }

        if (current.phase === "data" || current.phase === "post-data") {
          // Data and post-data in one pg_restore: it builds a table's indexes and constraints as
          // soon as that table is loaded, while others still load. After an interruption, an
          // entry not checkpointed is done if its table has rows (one COPY commits whole) or its
          // index, constraint or trigger exists (one statement each); the rest run again.
          let recovered = 0;
          if (resumedPhase !== "pre-data") {
            for (const item of [...lists.data, ...lists["post-data"]]) {
              if (done.has(item.dumpId)) continue;
              if (item.desc === "TABLE DATA") {
                const table = manifest.tables[String(item.oid)];
                if (!table) {
                  throw new CutoverError(
                    ErrorCode.DumpInvalid,
                    `The dump's manifest does not name the table of entry ${item.dumpId}.`,
                    { hint: "Take a new dump with db.dump." },
                  );
                }
                if (await hasRows(client, table.name)) done.add(item.dumpId);
              } else {
                const object = manifest.objects[`${item.catalog}:${item.oid}`];
                if (object && (await objectExists(client, object))) done.add(item.dumpId);
              }
              if (done.has(item.dumpId)) recovered++;
            }
          }
          if (recovered) ctx.log.info({ recovered }, "entries completed before the interruption are kept");
          show("loading tables and building indexes");
          await restoreSection(
            ["data", "post-data"],
            [...lists.data, ...lists["post-data"]].filter((i) => !done.has(i.dumpId)),
          );
          // let a throttled checkpoint write land first, so it cannot overwrite the next phase's
          await save.flush();
          Object.assign(current, { phase: "analyze", done: [] });
          done.clear();
          await ctx.checkpoint.set("restore", current);
          await mark("analyze");
        }

        if (current.phase === "analyze") {
          if (input.analyze) {
            show("collecting planner statistics (ANALYZE)");
            const t0 = Date.now();
            await analyzeAll(target, input, jobs, manifest, ctx);
            seconds.analyze = Math.round((Date.now() - t0) / 100) / 10;
          }
          Object.assign(current, { phase: "done", done: [] });
          await ctx.checkpoint.set("restore", current);
          await mark("done");
        }
        ctx.progress({ done: total, total, unit: "objects", message: "restored" });
        const took = Math.round((Date.now() - started) / 100) / 10;
        return {
          summary: `restored ${total} entries of ${manifest.name} (${Object.keys(manifest.tables).length} tables) into ${describeUrl(target.url)} in ${took} s with ${jobs} jobs`,
          figures: {
            entries: total,
            seconds: took,
            jobs,
            dump: manifest.name,
            ...Object.fromEntries(Object.entries(seconds).map(([k, v]) => [`${k}Seconds`, v])),
          },
        };
      } finally {
        await client.end().catch(() => undefined);
      }
    },

    async verify(input): Promise<VerifyOutcome> {
      const root = dumpRoot(deps, input);
      const latest = await latestDump(root);
      if (!latest) return { ok: false, summary: `no finished dump in ${root}` };
      const marker = await readMarker(root);
      const target = await targetEndpoint(deps);
      if (!marker || marker.dump !== latest.manifest.name || marker.phase !== "done") {
        return { ok: false, summary: `the restore of ${latest.manifest.name} has not finished` };
      }
      return connect(target, { timeoutSeconds: input.connectTimeoutSeconds, readOnly: true }).then(
        async (client): Promise<VerifyOutcome> => {
          try {
            const missing: string[] = [];
            for (const t of Object.values(latest.manifest.tables)) {
              const res = await client.query<{ ok: boolean }>("SELECT to_regclass($1) IS NOT NULL AS ok", [
                t.name,
              ]);
              if (!res.rows[0]?.ok) missing.push(t.name);
            }
            let objects = 0;
            for (const o of Object.values(latest.manifest.objects)) {
              if (await objectExists(client, o)) objects++;
              else
                missing.push(
                  o.table
                    ? `${ident(o.schema)}.${ident(o.table)} ${o.kind} ${ident(o.name)}`
                    : `${o.kind} ${ident(o.schema)}.${ident(o.name)}`,
                );
            }
            const tables = Object.keys(latest.manifest.tables).length;
            return missing.length === 0
              ? {
                  ok: true,
                  summary: `all ${tables} tables and ${objects} indexes, constraints and triggers of the dump are in the target`,
                  figures: { tables, objects },
                }
              : {
                  ok: false,
                  summary: `${missing.length} objects of the dump are missing from the target: ${missing.slice(0, 5).join(", ")}`,
                  figures: { missing: missing.length },
                };
          } finally {
            await client.end().catch(() => undefined);
          }
        },
      );
    },
  });
}

type StepPlanChange = Awaited<ReturnType<StepDefinition["plan"]>>["changes"][number];

/** ANALYZE every restored table, `jobs` at a time, then the partitioned parents. */
async function analyzeAll(
  target: Endpoint,
  input: RestoreInput,
  jobs: number,
  manifest: DumpManifest,
  ctx: StepContext,
): Promise<void> {
  const queue = Object.values(manifest.tables)
    .sort((a, b) => b.bytes - a.bytes)
    .map((t) => t.name);
  const worker = async () => {
    const client = await connect(target, {
      timeoutSeconds: input.connectTimeoutSeconds,
      appName: `${APP_PREFIX}-analyze`,
    });
    try {
      for (;;) {
        ctx.signal.throwIfAborted();
        const table = queue.shift();
        if (!table) return;
        await client.query(`ANALYZE ${table}`);
      }
    } finally {
      await client.end().catch(() => undefined);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, jobs) }, worker));
  const client = await connect(target, { timeoutSeconds: input.connectTimeoutSeconds });
  try {
    const parents = await client.query<{ name: string }>(
      "SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'p'",
    );
    for (const p of parents.rows) await client.query(`ANALYZE ${p.name}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}
