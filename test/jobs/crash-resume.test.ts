import { afterAll, beforeAll, describe, it } from "vitest";
import { signalGroup } from "../../src/sandbox/child-bot.js";
import type { ChildBotWorld } from "../helpers/child-bot-world.js";
import { expectMidway, expectResumed, runToAQuarter, startProbeWorld } from "../helpers/probe-resume.js";

let w: ChildBotWorld;

beforeAll(async () => {
  w = await startProbeWorld("crash");
});

afterAll(async () => {
  await w?.stop();
});

describe("a step killed mid-way", () => {
  it("resumes after SIGKILL and a restart, writing every row exactly once, in one progress message", async () => {
    const first = await w.startBot();
    // Kill it somewhere in the middle of the step.
    const atKill = await runToAQuarter(w, first.port, "crash-run");
    await w.kill9(first.child);
    await expectMidway(w, atKill);

    // Restart: the recovery sweep picks the run up and the step continues from its checkpoint;
    // the second process continues the same run (it does not start a new one), in the same
    // progress message, with the resume noted in its thread.
    const second = await w.startBot();
    await expectResumed(w);

    await signalGroup(second.child, "SIGTERM");
  }, 120_000);
});
