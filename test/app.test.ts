import { describe, expect, it } from "vitest";
import { runToEnd } from "./helpers/process.js";

/** What the README says to run: `npm start` (its script, not a copy of it). */
async function runApp(env: NodeJS.ProcessEnv) {
  const { code, out, err } = await runToEnd("npm", ["--silent", "start"], env);
  return { code, stdout: out, stderr: err };
}

describe("npm start", () => {
  it("exits non-zero naming every missing setting and the missing migration file, before starting anything", async () => {
    const { code, stderr, stdout } = await runApp({
      PATH: process.env.PATH,
      CUTOVER_CONFIG: "/nonexistent/migration.yml",
    });
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toContain("Cutover cannot start");
    expect(stderr).toContain("SLACK_BOT_TOKEN");
    expect(stderr).toMatch(
      /SLACK_SIGNING_SECRET[^\n]*SLACK_APP_TOKEN|SLACK_APP_TOKEN[^\n]*SLACK_SIGNING_SECRET/,
    );
    expect(stderr).toContain("/nonexistent/migration.yml");
    expect(stderr).toContain("cp migration.example.yml migration.yml");
  });

  it("names a migration file's problems and the unset variables it refers to, never their values", async () => {
    const secret = "xoxb-should-never-be-printed-1234";
    const { code, stderr } = await runApp({
      PATH: process.env.PATH,
      SLACK_BOT_TOKEN: secret,
      SLACK_SIGNING_SECRET: "signing-secret-never-printed",
      CUTOVER_CONFIG: "migration.example.yml",
    });
    expect(code).toBe(1);
    expect(stderr).toContain("NEON_DATABASE_URL");
    expect(stderr).toContain("R2_SECRET_ACCESS_KEY");
    expect(stderr).not.toContain(secret);
    expect(stderr).not.toContain("signing-secret-never-printed");
  });
});
