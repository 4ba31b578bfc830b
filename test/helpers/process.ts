import { spawn } from "node:child_process";
import path from "node:path";

/** How a process ended and what it wrote. */
export interface Finished {
  code: number | null;
  out: string;
  err: string;
}

/**
 * Runs `command args` to its end (its environment `env`, this process's when not given) and
 * resolves, once its output is closed, with its exit code and everything it wrote.
 */
export function runToEnd(command: string, args: string[], env?: NodeJS.ProcessEnv): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...(env ? { env } : {}), stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, out, err }));
  });
}

/** `npx cutover …` as a person would type it: the package's bin, on the Node 24 that npm installed. */
export function runCutoverCli(args: string[], env: NodeJS.ProcessEnv): Promise<Finished> {
  return runToEnd(path.resolve("node_modules/.bin/node"), ["bin/cutover.js", ...args], env);
}
