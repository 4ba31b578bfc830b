import { readFile } from "node:fs/promises";

/** Stops a process a crashed worker left behind, if it is still the program we started. */
export async function stopStray(pid: number | undefined, program: string): Promise<boolean> {
  if (!pid || pid === process.pid) return false;
  try {
    const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
    // the program itself, or Debian's pg_wrapper (a perl script of that name) not yet exec'd
    // into it: a stray caught in that moment was left running for ever (seen under load)
    if (!argv.slice(0, 2).some((a) => a.endsWith(program))) return false;
  } catch {
    return false; // gone (or not Linux: nothing to read, nothing to stop)
  }
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return false;
  }
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
  return true;
}
