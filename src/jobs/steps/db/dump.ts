import { access, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type pg from "pg";
import { z } from "zod";
import { liveIdentity, resolveDbAddress } from "../../../cloud/db-identity.js";
import {
  type ClientTools,
  connect,
  describeUrl,
  type Endpoint,
  findClientTools,
  folderBytes,
  installHint,
  libpqEnvironment,
  listArchive,
  runTool,
  SYSTEM_SCHEMA_SQL,
  serverVersion,
  toolErrorText,
  withClient,
} from "../../../cloud/postgres.js";
import {
  createSlotWithSnapshot,
  dropSlot,
  ensurePublication,
  getSubscription,
  listSlots,
  publishableTables,
  replicationNames,
  type SlotWithSnapshot,
} from "../../../cloud/replication.js";
import { CutoverError, ErrorCode, isCutoverError } from "../../../errors.js";
import { audit } from "../../../store/audit.js";
import { formatBytes } from "../../../text/units.js";
import type { StepContext, StepDefinition, StepDeps, StepOutcome } from "../../define-step.js";
import { defineStep } from "../../define-step.js";
import {
  type DumpManifest,
  latestDump,
  type ManifestObject,
  pruneDumps,
  readManifest,
  readMarker,
  setLatestDump,
  writeManifest,
} from "./dump-files.js";
import { sourceEndpoint, targetEndpoint } from "./endpoints.js";
import { CommonOptions, dumpRoot, jobsFor } from "./options.js";
import { stopStray } from "./stray-process.js";
import { throttle } from "./throttle.js";

const Input = CommonOptions.extend({
  /**
   * pg_dump compression: 0 (none: fastest, the dump is as large as the tables) to 9 (gzip), or a
   * method pg_dump 16+ knows ("lz4", "zstd", "gzip:6"). Default 0: pg_dump's gzip costs more time
   * than the whole copy on small machines, and the dump is read back once, locally.
   */
  compression: z
    .union([z.number().int().min(0).max(9), z.string().regex(/^(none|gzip|lz4|zstd)(:\d+)?$/)])
    .default(0),
  /** finished dumps kept in the folder (older ones are removed after a new one finishes) */
  keep: z.number().int().min(1).max(100).default(2),
});
export type DumpInput = z.infer<typeof Input>;

export const dbDump = defineStep({
  type: "db.dump",
  description: "dump the source database with pg_dump -Fd -j N in a read-only snapshot",
  input: Input,
  configSections: ["source.database"],
  mutating: true,
  stallWatch: true,
  checkpoints: { dump: z.string() },
});

/** What pg_dump is told, besides where and how many jobs: a dump that restores cleanly on RDS. */
export const DUMP_OPTIONS = [
  "--format=directory",
  // RDS has none of the source's roles (Neon's neon_superuser, …): objects belong to whoever restores
  "--no-owner",
  "--no-privileges",
  // replication objects and security labels need superuser on the target
  "--no-publications",
  "--no-subscriptions",
  "--no-security-labels",
  // RDS manages tablespaces itself
  "--no-tablespaces",
] as const;

/** Tables and post-data objects of the source, read inside the dump's snapshot. */
async function readCatalog(client: pg.Client): Promise<Pick<DumpManifest, "tables" | "objects">> {
  const tables: DumpManifest["tables"] = {};
  const res = await client.query<{
    oid: string;
    name: string;
    kind: "r" | "m";
    bytes: string;
    rows: string;
  }>(`
    SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name, c.relkind AS kind, pg_table_size(c.oid) AS bytes,
      greatest(c.reltuples, 0)::bigint AS rows
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r','m') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname !~ '^pg_toast'`);
  for (const r of res.rows)
    tables[r.oid] = { name: r.name, kind: r.kind, bytes: Number(r.bytes), rows: Number(r.rows) };

  const objects: Record<string, ManifestObject> = {};
  const USER = SYSTEM_SCHEMA_SQL("n.nspname");
  const obj = await client.query<{
    key: string;
    kind: ManifestObject["kind"];
    schema: string;
    name: string;
    tbl: string | null;
  }>(`
    SELECT 'pg_class'::regclass::oid || ':' || c.oid AS key, 'index' AS kind, n.nspname AS schema, c.relname AS name, NULL AS tbl
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('i','I') AND c.oid >= 16384 AND ${USER}
    UNION ALL
    SELECT 'pg_constraint'::regclass::oid || ':' || k.oid, 'constraint', n.nspname, k.conname, c.relname
      FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE k.oid >= 16384 AND ${USER}
    UNION ALL
    SELECT 'pg_trigger'::regclass::oid || ':' || t.oid, 'trigger', n.nspname, t.tgname, c.relname
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND ${USER}
    UNION ALL
    SELECT 'pg_rewrite'::regclass::oid || ':' || r.oid, 'rule', n.nspname, r.rulename, c.relname
      FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE r.rulename <> '_RETURN' AND r.oid >= 16384 AND ${USER}
    UNION ALL
    SELECT 'pg_policy'::regclass::oid || ':' || p.oid, 'policy', n.nspname, p.polname, c.relname
      FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    UNION ALL
    SELECT 'pg_statistic_ext'::regclass::oid || ':' || s.oid, 'statistics', n.nspname, s.stxname, NULL
      FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
    UNION ALL
    SELECT 'pg_event_trigger'::regclass::oid || ':' || e.oid, 'event-trigger', '', e.evtname, NULL
      FROM pg_event_trigger e`);
  for (const r of obj.rows) {
    objects[r.key] = {
      kind: r.kind,
      schema: r.schema,
      name: r.name,
      ...(r.tbl !== null ? { table: r.tbl } : {}),
    };
  }
  return { tables, objects };
}

/**
 * A live migration's forward slot, made for a new dump: the publication of every user table
 * (created or brought up to date), then the slot with its exported snapshot. A slot left by an
 * earlier dump that nothing subscribes to is dropped first; one that replication already uses is
 * not touched: copying again from the start needs the teardown first, said in words.
 */
async function startForwardSlot(
  deps: StepDeps,
  source: Endpoint,
  ctx: StepContext,
): Promise<SlotWithSnapshot & { publication: string }> {
  const names = replicationNames(deps.file.environment, "fwd");
  const target = await targetEndpoint(deps);
  const inUse = await withClient(target, { appName: "cutover-dump" }, (t) =>
    getSubscription(t, names.subscription),
  ).catch((err) => {
    // a target that does not answer yet has no subscription of ours either
    if (isCutoverError(err) && err.code === ErrorCode.DbConnectFailed) return null;
    throw err;
  });
  if (inUse) {
    throw new CutoverError(
      ErrorCode.BadArgument,
      `Replication from an earlier copy is running (subscription ${names.subscription} on the target): a new dump would start a second copy under it.`,
      {
        hint: "To copy again from the start, tear replication down first (the db.replication-teardown step), then run the data phase again. To go on, skip db.dump and db.restore.",
      },
    );
  }
  const publication = await withClient(source, { appName: "cutover-dump" }, async (c) => {
    const old = (await listSlots(c)).find((s) => s.name === names.slot);
    if (old) {
      await dropSlot(c, names.slot);
      ctx.log.info({ slot: names.slot }, "dropped the slot of an earlier, unused dump");
    }
    await ensurePublication(c, names.publication, await publishableTables(c));
    return names.publication;
  });
  const slot = await createSlotWithSnapshot(source.url, names.slot);
  if (deps.db) {
    await audit(deps.db, {
      actor: ctx.run.requestedBy,
      action: "replication.slot",
      target: deps.file.environment,
      outcome: "ok",
      runId: ctx.run.id,
      details: { side: "source", slot: names.slot, publication, consistentPoint: slot.consistentPoint },
    });
  }
  return { ...slot, publication };
}

/** pg_dump's `--compress` value for the option. */
function compressArg(c: DumpInput["compression"]): string {
  return typeof c === "number" ? String(c) : c === "none" ? "0" : c;
}

/** Checks a finished dump folder: readable TOC, a file for every data entry, the manifest. */
export async function checkDump(
  tools: ClientTools,
  dir: string,
): Promise<{ ok: boolean; problems: string[]; items: number; dataItems: number }> {
  const problems: string[] = [];
  const manifest = await readManifest(dir);
  if (!manifest) problems.push("the manifest (cutover-manifest.json) is missing");
  const items = await listArchive(tools, dir);
  const names = new Set(await readdir(dir));
  const data = items.filter((i) => i.desc === "TABLE DATA");
  for (const item of data) {
    const present = [".dat", ".dat.gz", ".dat.lz4", ".dat.zst"].some((ext) =>
      names.has(`${item.dumpId}${ext}`),
    );
    if (!present) problems.push(`the data file of entry ${item.dumpId} is missing`);
    if (manifest && !manifest.tables[String(item.oid)])
      problems.push(`entry ${item.dumpId} is not in the manifest`);
  }
  return {
    ok: problems.length === 0,
    problems: problems.slice(0, 10),
    items: items.length,
    dataItems: data.length,
  };
}

/** Stops a pg_dump a crashed worker left running and removes unfinished dump folders. */
async function clearPartials(root: string, log: StepContext["log"]): Promise<void> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return;
  }
  for (const name of names.filter((n) => n.endsWith(".partial.pid"))) {
    const pid = Number((await readFile(path.join(root, name), "utf8").catch(() => "")).trim());
    if (await stopStray(pid, "pg_dump"))
      log.warn({ pid }, "stopped a pg_dump left running by an earlier attempt");
    await rm(path.join(root, name), { force: true });
  }
  for (const name of names.filter((n) => n.endsWith(".partial"))) {
    log.info({ name }, "removing an unfinished dump; dumping again from the start");
    await rm(path.join(root, name), { recursive: true, force: true });
  }
}

/**
 * `db.dump`: `pg_dump -Fd -j N` of the source, in one consistent read-only snapshot that this
 * step exports and pg_dump's workers import (so the manifest it writes beside the dump describes
 * exactly the dumped catalog). A dump interrupted at any point is thrown away and taken again:
 * pg_dump cannot continue a directory dump, and a half dump must never be restored. A finished
 * dump is renamed into place atomically and recorded as the checkpoint, so a retry after that
 * point does not dump again.
 */
export function createDbDumpStep(deps: StepDeps): StepDefinition<DumpInput> {
  const tools = async (input: DumpInput, sourceMajor?: number) =>
    findClientTools({
      ...(input.binDir ? { binDir: input.binDir } : {}),
      ...(sourceMajor ? { atLeastMajor: sourceMajor } : {}),
    });

  return dbDump.implement({
    async plan(input) {
      const source = sourceEndpoint(deps);
      const client = await connect(source, { timeoutSeconds: input.connectTimeoutSeconds, readOnly: true });
      try {
        const v = await serverVersion(client);
        const size = await client.query<{ n: string; bytes: string }>(
          `SELECT count(*) AS n, coalesce(sum(pg_table_size(c.oid)), 0) AS bytes FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog','information_schema')`,
        );
        const t = await tools(input, v.major);
        const root = dumpRoot(deps, input);
        return {
          summary: `would dump ${size.rows[0]!.n} tables (${formatBytes(Number(size.rows[0]!.bytes))}) from ${describeUrl(source.url)} (PostgreSQL ${v.version}) with pg_dump ${t.version}, ${jobsFor(deps, input)} jobs, compression ${compressArg(input.compression)}`,
          changes: [
            ...(deps.file.replication
              ? [
                  {
                    action: "create" as const,
                    target: `publication ${replicationNames(deps.file.environment, "fwd").publication} and replication slot ${replicationNames(deps.file.environment, "fwd").slot} on the source`,
                    detail:
                      "a live migration: the dump is taken in the slot's snapshot, and the slot keeps the changes made after it for db.replicate (db.replication-teardown drops both)",
                  },
                ]
              : []),
            { action: "create", target: `a dump in ${root}`, detail: DUMP_OPTIONS.join(" ") },
          ],
        };
      } finally {
        await client.end().catch(() => undefined);
      }
    },

    async run(input, ctx): Promise<StepOutcome> {
      const root = dumpRoot(deps, input);
      const done = await ctx.checkpoint.get("dump");
      if (done && (await readManifest(path.join(root, done)))) {
        ctx.log.info({ dump: done }, "the dump finished in an earlier attempt");
        return { summary: `dump ${done} was already taken`, figures: { reused: true } };
      }
      const source = sourceEndpoint(deps);
      const started = Date.now();
      try {
        await mkdir(root, { recursive: true });
        await access(root, 2 /* W_OK */);
      } catch (err) {
        throw new CutoverError(
          ErrorCode.DumpFailed,
          `Cannot write dumps into ${root}: ${(err as Error).message}`,
          {
            hint: "Point `with: { dumpDir: … }` at a writable folder with room for the dump, or fix the folder's permissions.",
          },
        );
      }
      await clearPartials(root, ctx.log);

      const snapshotClient = await connect(source, {
        timeoutSeconds: input.connectTimeoutSeconds,
        readOnly: true,
        appName: "cutover-dump",
      });
      const pg = await libpqEnvironment(source.url, {
        appName: "cutover-dump",
        connectTimeoutSeconds: input.connectTimeoutSeconds,
      });
      let slot: (SlotWithSnapshot & { publication: string }) | undefined;
      const name = `dump-${new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "")}-${ctx.run.id.slice(0, 8)}`;
      const partial = path.join(root, `${name}.partial`);
      const pidFile = `${partial}.pid`;
      try {
        const v = await serverVersion(snapshotClient);
        const t = await tools(input, v.major);
        if (t.major < v.major) {
          throw new CutoverError(
            ErrorCode.ToolMissing,
            `pg_dump ${t.version} cannot dump the source's PostgreSQL ${v.version}: pg_dump must be as new as the server.`,
            { hint: installHint(v.major) },
          );
        }
        // One snapshot for everything: pg_dump's workers import it, and the manifest reads the catalog in it.
        // A live migration takes the snapshot its replication slot exports: the slot then streams
        // exactly the changes made after what the dump holds.
        if (deps.file.replication) slot = await startForwardSlot(deps, source, ctx);
        await snapshotClient.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
        if (slot) await snapshotClient.query(`SET TRANSACTION SNAPSHOT '${slot.snapshot}'`);
        const snap = await snapshotClient.query<{ id: string; at: Date }>(
          slot ? "SELECT NULL AS id, now() AS at" : "SELECT pg_export_snapshot() AS id, now() AS at",
        );
        const snapshot = slot?.snapshot ?? snap.rows[0]!.id;
        const catalog = await readCatalog(snapshotClient);
        const dataTables = Object.values(catalog.tables).filter((x) => x.kind === "r");
        const totalTables = dataTables.length;
        const estimate = dataTables.reduce((s, x) => s + x.bytes, 0);
        const jobs = jobsFor(deps, input);

        let tablesDone = 0;
        const report = throttle(async () => {
          const bytes = await folderBytes(partial);
          ctx.progress({
            done: tablesDone,
            total: totalTables,
            unit: "tables",
            activity: bytes + tablesDone,
            message: `dumping: ${formatBytes(bytes)} written (the tables hold about ${formatBytes(estimate)})`,
          });
        });
        const ticker = setInterval(() => report.poke(), 1_000);
        ticker.unref();
        let res: Awaited<ReturnType<typeof runTool>>;
        try {
          res = await runTool(
            t.pgDump,
            [
              ...DUMP_OPTIONS,
              `--jobs=${jobs}`,
              `--compress=${compressArg(input.compression)}`,
              `--snapshot=${snapshot}`,
              `--file=${partial}`,
              "--verbose",
            ],
            {
              env: pg.env,
              signal: ctx.signal,
              captureStdout: false,
              onSpawn: (child) => {
                writeFile(pidFile, String(child.pid)).catch(() => undefined);
              },
              onLine: (line) => {
                if (/^pg_dump: (finished item \d+ TABLE DATA|dumping contents of table)/.test(line)) {
                  if (line.includes("finished item") || jobs === 1) tablesDone++;
                  report.poke();
                }
              },
            },
          );
        } finally {
          clearInterval(ticker);
        }
        await snapshotClient.query("ROLLBACK").catch(() => undefined);
        // the snapshot has done its work; the slot stays and keeps the changes since
        await slot?.release();
        if (res.code !== 0) {
          const text = toolErrorText(res);
          const full = /No space left on device|could not write/i.test(text);
          throw new CutoverError(ErrorCode.DumpFailed, `pg_dump failed: ${text}`, {
            hint: full
              ? `The dump folder ${root} ran out of room: free space there or point \`with: { dumpDir: … }\` at a larger disk (or raise \`compression\`).`
              : "Check the source's log for the same time; the next attempt takes the dump again from the start.",
          });
        }
        const bytes = await folderBytes(partial);
        const manifest: DumpManifest = {
          format: 1,
          name,
          startedAt: new Date(started).toISOString(),
          finishedAt: new Date().toISOString(),
          snapshotAt: snap.rows[0]!.at.toISOString(),
          source: { where: describeUrl(source.url), version: v.version, major: v.major },
          sourceIdentity: {
            address: await resolveDbAddress(source.url),
            live: await liveIdentity(snapshotClient).catch(() => null),
          },
          client: { version: t.version, major: t.major },
          jobs,
          compression: compressArg(input.compression),
          ...catalog,
          bytes,
          seconds: Math.round((Date.now() - started) / 100) / 10,
          ...(slot
            ? {
                replication: {
                  slot: slot.slot,
                  publication: slot.publication,
                  consistentPoint: slot.consistentPoint,
                },
              }
            : {}),
        };
        await writeManifest(partial, manifest);
        await rename(partial, path.join(root, name));
        await rm(pidFile, { force: true });
        await setLatestDump(root, name);
        await ctx.checkpoint.set("dump", name);
        ctx.progress({
          done: totalTables,
          total: totalTables,
          unit: "tables",
          message: `${formatBytes(bytes)} written`,
        });
        const marker = await readMarker(root);
        const removed = await pruneDumps(root, input.keep, [
          name,
          ...(marker && marker.phase !== "done" ? [marker.dump] : []),
        ]);
        if (removed.length) ctx.log.info({ removed }, "removed older dumps");
        return {
          summary: `dumped ${totalTables} tables (${formatBytes(bytes)} on disk) from ${describeUrl(source.url)} in ${manifest.seconds} s, ${jobs} jobs, into ${path.join(root, name)}`,
          figures: { tables: totalTables, bytes, seconds: manifest.seconds, jobs, dump: name },
        };
      } finally {
        await slot?.release();
        await snapshotClient.end().catch(() => undefined);
        await pg.cleanup();
      }
    },

    async verify(input, ctx) {
      const root = dumpRoot(deps, input);
      const name = await ctx.checkpoint.get("dump");
      const found = name ? { dir: path.join(root, name) } : await latestDump(root);
      if (!found) return { ok: false, summary: `no finished dump in ${root}` };
      const t = await tools(input);
      const check = await checkDump(t, found.dir);
      return {
        ok: check.ok,
        summary: check.ok
          ? `the dump lists ${check.items} entries and holds a data file for each of its ${check.dataItems} tables`
          : `the dump in ${found.dir} is incomplete: ${check.problems.join("; ")}`,
        figures: { entries: check.items, tables: check.dataItems },
      };
    },
  });
}
