import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseMigrate, SUBCOMMANDS, tokenize } from "../../src/commands/parse.js";
import { helpView, invalidUsageView, unknownCommandView } from "../../src/views/help.js";

describe("parseMigrate", () => {
  it.each([
    ["", { name: "help" }],
    ["help run", { name: "help", topic: "run" }],
    ["status", { name: "status" }],
    ["plan", { name: "plan" }],
    ["plan data", { name: "plan", target: "data" }],
    ["run db-dump --dry-run", { name: "run", target: "db-dump", dryRun: true, flags: { "dry-run": true } }],
    ["run data —dry-run", { name: "run", target: "data", dryRun: true, flags: { "dry-run": true } }],
    ["run restore --replace", { name: "run", target: "restore", dryRun: false, flags: { replace: true } }],
    ["cancel 3f2a9c1e", { name: "cancel", runId: "3f2a9c1e" }],
    ["audit", { name: "audit", limit: 20 }],
    ["audit 50", { name: "audit", limit: 50 }],
    ["  STATUS  ", { name: "status" }],
    [
      'cutover --reason "late, but the team is here"',
      { name: "cutover", args: [], flags: { reason: "late, but the team is here" } },
    ],
    ["verify database", { name: "verify", args: ["database"], flags: {} }],
  ])("%j", (text, expected) => {
    expect(parseMigrate(text)).toEqual(expected);
  });

  it.each([
    ["stats", "status"],
    ["stauts", "status"],
    ["rn", "run"],
    ["cancle", "cancel"],
    ["pla", "plan"],
  ])("suggests %s → %s", (input, suggestion) => {
    expect(parseMigrate(input)).toEqual({ name: "unknown", input, suggestion });
  });

  it("says what is wrong with a known subcommand used badly", () => {
    expect(parseMigrate("run")).toMatchObject({
      name: "invalid",
      subcommand: "run",
      message: expect.stringContaining("needs exactly one step or phase"),
    });
    expect(parseMigrate("run data --dryrun")).toMatchObject({
      name: "invalid",
      message: expect.stringContaining("did you mean `--dry-run`?"),
    });
    expect(parseMigrate("audit lots")).toMatchObject({
      name: "invalid",
      message: expect.stringContaining("whole number from 1 to 200"),
    });
    expect(parseMigrate("cancel")).toMatchObject({
      name: "invalid",
      message: expect.stringContaining("needs the run id"),
    });
    expect(parseMigrate("status please")).toMatchObject({ name: "invalid" });
  });

  it("undoes Slack's escaping and keeps quoted strings together", () => {
    expect(tokenize('a &amp; b &lt;c&gt; "d e" “f g”')).toEqual(["a", "&", "b", "<c>", "d e", "f g"]);
  });

  it("never throws, and every answer renders to a helpful reply (10,000 random inputs)", () => {
    const words = fc.constantFrom(
      ...Object.keys(SUBCOMMANDS),
      "--dry-run",
      "--replace",
      "--reason",
      "—",
      '"',
      "'",
      "&amp;",
      "0",
      "-1",
      "999",
      "all",
    );
    const input = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.array(words, { maxLength: 6 }).map((w) => w.join(" ")),
      fc.string({ unit: "grapheme", maxLength: 80 }),
    );
    fc.assert(
      fc.property(input, (text) => {
        const cmd = parseMigrate(text);
        const reply =
          cmd.name === "help"
            ? helpView(cmd.topic)
            : cmd.name === "unknown"
              ? unknownCommandView(cmd.input, cmd.suggestion)
              : cmd.name === "invalid"
                ? invalidUsageView(cmd.subcommand, cmd.message)
                : undefined;
        if (reply) {
          expect(reply.text.length).toBeGreaterThan(10);
          expect(reply.blocks.length).toBeGreaterThan(0);
        } else {
          expect(Object.keys(SUBCOMMANDS)).toContain(cmd.name);
        }
      }),
      { numRuns: 10_000 },
    );
  });
});
