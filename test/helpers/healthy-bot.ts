import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { signalGroup } from "../../src/sandbox/child-bot.js";
import { freePort } from "../../src/sandbox/s3-servers.js";
import { waitForValue } from "./wait.js";

export interface HealthyBot {
  /** the process started (the head of its own process group) */
  child: ChildProcess;
  port: number;
  /** what GET /healthz answered once it said 200 */
  health: { status: number; body: string };
  /** everything the process wrote to stdout and stderr so far */
  output(): string;
  /** SIGTERM to the whole group (npm does not pass it on); resolves once the process has exited */
  stop(): Promise<void>;
}

/**
 * Starts the bot as a person would (`npm start`, `node dist/app.js`) in its own process group,
 * on a free port, with Slack pointing nowhere (/healthz does not need it) and `env` on top
 * (CUTOVER_CONFIG, CUTOVER_DATA_DIR, …), and waits until GET /healthz answers 200. Fails with
 * the process's output if it exits first, and stops it if it is not healthy in `timeoutMs`.
 */
export async function startBotUntilHealthy(o: {
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
}): Promise<HealthyBot> {
  const port = await freePort();
  let out = "";
  const child = spawn(o.command, o.args, {
    cwd: o.cwd,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      SLACK_BOT_TOKEN: `xoxb-${randomBytes(8).toString("hex")}`,
      SLACK_SIGNING_SECRET: randomBytes(16).toString("hex"),
      SLACK_API_URL: "http://127.0.0.1:9/api/", // nothing there: /healthz does not need Slack
      PORT: String(port),
      PROBE_DATABASE_URL: "postgres://unused@127.0.0.1:5432/unused",
      ...o.env,
    },
    detached: true, // a group of its own, so a SIGTERM reaches what npm started too
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d) => {
    out += d;
  });
  child.stderr?.on("data", (d) => {
    out += d;
  });
  const stop = () => signalGroup(child, "SIGTERM");
  const health = await waitForValue(
    "GET /healthz to answer 200",
    async () => {
      if (child.exitCode !== null)
        throw new Error(`${o.command} ${o.args.join(" ")} exited ${child.exitCode}:\n${out}`);
      const res = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
      return res ? { status: res.status, body: await res.text() } : undefined;
    },
    (r) => r?.status === 200,
    { timeoutMs: o.timeoutMs, intervalMs: 100 },
  ).catch(async (err: Error) => {
    await stop();
    throw err;
  });
  return { child, port, health: health!, output: () => out, stop };
}
