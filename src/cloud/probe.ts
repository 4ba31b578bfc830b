import { CancelledError } from "../errors.js";

/** The outcome of one HTTP probe. */
export interface ProbeResult {
  /** a 2xx or 3xx answer (or exactly `expectStatus` when one was asked for) */
  ok: boolean;
  status?: number;
  /** from sending the request to the end of the body, in milliseconds */
  ms: number;
  /** why it failed: "HTTP 503", "no answer within 5000 ms", "connection refused", … */
  error?: string;
}

export interface ProbeOptions {
  /** a probe that has not finished by then fails; this bounds a hanging server */
  timeoutMs: number;
  /** aborting it makes probeOnce throw a CancelledError (a cancel is not a failed probe) */
  signal?: AbortSignal;
  method?: "GET" | "HEAD";
  /** ok only on this status (else any 2xx/3xx) */
  expectStatus?: number;
  headers?: Record<string, string>;
  fetch?: typeof fetch;
}

/**
 * One request to `url`, bounded by `timeoutMs`. It never throws for a failure of the target
 * (refused, timed out, 5xx): that is a result with `ok: false`. Redirects are not followed.
 */
export async function probeOnce(url: string, opts: ProbeOptions): Promise<ProbeResult> {
  const f = opts.fetch ?? fetch;
  // the clock starts before the timeout's timer: a process descheduled between the two (a loaded
  // machine) would otherwise report a timed-out probe as faster than its timeout
  const started = performance.now();
  const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  if (opts.signal?.aborted) throw new CancelledError();
  try {
    const res = await f(url, {
      method: opts.method ?? "GET",
      redirect: "manual",
      signal,
      headers: { "user-agent": "cutover-probe", "cache-control": "no-cache", ...opts.headers },
    });
    // the body counts: a server that sends headers and then stalls is not healthy
    await res.arrayBuffer();
    const ms = elapsed();
    const ok =
      opts.expectStatus === undefined
        ? res.status >= 200 && res.status < 400
        : res.status === opts.expectStatus;
    return ok ? { ok, status: res.status, ms } : { ok, status: res.status, ms, error: `HTTP ${res.status}` };
  } catch (err) {
    const ms = elapsed();
    if (opts.signal?.aborted) throw new CancelledError();
    if (timeout.aborted) return { ok: false, ms, error: `no answer within ${opts.timeoutMs} ms` };
    return { ok: false, ms, error: describeFetchError(err) };
  }
}

function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  switch (cause?.code) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ECONNRESET":
    case "UND_ERR_SOCKET":
      return "connection reset";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "host not found";
    case "UND_ERR_CONNECT_TIMEOUT":
      return "connect timeout";
    default:
      return cause?.message ?? (err instanceof Error ? err.message : String(err));
  }
}

// ───────────────────────────── pure statistics ─────────────────────────────

/** What the statistics need of a probe. `at` is when it started (epoch ms, or any clock). */
export interface TimedProbe {
  at: number;
  ok: boolean;
  ms: number;
}

export interface LatencyStats {
  samples: number;
  failures: number;
  /** failures / samples, 0..1 (0 with no samples) */
  errorRate: number;
  /** over the successful probes; undefined when none succeeded */
  avgMs: number | undefined;
  p95Ms: number | undefined;
  minMs: number | undefined;
  maxMs: number | undefined;
}

/** The longest outage seen: from its first failed probe to the next success (or the window's end). */
export interface Outage {
  from: number;
  to: number;
  /** failed probes in it */
  probes: number;
  /** it lasted to the end of the window: no success came after it */
  open: boolean;
}

export interface TargetStats extends LatencyStats {
  /** the longest outage, in ms; 0 when no probe failed */
  downtimeMs: number;
  outage: Outage | undefined;
}

/** The p-th percentile (0..100) by nearest rank; undefined for no values. */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

/** Counts, error rate and latency (of the successful probes only: a timeout is not a latency). */
export function latencyStats(probes: readonly TimedProbe[]): LatencyStats {
  const good = probes.filter((p) => p.ok).map((p) => p.ms);
  const failures = probes.length - good.length;
  const round = (n: number | undefined) => (n === undefined ? undefined : Math.round(n * 10) / 10);
  return {
    samples: probes.length,
    failures,
    errorRate: probes.length === 0 ? 0 : failures / probes.length,
    avgMs: round(good.length ? good.reduce((a, b) => a + b, 0) / good.length : undefined),
    p95Ms: round(percentile(good, 95)),
    minMs: round(good.length ? Math.min(...good) : undefined),
    maxMs: round(good.length ? Math.max(...good) : undefined),
  };
}

/**
 * The longest run of consecutive failed probes, measured from the first failure of the run to
 * the next success, or to `windowEnd` when no success followed. Its resolution is the probe
 * interval: one failed probe between two good ones counts as one interval of downtime.
 */
export function longestOutage(probes: readonly TimedProbe[], windowEnd: number): Outage | undefined {
  const sorted = [...probes].sort((a, b) => a.at - b.at);
  let best: Outage | undefined;
  let start: number | undefined;
  let count = 0;
  const close = (to: number, open: boolean) => {
    if (start === undefined) return;
    const run: Outage = { from: start, to, probes: count, open };
    if (!best || run.to - run.from > best.to - best.from) best = run;
    start = undefined;
    count = 0;
  };
  for (const p of sorted) {
    if (p.ok) close(p.at, false);
    else {
      start ??= p.at;
      count++;
    }
  }
  close(Math.max(windowEnd, start ?? windowEnd), true);
  return best;
}

/** Everything the watch reports for one target, from its probes. */
export function summarize(probes: readonly TimedProbe[], windowEnd: number): TargetStats {
  const outage = longestOutage(probes, windowEnd);
  return { ...latencyStats(probes), downtimeMs: outage ? outage.to - outage.from : 0, outage };
}

// ───────────────────────────── the watch ─────────────────────────────

/** Time, injectable so the scheduling can be tested without waiting. */
export interface Clock {
  now(): number;
  /** resolves after `ms`, or early (without throwing) when the signal aborts */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener("abort", done, { once: true });
    }),
};

/** One probe taken during a watch. */
export interface WatchSample<K extends string = string> extends ProbeResult {
  target: K;
  url: string;
  /** when the probe started (clock ms) */
  at: number;
}

export interface WatchOptions<K extends string> {
  /** what to probe, by name, e.g. `{ old: "https://old.example.app/health", new: "https://api.example.com/health" }` */
  targets: Record<K, string>;
  windowMs: number;
  /** time between the starts of two probes of one target */
  intervalMs: number;
  /** per probe; default the interval, at most 10 s */
  timeoutMs?: number;
  /** stops the watch early; the report then covers the time until the abort */
  signal?: AbortSignal;
  onSample?: (sample: WatchSample<K>) => void;
  expectStatus?: number;
  headers?: Record<string, string>;
  clock?: Clock;
  /** how one probe is taken; default {@link probeOnce} */
  probe?: (url: string, opts: ProbeOptions) => Promise<ProbeResult>;
}

export interface WatchReport<K extends string> {
  startedAt: number;
  /** the window's end, or the moment of the abort */
  endedAt: number;
  aborted: boolean;
  targets: Record<K, TargetStats & { url: string }>;
}

/**
 * Probes every target every `intervalMs` for `windowMs` (targets in parallel, each on its own
 * schedule; a slow probe delays only its target's next one), then reports per target: samples,
 * failures, error rate, latency and the measured downtime.
 */
export async function watch<K extends string>(opts: WatchOptions<K>): Promise<WatchReport<K>> {
  const clock = opts.clock ?? realClock;
  const probe = opts.probe ?? probeOnce;
  const timeoutMs = opts.timeoutMs ?? Math.min(opts.intervalMs, 10_000);
  const startedAt = clock.now();
  const windowEnd = startedAt + opts.windowMs;
  const keys = Object.keys(opts.targets) as K[];
  const samples = new Map<K, WatchSample<K>[]>(keys.map((k) => [k, []]));
  let abortedAt: number | undefined;
  const onAbort = () => {
    abortedAt ??= clock.now();
  };
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener("abort", onAbort, { once: true });

  const loop = async (key: K) => {
    const url = opts.targets[key];
    let next = startedAt;
    for (;;) {
      const wait = next - clock.now();
      if (wait > 0) await clock.sleep(wait, opts.signal);
      const at = clock.now();
      if (opts.signal?.aborted || at >= windowEnd) return;
      let result: ProbeResult;
      try {
        result = await probe(url, {
          timeoutMs,
          ...(opts.signal ? { signal: opts.signal } : {}),
          ...(opts.expectStatus === undefined ? {} : { expectStatus: opts.expectStatus }),
          ...(opts.headers ? { headers: opts.headers } : {}),
        });
      } catch (err) {
        if (opts.signal?.aborted) return;
        throw err;
      }
      const sample: WatchSample<K> = { ...result, target: key, url, at };
      samples.get(key)!.push(sample);
      opts.onSample?.(sample);
      // after a probe slower than the interval the next starts at once: no burst to catch up
      next = Math.max(next + opts.intervalMs, clock.now());
    }
  };
  try {
    await Promise.all(keys.map(loop));
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
  }
  const aborted = abortedAt !== undefined;
  const endedAt = aborted ? Math.min(abortedAt!, windowEnd) : windowEnd;
  const targets = {} as Record<K, TargetStats & { url: string }>;
  for (const k of keys) targets[k] = { url: opts.targets[k], ...summarize(samples.get(k)!, endedAt) };
  return { startedAt, endedAt, aborted, targets };
}

export interface BaselineOptions {
  timeoutMs?: number;
  /** pause between probes; default 0 */
  gapMs?: number;
  signal?: AbortSignal;
  expectStatus?: number;
  headers?: Record<string, string>;
}

/** `n` probes one after another: the latency to compare the new stack with before the cutover. */
export async function baseline(url: string, n: number, opts: BaselineOptions = {}): Promise<LatencyStats> {
  const probes: TimedProbe[] = [];
  for (let i = 0; i < n; i++) {
    if (i > 0 && opts.gapMs) await realClock.sleep(opts.gapMs, opts.signal);
    if (opts.signal?.aborted) throw new CancelledError();
    const at = Date.now();
    const r = await probeOnce(url, {
      timeoutMs: opts.timeoutMs ?? 5_000,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.expectStatus === undefined ? {} : { expectStatus: opts.expectStatus }),
      ...(opts.headers ? { headers: opts.headers } : {}),
    });
    probes.push({ at, ok: r.ok, ms: r.ms });
  }
  return latencyStats(probes);
}
