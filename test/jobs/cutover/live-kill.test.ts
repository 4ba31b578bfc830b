import { spawn } from "node:child_process";
import { appendFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getSubscription, replicationNames } from "../../../src/cloud/replication.js";
import {
  activeFreeze,
  rollbackDatabase,
  switchDatabase,
  unwindSwitch,
} from "../../../src/jobs/cutover/live.js";
import type { CheckpointStore } from "../../../src/jobs/define-step.js";
import { openBoth } from "../../../src/jobs/steps/db/replicate.js";
import { createLiveSetup, type LiveSetup, sql } from "./live-setup.js";

/*
 * The kill campaign of the live sequences (issues 18 and 19): a process doing the switch, or the
 * rollback, is SIGKILLed at each of its sub-steps; the next attempt (the runner's resume, or the
 * operator's second /rollback) must end consistent every time: the side that should be open is
 * open and the other frozen, the two databases hold the same rows, exactly one direction
 * replicates, and a write on the open side reaches the other. A switch killed and then cancelled
 * unwinds to the source writable. `npm run bench -- chaos --only live` runs this file and reads one
 * line per killed moment from CUTOVER_LIVE_KILL_FIGURES.
 */

/** Records a killed moment for the chaos campaign, after the world was found consistent. */
async function record(op: "switch" | "rollback", moment: string, after: string) {
  const file = process.env.CUTOVER_LIVE_KILL_FIGURES;
  if (file) await appendFile(file, `${JSON.stringify({ op, moment, after, consistent: true })}\n`);
}

const SWITCH_STAGES = [
  "note how the target is",
  "freeze the source",
  "drain forward replication",
  "sequences",
  "materialized views",
  "verify while frozen",
  "end forward replication",
  "start reverse replication",
  "open the target",
];
const ROLLBACK_STEPS = [
  "freeze the target",
  "drain reverse replication",
  "sequences",
  "end reverse replication",
  "restart forward replication",
  "switch back",
  "open the source",
];

let setup: LiveSetup;
let dir: string;

beforeAll(async () => {
  setup = await createLiveSetup("kill");
  dir = await mkdtemp(path.join(tmpdir(), "cutover-kill-"));
}, 120_000);

afterAll(async () => {
  await setup?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs the operation in a child that SIGKILLs itself when `killAt` begins. */
function killedAt(op: "switch" | "rollback", killAt: string, checkpointFile: string) {
  const job = {
    op,
    killAt,
    config: setup.config,
    env: setup.fileEnv,
    stateUrl: setup.stateUrl,
    checkpointFile,
  };
  return new Promise<{ signal: NodeJS.Signals | null; out: string }>((resolve) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "test/fixtures/live-kill-child.ts", JSON.stringify(job)],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      out += d;
    });
    child.on("exit", (_code, signal) => resolve({ signal, out }));
  });
}

/** The checkpoints the killed child left, as the next attempt reads them. */
async function fileCheckpoints(file: string): Promise<CheckpointStore> {
  const read = async () =>
    JSON.parse(await readFile(file, "utf8").catch(() => "{}")) as Record<string, unknown>;
  const mem = await read();
  return {
    async get<T>(key: string) {
      return mem[key] as T | undefined;
    },
    async set(key, value) {
      mem[key] = structuredClone(value);
    },
  };
}

/** Consistent: `open` writable for the app, the other side frozen, rows equal, one direction replicating. */
async function expectConsistent(open: "source" | "target", why: string) {
  const { env, db, source, target, live } = setup;
  const closed = open === "source" ? "target" : "source";
  expect(await activeFreeze(db, env, open), `${why}: ${open} open`).toBeNull();
  expect(await activeFreeze(db, env, closed), `${why}: ${closed} frozen`).not.toBeNull();
  const openUrl = open === "source" ? source.url : target.url;
  const otherUrl = open === "source" ? target.url : source.url;
  const marker = `${why}`.slice(0, 60);
  await sql(setup.asRole(openUrl), "INSERT INTO live_orders (ref, customer) VALUES (gen_random_uuid(), $1)", [
    marker,
  ]);
  await expect(
    sql(
      setup.asRole(otherUrl),
      "INSERT INTO live_orders (ref, customer) VALUES (gen_random_uuid(), 'must fail')",
    ),
    `${why}: the frozen side refuses the app`,
  ).rejects.toThrow(/permission denied/);
  const count = (url: string) => sql(url, "SELECT count(*)::int AS n, max(id) AS m FROM live_orders");
  const want = JSON.stringify(await count(openUrl));
  await expect
    .poll(async () => JSON.stringify(await count(otherUrl)), {
      timeout: 20_000,
      message: `${why}: rows carried`,
    })
    .toBe(want);
  const both = await openBoth(live.step, { timeoutSeconds: 10, appName: "cutover-test" });
  try {
    const fwd = await getSubscription(both.target, replicationNames(env, "fwd").subscription);
    const rev = await getSubscription(both.source, replicationNames(env, "rev").subscription);
    expect([Boolean(fwd), Boolean(rev)], `${why}: one direction replicates`).toEqual(
      open === "source" ? [true, false] : [false, true],
    );
  } finally {
    await both.close();
  }
}

describe("the live sequences under SIGKILL", () => {
  it("a switch killed at any sub-step resumes to a consistent switched state", async () => {
    for (const stage of SWITCH_STAGES) {
      const file = path.join(dir, `switch-${SWITCH_STAGES.indexOf(stage)}.json`);
      const killed = await killedAt("switch", stage, file);
      expect(killed.signal, `${stage}: ${killed.out}`).toBe("SIGKILL");
      // the runner's next attempt, from the killed one's checkpoints
      const state = await switchDatabase(setup.live, {
        ...setup.ctx(),
        checkpoint: await fileCheckpoints(file),
      });
      expect(state.stages).toContain("open the target");
      await expectConsistent("target", `switch killed at "${stage}"`);
      await record("switch", stage, "resumed");
      // back to the start for the next round
      const back = await rollbackDatabase(setup.live, {
        actor: "U0OPERATOR",
        signal: AbortSignal.timeout(60_000),
      });
      expect(back.lossless, JSON.stringify(back.items)).toBe(true);
      await expectConsistent("source", `rollback after "${stage}"`);
    }
  }, 600_000);

  it("a rollback killed at any sub-step ends consistent when /rollback runs again", async () => {
    for (const step of ROLLBACK_STEPS) {
      await switchDatabase(setup.live, setup.ctx());
      const killed = await killedAt("rollback", step, path.join(dir, "unused.json"));
      expect(killed.signal, `${step}: ${killed.out}`).toBe("SIGKILL");
      const again = await rollbackDatabase(setup.live, {
        actor: "U0OPERATOR",
        signal: AbortSignal.timeout(60_000),
      });
      expect(again.lossless, `${step}: ${JSON.stringify(again.items)}`).toBe(true);
      await expectConsistent("source", `rollback killed at "${step}"`);
      await record("rollback", step, "rolled back again");
    }
  }, 600_000);

  it("a switch killed at any sub-step and then cancelled unwinds to a writable source", async () => {
    for (const stage of SWITCH_STAGES) {
      const file = path.join(dir, `unwind-${SWITCH_STAGES.indexOf(stage)}.json`);
      const killed = await killedAt("switch", stage, file);
      expect(killed.signal, `${stage}: ${killed.out}`).toBe("SIGKILL");
      // the operator cancels instead of resuming: the cancelled run's undo, from the killed one's checkpoints
      await unwindSwitch(setup.live, { ...setup.ctx(), checkpoint: await fileCheckpoints(file) });
      await expectConsistent("source", `switch killed at "${stage}", then unwound`);
      await record("switch", stage, "unwound");
    }
  }, 600_000);
});
