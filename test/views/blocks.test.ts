import { describe, expect, it } from "vitest";
import { clip, escShort, formatDuration, short } from "../../src/views/blocks.js";

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

describe("clip", () => {
  const fences = (s: string) => s.split("```").length - 1;

  it("leaves a text within the limit as it is", () => {
    expect(clip("short", 100)).toBe("short");
  });

  it("closes a code fence it cuts, so the table keeps its formatting, and cuts at a line end", () => {
    const table = `*Tables*\n\`\`\`\n${Array.from({ length: 200 }, (_, i) => `orders_${i}   ${i * 1000}   ${i * 1000}`).join("\n")}\n\`\`\`\nafter`;
    const cut = clip(table, 1000);
    expect(cut.length).toBeLessThanOrEqual(1000);
    expect(fences(cut) % 2).toBe(0);
    expect(cut).toMatch(/\n```\n… \(cut; \d+ more characters\)$/);
    // the last row shown is whole
    expect(cut.split("\n```\n…")[0]!.split("\n").at(-1)).toMatch(/^orders_\d+ {3}\d+ {3}\d+$/);
  });

  it("closes an inline code span it cuts", () => {
    const cut = clip(`see \`${"x".repeat(500)}\` there`, 200);
    expect(cut.split("\n")[0]!.split("`").length % 2).toBe(1); // an even number of backticks
  });

  it("never cuts an entity, a mention or a link in two, nor a word", () => {
    for (const piece of ["&amp;", "<@U0123456789>", "<https://example.com/a/long/path|the link>"]) {
      const text = `${"word ".repeat(60)}${piece.repeat(100)}`;
      for (let max = 300; max < 400; max += 7) {
        const head = clip(text, max).split("\n…")[0]!;
        expect(head.length).toBeLessThanOrEqual(max);
        expect(head.endsWith(piece) || head.endsWith("word")).toBe(true);
      }
    }
  });
});

describe("escShort and short", () => {
  it("cut what a person typed to fit a field, never inside an entity", () => {
    const s = escShort("<".repeat(100), 30);
    expect(s.length).toBeLessThanOrEqual(30);
    expect(s).toMatch(/^(&lt;)+…$/);
    expect(escShort("a < b", 30)).toBe("a &lt; b");
    expect(short("x".repeat(200), 150)).toHaveLength(150);
    expect(short("🚀".repeat(200), 150).endsWith("…")).toBe(true);
    expect([...short("🚀".repeat(200), 150)]).toHaveLength(150);
  });
});
