import { describe, expect, it } from "vitest";
import { AfterAck } from "../../src/commands/reply.js";

describe("AfterAck", () => {
  it("runs at most `limit` jobs at once, in arrival order, and every job runs", async () => {
    const q = new AfterAck(2);
    let inFlight = 0;
    let peak = 0;
    const started: number[] = [];
    const job = (i: number) => async () => {
      started.push(i);
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      return i * 10;
    };
    const results = await Promise.all(Array.from({ length: 7 }, (_, i) => q.run(job(i))));
    expect(results).toEqual([0, 10, 20, 30, 40, 50, 60]);
    expect(peak).toBe(2);
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(q.queued).toBe(0);
  });

  it("passes a failing job's error to its caller and keeps serving the others", async () => {
    const q = new AfterAck(1);
    const failing = q.run(async () => {
      throw new Error("database down");
    });
    const next = q.run(async () => "answered");
    await expect(failing).rejects.toThrow("database down");
    await expect(next).resolves.toBe("answered");
  });

  it("refuses a limit below one", () => {
    expect(() => new AfterAck(0)).toThrow(/limit must be ≥ 1/);
  });
});
