import { spawn } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stopStray } from "../../../src/jobs/steps/db/stray-process.js";
import { waitUntil } from "../../helpers/wait.js";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe("stopStray", () => {
  it("stops a stray caught while Debian's pg_wrapper (perl) has not yet exec'd pg_restore, and nothing else", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "cutover-stray-"));
    dirs.push(dir);
    // a perl script named pg_restore, as /usr/bin/pg_restore is on Debian before it execs the real one
    const wrapper = path.join(dir, "pg_restore");
    await writeFile(wrapper, "sleep 60;\n");
    await chmod(wrapper, 0o755);
    const stray = spawn("perl", [wrapper], { stdio: "ignore" });
    const exited = new Promise((r) => stray.once("exit", r));
    await waitUntil("perl to be running the wrapper", async () => {
      const { readFile } = await import("node:fs/promises");
      const argv = (await readFile(`/proc/${stray.pid}/cmdline`, "utf8").catch(() => "")).split("\0");
      return argv[1] === wrapper;
    });
    expect(await stopStray(stray.pid, "pg_restore")).toBe(true);
    await exited;
    expect(stray.signalCode ?? stray.exitCode).toBeTruthy();

    // another program under the recorded pid (a reused pid) is left alone
    const other = spawn("sleep", ["60"], { stdio: "ignore" });
    const otherExited = new Promise((r) => other.once("exit", r));
    expect(await stopStray(other.pid, "pg_restore")).toBe(false);
    expect(other.exitCode).toBeNull();
    other.kill("SIGKILL");
    await otherExited;
  });
});
