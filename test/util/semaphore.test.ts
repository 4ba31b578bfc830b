import { describe, expect, it } from "vitest";
import { networkCode } from "../../src/util/network.js";
import { Semaphore } from "../../src/util/semaphore.js";

describe("Semaphore", () => {
  it("lets `permits` holders in at once and the rest in arrival order", async () => {
    const slots = new Semaphore(2);
    const order: string[] = [];
    const releaseA = await slots.acquire();
    const releaseB = await slots.acquire();
    const c = slots.acquire().then((r) => {
      order.push("c");
      return r;
    });
    const d = slots.acquire().then((r) => {
      order.push("d");
      return r;
    });
    expect(slots.queued).toBe(2);
    releaseA();
    releaseA(); // a second release is harmless: it must not hand out a third permit
    const releaseC = await c;
    expect(order).toEqual(["c"]);
    expect(slots.queued).toBe(1);
    releaseB();
    (await d)();
    releaseC();
    expect(order).toEqual(["c", "d"]);
    expect(slots.queued).toBe(0);
  });

  it("gives the permit back when the job throws", async () => {
    const slots = new Semaphore(1);
    await expect(slots.run(async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    await expect(slots.run(async () => "next")).resolves.toBe("next");
  });

  it("refuses a count that is not a whole positive number", () => {
    expect(() => new Semaphore(0)).toThrow(RangeError);
  });
});

describe("networkCode", () => {
  it("names a dropped or refused connection and nothing else", () => {
    expect(networkCode(Object.assign(new Error("x"), { code: "ECONNRESET" }))).toBe("ECONNRESET");
    expect(networkCode({ code: "EACCES" })).toBeUndefined();
    expect(networkCode(null)).toBeUndefined();
  });
});
