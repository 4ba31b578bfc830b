import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { CancelledError, CutoverError, describeError, ErrorCode } from "../../../errors.js";
import { verificationView } from "../../../views/verification.js";
import type { StepContext, StepDefinition, StepDeps, StepOutcome, VerifyOutcome } from "../../define-step.js";
import {
  type CheckpointSchemas,
  type ContextOf,
  defineStep,
  type StepBehaviour,
  type StepContextOf,
  type StepKind,
} from "../../define-step.js";
import {
  type CheckRow,
  headline,
  reportFigures,
  reportText,
  type VerificationKind,
  type VerificationReport,
} from "./report.js";

/**
 * The frame of the three verification steps (verify.functional, verify.performance,
 * verify.reliability): their common options, a check and the row it becomes (its error a failing
 * row that says what to look at), and the report `run` keeps for `verify` and saves. The report's
 * shape and headline are in ./report.ts, which views/verification.ts renders.
 */

/** Options every verification step accepts in its `with:` block. */
export const VerifyWith = {
  /** SSH to this address instead of the Lightsail static IP */
  address: z.string().min(1).optional(),
  connectTimeoutSeconds: z.number().min(0.1).max(300).default(20),
  /** fetch objects through this base URL instead of the CloudFront domain (a rehearsal's stand-in) */
  cdnBaseUrl: z.url({ protocol: /^https?$/ }).optional(),
  /** run only the checks with these ids */
  only: z.array(z.string().min(1)).min(1).optional(),
};

export function runOutcome(report: VerificationReport): StepOutcome {
  return { summary: headline(report), figures: reportFigures(report) };
}

export function verifyOutcome(report: VerificationReport): VerifyOutcome {
  return { ok: report.ok, summary: reportText(report), figures: reportFigures(report) };
}

/** Writes the report as JSON under the data folder's reports/ (for the record; never a secret in it). */
export async function saveReport(dataDir: string, env: string, report: VerificationReport): Promise<string> {
  // a leading dot would let "." or ".." name the reports folder itself or the data folder
  const dir = path.join(dataDir, "reports", env.replace(/[^A-Za-z0-9_.-]/g, "_").replace(/^\./, "_"));
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `verify-${report.kind}-${report.runId.slice(0, 8)}.json`);
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  return file;
}

/** A check to run: its row is built by `measure`, whose errors become a failing row. */
export interface Check {
  id: string;
  title: string;
  target: string;
  /** the hint used when `measure` throws, before the error's own words */
  hint?: string;
  measure(): Promise<Omit<CheckRow, "id" | "title" | "target"> & { target?: string }>;
}

/** What a check's `measure` gives: its row, less the id, title and target the check names. */
export type MeasuredRow = Awaited<ReturnType<Check["measure"]>>;

/** A measured row: it passes when nothing is wrong, and otherwise names what to look at, joined. */
export function judged(
  measured: string,
  problems: readonly string[],
  figures: CheckRow["figures"],
): MeasuredRow {
  return {
    measured,
    status: problems.length ? "fail" : "pass",
    ...(problems.length ? { hint: problems.join("; ") } : {}),
    figures,
  };
}

/** A row for something not configured or opted out of. */
export function skipped(id: string, title: string, why: string, hint?: string): Check {
  return {
    id,
    title,
    target: "—",
    measure: async () => ({ measured: why, status: "skip", figures: {}, ...(hint ? { hint } : {}) }),
  };
}

/**
 * Runs the checks one after another (they measure latency: running them side by side would skew
 * each other's figures), reporting progress. A check that throws becomes a failing row naming
 * the error and what to look at; a cancel stops the whole step.
 */
export async function runChecks(
  kind: VerificationKind,
  checks: Check[],
  ctx: StepContext,
  extra: { baseUrl?: string; only?: string[] | undefined } = {},
): Promise<VerificationReport> {
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const selected = extra.only
    ? checks.filter((c) => extra.only!.some((o) => c.id === o || c.id.startsWith(`${o}.`)))
    : checks;
  if (extra.only && selected.length === 0) {
    throw new CutoverError(
      ErrorCode.BadArgument,
      `verify.${kind}: \`only\` names no check of this step — its checks are ${checks.map((c) => `\`${c.id}\``).join(", ") || "none"}.`,
    );
  }
  const rows: CheckRow[] = [];
  for (const [i, c] of selected.entries()) {
    ctx.signal.throwIfAborted();
    ctx.progress({ done: i, total: selected.length, unit: "checks", message: c.title });
    try {
      const r = await c.measure();
      rows.push({ id: c.id, title: c.title, ...r, target: r.target ?? c.target });
    } catch (err) {
      if (ctx.signal.aborted || err instanceof CancelledError) throw err;
      ctx.log.warn({ err, check: c.id }, "verification check failed");
      const said = describeError(err).replace(/\s*\n\s*/g, " ");
      rows.push({
        id: c.id,
        title: c.title,
        target: c.target,
        measured: "error",
        status: "fail",
        hint: c.hint ? `${said} — ${c.hint}` : said,
        figures: {},
      });
    }
  }
  ctx.progress({ done: selected.length, total: selected.length, unit: "checks", message: "done" });
  return {
    kind,
    runId: ctx.run.id,
    startedAt,
    ms: Math.round(performance.now() - started),
    ...(extra.baseUrl ? { baseUrl: extra.baseUrl } : {}),
    rows,
    ok: rows.every((r) => r.status !== "fail"),
  };
}

/**
 * The end of a verify step's `run`: the report kept for `verify` (checkpoint) and for later
 * (JSON under the data directory), posted into the run's thread as a table, and the outcome.
 */
async function finishRun(
  deps: StepDeps,
  ctx: ContextOf<{ checkpoints: typeof VERIFY_CHECKPOINTS }>,
  report: VerificationReport,
): Promise<StepOutcome> {
  await ctx.checkpoint.set("report", report);
  await saveReport(deps.dataDir, deps.file.environment, report).catch(() => undefined);
  ctx.report?.(verificationView(report));
  return runOutcome(report);
}

/** The report measured by `run` in this run, or undefined (then `verify` measures again). */
async function keptReport(
  ctx: ContextOf<{ checkpoints: typeof VERIFY_CHECKPOINTS }>,
): Promise<VerificationReport | undefined> {
  const kept = await ctx.checkpoint.get("report");
  return kept?.runId === ctx.run.id ? kept : undefined;
}

/** The checkpoint every verification step keeps: the report `run` measured, for `verify`. */
export const VERIFY_CHECKPOINTS = { report: z.custom<VerificationReport>() };

/**
 * Declares the verification step `verify.<kind>`: the options every verification step accepts
 * ({@link VerifyWith}) and its own, read-only, no config section required, and the report kept as
 * a checkpoint beside any of its own. What sets each apart is its input, time limit and checkpoints.
 *
 * @example export const verifyPerformance = defineVerificationStep("performance", { input: { cdnConcurrency: z.number() }, timeLimit: 3600 });
 */
export function defineVerificationStep<
  E extends z.ZodRawShape,
  C extends CheckpointSchemas = Record<never, z.ZodType>,
>(kind: VerificationKind, own: { input: E; timeLimit: number; checkpoints?: C }) {
  return defineStep({
    type: `verify.${kind}`,
    description: `run the ${kind} verification checks`,
    input: z.strictObject({ ...VerifyWith, ...own.input }),
    configSections: [],
    timeLimit: own.timeLimit,
    mutating: false,
    // TypeScript types the spread of an optional generic as {}: the cast keeps the step's own keys
    checkpoints: { ...VERIFY_CHECKPOINTS, ...own.checkpoints } as typeof VERIFY_CHECKPOINTS & C,
  });
}

/**
 * A verification step from what sets it apart (its declaration, plan and how it measures): it
 * changes nothing; `run` measures and keeps the report (see finishRun), `verify` reads that
 * report back in the same run and measures again only without one.
 */
export function verificationStep<S extends z.ZodType, C extends typeof VERIFY_CHECKPOINTS>(
  deps: StepDeps,
  kind: StepKind<S, C>,
  spec: Pick<StepBehaviour<z.infer<S>, C>, "plan" | "check"> & {
    measure(input: z.infer<S>, ctx: StepContextOf<C>): Promise<VerificationReport>;
  },
): StepDefinition<z.infer<S>> {
  const { measure, ...rest } = spec;
  return kind.implement({
    ...rest,
    async run(input, ctx) {
      return finishRun(deps, ctx, await measure(input, ctx));
    },
    async verify(input, ctx) {
      return verifyOutcome((await keptReport(ctx)) ?? (await measure(input, ctx)));
    },
  });
}
