import { createHash, randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { Readable } from "node:stream";
import { z } from "zod";
import { objectUrl } from "../../../cloud/cdn.js";
import type { RemoteShell } from "../../../cloud/ssh.js";
import { CancelledError, CutoverError, describeError, ErrorCode } from "../../../errors.js";
import { verificationView } from "../../../views/verification.js";
import type { ContextOf, StepBehaviour, StepContextOf, StepKind } from "../../define-step.js";
import type { StepDeps } from "../../index.js";
import { latestFigure } from "../../outputs.js";
import { readProvisioned } from "../../provisioned.js";
import type { StepContext, StepDefinition, StepOutcome, VerifyOutcome } from "../../types.js";
import { lightsailStaticIp, openHostShell } from "../host/common.js";
import { openTarget } from "../storage/common.js";
import {
  type CheckRow,
  headline,
  reportFigures,
  reportText,
  type VerificationKind,
  type VerificationReport,
} from "./report.js";

/**
 * What the three verification steps (verify.functional, verify.performance, verify.reliability)
 * share: the row every check produces, the report and its figures, where the new API and the CDN
 * are, a small HTTP client that can reach the new host by IP before DNS points at it, and the
 * wrapper that turns a check's error into a failing row that says what to look at. The report's
 * shape and headline are in ./verify-report.ts, which views/verification.ts renders.
 */

export * from "./report.js";

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

/** A measured row: it passes when nothing is wrong, and otherwise names what to look at, joined. */
export function judged(
  measured: string,
  problems: readonly string[],
  figures: CheckRow["figures"],
): Awaited<ReturnType<Check["measure"]>> {
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

// ───────────────────────────── where the new API and the CDN are ─────────────────────────────

/** How to reach the new API: a base URL, and for a host reached by IP the name it serves. */
export interface AppTarget {
  /** https://api.example.com or https://203.0.113.7 */
  baseUrl: string;
  /** sent with every request (Host for a host reached by IP) */
  headers: Record<string, string>;
  /** the TLS server name (SNI) for a host reached by IP */
  servername?: string;
  /** false for a Cloudflare origin certificate, which no public CA signs */
  rejectUnauthorized: boolean;
  /** in words, for the report: "https://203.0.113.7 as api.example.com" */
  label: string;
}

async function staticIp(deps: StepDeps): Promise<string | undefined> {
  const recorded = (await readProvisioned(deps.dataDir, deps.file.environment))["target.lightsail.staticIp"];
  if (recorded) return recorded;
  if (deps.db) {
    const figure = await latestFigure(deps.db, deps.file, "lightsail.instance", "staticIp");
    if (figure) return figure;
  }
  if (!deps.file.target?.lightsail) return undefined;
  try {
    return await lightsailStaticIp(deps);
  } catch {
    return undefined;
  }
}

/**
 * Where API checks go: `verification.baseUrl` when the file has one; otherwise the new host by its
 * static IP, asked for the site's name (Host and TLS server name) so nginx answers as it will
 * once DNS points there: this works before the switch.
 */
export async function resolveApp(deps: StepDeps): Promise<AppTarget> {
  const configured = deps.file.verification.baseUrl;
  if (configured) {
    return {
      baseUrl: configured.replace(/\/+$/, ""),
      headers: {},
      rejectUnauthorized: true,
      label: configured,
    };
  }
  const ip = await staticIp(deps);
  if (!ip) {
    throw new CutoverError(ErrorCode.BadArgument, "The new host's address is not known yet.", {
      hint: "Run the `lightsail.instance` step first, or set `verification.baseUrl` in the migration file (e.g. https://api.example.com).",
    });
  }
  const host = deps.file.target?.host;
  const name = host?.nginx.serverNames[0] ?? deps.file.dns?.records[0]?.name;
  const tls = host?.nginx.tls.mode ?? "none";
  const literal = ip.includes(":") ? `[${ip}]` : ip;
  if (!name)
    return {
      baseUrl: `http://${literal}`,
      headers: {},
      rejectUnauthorized: true,
      label: `http://${literal}`,
    };
  if (tls === "none") {
    return {
      baseUrl: `http://${literal}`,
      headers: { host: name },
      rejectUnauthorized: true,
      label: `http://${literal} as ${name}`,
    };
  }
  return {
    baseUrl: `https://${literal}`,
    headers: { host: name },
    servername: name,
    rejectUnauthorized: tls !== "cloudflare-origin",
    label: `https://${literal} as ${name}`,
  };
}

/**
 * The CDN's base URL: the step's `cdnBaseUrl`, else the CloudFront domain `s3.bucket` recorded,
 * else undefined (not provisioned yet).
 */
export async function resolveCdnBase(deps: StepDeps, override?: string): Promise<string | undefined> {
  if (override) return override.replace(/\/+$/, "");
  const recorded = (await readProvisioned(deps.dataDir, deps.file.environment))["target.cloudfront.domain"];
  if (recorded) return `https://${recorded}`;
  if (deps.db) {
    const figure = await latestFigure(deps.db, deps.file, "s3.bucket", "distributionDomain");
    if (figure) return `https://${figure}`;
  }
  return undefined;
}

/** A URL under the app's base, keeping the base's own path. */
export function appUrl(app: AppTarget, p: string): string {
  return `${app.baseUrl}${p.startsWith("/") ? p : `/${p}`}`;
}

// ───────────────────────────── HTTP ─────────────────────────────

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
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = AbortSignal.any([opts.signal, timeout]);
  const started = performance.now();
  const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
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

// ───────────────────────────── helpers for rows ─────────────────────────────

/** `/api/v1/products` → `api-v1-products`; `/` → `root` */
export function slug(p: string): string {
  return (
    p
      .replace(/[?#].*$/, "")
      .replace(/^\/+|\/+$/g, "")
      .replace(/[^A-Za-z0-9]+/g, "-")
      .toLowerCase() || "root"
  );
}

/** 12.3 → "12 ms", 0.42 → "0.4 ms" */
export function ms(n: number): string {
  return n < 10 ? `${Math.round(n * 10) / 10} ms` : `${Math.round(n)} ms`;
}

export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Megabytes (10^6 bytes) per second. */
export function mbps(bytes: number, millis: number): number {
  return millis <= 0 ? 0 : round(bytes / 1e6 / (millis / 1000), 2);
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

/** An open SSH shell to the app host, shared by the checks of one step and closed after them. */
export class LazyShell {
  private shell: Promise<RemoteShell> | undefined;

  constructor(
    private readonly deps: StepDeps,
    private readonly w: { address?: string | undefined; connectTimeoutSeconds: number },
    private readonly ctx: StepContext,
  ) {}

  get(): Promise<RemoteShell> {
    this.shell ??= openHostShell(this.deps, this.w, this.ctx);
    return this.shell;
  }

  async close(): Promise<void> {
    const s = this.shell;
    this.shell = undefined;
    if (s) await (await s.catch(() => undefined))?.close();
  }
}

// ───────────────────────────── a test object through the bucket and the CDN ─────────────────────────────

/** Where verification test objects go in the target bucket; each is deleted after its check. */
export const TEST_OBJECT_PREFIX = "cutover-verify/";

/** What one round trip of a test object measured. */
export interface RoundTrip {
  key: string;
  bytes: number;
  uploadMs: number;
  uploadMBps: number;
  downloadMs: number;
  downloadMBps: number;
  /** where it was read back from: the CDN's base URL, or "the bucket" */
  via: string;
  /** the bytes read back equal the bytes written */
  identical: boolean;
  downloadStatus?: number;
  downloadError?: string;
  /** the test object could not be deleted (the key is named so it can be removed by hand) */
  cleanupFailed?: boolean;
}

const BLOCK = 1024 * 1024;

/**
 * Writes a random object of `bytes` to the target bucket, reads it back through the CDN (or the
 * bucket when no CDN is known), compares the content, and deletes it again whatever happened.
 * Objects above 16 MiB are written as a multipart upload from a stream (memory stays small).
 */
export async function objectRoundTrip(
  deps: StepDeps,
  ctx: StepContext,
  opts: { bytes: number; cdnBase: string | undefined; timeoutMs: number },
): Promise<RoundTrip> {
  const store = openTarget(deps);
  const key = `${TEST_OBJECT_PREFIX}${ctx.run.id.slice(0, 8)}-${randomBytes(4).toString("hex")}.bin`;
  const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(opts.timeoutMs)]);
  const meta = {
    contentType: "application/octet-stream",
    cacheControl: "no-store",
    metadata: { "cutover-verify": "1" },
  };
  const block = randomBytes(Math.min(BLOCK, opts.bytes));
  const written = createHash("sha256");
  let uploaded = false;
  let result: RoundTrip;
  let removed = false;
  try {
    const t0 = performance.now();
    if (opts.bytes <= 16 * BLOCK) {
      const body = Buffer.alloc(opts.bytes);
      for (let at = 0; at < opts.bytes; at += block.length)
        block.copy(body, at, 0, Math.min(block.length, opts.bytes - at));
      written.update(body);
      await store.put(key, body, body.length, meta, { signal });
    } else {
      let left = opts.bytes;
      const stream = Readable.from(
        (function* () {
          while (left > 0) {
            const piece = left >= block.length ? block : block.subarray(0, left);
            left -= piece.length;
            written.update(piece);
            yield piece;
          }
        })(),
      );
      await store.upload(key, stream, meta, { signal, partSize: 8 * BLOCK, queueSize: 4 });
    }
    uploaded = true;
    const uploadMs = performance.now() - t0;
    const expected = written.digest("hex");
    let got: { ms: number; bytes: number; sha256: string; status?: number; error?: string };
    if (opts.cdnBase) {
      const a = await httpRequest(objectUrl(opts.cdnBase, key), {
        timeoutMs: opts.timeoutMs,
        signal: ctx.signal,
      });
      got = {
        ms: a.ms,
        bytes: a.bytes,
        sha256: a.sha256,
        ...(a.status ? { status: a.status } : {}),
        ...(a.error ? { error: a.error } : {}),
      };
    } else {
      const t1 = performance.now();
      const { body } = await store.get(key, { signal });
      const h = createHash("sha256");
      let n = 0;
      for await (const chunk of body as AsyncIterable<Buffer>) {
        n += chunk.length;
        h.update(chunk);
      }
      got = { ms: performance.now() - t1, bytes: n, sha256: h.digest("hex"), status: 200 };
    }
    result = {
      key,
      bytes: opts.bytes,
      uploadMs: round(uploadMs),
      uploadMBps: mbps(opts.bytes, uploadMs),
      downloadMs: round(got.ms),
      downloadMBps: got.status === 200 ? mbps(got.bytes, got.ms) : 0,
      via: opts.cdnBase ?? "the bucket",
      identical: got.status === 200 && got.bytes === opts.bytes && got.sha256 === expected,
      ...(got.status !== undefined ? { downloadStatus: got.status } : {}),
      ...(got.error ? { downloadError: got.error } : {}),
    };
  } finally {
    // clean up even after a failure; a cancel still deletes (the run's own signal is not used)
    removed = await store
      .deleteMany([key], { signal: AbortSignal.timeout(30_000) })
      .then((r) => r.failed.length === 0)
      .catch(() => false);
    store.destroy();
    if (!removed && uploaded) ctx.log.warn({ key }, "could not delete the verification test object");
  }
  return removed ? result : { ...result, cleanupFailed: true };
}
