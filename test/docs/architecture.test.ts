import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const doc = readFileSync(path.join(root, "ARCHITECTURE.md"), "utf8");

/** A path as the walk writes it: from the project root, or a step's file under src/jobs/steps/. */
function onDisk(named: string): string | undefined {
  for (const base of [root, path.join(root, "src", "jobs", "steps")]) {
    const p = path.join(base, named);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** The project's paths a document names in backticks (a step's file by its folder under src/jobs/steps/). */
const namedIn = (text: string) =>
  [
    ...text.matchAll(
      /`((?:src|test|bench|scripts|prisma|bin|deploy)\/[^`\s]+|(?:db|storage|host|dns|verify|ops)\/[\w.-]+\.ts)`/g,
    ),
  ].map((m) => m[1] as string);

describe("README.md", () => {
  it("names only files that exist", () => {
    const named = namedIn(readFileSync(path.join(root, "README.md"), "utf8"));
    expect(named.length).toBeGreaterThan(10);
    expect(named.filter((n) => !onDisk(n.replace(/\/$/, "")))).toEqual([]);
  });
});

describe("ARCHITECTURE.md", () => {
  it("names only files that exist", () => {
    const named = namedIn(doc);
    expect(named.length).toBeGreaterThan(40);
    expect(named.filter((n) => !onDisk(n.replace(/\/$/, "")))).toEqual([]);
  });

  it("counts the files of the walk of /migrate run data as it names them", () => {
    const walk = doc.slice(
      doc.indexOf("## The request: `/migrate run data`"),
      doc.indexOf("Following `/migrate run data`"),
    );
    const bold = [...walk.matchAll(/\*\*`([^`]+)`\*\*/g)].map((m) => m[1] as string);
    expect(new Set(bold).size).toBe(bold.length);
    const steps = bold.filter((b) => !b.startsWith("src/"));
    const claim =
      /opens the (\d+) files in bold on the\s+path, then the data phase's (\d+) steps: (\d+) in all/.exec(
        doc,
      );
    expect(claim, "the sentence that gives the count").not.toBeNull();
    const [, path_, steps_, all] = claim!.map(Number);
    expect({ path: bold.length - steps.length, steps: steps.length, all: bold.length }).toEqual({
      path: path_,
      steps: steps_,
      all,
    });
  });
});
