import { createHash } from "node:crypto";
import type { PgBoss } from "pg-boss";
import type { Logger } from "pino";
import type { Endpoint } from "../cloud/postgres.js";
import type { ProbeOptions, ProbeResult } from "../cloud/probe.js";
import type { MigrationFile } from "../config/schema.js";
import { describeError } from "../errors.js";
import { targetEndpoint } from "../jobs/steps/db/endpoints.js";
import type { Ports } from "../ports.js";
import type { Db } from "../store/client.js";
import { claimPrune, monitoringState, recordRound } from "../store/kpi.js";
import type { Reply } from "../views/blocks.js";
import { kpiAlertView } from "../views/kpi.js";
import {
  type AlertTransition,
  applyAlertStates,
  downChecks,
  kpiChecks,
  PERIOD_MS,
  periodsNeeded,
  revertAlertState,
} from "./alerts.js";
import {
  createDatabaseTimer,
  type DatabaseTimer,
  type KpiSampleRow,
  pruneSamples,
  sampleRound,
  storeSamples,
} from "./sampler.js";
import { type KpiSummary, kpiSummary } from "./summary.js";

/** The pg-boss queue the probe rounds travel on. */
export const KPI_QUEUE = "cutover-kpi-probe";
/** Samples are pruned at most this often. */
const PRUNE_EVERY_MS = 3600_000;

/** Whether the file gives the monitor anything to probe: endpoints, or the target database. */
export function hasProbes(file: MigrationFile): boolean {
  return file.kpis.probes.endpoints.length > 0 || probesDatabase(file);
}

function probesDatabase(file: MigrationFile): boolean {
  return file.kpis.probes.database.enabled && file.target?.rds !== undefined;
}

/** Whether the runbook has a `kpi.monitor` step (then that step switches sampling on). */
export function runbookHasKpiMonitor(file: MigrationFile): boolean {
  return file.runbook.phases.some((p) => p.steps.some((s) => s.uses === "kpi.monitor"));
}

export { monitoringState, setMonitoring } from "../store/kpi.js";

/**
 * Whether probe rounds run now. With a `kpi.monitor` step in the runbook, sampling starts when
 * that step has run (so a new stack is not probed, nor alerts raised, before it exists) and stops
 * when it is undone; without one, configured probes are enough.
 */
export async function monitoringEnabled(db: Db, file: MigrationFile): Promise<boolean> {
  if (!hasProbes(file)) return false;
  if (!runbookHasKpiMonitor(file)) return true;
  return (await monitoringState(db, file.environment))?.enabled === true;
}

/** A job id per environment and time slot: two replicas queueing the same slot make one job. */
export function slotJobId(env: string, slot: number): string {
  const h = createHash("sha256").update(`cutover-kpi:${env}:${slot}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export interface KpiMonitorDeps {
  db: Db;
  boss: PgBoss;
  file: MigrationFile;
  log: Logger;
  /** posts a message to the migration channel (breaches and their clearing) */
  notify(reply: Reply): Promise<void>;
  /** times the configured query on the target database; absent: the database is not probed */
  database?: DatabaseTimer | undefined;
  /** epoch ms; default Date.now. Tests move it. */
  now?: () => number;
  /** how one HTTP probe is taken; default probeOnce */
  probe?: (url: string, opts: ProbeOptions) => Promise<ProbeResult>;
}

/** What one round did. */
export interface RoundReport {
  at: Date;
  samples: KpiSampleRow[];
  transitions: AlertTransition[];
  pruned: number;
}

/**
 * The KPI probe job. Every replica of the bot runs a ticker; each tick queues the current time
 * slot's round on pg-boss under a job id derived from the slot, so however many replicas tick,
 * the slot has one job, and pg-boss hands it to one worker. Ticks fall in the middle of a slot,
 * so replicas whose clocks disagree by less than half an interval agree on the slot.
 * A round samples every endpoint and the target database (each bounded by `timeoutMs`), stores
 * the samples, checks the thresholds (a change of state is posted once), and prunes old samples
 * once an hour.
 */
export class KpiMonitor {
  private readonly deps: KpiMonitorDeps;
  private readonly now: () => number;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private working = false;

  constructor(deps: KpiMonitorDeps) {
    this.deps = deps;
    this.now = deps.now ?? Date.now;
    this.intervalMs = deps.file.kpis.probes.intervalSeconds * 1000;
  }

  /** Creates the queue, starts the worker and (unless `timer: false`) the ticker. */
  async start(opts: { timer?: boolean } = {}): Promise<void> {
    const { boss } = this.deps;
    await boss.createQueue(KPI_QUEUE, {
      retryLimit: 0,
      expireInSeconds: Math.max(30, 2 * this.deps.file.kpis.probes.intervalSeconds),
      deleteAfterSeconds: 3600,
    });
    await boss.work<{ at: number; env: string }>(
      KPI_QUEUE,
      { localConcurrency: 1, pollingIntervalSeconds: 0.5 },
      async (jobs) => {
        for (const job of jobs) {
          if (job.data.env !== this.deps.file.environment) continue;
          // a round that waited longer than two intervals is stale: the next one is due anyway
          if (this.now() - job.data.at > 2 * this.intervalMs) continue;
          await this.round(new Date(job.data.at));
        }
      },
    );
    if (opts.timer !== false) this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    const now = this.now();
    const slotStart = Math.floor(now / this.intervalMs) * this.intervalMs;
    let next = slotStart + this.intervalMs / 2;
    if (next <= now) next += this.intervalMs;
    this.timer = setTimeout(() => {
      this.tick()
        .catch((err) => this.deps.log.warn({ err: describeError(err) }, "KPI probe tick failed"))
        .finally(() => this.schedule());
    }, next - now);
    this.timer.unref();
  }

  /**
   * Queues this slot's round when sampling is on. Returns the job id, or null when sampling is
   * off or another replica queued the slot already.
   */
  async tick(): Promise<string | null> {
    const { db, boss, file } = this.deps;
    if (!(await monitoringEnabled(db, file))) return null;
    const at = this.now();
    const slot = Math.floor(at / this.intervalMs);
    return boss.send(KPI_QUEUE, { at, env: file.environment }, { id: slotJobId(file.environment, slot) });
  }

  /** One probe round at `at`: sample, store, check thresholds, post changes, prune when due. */
  async round(at: Date): Promise<RoundReport> {
    const { db, file, log } = this.deps;
    this.working = true;
    try {
      const samples = await sampleRound({
        at,
        probes: file.kpis.probes,
        database: this.deps.database,
        ...(this.deps.probe ? { probe: this.deps.probe } : {}),
      });
      await storeSamples(db, samples);
      await recordRound(db, file.environment, at);
      const transitions = await this.checkThresholds(at);
      const pruned = await this.pruneIfDue(at);
      const failed = samples.filter((s) => !s.ok);
      if (failed.length)
        log.info({ failed: failed.map((s) => `${s.target}: ${s.error}`) }, "KPI probe round had failures");
      return { at, samples, transitions, pruned };
    } finally {
      this.working = false;
    }
  }

  private async checkThresholds(at: Date): Promise<AlertTransition[]> {
    const { db, file, log } = this.deps;
    const longTerm = file.kpis.longTerm;
    const to = new Date(at.getTime() + 1); // the window includes this round's samples
    const summaries = new Map<string, KpiSummary>();
    for (const period of periodsNeeded(longTerm)) {
      summaries.set(period, await kpiSummary(db, { from: new Date(to.getTime() - PERIOD_MS[period]), to }));
    }
    const checks = [...kpiChecks(summaries, longTerm), ...(await downChecks(db, at))];
    const transitions = await applyAlertStates(db, checks, at);
    for (const t of transitions) {
      try {
        await this.deps.notify(kpiAlertView(t, at));
      } catch (err) {
        // not posted: put the state back so the next round tries again
        log.warn({ err: describeError(err), alert: t.check.key }, "could not post a KPI alert; will retry");
        await revertAlertState(db, t);
      }
    }
    return transitions;
  }

  private async pruneIfDue(at: Date): Promise<number> {
    const { db, file } = this.deps;
    // one replica wins the hour: the update only matches while the last prune is old enough
    if (!(await claimPrune(db, file.environment, at, PRUNE_EVERY_MS))) return 0;
    const pruned = await pruneSamples(db, at, file.kpis.retentionDays);
    if (pruned)
      this.deps.log.info({ pruned, retentionDays: file.kpis.retentionDays }, "pruned old KPI samples");
    return pruned;
  }

  /** Stops the ticker and the worker and closes the database connection; waits for a round in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.deps.boss.offWork(KPI_QUEUE).catch(() => undefined);
    const deadline = Date.now() + 10_000;
    while (this.working && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await this.deps.database?.close();
  }
}

/**
 * Builds the monitor for the bot: the target database is timed when `kpis.probes.database` is
 * enabled and the file has `target.rds` (its URL resolved as the database steps do).
 */
export function createKpiMonitor(opts: {
  db: Db;
  boss: PgBoss;
  file: MigrationFile;
  log: Logger;
  notify(reply: Reply): Promise<void>;
  env: NodeJS.ProcessEnv;
  /** CUTOVER_DATA_DIR: where the provisioned RDS endpoint is recorded */
  dataDir: string;
  /** the RDS and Secrets Manager ports the target database's password may come from */
  ports: Ports;
  /** where the target database is; default as the database steps find it */
  targetDatabase?: () => Promise<Endpoint>;
  now?: () => number;
}): KpiMonitor {
  const { file } = opts;
  const target =
    opts.targetDatabase ??
    (() => targetEndpoint({ env: opts.env, ports: opts.ports, file, dataDir: opts.dataDir, log: opts.log }));
  const database = probesDatabase(file)
    ? createDatabaseTimer(target, file.kpis.probes.database.query)
    : undefined;
  return new KpiMonitor({
    db: opts.db,
    boss: opts.boss,
    file,
    log: opts.log,
    notify: opts.notify,
    database,
    ...(opts.now ? { now: opts.now } : {}),
  });
}
