import path from "node:path";
import { CutoverError, ErrorCode } from "../errors.js";

/**
 * The process settings, from the environment (DESIGN.md, "The outside interface"). Everything
 * wrong is reported at once in one CutoverError (code SettingsMissing) naming each variable,
 * what it is and where to get it. Values are never printed.
 */

/** How the app talks to Slack: signed HTTP requests, or a Socket Mode connection. */
export type SlackSettings =
  | { mode: "http"; botToken: string; signingSecret: string }
  | { mode: "socket"; botToken: string; appToken: string };

export interface Settings {
  slack: SlackSettings;
  /** Slack Web API base URL (SLACK_API_URL); unset means Slack's own */
  slackApiUrl?: string;
  /** HTTP port (PORT, default 3000) */
  port: number;
  /** the state database (DATABASE_URL); unset means the embedded PostgreSQL under dataDir */
  databaseUrl?: string;
  /** the migration file (CUTOVER_CONFIG, default ./migration.yml) */
  configPath: string;
  /** absolute path of the data directory (CUTOVER_DATA_DIR, default ./.cutover) */
  dataDir: string;
}

const DEFAULT_PORT = 3000;
const APPS = "api.slack.com/apps";

/**
 * Reads the settings from `env`.
 * @example const settings = loadSettings(); // throws one SettingsMissing error listing every problem
 */
export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const value = (key: string): string | undefined => {
    const v = env[key]?.trim();
    return v === undefined || v === "" ? undefined : v;
  };
  const problems: string[] = [];

  const botToken = value("SLACK_BOT_TOKEN");
  if (botToken === undefined) {
    problems.push(
      `SLACK_BOT_TOKEN: not set — the Bot User OAuth Token (xoxb-…): OAuth & Permissions on ${APPS}, after installing the app to the workspace`,
    );
  } else if (!botToken.startsWith("xoxb-")) {
    const looks = botToken.startsWith("xapp-")
      ? "holds an app-level token (xapp-…), which belongs in SLACK_APP_TOKEN"
      : botToken.startsWith("xoxp-")
        ? "holds a user token (xoxp-…), not the bot's"
        : "does not start with xoxb-";
    problems.push(
      `SLACK_BOT_TOKEN: ${looks} — use the Bot User OAuth Token (xoxb-…) from OAuth & Permissions on ${APPS}`,
    );
  }

  const signingSecret = value("SLACK_SIGNING_SECRET");
  const appToken = value("SLACK_APP_TOKEN");
  if (appToken !== undefined && !appToken.startsWith("xapp-")) {
    problems.push(
      `SLACK_APP_TOKEN: does not start with xapp- — create an app-level token with the connections:write scope under Basic Information → App-Level Tokens on ${APPS}, or unset it to use HTTP mode with SLACK_SIGNING_SECRET`,
    );
  }
  if (signingSecret === undefined && appToken === undefined) {
    problems.push(
      `SLACK_SIGNING_SECRET: not set — Basic Information → App Credentials → Signing Secret on ${APPS}, or set SLACK_APP_TOKEN (xapp-…) for Socket Mode instead`,
    );
  }

  let port = DEFAULT_PORT;
  const rawPort = value("PORT");
  if (rawPort !== undefined) {
    const n = Number(rawPort);
    // 0 asks the system for a free port (tests and the rehearsal use it)
    if (!/^\d+$/.test(rawPort) || !Number.isInteger(n) || n < 0 || n > 65535) {
      problems.push(
        `PORT: is not a port — use a whole number between 1 and 65535 (0 for any free port), or unset it for ${DEFAULT_PORT}`,
      );
    } else port = n;
  }

  const slackApiUrl = value("SLACK_API_URL");
  if (slackApiUrl !== undefined && !isHttpUrl(slackApiUrl)) {
    problems.push(
      "SLACK_API_URL: is not an http(s) URL — unset it to use Slack's own API, or give the base URL of a Slack-compatible API, e.g. http://localhost:4010/api/",
    );
  }

  const databaseUrl = value("DATABASE_URL");
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\/\S+$/.test(databaseUrl)) {
    problems.push(
      "DATABASE_URL: is not a PostgreSQL URL — write it as postgres://user:password@host:5432/database, or unset it to use the embedded PostgreSQL under CUTOVER_DATA_DIR",
    );
  }

  if (problems.length > 0) {
    const n = problems.length;
    throw new CutoverError(
      ErrorCode.SettingsMissing,
      [
        `Cutover cannot start — ${n} setting${n === 1 ? " is" : "s are"} missing or invalid:`,
        ...problems,
      ].join("\n"),
      {
        details: { problems },
        hint: "Set them in Cutover's environment (or the service's env file) and start again.",
      },
    );
  }

  const slack: SlackSettings =
    appToken !== undefined
      ? { mode: "socket", botToken: botToken!, appToken }
      : { mode: "http", botToken: botToken!, signingSecret: signingSecret! };

  return {
    slack,
    ...(slackApiUrl === undefined ? {} : { slackApiUrl }),
    port,
    ...(databaseUrl === undefined ? {} : { databaseUrl }),
    configPath: value("CUTOVER_CONFIG") ?? "./migration.yml",
    dataDir: path.resolve(value("CUTOVER_DATA_DIR") ?? "./.cutover"),
  };
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}
