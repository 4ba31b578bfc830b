import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * The bot's entry point as users run it (`npm start`, the systemd unit, the Supervisor program):
 * the compiled JavaScript.
 */
export const SHIPPED_BOT = "dist/app.js";

/**
 * The bot's entry point next to this module: the compiled one when this module runs compiled
 * (the rehearsal, as shipped), the TypeScript source when it runs from source (the tests run
 * the tree they test, compiled or not).
 */
export const BOT_ENTRY = import.meta.url.endsWith(".ts") ? "src/app.ts" : SHIPPED_BOT;

/** The line the bot logs once it listens: `{"port":N,…,"msg":"Cutover is up"}`. */
export const BOT_UP = /"port":(\d+).*"msg":"Cutover is up"/;

/**
 * Starts `<args>` from the project root as a process group of its own, a `.ts` script with tsx
 * (which runs it in a child of its own, so signals go to the group), a `.js` one with this
 * process's node, and waits until its stdout matches
 * `portLine`, whose first group is the port. Its output keeps draining so a full pipe never
 * blocks it; the last of it is quoted if it fails to start.
 */
export async function spawnServer(
  args: string[],
  env: NodeJS.ProcessEnv,
  opts: { portLine?: RegExp; label?: string; timeoutMs?: number } = {},
): Promise<{ child: ChildProcess; port: number }> {
  const { portLine = BOT_UP, label = "the bot", timeoutMs = 60_000 } = opts;
  // TypeScript through tsx's loader inside the one node process, as production runs one process:
  // the tsx command would put a parent before it that relays a SIGTERM, waits 30 ms for the child
  // to confirm it over IPC, and then SIGKILLs it (exit 143 under load, where the confirmation is
  // late: the SIGTERM-resume test failed on it in a loaded CI run)
  const argv = args[0]?.endsWith(".ts") ? ["--import", "tsx", ...args] : args;
  const child = spawn(process.execPath, argv, {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const keep = (d: Buffer | string) => {
    out += d;
    if (out.length > 1_000_000) out = out.slice(-100_000);
  };
  child.stderr!.on("data", keep);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${label} did not start within ${timeoutMs / 1000} s:\n${out.slice(-2000)}`)),
      timeoutMs,
    );
    child.stdout!.on("data", (d: Buffer) => {
      keep(d);
      const m = portLine.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited with ${code}:\n${out.slice(-2000)}`));
    });
  });
  return { child, port };
}

/** Sends `signal` to the process group and waits for it to end; a no-op once it has. */
export async function signalGroup(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  try {
    process.kill(-child.pid, signal);
  } catch {
    return;
  }
  await exited;
}

/**
 * The real bot as a child ({@link BOT_ENTRY} unless `entry` says otherwise), started again as
 * often as needed and SIGKILL-able as a process group: for crash tests and the chaos bench.
 */
export function childBot(env: NodeJS.ProcessEnv, entry: string = BOT_ENTRY) {
  let current: ChildProcess | undefined;
  return {
    /** starts the bot and returns its HTTP port */
    async start(): Promise<number> {
      const { child, port } = await spawnServer([entry], env);
      current = child;
      return port;
    },
    /** the running process, if any */
    get child(): ChildProcess | undefined {
      return current;
    },
    kill9: () => signalGroup(current, "SIGKILL"),
    /** SIGTERM: the bot's own clean shutdown */
    stop: () => signalGroup(current, "SIGTERM"),
  };
}
