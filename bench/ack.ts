import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { SHIPPED_BOT, signalGroup, spawnServer } from "../src/sandbox/child-bot.js";
import { FakeSlack, type RecordedCall } from "../src/sandbox/FakeSlack.js";
import { sendSlashCommand } from "../src/sandbox/slack-sender.js";
import { benchMigrationFile, BENCH_CHANNEL as CHANNEL, BENCH_OPERATOR as OPERATOR } from "./_runbooks.js";

/**
 * `npm run bench -- ack [--requests 200] [--concurrency 20] [--warmup 200] [--reply-timeout-ms 30000]`
 *
 * Ack latency of `/migrate status` through the running bot (`node dist/app.js`, what `npm start`
 * runs, in its own process: HTTP mode, its state database and worker): signed requests to its
 * /slack/events, N in flight at once, each timed to its HTTP response. Beside it, as the anchor,
 * the same requests to a bare Bolt App in a process of its own whose handler only acks (same
 * HTTPReceiver, bench/_anchor.mjs, plain JavaScript on the same node), so the ratio shows what Cutover adds. The load generator and
 * the Slack fake share this process, so neither server pays for them. Then every status reply is
 * awaited at the fake's response_url ("reply delivered": send → reply received).
 * Order: warm-up of both (a short one leaves the anchor's p99 at the mercy of the JIT: 180–550 ms
 * after 20 requests, ~50 ms after 200), the anchor on a quiet process, then the bot.
 * State: DATABASE_URL when set, else the embedded PostgreSQL in a temp directory.
 * One JSON object on stdout; progress on stderr.
 */

const TARGET_P99_MS = 100;

interface Options {
  requests: number;
  concurrency: number;
  warmup: number;
  replyTimeoutMs: number;
}

interface Sample {
  id: string;
  ok: boolean;
  /** time to the HTTP response: the ack latency */
  ms: number;
  /** performance.now() when the request was sent */
  sentAt: number;
  error?: string;
}

function parseArgs(args: string[]): Options {
  const opts: Options = { requests: 200, concurrency: 20, warmup: 200, replyTimeoutMs: 30_000 };
  const keys: Record<string, keyof Options> = {
    "--requests": "requests",
    "--concurrency": "concurrency",
    "--warmup": "warmup",
    "--reply-timeout-ms": "replyTimeoutMs",
  };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i]!.split("=", 2) as [string, string | undefined];
    const key = keys[flag];
    const raw = inline ?? args[++i];
    const n = Number(raw);
    if (!key || !Number.isInteger(n) || n < (key === "warmup" ? 0 : 1)) {
      throw new Error(
        `ack bench: cannot use ${flag}${raw === undefined ? "" : ` ${raw}`}; options: ${Object.keys(keys).join(", ")}, each with a whole number`,
      );
    }
    opts[key] = n;
  }
  return opts;
}

const progress = (msg: string) => process.stderr.write(`[bench ack] ${msg}\n`);

/** Nearest-rank percentile of an unsorted list, in ms rounded to 0.01. */
function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return round(sorted[rank - 1]!);
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/** Runs `send(0…n-1)` with at most `concurrency` in flight; results in index order. */
async function fire(n: number, concurrency: number, send: (i: number) => Promise<Sample>): Promise<Sample[]> {
  const samples: Sample[] = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      samples[i] = await send(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return samples;
}

/**
 * How long the load generator's own event loop stalled while `fn` ran: a generator that cannot
 * keep up would show here, not as the servers' latency.
 */
async function withLoopDelay<T>(
  fn: () => Promise<T>,
): Promise<{ value: T; loop: { p99_ms: number; max_ms: number } }> {
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  try {
    const value = await fn();
    return { value, loop: { p99_ms: round(h.percentile(99) / 1e6), max_ms: round(h.max / 1e6) } };
  } finally {
    h.disable();
  }
}

function summary(samples: readonly Sample[]) {
  const ok = samples.filter((s) => s.ok).map((s) => s.ms);
  return {
    requests: samples.length,
    p50_ms: percentile(ok, 50),
    p95_ms: percentile(ok, 95),
    p99_ms: percentile(ok, 99),
    max_ms: ok.length ? round(Math.max(...ok)) : null,
    errors: samples.length - ok.length,
  };
}

/** The tests' access rules and a two-phase runbook (the status reply lists its steps). */
function migrationFile(): string {
  return benchMigrationFile({
    project: "benchco",
    environment: "bench",
    operators: ["U0OPERATOR2", "S0OPS"],
    engine: "engine:\n  attempts: 2\n  backoffMs: 50\n",
    phases: `    - id: later
      title: Not yet built
      steps:
        - id: monitor
          uses: kpi.monitor
`,
  });
}

/** SIGTERM to the server's process group, SIGKILL if it has not ended within 10 s. */
async function stopServer(child: ChildProcess | undefined): Promise<void> {
  const timer = setTimeout(() => void signalGroup(child, "SIGKILL"), 10_000);
  await signalGroup(child, "SIGTERM");
  clearTimeout(timer);
}

export async function main(args: string[]): Promise<void> {
  const opts = parseArgs(args);
  const fake = new FakeSlack();
  await fake.start();
  fake.setUsergroup("S0OPS", ["U0GROUPIE"]);
  const dir = await mkdtemp(path.join(tmpdir(), "cutover-bench-ack-"));
  // mkdtemp makes it 0700; run as root, the embedded server runs as `postgres` and must get in.
  await chmod(dir, 0o755);
  const databaseUrl = process.env.DATABASE_URL?.trim() || undefined;
  const signingSecret = randomBytes(16).toString("hex");
  const botToken = `xoxb-bench-${randomBytes(8).toString("hex")}`;
  let bot: ChildProcess | undefined;
  let anchor: ChildProcess | undefined;

  // When each status reply reached the fake's response_url, by response_url id.
  const arrivals = new Map<string, number>();
  const onCall = (call: RecordedCall) => {
    if (call.method !== "response_url") return;
    arrivals.set(String(call.args.response_url_id), performance.now());
  };
  fake.on("call", onCall);

  try {
    // 1. The bot, as `npm start` runs it, and the anchor: a bare Bolt App that only acks.
    const configPath = path.join(dir, "migration.yml");
    await writeFile(configPath, migrationFile());
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      SLACK_BOT_TOKEN: botToken,
      SLACK_SIGNING_SECRET: signingSecret,
      SLACK_API_URL: fake.apiUrl,
      PORT: "0",
      CUTOVER_CONFIG: configPath,
      CUTOVER_DATA_DIR: dir,
      // the probe step is never run here; status only lists it
      PROBE_DATABASE_URL: databaseUrl ?? "postgres://bench@127.0.0.1:5432/unused",
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    };
    progress(
      `starting the bot (state: ${databaseUrl ? "DATABASE_URL" : `embedded PostgreSQL under ${dir}`})`,
    );
    const startedAt = performance.now();
    const started = await spawnServer([SHIPPED_BOT], env);
    bot = started.child;
    const botStartMs = performance.now() - startedAt;
    const botUrl = `http://127.0.0.1:${started.port}/slack/events`;
    const anchored = await spawnServer(["bench/_anchor.mjs"], env, {
      portLine: /\{"port":(\d+)\}/,
      label: "the anchor",
    });
    anchor = anchored.child;
    const anchorUrl = `http://127.0.0.1:${anchored.port}/slack/events`;
    progress(`bot up in ${Math.round(botStartMs)} ms on ${botUrl}; anchor on ${anchorUrl}`);

    const sendStatus = async (url: string, id: string, withReply: boolean): Promise<Sample> => {
      const responseUrl = withReply ? fake.responseUrl(id, { channel: CHANNEL, user: OPERATOR }) : undefined;
      const sentAt = performance.now();
      try {
        const res = await sendSlashCommand({
          url,
          signingSecret,
          command: "/migrate",
          text: "status",
          userId: OPERATOR,
          channelId: CHANNEL,
          ...(responseUrl ? { responseUrl } : {}),
          timeoutMs: 10_000,
        });
        return res.status === 200
          ? { id, ok: true, ms: res.ms, sentAt }
          : { id, ok: false, ms: res.ms, sentAt, error: `HTTP ${res.status}: ${res.body.slice(0, 200)}` };
      } catch (err) {
        return { id, ok: false, ms: performance.now() - sentAt, sentAt, error: (err as Error).message };
      }
    };

    const waitForReplies = async (ids: readonly string[], timeoutMs: number): Promise<number> => {
      const deadline = Date.now() + timeoutMs;
      const arrived = () => ids.filter((id) => arrivals.has(id)).length;
      while (arrived() < ids.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return arrived();
    };

    // 2. Warm-up: both servers, the bot's replies awaited so none spill into the measured run.
    let warmup: ReturnType<typeof summary> & { first_ms: number | null } = { ...summary([]), first_ms: null };
    if (opts.warmup > 0) {
      progress(`warm-up: ${opts.warmup} requests to each`);
      const botWarm = await fire(opts.warmup, opts.concurrency, (i) => sendStatus(botUrl, `warm-${i}`, true));
      await fire(opts.warmup, opts.concurrency, (i) => sendStatus(anchorUrl, `anchor-warm-${i}`, false));
      await waitForReplies(
        botWarm.filter((s) => s.ok).map((s) => s.id),
        opts.replyTimeoutMs,
      );
      warmup = { ...summary(botWarm), first_ms: botWarm[0] ? round(botWarm[0].ms) : null };
    }

    // 3. The anchor first, on a quiet process (nothing of the bot's is still in flight) …
    progress(`anchor: ${opts.requests} × /migrate status, ${opts.concurrency} at a time`);
    const { value: anchorSamples, loop: anchorLoop } = await withLoopDelay(() =>
      fire(opts.requests, opts.concurrency, (i) => sendStatus(anchorUrl, `anchor-${i}`, false)),
    );

    // 4. … then the bot, the same load, and every reply it sends to the response_url.
    progress(`bot: ${opts.requests} × /migrate status, ${opts.concurrency} at a time`);
    const { value: botSamples, loop: botLoop } = await withLoopDelay(() =>
      fire(opts.requests, opts.concurrency, (i) => sendStatus(botUrl, `ack-${i}`, true)),
    );
    const acked = botSamples.filter((s) => s.ok);
    progress(`bot: ${acked.length} acked; waiting for the replies at the response_url`);
    const arrived = await waitForReplies(
      acked.map((s) => s.id),
      opts.replyTimeoutMs,
    );
    const delivered = acked.filter((s) => arrivals.has(s.id)).map((s) => arrivals.get(s.id)! - s.sentAt);

    for (const [label, samples] of [
      ["bot", botSamples],
      ["anchor", anchorSamples],
    ] as const) {
      const slowest = [...samples].sort((x, y) => y.ms - x.ms).slice(0, 5);
      progress(
        `${label}: slowest ${slowest.map((s) => `#${s.id.split("-").pop()} ${Math.round(s.ms)} ms`).join(", ")}`,
      );
    }
    const errors = [...botSamples, ...anchorSamples].filter((s) => !s.ok);
    for (const e of errors.slice(0, 5)) progress(`error ${e.id}: ${e.error}`);

    const b = summary(botSamples);
    const a = summary(anchorSamples);
    const ratio = (x: number | null, y: number | null) => (x !== null && y ? round(x / y) : null);
    const result = {
      bench: "ack",
      requests: opts.requests,
      concurrency: opts.concurrency,
      p50_ms: b.p50_ms,
      p95_ms: b.p95_ms,
      p99_ms: b.p99_ms,
      max_ms: b.max_ms,
      errors: b.errors,
      // first send to last ack: the issue's "500 signed slash commands in 10 s" is this ≤ 10 s
      wall_ms: botSamples.length
        ? round(
            Math.max(...botSamples.map((s) => s.sentAt + s.ms)) -
              Math.min(...botSamples.map((s) => s.sentAt)),
          )
        : null,
      anchor: { p50_ms: a.p50_ms, p95_ms: a.p95_ms, p99_ms: a.p99_ms, max_ms: a.max_ms, errors: a.errors },
      ratio_to_anchor: { p50: ratio(b.p50_ms, a.p50_ms), p99: ratio(b.p99_ms, a.p99_ms) },
      target: { p99_ms: TARGET_P99_MS },
      meets_target: b.errors === 0 && b.p99_ms !== null && b.p99_ms <= TARGET_P99_MS,
      replies: {
        expected: acked.length,
        arrived,
        p50_ms: percentile(delivered, 50),
        p99_ms: percentile(delivered, 99),
        max_ms: delivered.length ? round(Math.max(...delivered)) : null,
      },
      warmup: {
        requests: opts.warmup,
        first_ms: warmup.first_ms,
        p50_ms: warmup.p50_ms,
        p99_ms: warmup.p99_ms,
        max_ms: warmup.max_ms,
        errors: warmup.errors,
      },
      generator_loop_delay: { bot_run: botLoop, anchor_run: anchorLoop },
      state_db: databaseUrl ? "DATABASE_URL" : "embedded",
      bot_start_ms: Math.round(botStartMs),
      node: process.version,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    fake.off("call", onCall);
    await stopServer(anchor);
    await stopServer(bot);
    await fake.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
