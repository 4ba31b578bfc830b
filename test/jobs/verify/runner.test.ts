import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStepRegistry } from "../../../src/jobs/catalogue.js";
import type { Runner } from "../../../src/jobs/Runner.js";
import { createPorts } from "../../../src/ports.js";
import { type AppServer, startAppServer } from "../../../src/sandbox/app-servers.js";
import type { Db } from "../../../src/store/client.js";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.js";
import { runnerFile, runRequest, startTestRunner, type TestRunner } from "../../helpers/runner.js";
import { runFinished } from "../../helpers/wait.js";
import { tempDir } from "../host/fixtures.js";

let state: TestDatabase;
let db: Db;
let tr: TestRunner;
let runner: Runner;
let app: AppServer;
let data: { dir: string; remove: () => Promise<void> };
let notes: string[] = [];

beforeAll(async () => {
  [state, app, data] = await Promise.all([
    createTestDatabase("verify_runner"),
    startAppServer({ name: "new" }),
    tempDir("cutover-verify-runner-"),
  ]);
  const file = runnerFile({
    engine: { attempts: 1, backoffMs: 20 },
    sections: `verification:
  baseUrl: ${app.url}
  functional:
    - { id: health, title: API health, kind: http, path: /health }
    - { id: products, title: Product list, kind: http, path: /api/v1/products, minItems: 1 }
`,
    phases: `    - id: verify
      title: Verify
      steps:
        - { id: verify-functional, uses: verify.functional }
`,
  });
  tr = await startTestRunner({
    url: state.url,
    file,
    registry: (stateDb) =>
      createStepRegistry({
        env: {},
        ports: createPorts({ env: {} }, file),
        file,
        dataDir: data.dir,
        log: pino({ level: "silent" }),
        db: stateDb,
      }),
  });
  ({ runner, db, notes } = tr);
});

afterAll(async () => {
  await tr?.stop();
  await Promise.all([state?.drop(), app?.stop(), data?.remove()]);
});

const finished = (runId: string) => runFinished(db, runId, { timeoutMs: 20_000, intervalMs: 50 });

const submit = () => runner.submit(runRequest("verify-functional"));

describe("verify.functional through the runner", () => {
  it("records the rows as the step's figures and posts them in the run's thread; a failing row fails the step", async () => {
    app.setRoute("/api/v1/products", { body: [{ id: 1 }] });
    const ok = await submit();
    if (!ok.created) throw new Error(`not created: ${JSON.stringify(ok)}`);
    const good = await finished(ok.runId);
    expect(good.status).toBe("succeeded");
    const result = good.steps[0]!.result as { figures: Record<string, unknown>; verify: { summary: string } };
    expect(result.figures).toMatchObject({
      "health.ok": true,
      "health.status": 200,
      "products.items": 1,
      "checks.failed": 0,
    });
    expect(notes.at(-1)).toMatch(/^✓ verify-functional: functional: 2 of 2 checks passed · verified$/);

    app.setRoute("/api/v1/products", { body: [] });
    const bad = await submit();
    if (!bad.created) throw new Error(`not created: ${JSON.stringify(bad)}`);
    const failed = await finished(bad.runId);
    expect(failed.status).toBe("failed");
    expect(failed.steps[0]!.error).toMatch(/verification failed: functional: 1 of 2 checks passed, 1 failed/);
    // one line in the thread; the failing row is in the step's report, posted there too
    expect(notes.at(-1)).toMatch(
      /^✗ verify-functional failed: verification failed: functional: 1 of 2 checks passed, 1 failed/,
    );
  });
});
