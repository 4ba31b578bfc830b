import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signalGroup } from "../../src/sandbox/child-bot.js";
import type { ChildBotWorld } from "../helpers/child-bot-world.js";
import { expectMidway, expectResumed, runToAQuarter, startProbeWorld } from "../helpers/probe-resume.js";

/**
 * The graceful stop a process manager gives (systemd's and Supervisor's SIGTERM, deploy/): the
 * step in progress stops at its next safe point and keeps its checkpoint, the run stays running
 * (not failed, not cancelled), the process exits 0, and the next start resumes it from there.
 */
let w: ChildBotWorld;

beforeAll(async () => {
  w = await startProbeWorld("sigterm");
});

afterAll(async () => {
  await w?.stop();
});

describe("a step stopped by SIGTERM", () => {
  it("stops at a safe point, exits 0, and the next start resumes it: every row exactly once", async () => {
    const first = await w.startBot();
    await runToAQuarter(w, first.port, "sigterm-run");

    const exited = new Promise<number | null>((resolve) => first.child.once("exit", (code) => resolve(code)));
    await signalGroup(first.child, "SIGTERM");
    expect(await exited).toBe(0);
    // stopped, not ended: the run waits for the next start, some rows written
    await expectMidway(w, 1);

    // every row exactly once, one run resumed, one progress message with the resume in its thread
    const second = await w.startBot();
    await expectResumed(w);
    await signalGroup(second.child, "SIGTERM");
  }, 120_000);
});
