import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadSettings } from "../../src/config/settings.js";
import { CutoverError, ErrorCode } from "../../src/errors.js";

const BOT = "xoxb-1111-2222-botvalue";
const SECRET = "0123456789abcdef0123456789abcdef";
const APP = "xapp-1-A111-222-appvalue";

function settingsError(env: NodeJS.ProcessEnv): CutoverError & { details: { problems: string[] } } {
  try {
    loadSettings(env);
  } catch (err) {
    expect(err).toBeInstanceOf(CutoverError);
    expect((err as CutoverError).code).toBe(ErrorCode.SettingsMissing);
    return err as CutoverError & { details: { problems: string[] } };
  }
  throw new Error("expected a SettingsMissing error, but the settings were accepted");
}

describe("loadSettings", () => {
  it("reads HTTP mode with the defaults", () => {
    const s = loadSettings({ SLACK_BOT_TOKEN: BOT, SLACK_SIGNING_SECRET: SECRET });
    expect(s.slack).toEqual({ mode: "http", botToken: BOT, signingSecret: SECRET });
    expect(s.port).toBe(3000);
    expect(s.configPath).toBe("./migration.yml");
    expect(s.dataDir).toBe(path.resolve(".cutover"));
    expect(path.isAbsolute(s.dataDir)).toBe(true);
    expect(s.slackApiUrl).toBeUndefined();
    expect(s.databaseUrl).toBeUndefined();
  });

  it("reads Socket Mode and every optional setting", () => {
    const s = loadSettings({
      SLACK_BOT_TOKEN: BOT,
      SLACK_APP_TOKEN: APP,
      SLACK_API_URL: "http://127.0.0.1:4010/api/",
      PORT: "8080",
      DATABASE_URL: "postgres://cutover:pw@localhost:5432/cutover",
      CUTOVER_CONFIG: "/etc/cutover/migration.yml",
      CUTOVER_DATA_DIR: "state",
    });
    expect(s.slack).toEqual({ mode: "socket", botToken: BOT, appToken: APP });
    expect(s.slackApiUrl).toBe("http://127.0.0.1:4010/api/");
    expect(s.port).toBe(8080);
    expect(s.databaseUrl).toBe("postgres://cutover:pw@localhost:5432/cutover");
    expect(s.configPath).toBe("/etc/cutover/migration.yml");
    expect(s.dataDir).toBe(path.resolve("state"));
  });

  it("treats empty values as unset", () => {
    const s = loadSettings({
      SLACK_BOT_TOKEN: BOT,
      SLACK_SIGNING_SECRET: SECRET,
      PORT: "",
      DATABASE_URL: " ",
      CUTOVER_DATA_DIR: "",
    });
    expect(s.port).toBe(3000);
    expect(s.databaseUrl).toBeUndefined();
    expect(s.dataDir).toBe(path.resolve(".cutover"));
  });

  it("names every missing setting in one error, with where to get it", () => {
    const err = settingsError({});
    expect(err.details.problems).toHaveLength(2);
    expect(err.details.problems[0]).toMatch(
      /^SLACK_BOT_TOKEN: not set — the Bot User OAuth Token \(xoxb-…\): OAuth & Permissions on api\.slack\.com\/apps/,
    );
    expect(err.details.problems[1]).toMatch(
      /^SLACK_SIGNING_SECRET: not set — Basic Information → App Credentials → Signing Secret on api\.slack\.com\/apps, or set SLACK_APP_TOKEN \(xapp-…\) for Socket Mode/,
    );
    expect(err.message.split("\n").slice(1)).toEqual(err.details.problems);
  });

  it("names every invalid setting without printing any value", () => {
    const env = {
      SLACK_BOT_TOKEN: "xapp-oops-botslot",
      SLACK_APP_TOKEN: "not-an-app-token-zzz",
      PORT: "70000",
      SLACK_API_URL: "ftp://slack.example/api",
      DATABASE_URL: "mysql://root:hunter2@db/cutover",
    };
    const err = settingsError(env);
    const names = err.details.problems.map((p) => p.split(":")[0]);
    expect(names).toEqual(["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "PORT", "SLACK_API_URL", "DATABASE_URL"]);
    expect(err.details.problems[0]).toMatch(/app-level token \(xapp-…\), which belongs in SLACK_APP_TOKEN/);
    expect(err.details.problems[2]).toMatch(/between 1 and 65535/);
    for (const value of Object.values(env)) expect(err.message).not.toContain(value);
  });

  it.each(["3000.5", "http", "-1", "65536"])("rejects PORT=%s", (port) => {
    const err = settingsError({ SLACK_BOT_TOKEN: BOT, SLACK_SIGNING_SECRET: SECRET, PORT: port });
    expect(err.details.problems).toEqual([expect.stringMatching(/^PORT: is not a port — /)]);
  });

  it("accepts PORT=0 (any free port)", () => {
    expect(loadSettings({ SLACK_BOT_TOKEN: BOT, SLACK_SIGNING_SECRET: SECRET, PORT: "0" }).port).toBe(0);
  });

  it("accepts the highest port", () => {
    expect(loadSettings({ SLACK_BOT_TOKEN: BOT, SLACK_SIGNING_SECRET: SECRET, PORT: "65535" }).port).toBe(
      65535,
    );
  });
});
