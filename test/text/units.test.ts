import { describe, expect, it } from "vitest";
import { parseStepDuration } from "../../src/config/schema.js";
import { formatBytes, formatDuration, parseDuration, parseDurationTerms } from "../../src/text/units.js";

describe("formatBytes", () => {
  it("writes sizes in powers of 1024, one decimal only below ten", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(7.3)).toBe("7 B");
    expect(formatBytes(1536)).toBe("1.5 KB");
    expect(formatBytes(340 * 1024 ** 2)).toBe("340 MB");
    expect(formatBytes(1.25 * 1024 ** 3)).toBe("1.3 GB");
    expect(formatBytes(3 * 1024 ** 5)).toBe("3072 TB");
  });
});

describe("formatDuration", () => {
  // the common cases are in views/blocks.test.ts, where the views take it from
  it("says ? for a duration it cannot know, and drops a unit that is zero", () => {
    expect(formatDuration(Number.POSITIVE_INFINITY)).toBe("?");
    expect(formatDuration(3_725_000)).toBe("1 h 2 min");
  });
});

describe("parseDuration", () => {
  it("reads back what formatDuration writes", () => {
    for (const ms of [450, 42_000, 150_000, 3_600_000, 5_400_000])
      expect(parseDuration(formatDuration(ms))).toBe(ms);
  });

  it("reads the forms people type, and refuses anything else", () => {
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("7d")).toBe(7 * 86_400_000);
    expect(parseDuration(" 90 S ")).toBe(90_000);
    expect(parseDurationTerms("24h")).toEqual([{ value: 24, unit: "h" }]);
    for (const bad of ["", "soon", "5", "1h and 2m", "-5m", "1 hour"])
      expect(parseDuration(bad)).toBeUndefined();
  });

  it("is what a step's timeout is read with: whole units, between 1 s and 7 days", () => {
    expect(parseStepDuration("1h 30m")).toBe(5_400);
    expect(parseStepDuration("2d")).toBe(172_800);
    for (const bad of ["500ms", "1.5h", "8d", "0s"]) expect(parseStepDuration(bad)).toBeUndefined();
  });
});
