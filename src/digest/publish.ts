import type { Logger } from "pino";
import type { RenderedChart } from "../charts/render.js";
import { type ImageUploader, type PngFile, slackErrorText } from "../cloud/slack-files.js";
import type { MigrationFile } from "../config/schema.js";
import { describeError } from "../errors.js";
import type { Db } from "../store/client.js";
import type { Reply } from "../views/blocks.js";
import { composeDigest } from "./compose.js";
import { readProgress } from "./progress.js";
import { readStabilisation } from "./stabilisation.js";
import { type CostDigestPart, type DigestInputs, isUnavailable, type KpiDigestPart } from "./types.js";

/**
 * Where the KPI and cost figures come from. The deps factory wires the KPI store and the Cost
 * Explorer adapter here; a source that throws or takes too long becomes `{ unavailable }`, and
 * the digest still posts.
 */
export interface DigestSources {
  /** the KPIs of the day before `day` (local to `timezone`) and the 7 days up to it */
  kpi(args: { day: string; timezone: string; now: Date; signal: AbortSignal }): Promise<KpiDigestPart>;
  /** cost month to date, the forecast and the daily series */
  cost(args: { now: Date; signal: AbortSignal }): Promise<CostDigestPart>;
  /** a live migration's replication, one line per direction (absent: no replication section) */
  replication?(args: { signal: AbortSignal }): Promise<string[]>;
}

/** The Slack calls a digest makes: one message, with the charts attached when possible. */
export interface DigestSlack {
  uploader: ImageUploader;
  /** chat.postMessage; returns the message ts */
  post(channel: string, reply: Reply): Promise<string>;
}

export interface DigestDeps {
  db: Db;
  file: MigrationFile;
  log: Logger;
  slack: DigestSlack;
  sources: DigestSources;
  /** how long each source may take (default 60 s) */
  sourceTimeoutMs?: number;
}

export interface BuiltDigest {
  inputs: DigestInputs;
  reply: Reply;
  charts: PngFile[];
}

export interface PublishedDigest {
  channel: string;
  /** the message's ts when it was posted with chat.postMessage (the file flow does not return one) */
  ts?: string | undefined;
  fileIds: string[];
  /** set when the charts could not be attached: the message says so too */
  chartsNote?: string | undefined;
}

/** The channel digests go to: digest.channel, else slack.channel. */
export function digestChannel(file: MigrationFile): string {
  return file.digest.channel ?? file.slack.channel;
}

async function bounded<T extends object>(
  what: string,
  ms: number,
  fn: (signal: AbortSignal) => Promise<T | { unavailable: string }>,
): Promise<T | { unavailable: string }> {
  const controller = new AbortController();
  const limit = ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<{ unavailable: string }>((resolve) => {
    timer = setTimeout(() => {
      controller.abort(new Error(`${what} took longer than ${limit}`));
      resolve({ unavailable: `${what} did not answer within ${limit}` });
    }, ms);
  });
  try {
    return await Promise.race([
      fn(controller.signal).catch((err: unknown) => ({ unavailable: describeError(err) })),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const short = (s: string, n = 200) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

async function charts(inputs: DigestInputs): Promise<PngFile[]> {
  const { kpi, cost, day } = inputs;
  // The renderer (vega, vega-lite, resvg and the fonts: about 15 MB and 0.5 s) loads for the
  // first digest, not with the bot.
  const [{ renderCostChart }, { renderKpiChart }, { placeholderPng }] = await Promise.all([
    import("../charts/cost-chart.js"),
    import("../charts/kpi-chart.js"),
    import("../charts/render.js"),
  ]);
  let costChart: RenderedChart;
  if (isUnavailable(cost)) {
    costChart = placeholderPng("Daily cost", `Cost unavailable: ${short(cost.unavailable)}`);
  } else {
    costChart = await renderCostChart({
      month: cost.month,
      currency: cost.currency,
      daily: cost.daily,
      monthlyTarget: cost.target,
      budget: cost.budget,
      forecast: cost.forecast,
    });
  }
  let kpiChart: RenderedChart;
  if (isUnavailable(kpi)) {
    kpiChart = placeholderPng("Latency and availability", `KPIs unavailable: ${short(kpi.unavailable)}`);
  } else {
    kpiChart = await renderKpiChart({
      days: kpi.daily,
      targets: { availabilityPct: kpi.targets.availabilityPct, avgMs: kpi.targets.avgMs },
      subject: kpi.subject,
    });
  }
  return [
    {
      filename: `cost-${day}.png`,
      title: `Daily cost this month (${day})`,
      png: costChart.png,
      altText: "Daily cost this month with the monthly target and budget lines",
    },
    {
      filename: `kpi-${day}.png`,
      title: `Latency and availability, last 7 days (${day})`,
      png: kpiChart.png,
      altText: "Average and p95 latency and availability per day for the last 7 days",
    },
  ];
}

/** Gathers everything for the digest of `day` and composes it (no Slack call). */
export async function buildDigest(deps: DigestDeps, day: string, now: Date): Promise<BuiltDigest> {
  const { db, file } = deps;
  const ms = deps.sourceTimeoutMs ?? 60_000;
  const timezone = file.digest.timezone;
  const stabilisation = await readStabilisation(db, file, now);
  const replicationSource = deps.sources.replication;
  const [progress, kpi, cost, replication] = await Promise.all([
    readProgress(db, file, stabilisation, now),
    bounded("the KPI store", ms, (signal) => deps.sources.kpi({ day, timezone, now, signal })),
    bounded("Cost Explorer", ms, (signal) => deps.sources.cost({ now, signal })),
    replicationSource
      ? replicationSource({ signal: AbortSignal.timeout(ms) }).catch((err: unknown) => [
          `could not be read: ${describeError(err)}`,
        ])
      : Promise.resolve(undefined),
  ]);
  const inputs: DigestInputs = {
    project: file.project,
    environment: file.environment,
    day,
    timezone,
    now,
    progress,
    stabilisation,
    kpi,
    cost,
    ...(replication ? { replication } : {}),
  };
  let pngs: PngFile[] = [];
  try {
    pngs = await charts(inputs);
  } catch (err) {
    inputs.chartsNote = `The charts could not be drawn: ${describeError(err)}`;
    deps.log.warn({ err: describeError(err) }, "digest charts failed");
  }
  return { inputs, reply: composeDigest(inputs), charts: pngs };
}

/**
 * Posts the digest of `day` as ONE message: the blocks with both charts attached through the
 * external upload flow. If the upload is refused (no files:write scope, Slack down), the same
 * blocks are posted without the charts, saying why.
 */
export async function publishDigest(deps: DigestDeps, day: string, now: Date): Promise<PublishedDigest> {
  const channel = digestChannel(deps.file);
  const built = await buildDigest(deps, day, now);
  if (built.charts.length) {
    try {
      const { fileIds } = await deps.slack.uploader.uploadPngs(
        { channel, blocks: built.reply.blocks },
        built.charts,
      );
      return { channel, fileIds };
    } catch (err) {
      const note = `The charts could not be attached: ${slackErrorText(err)}`;
      deps.log.warn({ err: note, channel }, "digest chart upload failed; posting without charts");
      built.inputs.chartsNote = note;
      const ts = await deps.slack.post(channel, composeDigest(built.inputs));
      return { channel, ts, fileIds: [], chartsNote: note };
    }
  }
  const ts = await deps.slack.post(channel, built.reply);
  return { channel, ts, fileIds: [], chartsNote: built.inputs.chartsNote };
}
