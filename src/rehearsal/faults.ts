import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { startS3rver } from "../sandbox/s3-servers.js";
import { type HostBehaviour, SETUP_OUTPUT } from "./host.js";
import type { World } from "./world.js";

/**
 * Failures `--fail <step>` can inject, each the kind a real night has: a dropped connection, a
 * killed process, a Cloudflare error, a release that does not come up. A fault is armed just
 * before its step runs and fires once; the report then says what failed, what the bot did about
 * it, and whether the end state is still correct.
 */
export interface FaultContext {
  world: World;
  host: HostBehaviour;
  /** the status of the step's latest execution, and its progress count */
  step(stepId: string): Promise<{ status: string; done: number } | undefined>;
  note(text: string): void;
}

export interface ArmedFault {
  /** what was done to the world, once it fired */
  fired(): string | undefined;
  /** stops watching (and undoes anything still pending); safe to call twice */
  disarm(): Promise<void>;
}

export interface Fault {
  /** for --help */
  what: string;
  kind: "dropped connection" | "killed process" | "Cloudflare error" | "unhealthy release";
  arm(ctx: FaultContext): ArmedFault;
}

/** Polls `fn` until it returns true or the fault is disarmed. */
function watcher(intervalMs: number, fn: () => Promise<boolean>) {
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        if (await fn()) return;
      } catch {
        // the world is stopping, or the thing watched is not there yet
      }
      await sleep(intervalMs);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/**
 * Terminates the sessions of one client program on a database, the way a network drop ends them.
 * `program` is the start of their application_name (the steps name their sessions).
 */
function dropSessions(url: string, program: string, label: string, shown: string): Fault["arm"] {
  return (ctx) => {
    let what: string | undefined;
    const w = watcher(20, async () => {
      const client = new pg.Client({ connectionString: url });
      client.on("error", () => undefined);
      await client.connect();
      try {
        const r = await client.query<{ pid: number }>(
          "SELECT pg_terminate_backend(pid) AS ok, pid FROM pg_stat_activity WHERE starts_with(application_name, $1) AND datname = current_database() AND pid <> pg_backend_pid()",
          [program],
        );
        if (!r.rowCount) return false;
        what = `${r.rowCount} ${shown} connection(s) to the ${label} database cut mid-way (pg_terminate_backend)`;
        ctx.note(`fault injected: ${what}`);
        return true;
      } finally {
        await client.end().catch(() => undefined);
      }
    });
    return { fired: () => what, disarm: () => w.stop() };
  };
}

function cloudflareErrors(method: string, pathPart: string, times: number, label: string): Fault["arm"] {
  return (ctx) => {
    const cf = ctx.world.cloudflare;
    const match = (c: { method: string; path: string }) => c.method === method && c.path.includes(pathPart);
    const before = cf.calls(match).filter((c) => c.status >= 500).length;
    for (let i = 0; i < times; i++)
      cf.failNext(match, {
        status: 500,
        code: 10001,
        message: "Internal server error (injected by the rehearsal)",
      });
    ctx.note(`fault armed: the next ${times} ${label} calls to Cloudflare answer HTTP 500`);
    return {
      fired: () => {
        const n = cf.calls(match).filter((c) => c.status >= 500).length - before;
        return n > 0 ? `Cloudflare answered HTTP 500 to ${n} ${label} call(s)` : undefined;
      },
      disarm: async () => undefined,
    };
  };
}

export const FAULTS: Record<string, Fault> = {
  "db-dump": {
    what: "a dropped connection: pg_dump's sessions on the source are cut",
    kind: "dropped connection",
    arm: (ctx) => dropSessions(ctx.world.db.source, "cutover-dump", "source", "pg_dump")(ctx),
  },
  "db-restore": {
    what: "a dropped connection: pg_restore's sessions on the target are cut",
    kind: "dropped connection",
    arm: (ctx) => dropSessions(ctx.world.db.target, "cutover-restore", "target", "pg_restore")(ctx),
  },
  "storage-sync": {
    what: "a killed process: the source bucket's server (R2) is killed mid-copy, back 2 s later",
    kind: "killed process",
    arm(ctx) {
      let what: string | undefined;
      const w = watcher(25, async () => {
        const s = await ctx.step("storage-sync");
        if (s?.status !== "running" || s.done < 1) return false;
        const { world } = ctx;
        const { pid, port } = world.r2;
        process.kill(pid, "SIGKILL");
        what = `the source bucket's server (s3rver, pid ${pid}) was killed with SIGKILL after ${s.done} object(s) had been copied; it came back on the same port 2 s later`;
        ctx.note(`fault injected: s3rver (pid ${pid}) killed mid-copy`);
        await sleep(2_000);
        const again = await startS3rver({ directory: path.join(world.dir, "r2"), port });
        world.r2 = again;
        world.onStop(() => again.stop());
        ctx.note(`s3rver is back (pid ${again.pid})`);
        return true;
      });
      return { fired: () => what, disarm: () => w.stop() };
    },
  },
  "host-setup": {
    what: "a dropped connection: the SSH server drops the session while the set-up script runs",
    kind: "dropped connection",
    arm(ctx) {
      let what: string | undefined;
      const { host } = ctx.world;
      const port = host.port;
      host.on(/setup\.sh'$/, () => {
        if (what) return { stdout: SETUP_OUTPUT, chunkDelayMs: 5 };
        what = "the SSH session to the host was dropped while the set-up script ran (the server restarted)";
        ctx.note("fault injected: the host's SSH server drops every session and restarts");
        setTimeout(() => {
          void host.stop().then(() => host.start(port));
        }, 100);
        return { hang: true };
      });
      return { fired: () => what, disarm: async () => undefined };
    },
  },
  "app-deploy": {
    what: "an unhealthy release: the first deploy never answers /health with 200",
    kind: "unhealthy release",
    arm(ctx) {
      const normal = ctx.host.health;
      let failed = 0;
      ctx.host.health = () => {
        if (ctx.host.deploys() <= 1) {
          failed++;
          return "502";
        }
        return normal();
      };
      return {
        fired: () =>
          failed > 0
            ? `the first release answered /health with HTTP 502 (${failed} times) and never came up`
            : undefined,
        disarm: async () => {
          ctx.host.health = normal;
        },
      };
    },
  },
  "dns-lower-ttl": {
    what: "a Cloudflare error: the DNS record updates answer HTTP 500",
    kind: "Cloudflare error",
    arm: (ctx) => cloudflareErrors("PATCH", "/dns_records/", 3, "DNS record update")(ctx),
  },
  "dns-cutover": {
    what: "a Cloudflare error: the DNS switch's record updates answer HTTP 500",
    kind: "Cloudflare error",
    arm: (ctx) => cloudflareErrors("PATCH", "/dns_records/", 3, "DNS record update")(ctx),
  },
};
