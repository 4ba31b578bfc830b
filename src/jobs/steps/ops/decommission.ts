import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { z } from "zod";
import {
  describeUrl,
  type Endpoint,
  findClientTools,
  ident,
  libpqEnvironment,
  listArchive,
  runTool,
  serverVersion,
  toolErrorText,
  withClient,
} from "../../../cloud/postgres.js";
import { envVarName, type MigrationFile, requireSection } from "../../../config/schema.js";
import { kpiWindowGreen } from "../../../digest/sources.js";
import { readStabilisation } from "../../../digest/stabilisation.js";
import type { Stabilisation } from "../../../digest/types.js";
import { CutoverError, ErrorCode, notSet } from "../../../errors.js";
import type { Approval } from "../../../generated/prisma/client.js";
import { createApproval, LiveRequestExists, openRequest, readyApproval } from "../../../store/approvals.js";
import { audit } from "../../../store/audit.js";
import type { Db } from "../../../store/client.js";
import { formatBytes } from "../../../text/units.js";
import type { StepContext, StepDefinition, StepOutcome } from "../../define-step.js";
import { defineStep, type StepDeps, stateStore, stepNow } from "../../define-step.js";
import { sourceEndpoint } from "../db/endpoints.js";
import { useApprovalOrFail } from "../dns/approval-use.js";
import { openTarget } from "../storage/buckets.js";

/**
 * `decommission` (the plan's Phase 5 clean-up): once the stabilisation window after the DNS
 * cutover has passed with the KPIs green, and a second person has approved, it takes a final
 * archive of the source database (pg_dump, custom format) into the target bucket, proves the
 * archived copy restores (read back from the bucket: `pg_restore --list`, and a full restore into
 * a scratch database when one is configured), then lists what to shut down by hand. It never
 * touches the old services itself: the source stays read-only for Cutover.
 */

export const APPROVAL_ACTION = "decommission";
const DAY_MS = 86_400_000;

const Input = z.object({
  /** days since the cutover before the old services may go; default digest.stabilisationDays */
  notBeforeDays: z.number().int().min(0).max(365).optional(),
  /** refuse unless the KPIs were green over the window (needs the KPI check wired in) */
  requireKpiGreen: z.boolean().default(true),
  /** where the archive goes in the target bucket */
  prefix: z
    .string()
    .regex(/^[A-Za-z0-9!_.*'()/-]*$/, "is not a safe key prefix — use letters, digits and / - _ .")
    .default("cutover-archive/"),
  /**
   * the variable holding the URL of a PostgreSQL server where a scratch database may be created
   * to prove the archive restores in full (it is dropped afterwards); without it the check is
   * `pg_restore --list` on the copy read back from the bucket
   */
  scratchUrlEnv: envVarName.optional(),
  /** folder holding pg_dump and pg_restore; default PATH or the newest /usr/lib/postgresql/<major>/bin */
  binDir: z.string().min(1).optional(),
  connectTimeoutSeconds: z.number().int().min(1).max(120).default(10),
});
export type DecommissionInput = z.infer<typeof Input>;

export const decommission = defineStep({
  type: "decommission",
  description: "archive the source and list what to shut down, after approval",
  input: Input,
  configSections: ["source.database", "target.s3"],
  mutating: true,
  checkpoints: {
    approvalId: z.string(),
    archive: z.custom<ArchiveRecord>(),
    restoreCheck: z.custom<RestoreCheck>(),
  },
});

/** What the KPI check answers: whether the window was green, and in words what was measured. */
export interface KpiVerdict {
  green: boolean;
  detail: string;
}

export interface DecommissionDeps extends StepDeps {
  db: Db;
  now: () => Date;
  /** whether the KPIs were within target from `since` to `until` (the KPI samples: {@link decommissionDeps}) */
  kpiGreen?: (args: { since: Date; until: Date; signal: AbortSignal }) => Promise<KpiVerdict>;
}

/** What decommission derives from the step deps: the state store, the calendar, and the KPI verdict from the samples. */
export function decommissionDeps(deps: StepDeps): DecommissionDeps {
  const db = stateStore(deps, decommission.type);
  return {
    ...deps,
    db,
    now: stepNow(deps),
    kpiGreen: ({ since, until }) => kpiWindowGreen(db, deps.file, { since, until }),
  };
}

/** What a second person approves; the approval is bound to its hash. */
export interface DecommissionChange {
  environment: string;
  cutoverAt: string;
  /** user@host:port/db of the source database (never the password) */
  sourceDatabase: string;
  archive: { bucket: string; prefix: string };
  checklist: string[];
}

/** What is shut down by hand afterwards, from the file's source sections (Zeabur, Neon, R2 in the plan). */
export function shutdownChecklist(file: MigrationFile, archive?: { bucket: string; key: string }): string[] {
  const src = file.source;
  const items: string[] = [];
  if (src?.app) {
    items.push(
      `${src.app.provider ?? "The old app host"}: stop and delete the service at ${src.app.url} (the app now runs on the new host), then end its plan.`,
    );
  }
  if (src?.database) {
    items.push(
      `${src.database.provider ?? "The old database"}: ${archive ? `check the archive s3://${archive.bucket}/${archive.key} is where you expect, then ` : ""}delete the database the variable ${src.database.urlEnv} points to, and its project or plan.`,
    );
  }
  if (src?.storage) {
    items.push(
      `${src.storage.provider ?? "The old object store"}: delete the bucket \`${src.storage.bucket}\` (at ${new URL(src.storage.endpoint).host}) and revoke the API token behind ${src.storage.accessKeyIdEnv}.`,
    );
  }
  const vars = [src?.database?.urlEnv, src?.storage?.accessKeyIdEnv, src?.storage?.secretAccessKeyEnv].filter(
    (v): v is string => !!v,
  );
  if (vars.length) items.push(`Remove ${vars.join(", ")} from Cutover's environment and from the app's.`);
  items.push("Raise the DNS TTL back to its usual value if it is still at the cutover's low TTL.");
  return items;
}

function notBefore(deps: DecommissionDeps, input: DecommissionInput): number {
  return input.notBeforeDays ?? deps.file.digest.stabilisationDays;
}

/** Why the old services may not go yet (empty when they may), with the stabilisation state. */
export async function decommissionGate(
  deps: DecommissionDeps,
  input: DecommissionInput,
  signal: AbortSignal,
): Promise<{ problems: string[]; stabilisation: Stabilisation | null; kpi?: KpiVerdict }> {
  const now = deps.now();
  const days = notBefore(deps, input);
  const stab = await readStabilisation(deps.db, deps.file, now, days);
  const problems: string[] = [];
  if (!stab) {
    problems.push(
      "the DNS cutover has not happened yet (no successful `dns.cutover` run): the old services are still in use",
    );
    return { problems, stabilisation: null };
  }
  if (!stab.over) {
    problems.push(
      `the stabilisation window is not over: day ${stab.day} of ${days} since the cutover on ${stab.cutoverAt.toISOString().slice(0, 16).replace("T", " ")} UTC; it ends ${stab.endsAt.toISOString().slice(0, 16).replace("T", " ")} UTC`,
    );
  }
  let kpi: KpiVerdict | undefined;
  if (input.requireKpiGreen) {
    if (!deps.kpiGreen) {
      problems.push(
        "no KPI check is available in this build to prove the window was green — set `with: { requireKpiGreen: false }` on the step to go on without it",
      );
    } else {
      const since = stab.cutoverAt;
      const until = new Date(Math.min(now.getTime(), since.getTime() + Math.max(days, 1) * DAY_MS));
      kpi = await deps.kpiGreen({ since, until, signal });
      if (!kpi.green) problems.push(`the KPIs were not green over the window: ${kpi.detail}`);
    }
  }
  return { problems, stabilisation: stab, ...(kpi ? { kpi } : {}) };
}

/** The change a second person approves (no timestamps of its own: it must hash the same at run time). */
export function decommissionChange(
  deps: DecommissionDeps,
  input: DecommissionInput,
  stab: Stabilisation,
): DecommissionChange {
  const source = sourceEndpoint(deps);
  const s3 = requireSection(deps.file, "target.s3");
  return {
    environment: deps.file.environment,
    cutoverAt: stab.cutoverAt.toISOString(),
    sourceDatabase: describeUrl(source.url),
    archive: { bucket: s3.bucket, prefix: input.prefix },
    checklist: shutdownChecklist(deps.file),
  };
}

/**
 * Asks for the second person's approval: refuses (CutoverNotReady) while the window is open or
 * the KPIs are not green, and when a request is already pending or approved. The caller posts
 * the request with Approve / Reject buttons and stores the message ts on the approval.
 */
export async function requestDecommissionApproval(
  deps: DecommissionDeps,
  rawInput: unknown,
  by: string,
  channel: string | null,
  signal: AbortSignal = new AbortController().signal,
): Promise<{ approval: Approval; change: DecommissionChange }> {
  const input = decommission.parse(rawInput);
  const gate = await decommissionGate(deps, input, signal);
  if (gate.problems.length || !gate.stabilisation) {
    await audit(deps.db, {
      actor: by,
      action: "decommission.request",
      outcome: "refused",
      details: { problems: gate.problems },
    });
    throw new CutoverError(ErrorCode.CutoverNotReady, `Not yet: ${gate.problems.join("; ")}.`);
  }
  const now = deps.now();
  const open = await openRequest(deps.db, APPROVAL_ACTION, now);
  if (open) {
    throw new CutoverError(
      ErrorCode.BadArgument,
      `A decommission request from <@${open.requestedBy}> is already ${open.status}.`,
    );
  }
  const change = decommissionChange(deps, input, gate.stabilisation);
  let approval: Awaited<ReturnType<typeof createApproval>>;
  try {
    approval = await createApproval(
      deps.db,
      {
        action: APPROVAL_ACTION,
        change,
        requestedBy: by,
        channel,
        expiresAt: new Date(now.getTime() + deps.file.cutover.approvalExpiryMinutes * 60_000),
      },
      now,
    );
  } catch (err) {
    // a concurrent request got there first: the database holds one live request per environment
    if (!(err instanceof LiveRequestExists)) throw err;
    throw new CutoverError(
      ErrorCode.BadArgument,
      `A decommission request from <@${err.holder.requestedBy}> is already ${err.holder.status}.`,
    );
  }
  await audit(deps.db, {
    actor: by,
    action: "decommission.request",
    target: deps.file.environment,
    outcome: "ok",
    details: { approvalId: approval.id, changeHash: approval.changeHash },
  });
  return { approval, change };
}

interface ArchiveRecord {
  key: string;
  bytes: number;
  sha256: string;
  tool: string;
}

interface RestoreCheck {
  entries: number;
  tables: number;
  mode: "list" | "scratch";
  restoredTables?: number;
}

function hashingStream(hash: ReturnType<typeof createHash>): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** pg_dump -Fc of the source into `file`, read-only, with a client at least as new as the server. */
async function dumpSource(
  source: Endpoint,
  file: string,
  input: DecommissionInput,
  ctx: StepContext,
): Promise<string> {
  const server = await withClient(
    source,
    { timeoutSeconds: input.connectTimeoutSeconds, readOnly: true },
    (c) => serverVersion(c),
  );
  const tools = await findClientTools({
    ...(input.binDir ? { binDir: input.binDir } : {}),
    atLeastMajor: server.major,
  });
  if (tools.major < server.major) {
    throw new CutoverError(
      ErrorCode.ToolMissing,
      `pg_dump ${tools.version} cannot dump the source's PostgreSQL ${server.version}.`,
      { hint: `Install the PostgreSQL ${server.major} client tools or set with: binDir.` },
    );
  }
  const libpq = await libpqEnvironment(source.url, {
    appName: "cutover-decommission",
    connectTimeoutSeconds: input.connectTimeoutSeconds,
    options: "-c default_transaction_read_only=on",
  });
  try {
    ctx.progress({ done: 0, message: "dumping the source database (pg_dump -Fc)" });
    const res = await runTool(
      tools.pgDump,
      ["--format=custom", "--no-owner", "--no-privileges", "--compress=6", `--file=${file}`],
      { env: libpq.env, signal: ctx.signal, captureStdout: false },
    );
    if (res.code !== 0) {
      throw new CutoverError(ErrorCode.DumpFailed, `pg_dump of the source failed: ${toolErrorText(res)}`);
    }
  } finally {
    await libpq.cleanup();
  }
  return tools.version;
}

/** Restores the archive into a new scratch database on `scratchUrl`'s server, counts its tables, drops it. */
async function restoreIntoScratch(
  scratchUrl: string,
  from: string,
  file: string,
  input: DecommissionInput,
  ctx: StepContext,
): Promise<number> {
  const scratch: Endpoint = { side: "scratch", from, url: scratchUrl };
  const name = `cutover_restore_check_${randomBytes(4).toString("hex")}`;
  const tools = await findClientTools(input.binDir ? { binDir: input.binDir } : {});
  await withClient(scratch, { timeoutSeconds: input.connectTimeoutSeconds }, (c) =>
    c.query(`CREATE DATABASE ${ident(name)}`),
  );
  try {
    const url = new URL(scratchUrl);
    url.pathname = `/${name}`;
    const libpq = await libpqEnvironment(url.toString(), { appName: "cutover-restore-check" });
    try {
      ctx.progress({ done: 0, message: `restoring the archive into the scratch database ${name}` });
      const res = await runTool(
        tools.pgRestore,
        ["--no-owner", "--no-privileges", "--exit-on-error", `--dbname=${name}`, file],
        { env: libpq.env, signal: ctx.signal },
      );
      if (res.code !== 0) {
        throw new CutoverError(ErrorCode.DumpInvalid, `The archive does not restore: ${toolErrorText(res)}`, {
          hint: "Nothing was shut down. Look at the source database, then run the step again.",
        });
      }
    } finally {
      await libpq.cleanup();
    }
    return await withClient({ ...scratch, url: url.toString() }, {}, async (c) => {
      const r = await c.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
      );
      return Number(r.rows[0]?.n ?? 0);
    });
  } finally {
    await withClient(scratch, { timeoutSeconds: input.connectTimeoutSeconds }, (c) =>
      c.query(`DROP DATABASE IF EXISTS ${ident(name)} WITH (FORCE)`),
    ).catch(() => undefined);
  }
}

export function createDecommissionStep(stepDeps: StepDeps): StepDefinition<DecommissionInput> {
  const deps = decommissionDeps(stepDeps);
  const store = () => openTarget(deps);
  const workDir = path.join(deps.dataDir, "archives", deps.file.environment.replace(/[^A-Za-z0-9_.-]/g, "_"));

  return decommission.implement({
    async plan(input, ctx) {
      const gate = await decommissionGate(deps, input, ctx.signal);
      const s3 = requireSection(deps.file, "target.s3");
      const source = sourceEndpoint(deps);
      return {
        summary: gate.problems.length
          ? `would refuse: ${gate.problems.join("; ")}`
          : "would archive the source database, prove the archive restores and list what to shut down — after a second person's approval",
        changes: [
          {
            action: "check",
            target: "stabilisation window",
            detail: gate.stabilisation
              ? gate.stabilisation.over
                ? `over (${notBefore(deps, input)} days since the cutover)`
                : `day ${gate.stabilisation.day} of ${notBefore(deps, input)}`
              : "no cutover yet",
          },
          ...(input.requireKpiGreen
            ? [
                {
                  action: "check" as const,
                  target: "KPIs over the window",
                  detail: gate.kpi?.detail ?? "not checked",
                },
              ]
            : []),
          {
            action: "copy",
            target: `s3://${s3.bucket}/${input.prefix}`,
            detail: `pg_dump -Fc of ${describeUrl(source.url)}`,
          },
          {
            action: "check",
            target: "the archive restores",
            detail: input.scratchUrlEnv
              ? `full restore into a scratch database (${input.scratchUrlEnv})`
              : "pg_restore --list",
          },
          ...shutdownChecklist(deps.file).map((item) => ({
            action: "none" as const,
            target: "by hand afterwards",
            detail: item,
          })),
        ],
      };
    },

    async run(input, ctx) {
      // 1. the window and the KPIs
      const gate = await decommissionGate(deps, input, ctx.signal);
      if (gate.problems.length || !gate.stabilisation) {
        await audit(deps.db, {
          actor: ctx.run.requestedBy,
          action: "decommission.execute",
          outcome: "refused",
          runId: ctx.run.id,
          details: { problems: gate.problems },
        });
        throw new CutoverError(
          ErrorCode.CutoverNotReady,
          `The old services cannot be retired yet: ${gate.problems.join("; ")}.`,
          { hint: "Nothing was archived or changed. `/migrate status` shows the stabilisation day." },
        );
      }
      // 2. the second person's approval, used once (a retry after a crash goes on from the checkpoint)
      const change = decommissionChange(deps, input, gate.stabilisation);
      if (!(await ctx.checkpoint.get("approvalId"))) {
        let approvalId = ctx.run.options.approvalId;
        if (typeof approvalId !== "string") {
          const ready = await readyApproval(deps.db, APPROVAL_ACTION, deps.now());
          approvalId = ready?.id;
        }
        if (typeof approvalId !== "string") {
          throw new CutoverError(
            ErrorCode.ApprovalInvalid,
            "Retiring the old services needs a second person's approval, and there is no approved request.",
            { hint: "Ask for one with `/migrate decommission`; an approver (not you) approves it." },
          );
        }
        await useApprovalOrFail(deps.db, ctx, {
          approvalId,
          change,
          now: deps.now(),
          action: "decommission.execute",
          changed:
            "what it would do is no longer what was approved (the source, the bucket or the checklist changed)",
          nothingDone: "Nothing was archived. Ask again with `/migrate decommission`.",
        });
        await ctx.checkpoint.set("approvalId", approvalId);
        await audit(deps.db, {
          actor: ctx.run.requestedBy,
          action: "decommission.execute",
          target: deps.file.environment,
          outcome: "started",
          runId: ctx.run.id,
          details: { approvalId },
        });
      }

      // 3. the final archive, into the target bucket
      const bucket = store();
      const source = sourceEndpoint(deps);
      try {
        let archive = await ctx.checkpoint.get("archive");
        if (!archive) {
          await mkdir(workDir, { recursive: true, mode: 0o700 });
          const stamp = deps
            .now()
            .toISOString()
            .replace(/[-:]/g, "")
            .replace(/\.\d+Z$/, "Z");
          const name = `${deps.file.project}-${deps.file.environment}-final-${stamp}.dump`;
          const local = path.join(workDir, name);
          const tool = await dumpSource(source, local, input, ctx);
          const { size } = await stat(local);
          const sha256 = await sha256File(local);
          const key = `${input.prefix}${name}`;
          ctx.progress({
            done: 0,
            total: size,
            unit: "bytes",
            message: `uploading to s3://${bucket.bucket}/${key}`,
          });
          await bucket.upload(
            key,
            createReadStream(local),
            {
              contentType: "application/octet-stream",
              metadata: { sha256, "source-database": describeUrl(source.url), "pg-dump": tool },
            },
            {
              signal: ctx.signal,
              partSize: 16 * 1024 * 1024,
              queueSize: 2,
              onBytes: (done) =>
                ctx.progress({ done, total: size, unit: "bytes", message: "uploading the archive" }),
            },
          );
          await rm(local, { force: true });
          archive = { key, bytes: size, sha256, tool };
          await ctx.checkpoint.set("archive", archive);
          await audit(deps.db, {
            actor: ctx.run.requestedBy,
            action: "decommission.archive",
            target: `s3://${bucket.bucket}/${key}`,
            outcome: "ok",
            runId: ctx.run.id,
            details: { bytes: size, sha256 },
          });
        }

        // 4. prove the copy in the bucket restores: read it back, check its hash, list it, restore it
        let check = await ctx.checkpoint.get("restoreCheck");
        if (!check) {
          await mkdir(workDir, { recursive: true, mode: 0o700 });
          const back = path.join(workDir, `check-${randomBytes(4).toString("hex")}.dump`);
          try {
            ctx.progress({
              done: 0,
              total: archive.bytes,
              unit: "bytes",
              message: "reading the archive back",
            });
            const hash = createHash("sha256");
            const { body } = await bucket.get(archive.key, { signal: ctx.signal });
            await pipeline(body, hashingStream(hash), createWriteStream(back, { mode: 0o600 }));
            const sha = hash.digest("hex");
            if (sha !== archive.sha256) {
              throw new CutoverError(
                ErrorCode.DumpInvalid,
                `The archive read back from s3://${bucket.bucket}/${archive.key} differs from what was uploaded (sha256 ${sha.slice(0, 12)}… ≠ ${archive.sha256.slice(0, 12)}…).`,
              );
            }
            const tools = await findClientTools(input.binDir ? { binDir: input.binDir } : {});
            const toc = await listArchive(tools, back);
            const tables = toc.filter((t) => t.desc === "TABLE").length;
            check = { entries: toc.length, tables, mode: "list" };
            if (input.scratchUrlEnv) {
              const scratchUrl = deps.env[input.scratchUrlEnv];
              if (!scratchUrl) {
                throw notSet(input.scratchUrlEnv, {
                  hint: `Set ${input.scratchUrlEnv} to a PostgreSQL URL where Cutover may create (and drop) a scratch database, or remove scratchUrlEnv.`,
                });
              }
              const restored = await restoreIntoScratch(scratchUrl, input.scratchUrlEnv, back, input, ctx);
              if (restored < tables) {
                throw new CutoverError(
                  ErrorCode.DumpInvalid,
                  `The archive restored only ${restored} of its ${tables} tables.`,
                );
              }
              check = { ...check, mode: "scratch", restoredTables: restored };
            }
          } finally {
            await rm(back, { force: true });
          }
          await ctx.checkpoint.set("restoreCheck", check);
        }

        // 5. what to shut down by hand
        const checklist = shutdownChecklist(deps.file, { bucket: bucket.bucket, key: archive.key });
        await audit(deps.db, {
          actor: ctx.run.requestedBy,
          action: "decommission.execute",
          target: deps.file.environment,
          outcome: "ok",
          runId: ctx.run.id,
          details: { key: archive.key, sha256: archive.sha256, restoreCheck: check },
        });
        const outcome: StepOutcome = {
          summary: [
            `Final archive of ${describeUrl(source.url)}: s3://${bucket.bucket}/${archive.key} (${formatBytes(archive.bytes)}, sha256 ${archive.sha256.slice(0, 12)}…); ${
              check.mode === "scratch"
                ? `restored in full into a scratch database (${check.restoredTables} tables)`
                : `pg_restore --list reads ${check.entries} entries (${check.tables} tables)`
            }.`,
            "Shut down by hand now:",
            ...checklist.map((item, i) => `${i + 1}. ${item}`),
          ].join("\n"),
          figures: {
            archiveKey: archive.key,
            archiveBytes: archive.bytes,
            sha256: archive.sha256,
            tocEntries: check.entries,
            tables: check.tables,
            restoreCheck: check.mode,
            ...(check.restoredTables !== undefined ? { restoredTables: check.restoredTables } : {}),
            checklistItems: checklist.length,
          },
        };
        return outcome;
      } finally {
        bucket.destroy();
      }
    },

    async verify(_input, ctx) {
      const archive = await ctx.checkpoint.get("archive");
      if (!archive) return { ok: false, summary: "no archive was taken" };
      const bucket = store();
      try {
        const head = await bucket.head(archive.key, { signal: ctx.signal });
        const ok = !!head && head.size === archive.bytes && head.metadata.sha256 === archive.sha256;
        return {
          ok,
          summary: ok
            ? `s3://${bucket.bucket}/${archive.key} is there (${formatBytes(archive.bytes)}, sha256 matches)`
            : head
              ? `s3://${bucket.bucket}/${archive.key} differs from the archive taken (size or sha256)`
              : `s3://${bucket.bucket}/${archive.key} is missing`,
        };
      } finally {
        bucket.destroy();
      }
    },
  });
}
