import { describe, expect, it } from "vitest";
import { formatDuration } from "../../src/views/blocks.js";

describe("formatDuration", () => {
  it("reads like a person would say it, leaving out a zero last part", () => {
    expect(formatDuration(450)).toBe("450 ms");
    expect(formatDuration(12_400)).toBe("12 s");
    expect(formatDuration(120_000)).toBe("2 min");
    expect(formatDuration(150_000)).toBe("2 min 30 s");
    expect(formatDuration(3_600_000)).toBe("1 h");
    expect(formatDuration(5_400_000)).toBe("1 h 30 min");
  });
});
