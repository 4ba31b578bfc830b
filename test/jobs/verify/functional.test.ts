import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FunctionalCheckSchema, type MigrationFile } from "../../../src/config/schema.js";
import { ErrorCode, isCutoverError } from "../../../src/errors.js";
import { createStepRegistry } from "../../../src/jobs/catalogue.js";
import { resolveApp } from "../../../src/jobs/steps/verify/app-target.js";
import { createVerifyFunctionalStep, findUrl, itemsAt } from "../../../src/jobs/steps/verify/functional.js";
import { appRequest } from "../../../src/jobs/steps/verify/http.js";
import type { VerificationReport } from "../../../src/jobs/steps/verify/report.js";
import { type AppServer, startAppServer } from "../../../src/sandbox/app-servers.js";
import { verificationView } from "../../../src/views/verification.js";
import { makeStepContext } from "../../helpers/step-context.js";
import { depsFor, fileWith, type HostWorld, row, startHostWorld, startUploadApp } from "./world.js";

let app: AppServer;
let w: HostWorld;

beforeAll(async () => {
  [app, w] = await Promise.all([startAppServer({ name: "new (Lightsail)" }), startHostWorld()]);
});
afterAll(async () => {
  await Promise.all([app?.stop(), w?.stop()]);
});
beforeEach(() => {
  app.setLatency(0);
  app.setFailing(false);
  app.setHanging(false);
});

const checks = (...raw: unknown[]) => raw.map((r) => FunctionalCheckSchema.parse(r));

async function functionalFile(list: unknown[], edit: (f: MigrationFile) => void = () => undefined) {
  return fileWith((f, v) => {
    v.baseUrl = app.url;
    v.functional = checks(...list);
    w.point(f);
    edit(f);
  });
}

async function runStep(file: MigrationFile, env: Record<string, string> = {}, raw: unknown = {}) {
  const step = createVerifyFunctionalStep(depsFor(file, w.dataDir, { ...w.env, ...env }));
  const ctx = makeStepContext();
  const input = step.parse(raw);
  const outcome = await step.run(input, ctx);
  const verified = await step.verify(input, ctx);
  const report = ctx.checkpoints.get("report") as VerificationReport;
  return { outcome, verified, report, ctx };
}

describe("verify.functional: HTTP checks against a local app", () => {
  it("passes the health endpoint and a list endpoint, with the measured figures", async () => {
    app.setRoute("/api/v1/products", { body: { data: { items: [{ id: 1 }, { id: 2 }, { id: 3 }] } } });
    app.setLatency(30);
    const file = await functionalFile([
      { id: "health", kind: "http", path: "/health", expectBodyContains: '"status":"ok"' },
      { id: "products", kind: "http", path: "/api/v1/products", minItems: 2, jsonPath: "data.items" },
    ]);
    const { outcome, verified, report, ctx } = await runStep(file);
    expect(verified.ok).toBe(true);
    expect(outcome.summary).toBe("functional: 2 of 2 checks passed");
    // the table of rows went into the run's thread
    expect(ctx.posted).toEqual([verificationView(report)]);
    expect(outcome.figures).toMatchObject({
      "health.ok": true,
      "health.status": 200,
      "products.ok": true,
      "products.items": 3,
      "checks.passed": 2,
      "checks.failed": 0,
    });
    // the latency set on the server is what was measured
    expect(outcome.figures?.["health.ms"]).toBeGreaterThanOrEqual(30);
    expect(outcome.figures?.["health.ms"]).toBeLessThan(2_000);
    expect(row(report, "products").measured).toMatch(/^200 in [\d.]+ ms, 3 items$/);
    expect(verified.summary).toMatch(
      /✓ GET \/api\/v1\/products: 200 in [\d.]+ ms, 3 items \(want 200, ≥ 2 items\)/,
    );
    expect(app.requests().filter((r) => r.path === "/api/v1/products")).toHaveLength(1);
  });

  it("fails a 503, a short list and a missing body text, each saying what to look at", async () => {
    app.setRoute("/api/v1/products", { body: [] });
    const file = await functionalFile([
      { id: "health", kind: "http", path: "/health", expectBodyContains: "healthy" },
      { id: "products", kind: "http", path: "/api/v1/products", minItems: 1 },
      { id: "orders", kind: "http", path: "/api/v1/orders" },
    ]);
    const { verified, report } = await runStep(file);
    expect(verified.ok).toBe(false);
    expect(row(report, "health")).toMatchObject({
      status: "fail",
      measured: expect.stringMatching(/body lacks "healthy"/),
    });
    expect(row(report, "products")).toMatchObject({
      status: "fail",
      measured: expect.stringMatching(/, 0 items$/),
      figures: { items: 0, status: 200 },
      hint: expect.stringMatching(/verify database/),
    });
    expect(row(report, "orders")).toMatchObject({
      status: "fail",
      figures: { status: 404 },
      hint: expect.stringMatching(/no such route/),
    });
    expect(verified.summary.split("\n")[0]).toBe("functional: 0 of 3 checks passed, 3 failed");

    app.setFailing(true);
    const down = await runStep(await functionalFile([{ id: "health", kind: "http", path: "/health" }]));
    expect(row(down.report, "health")).toMatchObject({
      status: "fail",
      measured: expect.stringMatching(/^503 in /),
      hint: expect.stringContaining("/var/log/supervisor/gogojap-stderr.log"),
    });
  });

  it("bounds a hanging endpoint by the check's timeout", async () => {
    app.setHanging(true);
    const file = await functionalFile([
      { id: "ai", kind: "http", method: "POST", path: "/api/v1/ai", body: { q: 1 }, timeoutMs: 300 },
    ]);
    const started = Date.now();
    const { report, verified } = await runStep(file);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(verified.ok).toBe(false);
    expect(row(report, "ai")).toMatchObject({
      status: "fail",
      measured: "no answer within 300 ms",
      hint: expect.stringMatching(/gunicorn's workers/),
    });
    expect(row(report, "ai").figures.ms).toBeGreaterThanOrEqual(290);
    expect(app.requests().at(-1)).toMatchObject({ method: "POST", path: "/api/v1/ai" });
  });

  it("sends the bearer token from the named variable and says which variable is unset", async () => {
    const file = await functionalFile([
      { id: "ai", kind: "http", path: "/health", bearerTokenEnv: "VERIFY_API_TOKEN" },
    ]);
    const missing = await runStep(file);
    expect(row(missing.report, "ai")).toMatchObject({ status: "fail", measured: "error" });
    expect(row(missing.report, "ai").hint).toMatch(/VERIFY_API_TOKEN is not set/);
    const set = await runStep(file, { VERIFY_API_TOKEN: "tok-do-not-leak-1234" });
    expect(row(set.report, "ai").status).toBe("pass");
    expect(JSON.stringify(set.report)).not.toContain("tok-do-not-leak-1234");
  });

  it("reaches the new host by its static IP with the site's name as Host when no baseUrl is set", async () => {
    const file = await functionalFile([{ id: "health", kind: "http", path: "/health" }], (f) => {
      delete f.verification.baseUrl;
      f.target!.host!.nginx.tls.mode = "none";
    });
    const step = createVerifyFunctionalStep(depsFor(file, w.dataDir, w.env));
    const plan = await step.plan(step.parse({}), makeStepContext());
    expect(plan.summary).toBe("would run 1 functional checks against http://127.0.0.1 as api.gogojap.com");
    expect(plan.changes[0]).toMatchObject({
      action: "check",
      target: "health: GET /health",
      detail: "want 200",
    });
    const target = await resolveApp(depsFor(file, w.dataDir, w.env));
    expect(target).toMatchObject({ baseUrl: "http://127.0.0.1", headers: { host: "api.gogojap.com" } });
    // the same target on the app server's port: the Host header arrives as the site's name
    const answer = await appRequest({ ...target, baseUrl: app.url }, "/health", {
      timeoutMs: 2_000,
      signal: new AbortController().signal,
    });
    expect(answer.status).toBe(200);
    expect(app.requests().at(-1)?.host).toBe("api.gogojap.com");
    // with TLS on the host, the name also goes into the TLS handshake (SNI)
    file.target!.host!.nginx.tls.mode = "letsencrypt-dns";
    expect(await resolveApp(depsFor(file, w.dataDir, w.env))).toMatchObject({
      baseUrl: "https://127.0.0.1",
      servername: "api.gogojap.com",
      rejectUnauthorized: true,
    });
  });
});

describe("verify.functional: commands on the host over SSH", () => {
  it("passes a celery ping that answers pong and fails beat that is not running, with the output", async () => {
    w.host.on(/celery -A app\.celery_app inspect ping/, { stdout: "->  celery@api: OK\n        pong\n" });
    w.host.on(/supervisorctl status gogojap-celery-beat/, {
      stdout: "gogojap-celery-beat FATAL Exited too quickly\n",
      code: 3,
    });
    const file = await functionalFile([
      {
        id: "celery-worker",
        kind: "command",
        command: "cd {current} && {venv}/bin/celery -A app.celery_app inspect ping --timeout 10",
        expectOutputContains: "pong",
      },
      {
        id: "celery-beat",
        kind: "command",
        command: "sudo supervisorctl status gogojap-celery-beat",
        expectOutputContains: "RUNNING",
      },
    ]);
    const { report, verified, outcome } = await runStep(file);
    expect(w.host.ran(/inspect ping/).at(-1)).toBe(
      "cd /opt/gogojap/current/backend && /opt/gogojap/venv/bin/celery -A app.celery_app inspect ping --timeout 10",
    );
    expect(row(report, "celery-worker")).toMatchObject({ status: "pass", figures: { exitCode: 0 } });
    expect(row(report, "celery-beat")).toMatchObject({
      status: "fail",
      measured: expect.stringMatching(/^exit 3 in [\d.]+ s, output lacks "RUNNING"$/),
      hint: expect.stringContaining("gogojap-celery-beat FATAL Exited too quickly"),
    });
    expect(outcome.figures).toMatchObject({
      "celery-worker.ok": true,
      "celery-beat.ok": false,
      "celery-beat.exitCode": 3,
    });
    expect(verified.ok).toBe(false);
  });

  it("bounds a command that hangs by its timeout", async () => {
    w.host.on(/beat-heartbeat/, { hang: true });
    const file = await functionalFile([
      {
        id: "beat-recent",
        kind: "command",
        command: "find {appDir}/shared/beat-heartbeat -mmin -2 | grep -q .",
        timeoutSeconds: 1,
      },
    ]);
    const started = Date.now();
    const { report } = await runStep(file);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(row(report, "beat-recent")).toMatchObject({
      status: "fail",
      measured: "no answer within 1 s",
      figures: { timedOut: true },
    });
  });

  it("turns an unreachable host into failing command rows that say why", async () => {
    const file = await functionalFile([{ id: "celery-worker", kind: "command", command: "true" }], (f) => {
      f.target!.host!.sshPort = 1; // nothing listens there
    });
    const { report } = await runStep(file, {}, { connectTimeoutSeconds: 2 });
    expect(row(report, "celery-worker")).toMatchObject({ status: "fail", measured: "error" });
    expect(row(report, "celery-worker").hint).toMatch(/127\.0\.0\.1:1/);
  });
});

describe("verify.functional: upload through the app's endpoint", () => {
  it("uploads a file, reads it back from the URL the app answers and compares the bytes", async () => {
    const uploader = await startUploadApp({ answerWithUrl: true });
    try {
      const file = await functionalFile(
        [{ id: "upload", kind: "upload", path: "/api/v1/upload", sizeKb: 64 }],
        (f) => {
          f.verification.baseUrl = uploader.url;
        },
      );
      const { report } = await runStep(file);
      expect(uploader.uploads).toHaveLength(1);
      expect(uploader.uploads[0]!.length).toBe(64 * 1024);
      expect(row(report, "upload")).toMatchObject({
        status: "pass",
        figures: { bytes: 65536, uploadStatus: 201, identical: true },
      });
      expect(row(report, "upload").figures.uploadMBps).toBeGreaterThan(0);
    } finally {
      await uploader.close();
    }
  });

  it("fails when the app's answer names nothing to read back", async () => {
    const uploader = await startUploadApp({ answerWithUrl: false });
    try {
      const file = await functionalFile(
        [{ id: "upload", kind: "upload", path: "/api/v1/upload", sizeKb: 4 }],
        (f) => {
          f.verification.baseUrl = uploader.url;
        },
      );
      const { report } = await runStep(file);
      expect(row(report, "upload")).toMatchObject({
        status: "fail",
        hint: expect.stringMatching(/answer with the file's `url`/),
      });
    } finally {
      await uploader.close();
    }
  });

  it("finds a URL in an upload's answer and a list at a JSON path", () => {
    expect(findUrl({ ok: true, data: { file: { url: "/files/1.bin" } } })).toBe("/files/1.bin");
    expect(findUrl({ name: "x", location: "https://cdn.example.com/a.png" })).toBe(
      "https://cdn.example.com/a.png",
    );
    expect(findUrl({ ok: true, name: "not a url" })).toBeUndefined();
    expect(itemsAt({ data: { items: [1, 2] } }, "data.items")).toEqual([1, 2]);
    expect(itemsAt([{ rows: [1] }], "0.rows")).toEqual([1]);
    expect(itemsAt({ data: 1 }, "data")).toBeUndefined();
  });
});

describe("verify.functional: bad input and the report view", () => {
  it("refuses a runbook without functional checks, and unknown options, saying what to do", async () => {
    const empty = createVerifyFunctionalStep(depsFor(await fileWith(), w.dataDir, w.env));
    const err = (() => {
      try {
        empty.parse({});
      } catch (e) {
        return e;
      }
    })();
    expect(isCutoverError(err, ErrorCode.BadArgument)).toBe(true);
    expect((err as Error).message).toMatch(/no functional checks/);
    const step = createVerifyFunctionalStep(
      depsFor(await functionalFile([{ id: "h", kind: "http", path: "/health" }]), w.dataDir, w.env),
    );
    expect(() => step.parse({ timeout: 3 })).toThrow(/verify\.functional: .*timeout/);
    await expect(step.run(step.parse({ only: ["nope"] }), makeStepContext())).rejects.toThrow(
      /`only` names no check of this step — its checks are `h`/,
    );
  });

  it("is registered and read-only", async () => {
    const file = await fileWith();
    const registry = createStepRegistry(depsFor(file, w.dataDir, w.env));
    for (const type of ["verify.functional", "verify.performance", "verify.reliability"]) {
      expect(registry.get(type)?.mutating).toBe(false);
    }
  });

  it("renders the rows as a table with marks and what to look at", async () => {
    app.setRoute("/api/v1/products", { status: 500, body: { error: "boom" } });
    const file = await functionalFile([
      { id: "health", kind: "http", path: "/health", title: "API health" },
      { id: "products", kind: "http", path: "/api/v1/products", title: "Product list" },
    ]);
    const { report } = await runStep(file);
    const view = verificationView(report);
    expect(view.text).toBe("Functional verification: 1 of 2 checks passed, 1 failed");
    const all = JSON.stringify(view.blocks);
    expect(all).toContain("❌ Functional verification");
    const tableText = (view.blocks[1] as { text: { text: string } }).text.text;
    const lines = tableText.replace(/```/g, "").split("\n");
    expect(lines[0]).toMatch(/^Check\s+Measured\s+Target$/);
    expect(lines.find((l) => l.startsWith("API health"))).toMatch(/200 in [\d.]+ ms\s+200\s+✓$/);
    expect(lines.find((l) => l.startsWith("Product list"))).toMatch(/500 in [\d.]+ ms\s+200\s+✗$/);
    expect(all).toMatch(
      /What to look at.*Product list.*the app failed: look at \/var\/log\/supervisor\/gogojap-stderr\.log/,
    );
  });
});
