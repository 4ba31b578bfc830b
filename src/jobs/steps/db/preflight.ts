import { access, stat, statfs } from "node:fs/promises";
import path from "node:path";
import type pg from "pg";
import { z } from "zod";
import {
  connect,
  describeContents,
  describeUrl,
  type Endpoint,
  findClientTools,
  inspectContents,
  installHint,
  isEmpty,
  majorOf,
  runTool,
  serverVersion,
} from "../../../cloud/postgres.js";
import { CutoverError, ErrorCode, isCutoverError } from "../../../errors.js";
import { formatBytes } from "../../../text/units.js";
import type { StepContext, StepDefinition, StepDeps } from "../../define-step.js";
import { defineStep } from "../../define-step.js";
import { holdsPartialRestore, readMarker } from "./dump-files.js";
import { sourceEndpoint, targetEndpoint } from "./endpoints.js";
import { refuseSourceAsTarget } from "./identity.js";
import { CommonOptions, dumpRoot } from "./options.js";
import { connectionChecks, replicationChecks } from "./replication-checks.js";

const Input = CommonOptions.extend({
  /** pg_dump compression the dump will use, for the disk estimate (see db.dump); default db.dump's */
  compression: z.union([z.number().int().min(0).max(9), z.string()]).optional(),
});
export type PreflightInput = z.infer<typeof Input>;

export const dbPreflight = defineStep({
  type: "db.preflight",
  description: "check both databases, client tools, extensions, sizes and disk before copying",
  input: Input,
  configSections: ["source.database", "target.rds"],
  timeLimit: 900,
  mutating: false,
});

export type CheckStatus = "ok" | "warn" | "fail" | "skip";

/** One line of the preflight checklist. */
export interface CheckItem {
  name: string;
  status: CheckStatus;
  detail: string;
}

export interface PreflightReport {
  ok: boolean;
  items: CheckItem[];
  figures: Record<string, number | string | boolean>;
}

const ICON: Record<CheckStatus, string> = { ok: "✅", warn: "⚠️", fail: "❌", skip: "⏭️" };

/** The checklist as text lines, for Slack (mrkdwn) and the terminal alike. */
export function formatChecklist(items: CheckItem[]): string {
  return items.map((i) => `${ICON[i.status]} *${i.name}*: ${i.detail}`).join("\n");
}

interface Side {
  ep?: Endpoint;
  client?: pg.Client;
  version?: { version: string; major: number };
}

async function open(
  get: () => Endpoint | Promise<Endpoint>,
  timeoutSeconds: number,
): Promise<Side & { problem?: string }> {
  let ep: Endpoint;
  try {
    ep = await get();
  } catch (err) {
    return { problem: isCutoverError(err) ? `${err.message}${err.hint ? ` ${err.hint}` : ""}` : String(err) };
  }
  try {
    const client = await connect(ep, { timeoutSeconds, readOnly: true, appName: "cutover-preflight" });
    return { ep, client, version: await serverVersion(client) };
  } catch (err) {
    return { ep, problem: isCutoverError(err) ? err.message : String(err) };
  }
}

/** The nearest existing folder at or above p. */
async function existingAncestor(p: string): Promise<string> {
  let cur = path.resolve(p);
  for (;;) {
    try {
      await stat(cur);
      return cur;
    } catch {
      const up = path.dirname(cur);
      if (up === cur) return cur;
      cur = up;
    }
  }
}

/**
 * Runs every check and returns the checklist. Read-only: it opens read-only sessions on both
 * databases and looks at the dump folder without writing to it.
 */
export async function runPreflight(
  deps: StepDeps,
  input: PreflightInput,
  ctx: StepContext,
): Promise<PreflightReport> {
  const items: CheckItem[] = [];
  const figures: PreflightReport["figures"] = {};
  const timeout = input.connectTimeoutSeconds;
  const [source, target] = await Promise.all([
    open(() => sourceEndpoint(deps), timeout),
    open(() => targetEndpoint(deps), timeout),
  ]);
  try {
    for (const [label, side] of [
      ["Source", source],
      ["Target", target],
    ] as const) {
      items.push(
        side.client
          ? {
              name: `${label} connection`,
              status: "ok",
              detail: `${describeUrl(side.ep!.url)}, PostgreSQL ${side.version!.version}`,
            }
          : { name: `${label} connection`, status: "fail", detail: side.problem ?? "not reachable" },
      );
    }

    // Cutover never writes to the source: a target that is the source fails first, in words.
    if (source.ep && target.ep) {
      try {
        await refuseSourceAsTarget(deps, target.ep, { timeoutSeconds: timeout });
        items.push({
          name: "Target is not the source",
          status: "ok",
          detail: "a different server or database",
        });
      } catch (err) {
        items.push({
          name: "Target is not the source",
          status: "fail",
          detail: isCutoverError(err) ? `${err.message} ${err.hint ?? ""}`.trim() : String(err),
        });
      }
    }

    // pg_dump cannot dump a server newer than itself.
    try {
      const tools = await findClientTools({
        ...(input.binDir ? { binDir: input.binDir } : {}),
        ...(source.version ? { atLeastMajor: source.version.major } : {}),
      });
      const restoreVersion = /(\d+(?:\.\d+)*)/.exec(
        (await runTool(tools.pgRestore, ["--version"], { env: {}, timeoutMs: 10_000 }).catch(() => undefined))
          ?.stdout ?? "",
      )?.[1];
      figures.pgDump = tools.version;
      if (!restoreVersion) {
        items.push({
          name: "Client tools",
          status: "fail",
          detail: `pg_restore was not found next to ${tools.pgDump}. ${installHint(tools.major)}`,
        });
      } else if (source.version && tools.major < source.version.major) {
        items.push({
          name: "Client tools",
          status: "fail",
          detail: `pg_dump ${tools.version} cannot dump the source's PostgreSQL ${source.version.version}: pg_dump must be at least as new as the server. ${installHint(source.version.major)}`,
        });
      } else if (majorOf(restoreVersion) !== tools.major) {
        items.push({
          name: "Client tools",
          status: "fail",
          detail: `pg_dump ${tools.version} and pg_restore ${restoreVersion} differ: use one installation (with: binDir).`,
        });
      } else {
        items.push({
          name: "Client tools",
          status: "ok",
          detail: `pg_dump and pg_restore ${tools.version} (${tools.pgDump})${source.version ? `, new enough for PostgreSQL ${source.version.major}` : ""}`,
        });
      }
    } catch (err) {
      items.push({
        name: "Client tools",
        status: "fail",
        detail: isCutoverError(err) ? `${err.message} ${err.hint ?? ""}`.trim() : String(err),
      });
    }

    if (source.version && target.version) {
      const older = target.version.major < source.version.major;
      items.push({
        name: "Server versions",
        status: older ? "warn" : "ok",
        detail: older
          ? `the target runs PostgreSQL ${target.version.version}, older than the source's ${source.version.version}: pg_dump does not promise that a dump restores into an older major; choose engineVersion ${source.version.major} or newer for RDS`
          : `source ${source.version.version} → target ${target.version.version}`,
      });
    }

    // Extensions the source uses and whether the target can create them.
    if (source.client) {
      const used = await source.client.query<{ name: string; version: string }>(
        "SELECT extname AS name, extversion AS version FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1",
      );
      figures.extensions = used.rows.map((r) => r.name).join(",");
      if (target.client) {
        const avail = await target.client.query<{ name: string }>("SELECT name FROM pg_available_extensions");
        const have = new Set(avail.rows.map((r) => r.name));
        const missing = used.rows.filter((r) => !have.has(r.name)).map((r) => r.name);
        items.push(
          missing.length
            ? {
                name: "Extensions",
                status: "fail",
                detail: `the source uses ${missing.join(", ")}, which the target cannot create: on RDS see \`SHOW rds.extensions\` (and the parameter group's shared_preload_libraries)`,
              }
            : {
                name: "Extensions",
                status: "ok",
                detail: used.rowCount
                  ? `${used.rows.map((r) => `${r.name} ${r.version}`).join(", ")}: all available on the target`
                  : "the source uses none",
              },
        );
      } else {
        items.push({
          name: "Extensions",
          status: "skip",
          detail: `not checked: the target is not reachable (source uses ${used.rows.map((r) => r.name).join(", ") || "none"})`,
        });
      }
    }

    // Size per schema and the largest tables.
    let estimate = 0;
    if (source.client) {
      const schemas = await source.client.query<{ schema: string; bytes: string; tables: string }>(`
        SELECT n.nspname AS schema, sum(pg_total_relation_size(c.oid)) AS bytes, count(*) AS tables
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r','m') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname !~ '^pg_toast'
        GROUP BY 1 ORDER BY 2 DESC`);
      const top = await source.client.query<{ name: string; bytes: string; rows: string }>(`
        SELECT format('%I.%I', n.nspname, c.relname) AS name, pg_total_relation_size(c.oid) AS bytes, greatest(c.reltuples, 0)::bigint AS rows
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r','m') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname !~ '^pg_toast'
        ORDER BY 2 DESC LIMIT 5`);
      const heap = await source.client.query<{ bytes: string }>(`
        SELECT coalesce(sum(pg_table_size(c.oid)), 0) AS bytes FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog','information_schema')`);
      estimate = Number(heap.rows[0]!.bytes);
      const total = schemas.rows.reduce((s, r) => s + Number(r.bytes), 0);
      figures.sourceBytes = total;
      figures.sourceTables = schemas.rows.reduce((s, r) => s + Number(r.tables), 0);
      items.push({
        name: "Source size",
        status: "ok",
        detail: `${formatBytes(total)} in ${schemas.rowCount} schema${schemas.rowCount === 1 ? "" : "s"} (${schemas.rows
          .map((r) => `${r.schema} ${formatBytes(Number(r.bytes))} in ${r.tables} tables`)
          .join(
            ", ",
          )}); largest: ${top.rows.map((r) => `${r.name} ${formatBytes(Number(r.bytes))}, ~${r.rows} rows`).join("; ")}`,
      });
    }

    // Room for the dump.
    const root = dumpRoot(deps, input);
    const existing = await existingAncestor(root);
    try {
      const st = await stat(existing);
      if (!st.isDirectory())
        throw Object.assign(new Error(`${existing} is a file, not a folder`), { code: "ENOTDIR" });
      await access(existing, 2 /* W_OK */);
      const fs = await statfs(existing);
      const free = Number(fs.bavail) * Number(fs.bsize);
      const compression = input.compression ?? 0;
      // an uncompressed directory dump is about as large as the tables' heap and TOAST
      const needed = Math.ceil(estimate * (compression === 0 || compression === "none" ? 1.1 : 0.6));
      figures.dumpFreeBytes = free;
      figures.dumpNeededBytes = needed;
      items.push(
        free < needed
          ? {
              name: "Dump folder",
              status: "fail",
              detail: `${root} has ${formatBytes(free)} free, the dump needs about ${formatBytes(needed)}: free space there, point \`with: { dumpDir: … }\` at a larger disk, or raise \`compression\``,
            }
          : {
              name: "Dump folder",
              status: "ok",
              detail: `${root}: ${formatBytes(free)} free, the dump needs about ${formatBytes(needed)}`,
            },
      );
    } catch (err) {
      items.push({
        name: "Dump folder",
        status: "fail",
        detail: `cannot write dumps into ${root}: ${(err as Error).message} — point \`with: { dumpDir: … }\` at a writable folder`,
      });
    }

    // The target must be empty, or the operator confirmed --replace.
    if (target.client) {
      const contents = await inspectContents(target.client);
      figures.targetEmpty = isEmpty(contents);
      const marker = await readMarker(root);
      if (isEmpty(contents)) {
        items.push({
          name: "Target is empty",
          status: "ok",
          detail: `no tables, views, functions or types${contents.extensions.length ? ` (extensions present: ${contents.extensions.join(", ")})` : ""}`,
        });
      } else if (holdsPartialRestore(marker, target.ep!.url)) {
        items.push({
          name: "Target is empty",
          status: "warn",
          detail: `it holds Cutover's unfinished restore of ${marker!.dump} (run ${marker!.runId}); db.restore resumes or redoes it`,
        });
      } else if (ctx.run.options.replace === true) {
        items.push({
          name: "Target is empty",
          status: "warn",
          detail: `it has ${describeContents(contents)}; --replace was confirmed, so db.restore will clear it first`,
        });
      } else {
        items.push({
          name: "Target is empty",
          status: "fail",
          detail: `it has ${describeContents(contents)}${contents.examples.length ? ` (${contents.examples.slice(0, 3).join(", ")}…)` : ""}: rerun with \`--replace\` after checking it is the right database`,
        });
      }
    } else {
      items.push({
        name: "Target is empty",
        status: "skip",
        detail: "not checked: the target is not reachable",
      });
    }
    // A live migration: what logical replication needs on both sides, and what it does not carry.
    if (deps.file.replication && source.client && target.client) {
      items.push(...(await replicationChecks(source.client, target.client, deps.file.replication)));
      items.push(
        ...(await connectionChecks(deps, source.ep!, target.ep!, deps.file.replication, {
          timeoutSeconds: timeout,
        })),
      );
    }
  } finally {
    await source.client?.end().catch(() => undefined);
    await target.client?.end().catch(() => undefined);
  }
  const failed = items.filter((i) => i.status === "fail").length;
  figures.failed = failed;
  figures.warnings = items.filter((i) => i.status === "warn").length;
  return { ok: failed === 0, items, figures };
}

/**
 * `db.preflight`: read-only checks before copying, reported as one checklist: both databases
 * reachable (which side failed and why), server and client versions, extensions, the source's
 * size, room for the dump, and an empty target (or a confirmed `--replace`).
 */
export function createDbPreflightStep(deps: StepDeps): StepDefinition<PreflightInput> {
  const withDumpCompression = (input: PreflightInput): PreflightInput => {
    if (input.compression !== undefined) return input;
    for (const phase of deps.file.runbook.phases)
      for (const step of phase.steps)
        if (
          step.uses === "db.dump" &&
          (typeof step.with?.compression === "number" || typeof step.with?.compression === "string")
        )
          return { ...input, compression: step.with.compression as number | string };
    return input;
  };
  return dbPreflight.implement({
    async plan(input, ctx) {
      const report = await runPreflight(deps, withDumpCompression(input), ctx);
      return {
        summary: `preflight: ${report.items.filter((i) => i.status === "ok").length} ok, ${report.figures.warnings} warnings, ${report.figures.failed} failed`,
        changes: report.items.map((i) => ({
          action: "check" as const,
          target: i.name,
          detail: `${ICON[i.status]} ${i.detail}`,
        })),
      };
    },
    async run(input, ctx) {
      const report = await runPreflight(deps, withDumpCompression(input), ctx);
      // the checklist, whole, in the run's thread: the summary line alone hides the warnings
      ctx.report?.({
        text: `*Database preflight*: ${report.ok ? "ready to copy" : `${report.figures.failed} to fix before copying`}\n${formatChecklist(report.items)}`,
      });
      if (!report.ok) {
        throw new CutoverError(
          ErrorCode.PreflightFailed,
          // the failing lines first, whole: a view that shortens the message keeps what to fix
          `Preflight found ${report.figures.failed} problem${report.figures.failed === 1 ? "" : "s"}:\n${formatChecklist(
            report.items.filter((i) => i.status === "fail"),
          )}\n\nThe other checks:\n${formatChecklist(report.items.filter((i) => i.status !== "fail"))}`,
          { details: { items: report.items }, hint: "Fix the ❌ lines, then run the step again." },
        );
      }
      return { summary: `all checks passed:\n${formatChecklist(report.items)}`, figures: report.figures };
    },
    async verify(input) {
      // the checklist was the work; what must still hold before the copy is that both sides answer
      const problems: string[] = [];
      for (const get of [() => sourceEndpoint(deps), () => targetEndpoint(deps)]) {
        const side = await open(get, input.connectTimeoutSeconds);
        if (side.client) await side.client.end().catch(() => undefined);
        else problems.push(side.problem ?? "not reachable");
      }
      return {
        ok: problems.length === 0,
        summary: problems.length === 0 ? "both databases still answer" : problems.join("; "),
      };
    },
  });
}
