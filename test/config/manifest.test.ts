import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { SUBCOMMANDS } from "../../src/commands/parse.js";

interface Manifest {
  features: { slash_commands: Array<{ command: string; usage_hint?: string }> };
}

describe("manifest.yml", () => {
  it("shows every /migrate subcommand in the slash command's usage hint", async () => {
    const manifest = parse(
      await readFile(new URL("../../manifest.yml", import.meta.url), "utf8"),
    ) as Manifest;
    const migrate = manifest.features.slash_commands.find((c) => c.command === "/migrate");
    const hinted = new Set((migrate?.usage_hint ?? "").split("|").map((part) => part.trim().split(/\s+/)[0]));
    const missing = Object.keys(SUBCOMMANDS).filter((name) => !hinted.has(name));
    expect(missing, "add these to manifest.yml's /migrate usage_hint").toEqual([]);
  });
});
