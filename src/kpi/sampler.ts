import pg from "pg";
import { connectionProblem, type Endpoint, scrub } from "../cloud/postgres.js";
import { type ProbeOptions, type ProbeResult, probeOnce } from "../cloud/probe.js";
import type { KpiConfig } from "../config/schema.js";
import type { KpiSampleRow } from "../store/kpi.js";
import { DB_TARGET } from "./summary.js";

/** Times one query on the target database over a connection it keeps between rounds. */
export interface DatabaseTimer {
  /** never throws for a failure of the database: that is a result with `ok: false` */
  time(timeoutMs: number): Promise<{ ok: boolean; ms: number | null; error: string | null }>;
  close(): Promise<void>;
}

/**
 * A {@link DatabaseTimer} for `query` on the database `endpoint()` names. The connection is
 * opened once and reused, so the figure is the query's time, not the connection's; a broken
 * or hung connection is dropped and opened again next round. The session is read-only.
 */
export function createDatabaseTimer(endpoint: () => Promise<Endpoint>, query: string): DatabaseTimer {
  let client: pg.Client | undefined;
  let ep: Endpoint | undefined;
  const drop = () => {
    const c = client;
    client = undefined;
    // not awaited: a hung server would hold `end()` too
    c?.end().catch(() => undefined);
  };
  const bounded = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
      p.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (err) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  return {
    async time(timeoutMs) {
      try {
        ep ??= await endpoint();
      } catch (err) {
        return { ok: false, ms: null, error: (err as Error).message.slice(0, 300) };
      }
      if (!client) {
        const c = new pg.Client({
          connectionString: ep.url,
          connectionTimeoutMillis: timeoutMs,
          application_name: "cutover-kpi",
        });
        c.on("error", () => undefined);
        try {
          await bounded(c.connect(), timeoutMs + 500, "connect");
          await c.query(
            `SET default_transaction_read_only = on; SET statement_timeout = ${Math.round(timeoutMs)}`,
          );
        } catch (err) {
          c.end().catch(() => undefined);
          return {
            ok: false,
            ms: null,
            error: connectionProblem(err, ep, Math.ceil(timeoutMs / 1000)).slice(0, 300),
          };
        }
        client = c;
      }
      const started = performance.now();
      try {
        await bounded(client.query(query), timeoutMs + 500, "query");
        return { ok: true, ms: Math.round((performance.now() - started) * 10) / 10, error: null };
      } catch (err) {
        const ms = Math.round((performance.now() - started) * 10) / 10;
        drop();
        const e = err as { code?: string; message?: string };
        const why =
          e.code === "57014" ? `the query ran past ${timeoutMs} ms` : scrub(e.message ?? String(err), ep.url);
        return { ok: false, ms, error: `target database: ${why}`.slice(0, 300) };
      }
    },
    async close() {
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
    },
  };
}

export interface RoundOptions {
  at: Date;
  probes: KpiConfig["probes"];
  /** the target database's timer, when the database is probed */
  database?: DatabaseTimer | undefined;
  /** how one HTTP probe is taken; default {@link probeOnce} */
  probe?: (url: string, opts: ProbeOptions) => Promise<ProbeResult>;
  signal?: AbortSignal;
}

/** One probe of every configured endpoint and one timed query, in parallel, each bounded by the timeout. */
export async function sampleRound(opts: RoundOptions): Promise<KpiSampleRow[]> {
  const probe = opts.probe ?? probeOnce;
  const { timeoutMs, endpoints } = opts.probes;
  const http = endpoints.map(async (e): Promise<KpiSampleRow> => {
    const r = await probe(e.url, {
      timeoutMs,
      expectStatus: e.expectStatus,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return {
      at: opts.at,
      target: e.id,
      ok: r.ok,
      status: r.status ?? null,
      // a probe with no answer has no latency; an answer's latency counts even when it is an error
      latencyMs: r.status === undefined ? null : r.ms,
      error: r.error ?? null,
    };
  });
  const database = opts.database
    ? opts.database.time(timeoutMs).then(
        (r): KpiSampleRow => ({
          at: opts.at,
          target: DB_TARGET,
          ok: r.ok,
          status: null,
          latencyMs: r.ms,
          error: r.error,
        }),
      )
    : undefined;
  return Promise.all(database ? [...http, database] : http);
}

export { type KpiSampleRow, pruneSamples, storeSamples } from "../store/kpi.js";
