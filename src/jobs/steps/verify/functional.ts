import { createHash, randomBytes } from "node:crypto";
import { z } from "zod";
import { connect, type Endpoint } from "../../../cloud/postgres.js";
import { type FunctionalCheck, requireSection } from "../../../config/schema.js";
import { CutoverError, ErrorCode, isCutoverError, notSet } from "../../../errors.js";
import type { PlannedChange, StepContext, StepDefinition, StepDeps } from "../../define-step.js";
import { fillCommand, hostPaths } from "../../host-script.js";
import { sourceEndpoint, targetEndpoint } from "../db/endpoints.js";
import { type AppTarget, resolveApp, resolveCdnBase } from "./app-target.js";
import {
  type Check,
  defineVerificationStep,
  judged,
  type MeasuredRow,
  runChecks,
  verificationStep,
} from "./checks.js";
import { ms, round } from "./format.js";
import { appHint, appRequest, httpRequest } from "./http.js";
import { LazyShell } from "./lazy-shell.js";
import { objectRoundTrip } from "./object-round-trip.js";
import type { CheckRow, VerificationReport } from "./report.js";

export const verifyFunctional = defineVerificationStep("functional", {
  input: {
    /** a SQL check's statement is cancelled after this long */
    queryTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
    /** an upload check's whole round trip is bounded by this */
    transferTimeoutSeconds: z.number().int().min(1).max(3600).default(300),
  },
  timeLimit: 900,
});
type Input = z.infer<typeof verifyFunctional.input>;

type Kind<K extends FunctionalCheck["kind"]> = Extract<FunctionalCheck, { kind: K }>;
type Row = MeasuredRow;

/** The array at a dot-separated path of a JSON value (`data.items`), or the value itself. */
export function itemsAt(value: unknown, jsonPath: string | undefined): unknown[] | undefined {
  let v = value;
  for (const part of jsonPath ? jsonPath.split(".").filter(Boolean) : []) {
    if (v === null || typeof v !== "object") return undefined;
    v = Array.isArray(v) && /^\d+$/.test(part) ? v[Number(part)] : (v as Record<string, unknown>)[part];
  }
  return Array.isArray(v) ? v : undefined;
}

function bearer(deps: StepDeps, name: string | undefined): Record<string, string> {
  if (!name) return {};
  const token = deps.env[name];
  if (!token) {
    throw notSet(name, {
      hint: `Set ${name} to a token of a test user the API accepts (the check's bearerTokenEnv), then verify again.`,
    });
  }
  return { authorization: `Bearer ${token}` };
}

async function httpCheck(deps: StepDeps, app: AppTarget, c: Kind<"http">, ctx: StepContext): Promise<Row> {
  const headers = bearer(deps, c.bearerTokenEnv);
  const body = c.body === undefined ? undefined : Buffer.from(JSON.stringify(c.body));
  if (body) headers["content-type"] = "application/json";
  const a = await appRequest(app, c.path, {
    method: c.method,
    headers,
    ...(body ? { body } : {}),
    timeoutMs: c.timeoutMs,
    signal: ctx.signal,
  });
  const figures: CheckRow["figures"] = { ms: round(a.ms) };
  if (a.status !== undefined) figures.status = a.status;
  if (a.error) return { measured: a.error, status: "fail", hint: appHint(deps, a, c.timeoutMs), figures };
  const problems: string[] = [];
  let measured = `${a.status} in ${ms(a.ms)}`;
  if (a.status !== c.expectStatus) problems.push(appHint(deps, a, c.timeoutMs));
  const text = a.body.toString("utf8");
  if (c.expectBodyContains !== undefined && !text.includes(c.expectBodyContains)) {
    measured += `, body lacks "${c.expectBodyContains}"`;
    problems.push("the answer is not what the app should send: compare it with the old host's");
  }
  if (c.minItems !== undefined) {
    let items: unknown[] | undefined;
    try {
      items = itemsAt(JSON.parse(text), c.jsonPath);
    } catch {
      items = undefined;
    }
    if (items === undefined) {
      measured += c.jsonPath ? `, no list at ${c.jsonPath}` : ", not a JSON list";
      problems.push(
        `the answer has no JSON list${c.jsonPath ? ` at \`${c.jsonPath}\`` : ""}: check jsonPath`,
      );
    } else {
      figures.items = items.length;
      measured += `, ${items.length} item${items.length === 1 ? "" : "s"}`;
      if (items.length < c.minItems) {
        problems.push(
          "the list is shorter than expected: check the data was copied (`/migrate verify database`)",
        );
      }
    }
  }
  return judged(measured, problems, figures);
}

function httpTarget(c: Kind<"http">): string {
  return [
    `${c.expectStatus}`,
    c.minItems !== undefined ? `≥ ${c.minItems} item${c.minItems === 1 ? "" : "s"}` : "",
    c.expectBodyContains !== undefined ? `body has "${c.expectBodyContains}"` : "",
  ]
    .filter(Boolean)
    .join(", ");
}

/** Rows and a digest of them, through one read-only connection; the median of three timed runs. */
async function timedQuery(
  ep: Endpoint,
  query: string,
  w: Input,
): Promise<{ rows: number; digest: string; ms: number }> {
  const client = await connect(ep, {
    timeoutSeconds: Math.ceil(w.connectTimeoutSeconds),
    readOnly: true,
    appName: "cutover-verify",
  });
  try {
    await client.query(`SET statement_timeout = ${w.queryTimeoutMs}`);
    const times: number[] = [];
    let first: { rows: unknown[]; rowCount: number | null } | undefined;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const r = await client.query(query).catch((err: unknown) => {
        const e = err as { code?: string; message?: string };
        throw new CutoverError(
          ErrorCode.StepFailed,
          e.code === "57014"
            ? `the query on the ${ep.side} database did not finish within ${w.queryTimeoutMs} ms`
            : `the query failed on the ${ep.side} database: ${e.message ?? String(err)}`,
          {
            hint:
              e.code === "57014"
                ? "run it with EXPLAIN ANALYZE: an index may be missing"
                : "check the query in the migration file",
          },
        );
      });
      times.push(performance.now() - t0);
      first ??= r;
    }
    times.sort((a, b) => a - b);
    const rows = first!.rows;
    return {
      rows: first!.rowCount ?? rows.length,
      digest: createHash("sha256").update(JSON.stringify(rows)).digest("hex"),
      ms: times[1]!,
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function sqlCheck(deps: StepDeps, c: Kind<"sql">, w: Input): Promise<Row> {
  const maxMs = deps.file.verification.performance.database.maxAvgMs;
  const target = await timedQuery(await targetEndpoint(deps), c.query, w);
  const figures: CheckRow["figures"] = { rows: target.rows, ms: round(target.ms) };
  const problems: string[] = [];
  let measured = `${target.rows} row${target.rows === 1 ? "" : "s"} in ${ms(target.ms)}`;
  if (target.rows < c.minRows)
    problems.push("fewer rows than expected: check the data was copied (`/migrate verify database`)");
  if (target.ms > maxMs) {
    problems.push(
      "slow: run the query with EXPLAIN ANALYZE on the target (missing index?), and look at the RDS instance's CPU credits",
    );
  }
  if (c.compareWithSource) {
    const source = await timedQuery(sourceEndpoint(deps), c.query, w);
    const same = source.rows === target.rows && source.digest === target.digest;
    figures.sourceRows = source.rows;
    figures.sourceMs = round(source.ms);
    figures.matchesSource = same;
    measured += same
      ? ", same as the source"
      : `, source has ${source.rows} row${source.rows === 1 ? "" : "s"} (different)`;
    if (!same)
      problems.push("the target answers differently from the source: run `/migrate verify database`");
  }
  return judged(measured, problems, figures);
}

/** The first URL in an upload's JSON answer: `url`, `location`, `file_url`, … or any http(s) string. */
export function findUrl(value: unknown, depth = 0): string | undefined {
  if (typeof value === "string") return /^(https?:\/\/|\/)\S+$/.test(value) ? value : undefined;
  if (!value || typeof value !== "object" || depth > 4) return undefined;
  const rec = value as Record<string, unknown>;
  for (const k of ["url", "location", "file_url", "fileUrl", "href", "download_url", "downloadUrl"]) {
    const found = typeof rec[k] === "string" ? findUrl(rec[k], depth + 1) : undefined;
    if (found) return found;
  }
  for (const v of Object.values(rec)) {
    if (typeof v === "string" && !/^https?:\/\//.test(v)) continue;
    const found = findUrl(v, depth + 1);
    if (found) return found;
  }
  return undefined;
}

async function uploadThroughApp(
  deps: StepDeps,
  app: AppTarget,
  c: Kind<"upload"> & { path: string },
  w: Input,
  ctx: StepContext,
): Promise<Row> {
  const data = randomBytes(c.sizeKb * 1024);
  const boundary = `cutover${randomBytes(8).toString("hex")}`;
  const name = `cutover-verify-${randomBytes(4).toString("hex")}.bin`;
  const body = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="${c.fileField}"; filename="${name}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    ),
    data,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const timeoutMs = w.transferTimeoutSeconds * 1000;
  const up = await appRequest(app, c.path, {
    method: "POST",
    headers: {
      ...bearer(deps, c.bearerTokenEnv),
      "content-type": `multipart/form-data; boundary=${boundary}`,
    },
    body,
    timeoutMs,
    signal: ctx.signal,
  });
  const uploadMBps = up.ms > 0 ? round(data.length / 1e6 / (up.ms / 1000), 2) : 0;
  const figures: CheckRow["figures"] = { bytes: data.length, uploadMs: round(up.ms), uploadMBps };
  if (up.status !== undefined) figures.uploadStatus = up.status;
  if (up.error || !up.status || up.status >= 300) {
    return {
      measured: up.error ?? `upload answered ${up.status}`,
      status: "fail",
      hint: appHint(deps, up, timeoutMs),
      figures,
    };
  }
  let json: unknown;
  try {
    json = JSON.parse(up.body.toString("utf8"));
  } catch {
    json = undefined;
  }
  const url = findUrl(json);
  if (!url) {
    return {
      measured: `uploaded ${c.sizeKb} KB at ${uploadMBps} MB/s; the answer names no URL to read it back from`,
      status: "fail",
      hint: "have the endpoint answer with the file's `url`, or drop `path` to test the bucket and CDN directly",
      figures,
    };
  }
  const down = url.startsWith("/")
    ? await appRequest(app, url, { timeoutMs, signal: ctx.signal })
    : await httpRequest(url, { timeoutMs, signal: ctx.signal });
  const identical = down.status === 200 && down.sha256 === createHash("sha256").update(data).digest("hex");
  figures.downloadMs = round(down.ms);
  figures.downloadMBps = down.status === 200 ? round(down.bytes / 1e6 / (down.ms / 1000), 2) : 0;
  figures.identical = identical;
  return {
    measured: `uploaded ${c.sizeKb} KB at ${uploadMBps} MB/s; read back ${down.error ?? (down.status === 200 ? `at ${figures.downloadMBps} MB/s` : `HTTP ${down.status}`)}${identical ? ", identical" : down.status === 200 ? ", content differs" : ""}`,
    status: identical ? "pass" : "fail",
    ...(identical
      ? {}
      : {
          hint: `reading ${url} back failed: check the app's storage settings (S3_BUCKET, CDN_URL in its .env) and the CDN`,
        }),
    figures,
  };
}

async function uploadThroughBucket(
  deps: StepDeps,
  c: Kind<"upload">,
  w: Input,
  ctx: StepContext,
): Promise<Row> {
  requireSection(deps.file, "target.s3");
  const cdnBase = await resolveCdnBase(deps, w.cdnBaseUrl);
  const r = await objectRoundTrip(deps, ctx, {
    bytes: c.sizeKb * 1024,
    cdnBase,
    timeoutMs: w.transferTimeoutSeconds * 1000,
  });
  const via = cdnBase ? "the CDN" : "the bucket (no CDN known yet)";
  const figures: CheckRow["figures"] = {
    bytes: r.bytes,
    uploadMBps: r.uploadMBps,
    downloadMBps: r.downloadMBps,
    identical: r.identical,
    cleanedUp: !r.cleanupFailed,
  };
  const problems: string[] = [];
  if (!r.identical) {
    problems.push(
      r.downloadError || r.downloadStatus !== 200
        ? `reading it back through ${via} failed (${r.downloadError ?? `HTTP ${r.downloadStatus}`}): check the distribution's origin and its origin access control (the bucket policy)`
        : "the bytes read back differ from those written: check the CDN does not transform objects",
    );
  }
  if (r.cleanupFailed) problems.push(`the test object ${r.key} could not be deleted: remove it by hand`);
  return judged(
    `${c.sizeKb} KB up at ${r.uploadMBps} MB/s, down through ${via} ${r.downloadStatus === 200 ? `at ${r.downloadMBps} MB/s` : (r.downloadError ?? `HTTP ${r.downloadStatus}`)}${r.identical ? ", identical" : ""}`,
    problems,
    figures,
  );
}

async function commandCheck(
  deps: StepDeps,
  shell: LazyShell,
  c: Kind<"command">,
  ctx: StepContext,
): Promise<Row> {
  const host = requireSection(deps.file, "target.host");
  const command = fillCommand(c.command, host, hostPaths(deps.file, host));
  const sh = await shell.get();
  const t0 = performance.now();
  let r: Awaited<ReturnType<typeof sh.exec>>;
  try {
    r = await sh.exec(command, { signal: ctx.signal, timeoutMs: c.timeoutSeconds * 1000 });
  } catch (err) {
    if (isCutoverError(err, ErrorCode.TimedOut)) {
      return {
        measured: `no answer within ${c.timeoutSeconds} s`,
        status: "fail",
        hint: `it hangs: run \`${command}\` on ${sh.host} by hand (a worker that does not answer, a sudo asking for a password?)`,
        figures: { seconds: c.timeoutSeconds, timedOut: true },
      };
    }
    throw err;
  }
  const seconds = round((performance.now() - t0) / 1000, 2);
  const output = `${r.stdout}\n${r.stderr}`;
  const problems: string[] = [];
  let measured = `exit ${r.code ?? r.signal ?? "none"} in ${seconds} s`;
  if (r.code !== c.expectExitCode) problems.push(`exit ${r.code ?? "none"}`);
  if (c.expectOutputContains !== undefined) {
    const has = output.includes(c.expectOutputContains);
    measured += has
      ? `, output has "${c.expectOutputContains}"`
      : `, output lacks "${c.expectOutputContains}"`;
    if (!has) problems.push(`no "${c.expectOutputContains}" in the output`);
  }
  const last = output
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-2)
    .join(" | ")
    .slice(0, 200);
  return {
    measured,
    status: problems.length ? "fail" : "pass",
    ...(problems.length
      ? {
          hint: `${problems.join(", ")}; last output: ${last || "(none)"} — run \`${command}\` on ${sh.host} by hand`,
        }
      : {}),
    figures: { exitCode: r.code ?? -1, seconds },
  };
}

function describeCheck(c: FunctionalCheck): { title: string; target: string } {
  switch (c.kind) {
    case "http":
      return { title: c.title ?? `${c.method} ${c.path}`, target: httpTarget(c) };
    case "sql":
      return {
        title: c.title ?? "SQL query",
        target: `≥ ${c.minRows} row${c.minRows === 1 ? "" : "s"}${c.compareWithSource ? ", same as the source" : ""}`,
      };
    case "upload":
      return {
        title: c.title ?? (c.path ? `upload through ${c.path}` : "upload and download"),
        target: "read back identical",
      };
    case "command":
      return {
        title: c.title ?? c.command.slice(0, 60),
        target: `exit ${c.expectExitCode}${c.expectOutputContains !== undefined ? `, output has "${c.expectOutputContains}"` : ""}`,
      };
  }
}

/**
 * `verify.functional`: runs the functional checks of `verification.functional` (HTTP requests to
 * the new API, read-only SQL on the target, an upload read back, commands on the host), each a
 * row with what it measured against what it wants. It only reads, except for the upload test
 * object, which it deletes again.
 */
export function createVerifyFunctionalStep(deps: StepDeps): StepDefinition<Input> {
  const checks = () => deps.file.verification.functional;
  const needsApp = () => checks().some((c) => c.kind === "http" || (c.kind === "upload" && c.path));
  const sqlTarget = (c: Kind<"sql">) =>
    `${describeCheck(c).target} within ${deps.file.verification.performance.database.maxAvgMs} ms`;

  async function measure(input: Input, ctx: StepContext): Promise<VerificationReport> {
    let app: AppTarget | undefined;
    let appError: unknown;
    if (needsApp()) {
      try {
        app = await resolveApp(deps);
      } catch (err) {
        appError = err;
      }
    }
    const shell = new LazyShell(deps, input, ctx);
    const list: Check[] = checks().map((c) => {
      const { title, target } = describeCheck(c);
      const withApp = (fn: (a: AppTarget) => Promise<Row>) => async () => {
        if (!app) throw appError;
        return fn(app);
      };
      switch (c.kind) {
        case "http":
          return { id: c.id, title, target, measure: withApp((a) => httpCheck(deps, a, c, ctx)) };
        case "sql":
          return { id: c.id, title, target: sqlTarget(c), measure: () => sqlCheck(deps, c, input) };
        case "upload":
          return {
            id: c.id,
            title,
            target,
            measure: c.path
              ? withApp((a) => uploadThroughApp(deps, a, { ...c, path: c.path! }, input, ctx))
              : () => uploadThroughBucket(deps, c, input, ctx),
          };
        default:
          // the command kind, the last of the union
          return { id: c.id, title, target, measure: () => commandCheck(deps, shell, c, ctx) };
      }
    });
    try {
      return await runChecks("functional", list, ctx, {
        ...(app ? { baseUrl: app.label } : {}),
        only: input.only,
      });
    } finally {
      await shell.close();
    }
  }

  return verificationStep(deps, verifyFunctional, {
    measure,
    check() {
      if (deps.file.verification.functional.length === 0) {
        throw new CutoverError(
          ErrorCode.BadArgument,
          `${verifyFunctional.type}: there are no functional checks to run.`,
          {
            hint: "List them under `verification.functional` in the migration file (migration.example.yml has the plan's: health, products, user data, upload, AI, Celery).",
          },
        );
      }
    },
    async plan(input) {
      const app = needsApp() ? await resolveApp(deps).catch(() => undefined) : undefined;
      const changes: PlannedChange[] = checks()
        .filter((c) => !input.only || input.only.includes(c.id))
        .map((c) => {
          const { title, target } = describeCheck(c);
          return {
            action: "check" as const,
            target: `${c.id}: ${title}`,
            detail: `want ${c.kind === "sql" ? sqlTarget(c) : target}`,
          };
        });
      if (checks().some((c) => c.kind === "upload" && !c.path)) {
        changes.push({
          action: "create",
          target: "a test object in the target bucket",
          detail: "deleted again after it is read back",
        });
      }
      return {
        summary: `would run ${changes.filter((c) => c.action === "check").length} functional checks${app ? ` against ${app.label}` : needsApp() ? " (the new host's address is not known yet)" : ""}`,
        changes,
      };
    },
  });
}
