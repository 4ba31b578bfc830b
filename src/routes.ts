import type { IncomingMessage, ServerResponse } from "node:http";
import type { CustomRoute } from "@slack/bolt";
import type { Deps } from "./deps.js";
import { replicationStatus } from "./jobs/cutover/live.js";
import { findLock, pingStateDatabase, runsByStatus } from "./store/runs.js";

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** GET /healthz and GET /metrics, served next to /slack/events in both Slack modes. */
export function httpRoutes(deps: Pick<Deps, "db" | "metrics" | "file" | "live">): CustomRoute[] {
  return [
    {
      path: "/healthz",
      method: ["GET"],
      handler: async (_req: IncomingMessage, res: ServerResponse) => {
        try {
          await withTimeout(pingStateDatabase(deps.db), 2_000);
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ ok: true, state: "ok" }));
        } catch (err) {
          res.writeHead(503, { "content-type": "application/json" });
          res.end(JSON.stringify({ ok: false, state: `state database: ${(err as Error).message}` }));
        }
      },
    },
    {
      path: "/metrics",
      method: ["GET"],
      handler: async (_req: IncomingMessage, res: ServerResponse) => {
        const extra: string[] = [];
        try {
          const rows = await withTimeout(runsByStatus(deps.db), 2_000);
          extra.push(
            "# HELP cutover_runs Runs in the state database, by status.",
            "# TYPE cutover_runs gauge",
          );
          for (const r of rows) extra.push(`cutover_runs{status="${r.status}"} ${r.n}`);
          const lock = (await findLock(deps.db, deps.file.environment)) ? 1 : 0;
          extra.push(
            "# HELP cutover_env_locked 1 while a run holds the environment lock.",
            "# TYPE cutover_env_locked gauge",
          );
          extra.push(`cutover_env_locked{env="${deps.file.environment}"} ${lock}`);
        } catch {
          extra.push("# state database unavailable");
        }
        // a live migration: replication lag per direction, read from the databases at scrape time
        if (deps.live) {
          try {
            const found = await withTimeout(replicationStatus(deps.live.step), 5_000);
            extra.push(
              "# HELP cutover_replication_lag_bytes WAL bytes the subscriber has not confirmed, by direction.",
              "# TYPE cutover_replication_lag_bytes gauge",
              ...found.map(
                (s) => `cutover_replication_lag_bytes{direction="${s.direction}"} ${s.lag?.bytes ?? -1}`,
              ),
              "# HELP cutover_replication_lag_seconds Replication delay, by direction (0 when caught up).",
              "# TYPE cutover_replication_lag_seconds gauge",
              ...found.map(
                (s) => `cutover_replication_lag_seconds{direction="${s.direction}"} ${s.lag?.seconds ?? -1}`,
              ),
              "# HELP cutover_replication_connected 1 while the subscriber is connected to its slot.",
              "# TYPE cutover_replication_connected gauge",
              ...found.map(
                (s) => `cutover_replication_connected{direction="${s.direction}"} ${s.connected ? 1 : 0}`,
              ),
              "# HELP cutover_replication_slot_retained_bytes WAL the slot holds back on its server.",
              "# TYPE cutover_replication_slot_retained_bytes gauge",
              ...found.map(
                (s) =>
                  `cutover_replication_slot_retained_bytes{direction="${s.direction}"} ${s.retainedBytes}`,
              ),
            );
          } catch {
            extra.push("# replication status unavailable");
          }
        }
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
        res.end(deps.metrics.render(extra));
      },
    },
  ];
}

/**
 * In Socket Mode Bolt has no HTTP server of its own that Cutover can reach (its receiver keeps
 * it private, without an error handler), so /healthz and /metrics get this small one.
 */
export async function serveRoutes(routes: CustomRoute[], port: number): Promise<import("node:http").Server> {
  const { createServer } = await import("node:http");
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const route = routes.find((r) => r.path === path && [r.method].flat().includes(req.method ?? "GET"));
    if (!route) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found\n");
      return;
    }
    Promise.resolve(route.handler(req as never, res)).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}
