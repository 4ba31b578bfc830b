import { createHash } from "node:crypto";
import http from "node:http";
import https from "node:https";
import { CancelledError } from "../../../errors.js";
import type { StepDeps } from "../../define-step.js";
import { type AppTarget, appUrl } from "./app-target.js";

/** A small HTTP client that can reach the new host by IP with the name it serves, and what to look at when the app does not answer. */

/** What one request got. It never throws for the target's failure; a cancel throws CancelledError. */
export interface HttpAnswer {
  status?: number;
  /** from sending the request to the end of the body */
  ms: number;
  /** body bytes received */
  bytes: number;
  /** sha256 of the whole body, hex */
  sha256: string;
  /** the first {@link BODY_KEEP} bytes of the body, for text checks */
  body: Buffer;
  headers: http.IncomingHttpHeaders;
  /** why no answer came: "no answer within 5000 ms", "connection refused", … */
  error?: string;
}

export const BODY_KEEP = 1024 * 1024;

export interface HttpOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer;
  timeoutMs: number;
  signal: AbortSignal;
  servername?: string;
  rejectUnauthorized?: boolean;
  /** keep-alive agents shared by a series of probes (see {@link keepAliveAgents}) */
  agents?: { http: http.Agent; https: https.Agent };
}

/** Agents that reuse connections across a series of probes, as a browser would. Destroy them after. */
export function keepAliveAgents(): { http: http.Agent; https: https.Agent; destroy(): void } {
  const h = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const s = new https.Agent({ keepAlive: true, maxSockets: 4 });
  return {
    http: h,
    https: s,
    destroy() {
      h.destroy();
      s.destroy();
    },
  };
}

function networkError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  switch (e.code) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ECONNRESET":
      return "connection reset";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "host not found";
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return "host unreachable";
    case "CERT_HAS_EXPIRED":
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return `TLS certificate not accepted (${e.code})`;
    default:
      return e.message ?? String(err);
  }
}

/**
 * One HTTP(S) request through node:http, bounded by `timeoutMs` (a server that sends headers and
 * then stalls times out too). Unlike fetch it can send a Host header and a TLS server name of
 * its own, to reach the new host by IP before DNS points at it.
 */
export function httpRequest(url: string, opts: HttpOptions): Promise<HttpAnswer> {
  if (opts.signal.aborted) return Promise.reject(new CancelledError());
  const u = new URL(url);
  const secure = u.protocol === "https:";
  // the clock starts before the timeout's timer, so a timed-out request never reads faster than it
  const started = performance.now();
  const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = AbortSignal.any([opts.signal, timeout]);
  return new Promise<HttpAnswer>((resolve, reject) => {
    const hash = createHash("sha256");
    const kept: Buffer[] = [];
    let keptBytes = 0;
    let bytes = 0;
    let status: number | undefined;
    let headers: http.IncomingHttpHeaders = {};
    /** what came back so far, with the error that ended it when one did */
    const answer = (error?: string): HttpAnswer => ({
      ...(status === undefined ? {} : { status }),
      ms: elapsed(),
      bytes,
      sha256: hash.digest("hex"),
      body: Buffer.concat(kept),
      headers,
      ...(error === undefined ? {} : { error }),
    });
    const fail = (err: unknown) => {
      if (opts.signal.aborted) return reject(new CancelledError());
      const error = timeout.aborted ? `no answer within ${opts.timeoutMs} ms` : networkError(err);
      resolve(answer(error));
    };
    const reqHeaders: Record<string, string | number> = {
      "user-agent": "cutover-verify",
      "cache-control": "no-cache",
      ...opts.headers,
    };
    if (opts.body) reqHeaders["content-length"] = opts.body.length;
    const common = {
      method: opts.method ?? "GET",
      headers: reqHeaders,
      signal,
    };
    const onResponse = (res: http.IncomingMessage) => {
      status = res.statusCode;
      headers = res.headers;
      res.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
        if (keptBytes < BODY_KEEP) {
          kept.push(chunk.subarray(0, BODY_KEEP - keptBytes));
          keptBytes += Math.min(chunk.length, BODY_KEEP - keptBytes);
        }
      });
      res.on("end", () => resolve(answer()));
      res.on("error", fail);
    };
    const req = secure
      ? https.request(
          u,
          {
            ...common,
            ...(opts.servername ? { servername: opts.servername } : {}),
            rejectUnauthorized: opts.rejectUnauthorized ?? true,
            ...(opts.agents ? { agent: opts.agents.https } : {}),
          },
          onResponse,
        )
      : http.request(u, { ...common, ...(opts.agents ? { agent: opts.agents.http } : {}) }, onResponse);
    req.on("error", fail);
    req.end(opts.body);
  });
}

/** A request to the app: its base, Host and TLS name applied. */
export function appRequest(
  app: AppTarget,
  p: string,
  opts: Omit<HttpOptions, "servername" | "rejectUnauthorized">,
): Promise<HttpAnswer> {
  return httpRequest(appUrl(app, p), {
    ...opts,
    headers: { ...app.headers, ...opts.headers },
    ...(app.servername ? { servername: app.servername } : {}),
    rejectUnauthorized: app.rejectUnauthorized,
  });
}

/** What to look at when the app does not answer as wanted. */
export function appHint(
  deps: StepDeps,
  answer: Pick<HttpAnswer, "status" | "error">,
  timeoutMs: number,
): string {
  const svc = deps.file.target?.host?.supervisor.services[0]?.name;
  const log = svc ? `/var/log/supervisor/${svc}-stderr.log` : "the app's error log";
  if (answer.error?.startsWith("no answer")) {
    return `nothing came back within ${timeoutMs} ms: look at gunicorn's workers (busy or stuck), nginx's upstream and ${log}`;
  }
  if (answer.error === "connection refused") {
    return "nothing listens there: check nginx is running (`sudo systemctl status nginx`) and the Lightsail firewall opens the port";
  }
  if (answer.error?.startsWith("TLS")) {
    return "the certificate does not match the name: check the certificate on the host, or set `verification.baseUrl`";
  }
  if (answer.error) return `the request failed (${answer.error}): check the address and the firewall`;
  if (answer.status === 502 || answer.status === 504) {
    return `nginx answered ${answer.status}: gunicorn is down or too slow — \`sudo supervisorctl status\`, then ${log}`;
  }
  if (answer.status && answer.status >= 500) return `the app failed: look at ${log}`;
  if (answer.status === 401 || answer.status === 403) {
    return "the endpoint refused the request: check the token named by bearerTokenEnv and the user it belongs to";
  }
  if (answer.status === 404)
    return "no such route: check the path in the migration file and the deployed release";
  return `look at ${log}`;
}
