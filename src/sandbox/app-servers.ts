import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One request an app server received. */
export interface AppRequest {
  method: string;
  path: string;
  /** the Host header (a probe through a DNS name sends the record's name here) */
  host: string | undefined;
  /** epoch milliseconds when it arrived */
  at: number;
  /** the status answered; undefined while (or because) it hangs */
  status: number | undefined;
}

export interface AppServerOptions {
  /** who it stands for, e.g. "old (Zeabur)"; echoed in every answer */
  name: string;
  /** default "/health" */
  healthPath?: string;
  /** default 0: any free port */
  port?: number;
}

/** A canned answer for one path. */
export interface AppRoute {
  status?: number;
  body?: unknown;
}

/**
 * A small HTTP server standing for the app being migrated (the old host or the new one), whose
 * speed and health a test or a rehearsal can change while probes run against it.
 */
export interface AppServer {
  readonly name: string;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly port: number;
  /** `url` + the health path */
  readonly healthUrl: string;
  /** delay every answer by this much */
  setLatency(ms: number): void;
  /** answer every request with an error: true → 503, or the status given */
  setFailing(failing: boolean | { status: number }): void;
  /** accept requests and never answer them (until stopped) */
  setHanging(hanging: boolean): void;
  /** answer a path with a canned reply (undefined removes it); the health path cannot be replaced */
  setRoute(path: string, reply: AppRoute | undefined): void;
  /** every request so far, oldest first */
  requests(): AppRequest[];
  stop(): Promise<void>;
}

/**
 * Starts an app server on 127.0.0.1. `GET <healthPath>` answers
 * `{ "status": "ok", "app": name }`; other paths answer their route or 404.
 *
 * @example
 * const fresh = await startAppServer({ name: "new (Lightsail)" });
 * fresh.setFailing(true); // probes now see 503
 */
export async function startAppServer(opts: AppServerOptions): Promise<AppServer> {
  const healthPath = opts.healthPath ?? "/health";
  let latencyMs = 0;
  let failing: false | { status: number } = false;
  let hanging = false;
  const routes = new Map<string, AppRoute>();
  const log: AppRequest[] = [];

  const answer = (res: ServerResponse, entry: AppRequest, status: number, body: unknown) => {
    entry.status = status;
    if (res.destroyed) return;
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", "x-app": opts.name });
    res.end(JSON.stringify(body));
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    const entry: AppRequest = {
      method: req.method ?? "GET",
      path,
      host: req.headers.host,
      at: Date.now(),
      status: undefined,
    };
    log.push(entry);
    req.resume();
    if (hanging) return; // the socket stays open until the client gives up or the server stops
    const reply = () => {
      if (failing) return answer(res, entry, failing.status, { status: "error", app: opts.name });
      if (path === healthPath) return answer(res, entry, 200, { status: "ok", app: opts.name });
      const route = routes.get(path);
      if (route) return answer(res, entry, route.status ?? 200, route.body ?? { app: opts.name, path });
      return answer(res, entry, 404, { error: "not found", app: opts.name, path });
    };
    if (latencyMs > 0) setTimeout(reply, latencyMs);
    else reply();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  let stopped = false;

  return {
    name: opts.name,
    url,
    port,
    healthUrl: `${url}${healthPath}`,
    setLatency(ms) {
      latencyMs = Math.max(0, ms);
    },
    setFailing(f) {
      failing = f === true ? { status: 503 } : f === false ? false : { status: f.status };
    },
    setHanging(h) {
      hanging = h;
    },
    setRoute(path, reply) {
      if (reply === undefined) routes.delete(path);
      else routes.set(path, { ...reply });
    },
    requests() {
      return log.map((r) => ({ ...r }));
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}
