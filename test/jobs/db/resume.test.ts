import { type ChildProcess, spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fingerprintUrl } from "../../../src/cloud/postgres.js";
import type { StepDeps } from "../../../src/jobs/catalogue.js";
import type { StepDefinition } from "../../../src/jobs/define-step.js";
import { latestDump, readMarker, writeMarker } from "../../../src/jobs/steps/db/dump-files.js";
import { createDbSteps, runDatabaseVerify } from "../../../src/jobs/steps/db/index.js";
import { dumpRoot } from "../../../src/jobs/steps/db/options.js";
import { queryOnce, type TestDatabase } from "../../helpers/db.js";
import { makeStepContext } from "../../helpers/step-context.js";
import { createFixtureSource, createRdsLikeTarget, makeDeps } from "./fixture.js";

let source: TestDatabase;
let target: TestDatabase & { role: string };
let deps: StepDeps;
let steps: Map<string, StepDefinition<unknown>>;
const step = (type: string) => steps.get(type)!;
const input = (type: string) => step(type).parse({ jobs: 2 });

const sql = queryOnce;

async function expectIdentical() {
  const report = await runDatabaseVerify(deps, { bucketRows: 1000 });
  expect(report.differences, JSON.stringify(report.differences.slice(0, 5))).toEqual([]);
  expect(report.identical).toBe(true);
  return report;
}

beforeAll(async () => {
  source = await createFixtureSource("resume_src");
  target = await createRdsLikeTarget("resume_dst");
  deps = await makeDeps(source.url, target.url);
  steps = new Map(createDbSteps(deps).map((s) => [s.type, s]));
}, 60_000);

afterAll(async () => {
  await source?.drop();
  await target?.drop();
});

describe("a dump interrupted part-way", () => {
  it("is thrown away and taken again from the start, leaving no partial folder", async () => {
    const first = makeStepContext();
    const running = step("db.dump").run(input("db.dump"), first);
    // cancel as soon as pg_dump has started writing
    await new Promise<void>((resolve) => {
      const timer = setInterval(async () => {
        const names = await readdir(dumpRoot(deps, {})).catch(() => [] as string[]);
        if (names.some((n) => n.endsWith(".partial"))) {
          clearInterval(timer);
          first.controller.abort(new Error("worker stopping"));
          resolve();
        }
      }, 5);
    });
    await expect(running).rejects.toThrow();
    const second = makeStepContext({ checkpoints: first.checkpoints, attempt: 2 });
    await step("db.dump").run(input("db.dump"), second);
    const names = await readdir(dumpRoot(deps, {}));
    expect(names.filter((n) => n.includes(".partial"))).toEqual([]);
    expect((await step("db.dump").verify(input("db.dump"), second)).ok).toBe(true);
  });
});

describe("a restore interrupted at any point ends in a correct target", () => {
  it("resumes after a cancel while tables are loading, without duplicating a row", async () => {
    const first = makeStepContext();
    first.progress = (p) => {
      first.reports.push(p);
      if (/^restoring data/.test(p.message ?? "") && !first.signal.aborted)
        first.controller.abort(new Error("crash"));
    };
    await expect(step("db.restore").run(input("db.restore"), first)).rejects.toThrow();
    const state = first.checkpoints.get("restore") as { phase: string; done: number[] };
    expect(state.phase).toBe("data");
    const second = makeStepContext({ checkpoints: first.checkpoints, attempt: 2 });
    await step("db.restore").run(input("db.restore"), second);
    expect((await step("db.restore").verify(input("db.restore"), second)).ok).toBe(true);
    await expectIdentical();
  });

  it("keeps tables whose load committed just before a crash the checkpoint missed", async () => {
    const latest = (await latestDump(dumpRoot(deps, {})))!;
    // as if the worker died after every table committed but before any was checkpointed
    const ctx = makeStepContext();
    await ctx.checkpoint.set("restore", { dump: latest.manifest.name, phase: "data", done: [] });
    await writeMarker(dumpRoot(deps, {}), {
      target: fingerprintUrl(target.url),
      dump: latest.manifest.name,
      runId: "r",
      phase: "data",
    });
    await step("db.restore").run(input("db.restore"), ctx);
    await expectIdentical();
  });

  it("skips indexes and constraints a crash left created, and builds the rest", async () => {
    const latest = (await latestDump(dumpRoot(deps, {})))!;
    await sql(
      target.url,
      `DROP INDEX inventory.movements_sku_idx; ALTER TABLE inventory.employees DROP CONSTRAINT employees_warehouse_fkey;`,
    );
    const ctx = makeStepContext();
    await ctx.checkpoint.set("restore", { dump: latest.manifest.name, phase: "post-data", done: [] });
    await step("db.restore").run(input("db.restore"), ctx);
    await expectIdentical();
  });

  it("redoes a half-created schema from an emptied target", async () => {
    const latest = (await latestDump(dumpRoot(deps, {})))!;
    const ctx = makeStepContext();
    await ctx.checkpoint.set("restore", { dump: latest.manifest.name, phase: "pre-data", done: [] });
    await step("db.restore").run(input("db.restore"), ctx);
    await expectIdentical();
    const marker = await readMarker(dumpRoot(deps, {}));
    expect(marker?.phase).toBe("done");
  });

  it("stops a pg_restore and its sessions that a crashed worker left behind before resuming", async () => {
    const latest = (await latestDump(dumpRoot(deps, {})))!;
    await sql(target.url, "TRUNCATE public.settings");
    // a stray pg_restore process (waiting on its input) and a stray session holding a lock
    const stray: ChildProcess = spawn("pg_restore", ["-f", "/dev/null"], {
      stdio: ["pipe", "ignore", "ignore"],
    });
    const exited = new Promise((r) => stray.once("exit", r));
    const session = new pg.Client({ connectionString: target.url, application_name: "cutover-restore-data" });
    session.on("error", () => undefined);
    await session.connect();
    await session.query("BEGIN");
    await session.query("LOCK TABLE public.settings IN ACCESS EXCLUSIVE MODE");
    const held = session.query("SELECT pg_sleep(60)").catch(() => "ended");

    const ctx = makeStepContext();
    await ctx.checkpoint.set("restore", { dump: latest.manifest.name, phase: "data", done: [] });
    await writeMarker(dumpRoot(deps, {}), {
      target: fingerprintUrl(target.url),
      dump: latest.manifest.name,
      runId: "crashed",
      phase: "data",
      pid: stray.pid!,
    });
    await step("db.restore").run(input("db.restore"), ctx);
    expect(await held).toBe("ended");
    await exited;
    expect(stray.exitCode ?? stray.signalCode).toBeTruthy();
    await session.end().catch(() => undefined);
    await expectIdentical();
    // 1.4 s; it hung under load until stopStray knew Debian's pg_wrapper (see stray.test.ts)
  });

  it("ends correct after pg_restore is killed (SIGKILL) at several points, attempt after attempt", async () => {
    const root = dumpRoot(deps, {});
    if (!(await latestDump(root))) await step("db.dump").run(input("db.dump"), makeStepContext());
    const checkpoints = new Map<string, unknown>();
    let killed = 0;
    const phases: string[] = [];
    const isPgRestore = async (pid: number | undefined) =>
      pid !== undefined &&
      (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0")[0]!.endsWith("pg_restore");
    // short waits: on an idle machine the whole data pass of this fixture takes under 300 ms
    for (const [i, delay] of [0, 40, 120, 300].entries()) {
      const ctx = makeStepContext({ checkpoints, attempt: i + 1, run: { options: { replace: true } } });
      let finished = false;
      const running = step("db.restore")
        .run(input("db.restore"), ctx)
        .catch(() => undefined)
        .finally(() => {
          finished = true;
        });
      // The first kill lands wherever the first pg_restore is; the later ones wait for the pass
      // that loads tables and builds indexes, so a loaded machine cannot make them all miss it.
      const wantPhase = i === 0 ? undefined : "data";
      const phaseNow = () => (checkpoints.get("restore") as { phase: string } | undefined)?.phase;
      // once a pg_restore runs (in the wanted pass), let it work `delay` ms, then kill it as a crash would
      while (!finished) {
        if ((!wantPhase || phaseNow() === wantPhase) && (await isPgRestore((await readMarker(root))?.pid))) {
          await new Promise((r) => setTimeout(r, delay));
          // whichever pg_restore runs now (pre-data, or data and post-data)
          const pid = (await readMarker(root))?.pid;
          if (await isPgRestore(pid)) {
            process.kill(pid!, "SIGKILL");
            killed++;
            phases.push((checkpoints.get("restore") as { phase: string } | undefined)?.phase ?? "?");
          }
          break;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      await running;
    }
    expect(killed, `killed during ${phases.join(", ")}`).toBeGreaterThanOrEqual(2);
    // at least one kill hit the pass that loads tables and builds indexes
    expect(phases).toContain("data");
    const last = makeStepContext({ checkpoints, attempt: 5, run: { options: { replace: true } } });
    await step("db.restore").run(input("db.restore"), last);
    await expectIdentical();
  });

  it("restores a newer dump from scratch instead of mixing it into a partial restore", async () => {
    const ctx = makeStepContext();
    await ctx.checkpoint.set("restore", { dump: "dump-older-one", phase: "data", done: [] });
    await sql(source.url, "SELECT 1"); // the source is untouched; only the target is rebuilt
    await step("db.restore").run(input("db.restore"), ctx);
    await expectIdentical();
  });
});
