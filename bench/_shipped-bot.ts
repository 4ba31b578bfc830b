import { type ChildProcess, spawn } from "node:child_process";
import { readdir, readFile, readlink } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { SHIPPED_BOT, signalGroup } from "../src/sandbox/child-bot.js";
import { freePort } from "../src/sandbox/s3-servers.js";

/**
 * The bot as the benchmarks run it: as users do (`npm start`, the systemd unit and the Supervisor
 * program all run `node dist/app.js`), in a process group of its own, with the environment given
 * and nothing else (no heap flags, no bundle). The bench process keeps the fakes (Slack,
 * Cloudflare, app servers) and talks to the bot over HTTP, signed, as Slack would.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export { SHIPPED_BOT };

export interface ShippedBot {
  child: ChildProcess;
  /** the process's id: read its /proc entry */
  pid: number;
  port: number;
  /** `http://127.0.0.1:<port>/slack/events` */
  eventsUrl: string;
  /** from spawn to the first 200 from GET /healthz */
  seconds: number;
  /** the last of its stdout and stderr, for a failure message */
  output(): string;
}

/**
 * Starts `node dist/app.js` on a free port (`PORT` in `env` is replaced) and waits for the first
 * 200 from GET /healthz. Its output keeps draining so a full pipe never blocks it.
 */
export async function startShippedBot(
  env: NodeJS.ProcessEnv,
  opts: { timeoutMs?: number } = {},
): Promise<ShippedBot> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, [SHIPPED_BOT], {
    cwd: ROOT,
    env: { ...env, PORT: String(port) },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const keep = (d: Buffer) => {
    out = (out + d).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  for (;;) {
    if (exited) throw new Error(`the bot exited before it was healthy:\n${out.slice(-2000)}`);
    if (performance.now() - started > timeoutMs) {
      await signalGroup(child, "SIGKILL");
      throw new Error(`the bot was not healthy within ${timeoutMs / 1000} s:\n${out.slice(-2000)}`);
    }
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2_000) })
      .then((r) => r.status === 200)
      .catch(() => false);
    if (ok)
      return {
        child,
        pid: child.pid!,
        port,
        eventsUrl: `http://127.0.0.1:${port}/slack/events`,
        seconds: (performance.now() - started) / 1000,
        output: () => out,
      };
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** SIGTERM to the bot's process group (its own clean stop), SIGKILL if it has not ended within 15 s. */
export async function stopShippedBot(child: ChildProcess | undefined): Promise<void> {
  const timer = setTimeout(() => void signalGroup(child, "SIGKILL"), 15_000);
  await signalGroup(child, "SIGTERM");
  clearTimeout(timer);
}

/** A process's resident memory, threads and open descriptors by kind, from /proc. */
export interface ProcessFigures {
  rssBytes: number;
  threads: number;
  /** open file descriptors by what they point at: socket, pipe, anon_inode, file */
  fds: Record<string, number>;
}

/** What /proc says about `pid` now (Linux). */
export async function processFigures(pid: number): Promise<ProcessFigures> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);
  const fds: Record<string, number> = {};
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
    const kind = /^(socket|pipe|anon_inode):/.exec(target)?.[1] ?? (target ? "file" : "gone");
    fds[kind] = (fds[kind] ?? 0) + 1;
  }
  return { rssBytes: field("VmRSS") * 1024, threads: field("Threads"), fds };
}
