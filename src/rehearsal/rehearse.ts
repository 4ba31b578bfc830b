import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { chmod, mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { type RunningCutover, startCutover } from "../app.js";
import { pngSize } from "../charts/png.js";
import { type Clock, clockFrom, ManualClock, systemClock } from "../clock.js";
import type { ObjectStore } from "../cloud/object-store.js";
import { localDay } from "../digest/index.js";
import { zonedMidnight } from "../digest/sources.js";
import { inventory } from "../jobs/steps/db/replicate.js";
import { createLogger } from "../log.js";
import type { RecordedCall } from "../sandbox/FakeSlack.js";
import { grantShopApp, ledgerReport, type TrafficLog } from "../sandbox/live-shop.js";
import { fillBucket, type MediaSpec } from "../sandbox/media.js";
import { generateShopDatabase } from "../sandbox/shop-data.js";
import { parseDuration } from "../text/units.js";
import { ACTION, CALLBACK, INPUT } from "../views/ids.js";
import { renderBlocksAsText } from "../views/text.js";
import type { RehearsalArgs } from "./args.js";
import { botEnv, CHANNEL, OLD, PEOPLE, type RehearsalConfig, rehearsalConfig } from "./config.js";
import { type ArmedFault, FAULTS } from "./faults.js";
import { emulateUbuntuHost, type HostBehaviour } from "./host.js";
import { type LiveShopRun, lagFigures, SWITCH_NAMES, startLiveShop, uploadsMissingOnSource } from "./live.js";
import {
  type Check,
  type DigestChart,
  type LiveSwitch,
  type PhaseReport,
  type RehearsalReport,
  reportMarkdown,
  secs,
  verdictLines,
} from "./report.js";
import { type Person, type RunRecord, Team } from "./team.js";
import { type ChannelPrinter, channelPrinter, silentPrinter } from "./terminal.js";
import { removeBulk, startWorld, type World } from "./world.js";

/**
 * `npm run rehearse`: the whole runbook, end to end, on this machine. Starts the local world,
 * the real bot pointed at it, and drives the bot through its Slack endpoint as an operator and
 * an approver would; ends with a verdict and a report. Everything started is stopped at the
 * end, on failure, and on Ctrl-C ({@link RehearsalHandle.abort}).
 */
export interface RehearsalIo {
  out: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
}

export interface RehearsalHandle {
  /** resolves with the exit status: 0 only when everything verified */
  done: Promise<number>;
  /** stops everything now (Ctrl-C) */
  abort(reason: string): Promise<void>;
}

const OPERATOR: Person = PEOPLE.operator;
/** step types that refuse to act until long after the cutover (the stabilisation weeks) */
const GUARDED_BY_TIME = new Set(["decommission"]);
const APPROVER: Person = PEOPLE.approver;
/** the least number of acknowledged writes the live shop's ledger rests on */
const MIN_ACKNOWLEDGED = 1_000;

/** The media bucket grows with the database: small images, and a few large videos (multipart). */
export function mediaSpecFor(sizeMb: number): MediaSpec {
  return {
    count: Math.round(120 + 40 * sizeMb),
    minBytes: 2 * 1024,
    maxBytes: 48 * 1024,
    // from 100 MB on, videos large enough for multipart uploads (storage.sync's threshold is 64 MiB)
    large:
      sizeMb >= 100
        ? { count: Math.ceil(sizeMb / 100), bytes: 80 * 1024 * 1024 }
        : { count: 1, bytes: 6 * 1024 * 1024 },
    seed: 20260210,
    prefix: "uploads/",
  };
}

async function countRows(url: string): Promise<Record<string, number>> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => undefined);
  await client.connect();
  try {
    const tables = await client.query<{ t: string }>(
      "SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    );
    const out: Record<string, number> = {};
    for (const { t } of tables.rows) {
      const r = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${t}`);
      out[t] = Number(r.rows[0]!.n);
    }
    return out;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function bucketTotals(store: ObjectStore): Promise<{ objects: number; bytes: number }> {
  let objects = 0;
  let bytes = 0;
  let token: string | undefined;
  do {
    const page = await store.listPage(token ? { token } : {});
    for (const o of page.objects) {
      objects++;
      bytes += o.size;
    }
    token = page.nextToken;
  } while (token);
  return { objects, bytes };
}

function stamp(d = new Date()): string {
  return d
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
}

export function startRehearsal(args: RehearsalArgs, io: RehearsalIo): RehearsalHandle {
  const started = Date.now();
  // the bot's calendar; the rehearsal's own timings (durations, run look-ups) stay on the machine's
  const clock = args.at ? clockFrom(args.at) : systemClock;
  const cleanups: Array<() => Promise<unknown>> = [];
  let aborted: string | undefined;
  let interrupt: (err: Error) => void = () => undefined;
  /** rejects on Ctrl-C, so whatever the rehearsal waits for gives way at once */
  const interrupted = new Promise<never>((_, reject) => {
    interrupt = reject;
  });
  interrupted.catch(() => undefined);
  /** drains the clean-ups (newest first); a later call stops whatever was started since */
  const stopAll = async () => {
    while (cleanups.length) {
      const fn = cleanups.pop()!;
      await Promise.race([fn().catch(() => undefined), new Promise((r) => setTimeout(r, 20_000).unref())]);
    }
  };
  const printer: ChannelPrinter = args.quiet
    ? silentPrinter()
    : channelPrinter({
        out: io.out,
        channel: CHANNEL,
        names: { [OPERATOR.id]: OPERATOR.name, [APPROVER.id]: APPROVER.name },
      });
  const note = (text: string) => printer.note(text);

  const done = (async (): Promise<number> => {
    const base = io.env.CUTOVER_DATA_DIR
      ? path.resolve(io.env.CUTOVER_DATA_DIR)
      : await mkdtemp(path.join(tmpdir(), "cutover-rehearsal-"));
    const dir = io.env.CUTOVER_DATA_DIR ? path.join(base, `rehearsal-${stamp()}`) : base;
    await mkdir(dir, { recursive: true });
    // traversable (not listable) by others: an embedded PostgreSQL run for root runs as `postgres`
    if (!io.env.CUTOVER_DATA_DIR) await chmod(dir, 0o711);
    const paths = {
      md: path.join(dir, "rehearsal-report.md"),
      json: path.join(dir, "rehearsal-report.json"),
    };
    const report: RehearsalReport = {
      verdict: "failed",
      startedAt: new Date(started).toISOString(),
      finishedAt: "",
      durationMs: 0,
      options: {
        sizeMb: args.sizeMb,
        fail: args.fail ?? null,
        at: args.at?.toISOString() ?? null,
        writesPerSecond: args.writesPerSecond,
      },
      world: {
        postgres: "",
        aws: "",
        sourceDatabaseMb: 0,
        sourceRows: 0,
        sourceObjects: 0,
        sourceBytes: 0,
        setupMs: 0,
      },
      people: {
        operator: `${OPERATOR.name} <${OPERATOR.id}>`,
        approver: `${APPROVER.name} <${APPROVER.id}>`,
      },
      phases: [],
      database: { tables: {}, rowsSource: 0, rowsTarget: 0, identical: false },
      storage: { objectsSource: 0, objectsTarget: 0, bytesSource: 0, bytesTarget: 0, identical: false },
      cutovers: [],
      rollback: null,
      finalState: {},
      kpis: { posted: null, note: "" },
      cost: { posted: null, note: "" },
      digest: { posted: null, note: "not posted: the rehearsal stopped before the next morning", charts: [] },
      notInThisBuild: [],
      fault: null,
      checks: [],
    };
    const checks: Check[] = report.checks;
    const check = (name: string, ok: boolean, detail: string) => {
      checks.push({ name, ok, detail });
      return ok;
    };
    note(`rehearsal folder: ${dir}`);
    try {
      // 1. The local world, the generated data, the migration file.
      note(
        "starting the local world: PostgreSQL, s3rver (R2), moto (AWS), Lightsail, Cloudflare and Slack fakes, the SSH host, the old and the new app",
      );
      const world = await startWorld({
        dir,
        say: note,
        oldIp: OLD.ip,
        pagesVars: { NEXT_PUBLIC_API_URL: OLD.apiUrl, NEXT_PUBLIC_CDN_URL: OLD.cdnUrl },
        keep: args.keep,
        embeddedPostgres: io.env.REHEARSAL_POSTGRES === "embedded",
        now: clock.now(),
      });
      cleanups.push(() => world.stop());
      if (aborted) {
        await stopAll();
        throw new Error(aborted);
      }
      report.world.postgres = `source: ${world.db.server}; target: ${world.db.targetServer}`;
      report.world.aws = world.aws.own
        ? `moto started for this rehearsal (${world.aws.endpoint})`
        : `the moto server in AWS_ENDPOINT_URL (${world.aws.endpoint})`;
      const host = emulateUbuntuHost(world.host, {
        appDir: "/opt/gogojap",
        services: ["gogojap", "gogojap-celery", "gogojap-celery-beat"],
      });
      for (const app of [world.oldApp, world.newApp]) {
        app.setRoute("/api/v1/products", { body: [{ id: 1, name: "抹茶ラテ", price: 38 }] });
        app.setRoute("/api/v1/ai/health", { body: { status: "ok" } });
      }
      const spec = mediaSpecFor(args.sizeMb);
      note(
        `generating the source: a ${args.sizeMb} MB shop database and ${spec.count + (spec.large?.count ?? 0)} media objects`,
      );
      const [shop, media] = await Promise.all([
        generateShopDatabase(world.db.source, { sizeMb: args.sizeMb, seed: 7, parallel: 2 }),
        fillBucket(world.sourceStore, spec, { concurrency: 8 }),
      ]);
      report.world.sourceDatabaseMb = Math.round(shop.bytes / 1024 / 102.4) / 10;
      report.world.sourceRows = Object.values(shop.rows).reduce((a, b) => a + b, 0);
      report.world.sourceObjects = media.objects;
      report.world.sourceBytes = media.bytes;
      const config = await rehearsalConfig(world);
      report.notInThisBuild = config.missing;
      const configPath = path.join(dir, "migration.yml");
      await writeFile(configPath, config.yaml);
      note(`migration file: ${configPath} (migration.example.yml with local endpoints)`);
      if (config.missing.length)
        note(`not in this build (left out): ${config.missing.map((m) => `${m.id} (${m.uses})`).join(", ")}`);
      if (args.fail && !config.file.runbook.phases.some((p) => p.steps.some((s) => s.id === args.fail))) {
        throw new Error(
          `--fail ${args.fail}: that step is not in this build's runbook, so nothing can fail there.`,
        );
      }

      // 2. The real bot, pointed at the world.
      const signingSecret = randomBytes(16).toString("hex");
      const botToken = `xoxb-rehearsal-${randomBytes(8).toString("hex")}`;
      const env = botEnv(world, { configPath, dataDir: path.join(dir, "bot"), botToken, signingSecret });
      const logFile = createWriteStream(path.join(dir, "bot.log"));
      cleanups.push(() => new Promise((r) => logFile.end(r)));
      const logger = createLogger({
        secrets: [botToken, signingSecret],
        level: "info",
        destination: logFile,
      });
      world.slack.setUser(OPERATOR.id, { name: "mance", real_name: OPERATOR.name });
      world.slack.setUser(APPROVER.id, { name: "kiki", real_name: APPROVER.name });
      world.slack.on("call", (c) => printer.onCall(c));
      // The digest's clock stands at today's local midnight, before digest.time: nothing is due at
      // start-up; at the end the rehearsal moves it to the next morning (see nextMorningDigest).
      const tz = config.file.digest.timezone;
      const digestClock = new ManualClock(zonedMidnight(localDay(clock.now(), tz), tz));
      if (args.at) note(`the bot's calendar starts at ${args.at.toISOString()} (--at)`);
      const bot = await startCutover({ env, logger, clock, digestClock });
      cleanups.push(() => bot.stop());
      if (aborted) {
        await stopAll();
        throw new Error(aborted);
      }
      report.world.setupMs = Date.now() - started;
      note(
        `the bot is up on http://127.0.0.1:${bot.port}/slack/events (world ready in ${(report.world.setupMs / 1000).toFixed(1)} s)`,
      );
      if (aborted) throw new Error(aborted);

      const team = new Team(bot, world.slack, signingSecret, printer);
      const liveShop: ShopState = { measured: [], notes: [] };
      await Promise.race([
        drive({
          args,
          world,
          bot,
          team,
          host,
          config,
          report,
          check,
          note,
          clock,
          digestClock,
          shop: liveShop,
        }),
        interrupted,
      ]);
      // what real Slack would have refused never reached anyone: the fake answers it as Slack does
      const refused = world.slack.refusals();
      check(
        "Slack took every message and modal the bot sent",
        refused.length === 0,
        refused.length === 0
          ? `${world.slack.calls().length} calls, none refused; ${idleEdits(world.slack.calls())} edits changed nothing`
          : `${refused.length} refused: ${refused
              .slice(0, 10)
              .map((c) => `${c.method} ${c.error}${c.detail ? ` ${c.detail}` : ""}`)
              .join("; ")}`,
      );
    } catch (err) {
      report.error = aborted ?? (err instanceof Error ? err.message : String(err));
      check("the rehearsal ran to the end", false, report.error);
    } finally {
      printer.flush();
      const keep = args.keep;
      const stopAt = Date.now();
      await stopAll();
      report.world.stopMs = Date.now() - stopAt;
      if (!keep) await removeBulk(dir).catch(() => undefined);
      report.verdict = checks.length > 0 && checks.every((c) => c.ok) ? "passed" : "failed";
      report.finishedAt = new Date().toISOString();
      report.durationMs = Date.now() - started;
      await writeFile(paths.json, `${JSON.stringify(report, null, 2)}\n`).catch(() => undefined);
      await writeFile(paths.md, reportMarkdown(report)).catch(() => undefined);
      io.out.write(`\n${verdictLines(report, paths).join("\n")}\n`);
    }
    return report.verdict === "passed" ? 0 : 1;
  })();

  return {
    done,
    async abort(reason) {
      aborted = reason;
      interrupt(new Error(reason));
      await stopAll();
    },
  };
}

interface DriveContext {
  args: RehearsalArgs;
  world: World;
  bot: RunningCutover;
  team: Team;
  host: HostBehaviour;
  config: RehearsalConfig;
  report: RehearsalReport;
  check: (name: string, ok: boolean, detail: string) => boolean;
  note: (text: string) => void;
  /** the bot's calendar */
  clock: Clock;
  /** the time the bot's digest schedule sees */
  digestClock: ManualClock;
  /** the live shop: its traffic and what each switch measured */
  shop: ShopState;
}

/** The live shop while the rehearsal runs. */
interface ShopState {
  run?: LiveShopRun;
  /** what Cutover measured for each switch, in order (dns.cutover's figures, the rollback's) */
  measured: LiveSwitch["cutover"][];
  rollbackAt?: number;
  copiedBack?: number;
  onSourceAfterRollback?: { acknowledged: number; lost: number; examples: string[] };
  notes: string[];
}

/** The night itself: plan, every phase, the switch behind an approval, a rollback drill, the switch again. */
async function drive(ctx: DriveContext): Promise<void> {
  const { args, world, bot, team, host, config, report, check, note } = ctx;
  const file = config.file;
  const db = bot.deps.db;
  let armed: ArmedFault | undefined;
  const arm = (stepIds: string[]) => {
    if (!args.fail || armed || !stepIds.includes(args.fail)) return;
    armed = FAULTS[args.fail]!.arm({
      world,
      host,
      note,
      async step(stepId) {
        const e = await db.stepExecution.findFirst({
          where: { step: stepId, run: { dryRun: false } },
          orderBy: { updatedAt: "desc" },
        });
        if (!e) return undefined;
        return { status: e.status, done: Number((e.progress as { done?: number } | null)?.done ?? 0) };
      },
    });
  };

  const phaseRecord = (id: string, title: string): PhaseReport => {
    const p: PhaseReport = { id, title, status: "passed", ms: 0, runs: [] };
    report.phases.push(p);
    return p;
  };
  const add = (p: PhaseReport, run: RunRecord) => {
    p.runs.push(run);
    p.ms += run.ms ?? 0;
    if (run.status !== "succeeded") p.status = "failed";
    return run;
  };

  const switchPhase = file.runbook.phases.find((p) => p.steps.some((s) => s.uses === "dns.cutover"));
  const stepOf = (uses: string) => file.runbook.phases.flatMap((p) => p.steps).find((s) => s.uses === uses);
  const lowerStep = stepOf("dns.lower-ttl");
  const cutoverStep = stepOf("dns.cutover");

  let switched = false;
  /** db.replication-teardown runs at the very end, once the traffic has stopped */
  let teardownStep: (typeof file.runbook.phases)[number]["steps"][number] | undefined;
  const postSwitchSyncs = switchPhase
    ? switchPhase.steps
        .slice(switchPhase.steps.findIndex((s) => s.uses === "dns.cutover") + 1)
        .filter((s) => s.uses === "storage.sync")
    : [];
  for (const phase of file.runbook.phases) {
    const record = phaseRecord(phase.id, phase.title ?? phase.id);
    if (!ctx.shop.run && phase.steps.some((s) => s.uses === "db.dump")) {
      // the live shop: customers write from the start of the data phase to the end
      const run = startLiveShop(world, file, args.writesPerSecond);
      ctx.shop.run = run;
      world.onStop(() => run.stop());
      note(
        `the live shop opens: ${args.writesPerSecond} writes/s (orders, payments, cancellations, uploads) and reads, through whichever app api.gogojap.com points at`,
      );
    }
    const started = Date.now();
    const longRunning = phase.steps.some((s) => s.uses === "kpi.monitor");
    const guarded = phase.steps.filter((s) => GUARDED_BY_TIME.has(s.uses));
    if (phase !== switchPhase && guarded.length > 0) {
      // Steps that refuse until weeks after the cutover (retiring the old stack) are previewed
      // only: their dry run shows the refusal and its reason; the others run as usual.
      for (const step of phase.steps) {
        if (step.uses === "db.replication-teardown") {
          teardownStep = step;
          continue;
        }
        arm([step.id]);
        const dry = GUARDED_BY_TIME.has(step.uses);
        const run = add(
          record,
          await team.runAndWait(
            OPERATOR,
            `${dry ? "plan" : "run"} ${step.id}`,
            step.id,
            step.uses === "kpi.monitor" ? { timeoutMs: 45_000, onTimeout: "cancel" } : {},
          ),
        );
        if (run.status === "cancelled") record.status = "passed";
        if (dry)
          record.note =
            `${step.id}: dry run only — ${run.steps[0]?.summary ?? run.error ?? run.status}`.slice(0, 400);
      }
      record.ms = Math.max(record.ms, Date.now() - started);
      continue;
    }
    if (phase !== switchPhase) {
      // preview first: every step's plan, read from live state, changing nothing
      const preview = add(record, await team.runAndWait(OPERATOR, `plan ${phase.id}`, phase.id));
      check(
        `dry run of ${phase.id}`,
        preview.status === "succeeded",
        preview.error ??
          `${preview.steps.length} step(s) planned: ${preview.steps
            .map((s) => s.summary ?? s.id)
            .join("; ")
            .slice(0, 300)}`,
      );
      arm(phase.steps.map((s) => s.id));
      const run = add(
        record,
        await team.runAndWait(
          OPERATOR,
          `run ${phase.id}`,
          phase.id,
          longRunning ? { timeoutMs: 45_000, onTimeout: "cancel" } : {},
        ),
      );
      if (run.status === "cancelled") {
        record.status = "passed";
        record.note =
          "started and cancelled after 45 s: a rehearsal does not wait for the stabilisation weeks";
      }
      // before the switch nothing later can work without this phase; after it, carry on and report
      if (run.status === "failed" && !switched)
        throw new Error(`phase ${phase.id} failed: ${run.error ?? "see the report"}`);
      if (phase.steps.some((s) => s.uses === "db.restore")) {
        // the copy leaves privileges out: the new app's role gets its grants on the target
        await grantShopApp(world.db.target);
        note("shop_app granted its privileges on the target (the copy leaves privileges out)");
      }
      continue;
    }
    switched = true;
    // The switch phase, step by step: the DNS switch needs a second person.
    for (const step of phase.steps) {
      if (step.uses === "dns.cutover") {
        await cutover(ctx, record, step.id, lowerStep?.id, arm);
        // the uploads made on R2 until the switch go to S3, as the runbook does after the switch
        for (const s of postSwitchSyncs) add(record, await team.runAndWait(OPERATOR, `run ${s.id}`, s.id));
        // the drill: roll back, then lower the TTL again and switch again
        await rollbackDrill(ctx);
        await uploadsHome(ctx);
        if (lowerStep) add(record, await lowerTtl(ctx, lowerStep.id, arm));
        await cutover(ctx, record, step.id, lowerStep?.id, arm);
        continue;
      }
      arm([step.id]);
      const monitor = step.uses === "kpi.monitor";
      const run = add(
        record,
        step.uses === "dns.lower-ttl"
          ? await lowerTtl(ctx, step.id, arm)
          : await team.runAndWait(
              OPERATOR,
              `run ${step.id}`,
              step.id,
              monitor ? { timeoutMs: 30_000, onTimeout: "cancel" } : {},
            ),
      );
      if (run.status === "failed")
        throw new Error(`step ${step.id} failed: ${run.error ?? "see the report"}`);
      if (run.status === "cancelled")
        record.note = `${step.id} cancelled after 30 s (it monitors for longer than a rehearsal)`;
    }
    record.ms = Math.max(record.ms, Date.now() - started);
  }
  for (const p of report.phases)
    check(
      `phase ${p.id}`,
      p.status === "passed",
      p.note ?? `${p.runs.length} run(s), ${(p.ms / 1000).toFixed(1)} s`,
    );
  if (!cutoverStep) check("DNS cutover", false, "the runbook has no dns.cutover step in this build");

  // After the switch: the verify steps again, on their own, then the KPIs and cost as posted.
  const verifyPhase = phaseRecord("verify-after", "Verification after the cutover (/migrate verify all)");
  const since = new Date(Date.now() - 5);
  const { reply } = await team.command(OPERATOR, "verify all");
  const verifySteps = file.runbook.phases
    .flatMap((p) => p.steps)
    .filter((s) =>
      [
        "db.verify",
        "storage.verify",
        "cdn.check",
        "verify.functional",
        "verify.performance",
        "verify.reliability",
      ].includes(s.uses),
    );
  for (const s of verifySteps) {
    const run = await team.findRun(s.id, since, 15_000);
    if (!run) {
      verifyPhase.status = "failed";
      verifyPhase.note = `no run of ${s.id}: ${reply}`;
      continue;
    }
    add(verifyPhase, await team.waitForRun(run.id, 120_000, OPERATOR, "throw"));
  }
  check(
    "verification after the cutover",
    verifyPhase.status === "passed",
    verifyPhase.note ?? verifyPhase.runs.map((r) => `${r.target} ${r.status}`).join(", "),
  );

  for (const what of ["kpi", "cost"] as const) {
    const { reply: text } = await team.command(OPERATOR, what);
    const missing = /not available in this build/i.test(text);
    report[what === "kpi" ? "kpis" : "cost"] = missing
      ? {
          posted: null,
          note: `not in this build (\`/migrate ${what}\`: ${text.replace(/\s+/g, " ").slice(0, 160)})`,
        }
      : { posted: text, note: `as posted in reply to \`/migrate ${what}\`` };
  }
  await nextMorningDigest(ctx);

  if (ctx.shop.run) {
    // the ledger proves something only with enough writes: on a slow machine the shop stays open
    // a little longer (at most a minute) until 1,000 are acknowledged
    const { traffic } = ctx.shop.run;
    const short = MIN_ACKNOWLEDGED - traffic.log.acked.length;
    if (short > 0) {
      const t0 = Date.now();
      await Promise.race([
        traffic.acknowledged(MIN_ACKNOWLEDGED),
        new Promise((r) => setTimeout(r, 60_000).unref()),
      ]);
      ctx.shop.notes.push(
        `the shop stayed open ${secs(Date.now() - t0)} after the runbook's end for ${short} more acknowledged writes (the machine answered slower than ${args.writesPerSecond} writes/s)`,
      );
    }
  }
  const log = ctx.shop.run ? await ctx.shop.run.stop() : undefined;
  if (log) await reverseDrained(ctx);
  await finalChecks(ctx);
  if (log) await liveChecks(ctx, log, teardownStep);
  if (armed) {
    await armed.disarm();
    await faultReport(ctx, armed);
  }
}

/**
 * The daily digest, posted by the bot's own scheduler: its clock moves to digest.time on the
 * next local day (time compressed, as with the TTL), so the digest's "yesterday" is the
 * rehearsal's day and its KPIs are the samples the monitor took. The message and its two charts
 * are read back from the channel as a person would see them; the charts are saved next to the
 * report.
 */
async function nextMorningDigest(ctx: DriveContext): Promise<void> {
  const { bot, world, report, check, note, config, digestClock } = ctx;
  const d = config.file.digest;
  if (!bot.digest) {
    report.digest.note = "not posted: digest.enabled is false in the migration file";
    check("daily digest posted", false, report.digest.note);
    return;
  }
  // the rehearsal's day (where the digest clock has stood since the start), not the day the bot's
  // clock reads now: a rehearsal that runs past midnight still gets the morning after its own day
  const today = localDay(digestClock.now(), d.timezone);
  const day = localDay(new Date(zonedMidnight(today, d.timezone).getTime() + 36 * 3600_000), d.timezone);
  const [hh = 0, mm = 0] = d.time.split(":").map(Number);
  digestClock.set(new Date(zonedMidnight(day, d.timezone).getTime() + (hh * 60 + mm) * 60_000));
  note(
    `time compressed: the digest clock moves to ${day} ${d.time} (${d.timezone}), the next morning; the bot's scheduler posts the daily digest`,
  );
  // the scheduler's loop wakes for the same tick: one check, one digest
  const t0 = Date.now();
  const outcome = await bot.digest.tick();
  if (outcome.kind !== "posted") {
    report.digest.note = `not posted: the scheduler's check said ${outcome.kind}${"error" in outcome ? `: ${outcome.error}` : ""}`;
    check("daily digest posted", false, report.digest.note);
    return;
  }
  const { channel, ts, fileIds, chartsNote } = outcome.digest;
  const message = world.slack
    .messages(channel)
    .find((m) => (ts ? m.ts === ts : m.files?.some((f) => fileIds.includes(f.id))));
  const charts: DigestChart[] = [];
  for (const f of world.slack.files().filter((x) => fileIds.includes(x.id))) {
    const kind = f.name.startsWith("cost-") ? "cost" : f.name.startsWith("kpi-") ? "kpi" : f.id;
    const file = `rehearsal-${kind}.png`;
    const size = pngSize(f.bytes);
    await writeFile(path.join(world.dir, file), f.bytes);
    charts.push({
      file,
      title: f.title,
      bytes: f.bytes.length,
      width: size?.width ?? 0,
      height: size?.height ?? 0,
    });
  }
  const ms = Date.now() - t0;
  const posted = message ? renderBlocksAsText(message.blocks, message.text) : null;
  report.digest = {
    posted,
    note: `as the bot's scheduler posted it in <#${channel}> at ${d.time} (${d.timezone}) the next morning, ${secs(ms)} after the clock got there, with ${fileIds.length} chart(s)${chartsNote ? ` — ${chartsNote}` : ""}`,
    day,
    ms,
    charts,
  };
  const pngs = charts.filter((c) => c.width > 0 && c.height > 0).map((c) => c.file);
  // a part the digest could not fill says so in a line of its own
  const gap = posted?.split("\n").find((l) => /unavailable|no samples yet/i.test(l));
  check(
    "daily digest posted",
    Boolean(posted) && pngs.length === 2 && !gap,
    posted
      ? `${posted.split("\n")[0]}; charts ${pngs.join(", ") || "none"}${gap ? `; ${gap}` : ""}`
      : `the scheduler says it posted to ${channel}, but no such message is in the channel`,
  );
}

/** Runs dns.lower-ttl, then moves the lowering into the past: the old TTL's hour is not waited out. */
async function lowerTtl(ctx: DriveContext, stepId: string, arm: (ids: string[]) => void): Promise<RunRecord> {
  const { team, bot, note, clock } = ctx;
  arm([stepId]);
  const run = await team.runAndWait(OPERATOR, `run ${stepId}`, stepId);
  if (run.status !== "succeeded") throw new Error(`${stepId} failed: ${run.error ?? ""}`);
  const oldTtl = Number(run.steps[0]?.figures?.oldTtlSeconds ?? 3600);
  const when = new Date(clock.now().getTime() - (oldTtl + 5) * 1000).toISOString();
  await bot.deps.db
    .$executeRaw`UPDATE checkpoints SET value = jsonb_set(value, '{loweredAt}', to_jsonb(${when}::text))
    WHERE key = 'snapshot' AND execution_id IN (SELECT id FROM step_executions WHERE run_id = ${run.runId}::uuid)`;
  note(
    `time compressed: the old TTL (${oldTtl} s) is treated as elapsed; resolvers would need that long to forget the old address`,
  );
  lastTtlCompressed = oldTtl;
  return run;
}
let lastTtlCompressed = 0;

/** The operator asks, the approver approves in the modal, the bot switches and watches. */
async function cutover(
  ctx: DriveContext,
  record: PhaseReport,
  stepId: string,
  _lowerId: string | undefined,
  arm: (ids: string[]) => void,
): Promise<void> {
  const { team, world, bot, report, check } = ctx;
  const n = report.cutovers.length + 1;
  const since = new Date(Date.now() - 5);
  const { reply } = await team.command(
    OPERATOR,
    'cutover --reason "rehearsal: switching outside the 02:00–05:00 window on purpose"',
  );
  if (!/Cutover request posted/.test(reply))
    throw new Error(`cutover ${n}: the request was refused: ${reply}`);
  // the approver finds the request in the channel and presses Approve
  const request = await world.slack.waitFor(
    (c) =>
      c.method === "chat.postMessage" &&
      c.at >= since.getTime() &&
      JSON.stringify(c.args.blocks ?? "").includes(ACTION.approveCutover),
    { timeoutMs: 10_000 },
  );
  const approvalId = buttonValue(request.args.blocks, ACTION.approveCutover);
  if (!approvalId) throw new Error(`cutover ${n}: the request has no Approve button`);
  const clickedAt = Date.now();
  await team.click(APPROVER, ACTION.approveCutover, approvalId, "Approve");
  const modal = await world.slack.waitFor(
    (c) =>
      c.method === "views.open" &&
      c.at >= clickedAt &&
      JSON.stringify(c.args).includes(CALLBACK.approveCutover),
    { timeoutMs: 10_000 },
  );
  const recordName = /Type (\S+) to confirm/.exec(JSON.stringify(modal.args))?.[1] ?? "";
  arm([stepId]);
  const approvedAt = Date.now();
  const sub = await team.submit(
    APPROVER,
    CALLBACK.approveCutover,
    approvalId,
    {
      [INPUT.confirmName.block]: { [INPUT.confirmName.action]: recordName },
      [INPUT.note.block]: { [INPUT.note.action]: "pre-checks green, data verified identical" },
    },
    `types "${recordName}" in the modal and presses Approve`,
  );
  if (sub.body.trim()) throw new Error(`cutover ${n}: the approval was refused: ${sub.body}`);
  const found = await team.findRun(stepId, since, 15_000);
  if (!found) throw new Error(`cutover ${n}: the approval started no ${stepId} run`);
  const run = await team.waitForRun(found.id, 120_000, OPERATOR, "throw");
  record.runs.push(run);
  record.ms += run.ms ?? 0;
  if (run.status !== "succeeded") record.status = "failed";
  const approval = await bot.deps.db.approval.findUniqueOrThrow({ where: { id: approvalId } });
  const f = run.steps[0]?.figures ?? {};
  const num = (v: unknown) => (typeof v === "number" ? v : null);
  report.cutovers.push({
    requestedBy: approval.requestedBy,
    approvedBy: approval.decidedBy,
    differentPeople: Boolean(approval.decidedBy) && approval.decidedBy !== approval.requestedBy,
    approvalToSwitchMs: run.ms === null ? null : Date.now() - approvedAt,
    downtimeMs: num(f.downtimeMs),
    errorRatePercent: num(f.errorRatePercent),
    samples: num(f.samples),
    switchedMs: num(f.switchedMs),
    status: run.status,
    ttlWaitCompressedSeconds: lastTtlCompressed,
  });
  const c = report.cutovers[report.cutovers.length - 1]!;
  if (ctx.config.file.replication) {
    ctx.shop.measured.push({
      writeOutageMs: num(f.writeOutageMs),
      ...(typeof f.freezeMs === "number" ? { freezeMs: f.freezeMs } : {}),
      ...(typeof f.drainMs === "number" ? { drainMs: f.drainMs } : {}),
      ...(typeof f.verifyMs === "number" ? { verifyMs: f.verifyMs } : {}),
    });
    check(
      `cutover ${n}: the database switched live (freeze, drain, verify, target open) before DNS`,
      run.status === "succeeded" && typeof f.writeOutageMs === "number",
      run.steps[0]?.summary?.split("; switched in")[0] ?? run.error ?? run.status,
    );
  }
  check(
    `cutover ${n} approved by a second person`,
    c.differentPeople,
    `asked by ${c.requestedBy}, approved by ${c.approvedBy ?? "nobody"}`,
  );
  check(
    `cutover ${n} carried out, downtime measured`,
    run.status === "succeeded" && c.downtimeMs !== null && (c.samples ?? 0) > 0,
    run.status === "succeeded"
      ? `downtime ${c.downtimeMs} ms over ${c.samples} probes, error rate ${c.errorRatePercent} %`
      : (run.error ?? run.status),
  );
  const maxDowntimeMs = ctx.config.file.kpis.migration.maxDowntimeMinutes * 60_000;
  if (c.downtimeMs !== null)
    check(
      `cutover ${n} downtime within the KPI`,
      c.downtimeMs <= maxDowntimeMs,
      `${c.downtimeMs} ms ≤ ${maxDowntimeMs} ms`,
    );
  const a = world.cloudflare.records("gogojap.com").find((r) => r.name === "api.gogojap.com");
  const ip = world.lightsail.staticIps.get(
    ctx.config.file.target?.lightsail?.staticIpName ?? "gogojap-ip",
  )?.ipAddress;
  check(
    `cutover ${n}: api.gogojap.com points at the new host`,
    a?.content === ip,
    `A api.gogojap.com = ${a?.content}; the Lightsail static IP is ${ip}`,
  );
}

/** The value of the button with this action id, anywhere in a message's blocks. */
export function buttonValue(blocks: unknown, actionId: string): string | undefined {
  const parsed = typeof blocks === "string" ? (JSON.parse(blocks) as unknown) : blocks;
  const walk = (v: unknown): string | undefined => {
    if (Array.isArray(v)) {
      for (const x of v) {
        const found = walk(x);
        if (found) return found;
      }
      return undefined;
    }
    if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      if (o.action_id === actionId && typeof o.value === "string") return o.value;
      return walk(Object.values(o));
    }
    return undefined;
  };
  return walk(parsed);
}

/** `/rollback`, the typed confirmation, and the bot's report of who and how long. */
async function rollbackDrill(ctx: DriveContext): Promise<void> {
  const { team, world, report, check } = ctx;
  const t0 = Date.now();
  await team.command(OPERATOR, "", "/rollback");
  const modal = await world.slack.waitFor(
    (c) => c.method === "views.open" && c.at >= t0 && JSON.stringify(c.args).includes(CALLBACK.rollback),
    { timeoutMs: 10_000 },
  );
  let meta = "";
  try {
    const view = typeof modal.args.view === "string" ? JSON.parse(modal.args.view) : modal.args.view;
    meta = String((view as { private_metadata?: string })?.private_metadata ?? "");
  } catch {
    meta = "";
  }
  const confirmedAt = Date.now();
  const sub = await team.submit(
    OPERATOR,
    CALLBACK.rollback,
    meta,
    {
      [INPUT.rollbackWord.block]: { [INPUT.rollbackWord.action]: "ROLLBACK" },
      [INPUT.rollbackReason.block]: { [INPUT.rollbackReason.action]: "rollback drill" },
    },
    'types "ROLLBACK" and presses Roll back',
  );
  if (sub.body.trim()) throw new Error(`the rollback was refused: ${sub.body}`);
  const done = await world.slack.waitFor(
    (c) =>
      c.method === "chat.postMessage" &&
      c.at >= confirmedAt &&
      /Rollback by .*(done in|INCOMPLETE|could not run)/s.test(String(c.args.text ?? "")),
    { timeoutMs: 60_000 },
  );
  const text = String(done.args.text ?? "");
  const ms = parseDuration(/From confirmation to verified: ([^.\n]+)/.exec(text)?.[1] ?? "") ?? null;
  const ok = /done in/.test(text);
  report.rollback = {
    by: `${OPERATOR.name} <${OPERATOR.id}>`,
    ms,
    measuredMs: done.at - confirmedAt,
    message: text,
    ok,
  };
  if (ctx.config.file.replication) {
    ctx.shop.rollbackAt = confirmedAt;
    const fin = await ctx.bot.deps.db.auditEvent.findFirst({
      where: { action: "rollback.finish", target: ctx.config.file.environment },
      orderBy: { id: "desc" },
    });
    const d = (fin?.details ?? {}) as { writeOutageMs?: number; drainMs?: number; lossless?: boolean };
    ctx.shop.measured.push({
      writeOutageMs: typeof d.writeOutageMs === "number" ? d.writeOutageMs : null,
      ...(typeof d.drainMs === "number" ? { drainMs: d.drainMs } : {}),
    });
    check(
      "rollback drill: every write made on the new stack drained home before the source opened",
      d.lossless === true,
      text
        .split("\n")
        .filter((l) => l.includes("database:"))
        .join(" ")
        .slice(0, 400) || "the rollback's report has no database lines",
    );
  }
  const a = world.cloudflare.records("gogojap.com").find((r) => r.name === "api.gogojap.com");
  const vars = world.cloudflare.envVars("gogojap-web");
  check("rollback drill", ok, `${text.split("\n")[0]} (${ms ?? "?"} ms from confirmation to verified)`);
  check(
    "rollback restored the old values",
    a?.content === OLD.ip && a?.ttl === 3600 && vars.NEXT_PUBLIC_API_URL === OLD.apiUrl,
    `A api.gogojap.com = ${a?.content} (TTL ${a?.ttl}); NEXT_PUBLIC_API_URL = ${vars.NEXT_PUBLIC_API_URL}`,
  );
}

/**
 * After the rollback drill: the uploads customers made on AWS since the switch must be on R2.
 * `/rollback` copies them back after DNS (its report says how many); the rehearsal reads that
 * figure from the audit trail and checks R2 against every upload acknowledged until now.
 */
async function uploadsHome(ctx: DriveContext): Promise<void> {
  const { world, config, shop, check, note, bot } = ctx;
  if (!shop.run || !config.file.replication) return;
  const until = Date.now();
  const fin = await bot.deps.db.auditEvent.findFirst({
    where: { action: "rollback.finish", target: config.file.environment },
    orderBy: { id: "desc" },
  });
  const items =
    (fin?.details as { items?: Array<{ what: string; ok: boolean; detail: string }> } | null)?.items ?? [];
  const objects = items.find((i) => i.what === "objects uploaded since the switch");
  shop.copiedBack = Number(/^(\d+) copied back/.exec(objects?.detail ?? "")?.[1] ?? Number.NaN);
  const after = await uploadsMissingOnSource(world, shop.run.traffic.log, until);
  shop.onSourceAfterRollback = after;
  const line = objects
    ? `/rollback: ${objects.detail}`
    : "/rollback's report has no line for the objects uploaded since the switch";
  shop.notes.push(line);
  note(line);
  check(
    "rollback drill: every upload acknowledged until then is on R2",
    after.lost === 0 && objects?.ok === true,
    after.lost === 0
      ? `${after.acknowledged} uploads, all on R2 (${shop.copiedBack} of them copied back from S3 by /rollback)`
      : `${after.lost} missing: ${after.examples.join("; ")}`,
  );
}

/** Once the traffic stopped: reverse replication brings the last writes on the target to the source. */
async function reverseDrained(ctx: DriveContext): Promise<void> {
  const { world } = ctx;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const [a, b] = await Promise.all([countRows(world.db.source), countRows(world.db.target)]);
    if (Object.keys(b).every((t) => a[t] === b[t])) return;
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** The live shop's ledger, each switch's outage, lag, objects, and what replication is left. */
async function liveChecks(
  ctx: DriveContext,
  log: TrafficLog,
  teardownStep: { id: string } | undefined,
): Promise<void> {
  const { world, report, check, shop, team, bot, args } = ctx;
  const run = shop.run!;
  const ledger = await ledgerReport(log, {
    databaseUrl: world.db.target,
    store: world.targetStore,
    switches: run.switches,
  });
  const switches: LiveSwitch[] = run.switches.map((at, i) => ({
    name: SWITCH_NAMES[i] ?? `switch ${i + 1}`,
    at: new Date(at).toISOString(),
    traffic: {
      writeOutageMs: ledger.switches[i]?.writeOutageMs ?? null,
      failedWrites: ledger.switches[i]?.failedWrites ?? 0,
    },
    cutover: shop.measured[i] ?? { writeOutageMs: null },
    readAvailabilityPct: ledger.reads.windows[i + 1]?.availabilityPct ?? 100,
  }));
  let left: string[] | null = null;
  if (teardownStep && bot.deps.live) {
    const t = await team.runAndWait(OPERATOR, `run ${teardownStep.id}`, teardownStep.id);
    // in the report, with the phase the runbook puts it in
    const phaseId = ctx.config.file.runbook.phases.find((p) =>
      p.steps.some((s) => s.id === teardownStep.id),
    )?.id;
    report.phases.find((p) => p.id === phaseId)?.runs.push(t);
    left = (await inventory(bot.deps.live.step, { connectTimeoutSeconds: 10 })).map(
      (l) => `${l.kind} ${l.name} on the ${l.side}`,
    );
    check(
      "no slot, publication or subscription left after db.replication-teardown",
      t.status === "succeeded" && left.length === 0,
      t.status !== "succeeded"
        ? `${teardownStep.id} ${t.status}: ${t.error ?? ""}`
        : left.length
          ? `left: ${left.join(", ")}`
          : `${t.steps[0]?.summary ?? "dropped"}; none left on either server`,
    );
  } else {
    shop.notes.push(
      "the runbook has no db.replication-teardown step: reverse replication is left running (it ends with decommission)",
    );
  }
  report.live = {
    writesPerSecond: args.writesPerSecond,
    trafficMs: Date.now() - run.startedAt,
    ledger,
    switches,
    lag: lagFigures(run.lag),
    objects: {
      onTarget: ledger.objects?.bySide ?? {},
      onSourceAfterRollback: shop.onSourceAfterRollback
        ? { acknowledged: shop.onSourceAfterRollback.acknowledged, lost: shop.onSourceAfterRollback.lost }
        : null,
      copiedBack:
        shop.copiedBack === undefined
          ? null
          : { objects: shop.copiedBack, by: "/rollback (after DNS went back)" },
    },
    replicationLeft: left,
    notes: shop.notes,
  };
  const a = ledger.acknowledged;
  check(
    "live shop: every acknowledged write on the target exactly once",
    ledger.lost === 0 && ledger.duplicated === 0 && ledger.misapplied === 0 && a.writes > 0,
    `${a.writes} acknowledged (${a.orders} orders, ${a.payments} payments, ${a.cancellations} cancellations, ${a.uploads} uploads): ${ledger.lost} lost, ${ledger.duplicated} duplicated, ${ledger.misapplied} misapplied${ledger.examples.lost.length ? ` — ${ledger.examples.lost.slice(0, 3).join("; ")}` : ""}`,
  );
  check(
    "live shop: every acknowledged upload on S3",
    (ledger.objects?.lost ?? 1) === 0 && (ledger.objects?.acknowledged ?? 0) > 0,
    `${ledger.objects?.acknowledged ?? 0} uploads, ${ledger.objects?.lost ?? "?"} lost${ledger.objects?.examples.length ? `: ${ledger.objects.examples.slice(0, 3).join("; ")}` : ""}`,
  );
  check(
    "live shop: the write outage of every switch measured, by the traffic and by Cutover",
    switches.length === 3 &&
      switches.every((s) => s.traffic.writeOutageMs !== null && s.cutover.writeOutageMs !== null),
    switches
      .map(
        (s) =>
          `${s.name}: ${secs(s.traffic.writeOutageMs)} seen, ${secs(s.cutover.writeOutageMs)} measured, ${s.traffic.failedWrites} failed writes`,
      )
      .join("; ") || "the traffic never switched",
  );
}

/** Counts on both sides by the rehearsal itself, next to the verify steps' own figures. */
async function finalChecks(ctx: DriveContext): Promise<void> {
  const { world, report, check, config } = ctx;
  const [src, dst] = await Promise.all([countRows(world.db.source), countRows(world.db.target)]);
  const tables = [...new Set([...Object.keys(src), ...Object.keys(dst)])].sort();
  report.database.tables = Object.fromEntries(
    tables.map((t) => [t, { source: src[t] ?? 0, target: dst[t] ?? -1 }]),
  );
  report.database.rowsSource = Object.values(src).reduce((a, b) => a + b, 0);
  report.database.rowsTarget = Object.values(dst).reduce((a, b) => a + b, 0);
  report.database.identical = tables.every((t) => src[t] === dst[t]);
  const [s, t] = await Promise.all([bucketTotals(world.sourceStore), bucketTotals(world.targetStore)]);
  report.storage = {
    ...report.storage,
    objectsSource: s.objects,
    objectsTarget: t.objects,
    bytesSource: s.bytes,
    bytesTarget: t.bytes,
    identical: s.objects === t.objects && s.bytes === t.bytes,
  };
  // the verify steps' own figures, from their latest runs
  const latest = (uses: string) => {
    const ids = config.file.runbook.phases
      .flatMap((p) => p.steps)
      .filter((x) => x.uses === uses)
      .map((x) => x.id);
    const runs = report.phases.flatMap((p) => p.runs).filter((r) => !r.dryRun);
    for (let i = runs.length - 1; i >= 0; i--) {
      const step = runs[i]!.steps.find((x) => ids.includes(x.id) && x.status === "succeeded");
      if (step) return step;
    }
    return undefined;
  };
  const dbv = latest("db.verify");
  if (dbv) {
    report.database.verifyFigures = { ...(dbv.figures ?? {}), ...(dbv.verifyFigures ?? {}) };
    report.database.verifySummary = dbv.summary ?? dbv.verifySummary ?? "";
  }
  const sv = latest("storage.verify");
  if (sv) {
    report.storage.verifyFigures = { ...(sv.figures ?? {}), ...(sv.verifyFigures ?? {}) };
    report.storage.verifySummary = sv.summary ?? sv.verifySummary ?? "";
  }
  // live: the traffic stopped and reverse replication brought its last writes to the source; the
  // switches verified while frozen (no db.verify in a live runbook); S3 holds R2's objects and the
  // uploads made on AWS since the last switch
  const live = Boolean(config.file.replication);
  check(
    "database rows identical",
    report.database.identical && tables.length > 0 && (live || Boolean(dbv)),
    `${report.database.rowsTarget} of ${report.database.rowsSource} rows in ${tables.length} tables; ${dbv ? `db.verify: ${dbv.summary}` : live ? "after the traffic stopped, reverse replication brought the last writes to the source; each switch verified the changed tables while frozen" : "db.verify did not run"}`,
  );
  check(
    "storage objects identical",
    (live ? t.objects >= s.objects && sv?.status === "succeeded" : report.storage.identical) &&
      s.objects > 0 &&
      Boolean(sv),
    `${t.objects} of ${s.objects} objects, ${t.bytes} of ${s.bytes} bytes${live && t.objects > s.objects ? ` (S3 also holds the ${t.objects - s.objects} uploaded on AWS since the last switch)` : ""}; storage.verify: ${sv?.summary ?? "did not run"}`,
  );
  const records = world.cloudflare.records("gogojap.com");
  const ip = world.lightsail.staticIps.get(
    config.file.target?.lightsail?.staticIpName ?? "gogojap-ip",
  )?.ipAddress;
  const a = records.find((r) => r.name === "api.gogojap.com");
  const cdn = records.find((r) => r.name === "cdn.gogojap.com");
  const vars = world.cloudflare.envVars("gogojap-web");
  report.finalState = {
    "A api.gogojap.com": `${a?.content} (TTL ${a?.ttl})`,
    "CNAME cdn.gogojap.com": `${cdn?.content} (TTL ${cdn?.ttl})`,
    "Pages NEXT_PUBLIC_API_URL": String(vars.NEXT_PUBLIC_API_URL),
    "Pages NEXT_PUBLIC_CDN_URL": String(vars.NEXT_PUBLIC_CDN_URL),
    "Pages deployments": String(world.cloudflare.deployments("gogojap-web").length),
    "app host": `current → ${world.host.links.get("/opt/gogojap/current") ?? "(none)"}; ${world.host.commands.length} SSH commands recorded`,
    "Lightsail instances": [...world.lightsail.instances.keys()].join(", "),
  };
  check(
    "end state: on the new stack",
    a?.content === ip &&
      vars.NEXT_PUBLIC_API_URL === "https://api.gogojap.com" &&
      cdn?.content !== OLD.cdnUrl.replace("https://", ""),
    `A api.gogojap.com = ${a?.content} (static IP ${ip}); CNAME cdn.gogojap.com = ${cdn?.content}; NEXT_PUBLIC_API_URL = ${vars.NEXT_PUBLIC_API_URL}`,
  );
}

/** What failed, what the bot did about it, and whether the end state is still right. */
async function faultReport(ctx: DriveContext, armed: ArmedFault): Promise<void> {
  const { args, report, check } = ctx;
  const stepId = args.fail!;
  const fault = FAULTS[stepId]!;
  const fired = armed.fired();
  const runs = report.phases
    .flatMap((p) => p.runs)
    .filter((r) => !r.dryRun && r.steps.some((s) => s.id === stepId));
  const did: string[] = [];
  for (const run of runs) {
    const s = run.steps.find((x) => x.id === stepId)!;
    for (const line of run.thread.filter((l) => l.includes(stepId) && /retry|resum|attempt|fail/i.test(l)))
      did.push(`said in the run's thread: “${line.replace(/\s+/g, " ").slice(0, 300)}”`);
    if (s.attempts > 1) did.push(`retried the step: ${s.status} on attempt ${s.attempts}`);
    else
      did.push(
        `step ${s.status} on attempt ${s.attempts}${fired ? " (recovered inside the step: its own retries)" : ""}`,
      );
    if (s.summary) did.push(`result: ${s.summary}`);
    break;
  }
  // the end state: the data identical on both sides, verified again after the switch, and production on the new stack
  const endState = [
    "database rows identical",
    "storage objects identical",
    "verification after the cutover",
    "end state: on the new stack",
  ];
  const endStateCorrect = endState.every((name) => report.checks.some((c) => c.name === name && c.ok));
  report.fault = {
    step: stepId,
    kind: fault.kind,
    fired: Boolean(fired),
    whatFailed: fired ?? "the fault never fired (the step finished before it could be hit)",
    whatTheBotDid: did,
    endStateCorrect,
  };
  check("fault: injected", Boolean(fired), fired ?? "did not fire");
  check(
    "fault: the end state is still correct",
    endStateCorrect,
    endStateCorrect
      ? endState.join(", ")
      : `failed: ${endState.filter((n) => !report.checks.some((c) => c.name === n && c.ok)).join(", ")}`,
  );
}

/** chat.update calls that sent a message what it already said (DESIGN.md: never such an edit). */
function idleEdits(calls: RecordedCall[]): number {
  const said = new Map<string, string>();
  let idle = 0;
  for (const c of calls) {
    if (c.error || c.method !== "chat.update") continue;
    const content = JSON.stringify([c.args.text ?? null, c.args.blocks ?? null]);
    // a post's ts is in Slack's answer, not its arguments: edits are compared with edits
    const key = `${c.args.channel}/${c.args.ts}`;
    if (said.get(key) === content) idle++;
    said.set(key, content);
  }
  return idle;
}
