import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { z } from "zod";
import { systemClock } from "../../../clock.js";
import { connect } from "../../../cloud/postgres.js";
import { requireSection } from "../../../config/schema.js";
import { CutoverError, ErrorCode } from "../../../errors.js";
import type { ContextOf, PlannedChange, StepContext, StepDefinition, StepDeps } from "../../define-step.js";
import { shq } from "../../host-script.js";
import { targetEndpoint } from "../db/endpoints.js";
import { sudoFor } from "../host/shell.js";
import {
  type Check,
  defineVerificationStep,
  type MeasuredRow,
  runChecks,
  skipped,
  verificationStep,
} from "./checks.js";
import { ms, round, slug } from "./format.js";
import { httpRequest } from "./http.js";
import { LazyShell } from "./lazy-shell.js";
import type { CheckRow, VerificationReport } from "./report.js";

export const verifyReliability = defineVerificationStep("reliability", {
  input: {
    /** how often Supervisor is asked whether the killed program is back */
    restartPollMs: z.number().int().min(50).max(10_000).default(500),
    /** lines at the end of each log read for error lines */
    logTailLines: z.number().int().min(1).max(100_000).default(200),
  },
  timeLimit: 3600,
  checkpoints: { autoRestart: z.custom<RestartKept>() },
});
type Input = z.infer<typeof verifyReliability.input>;
type Row = MeasuredRow;

/** `supervisorctl status` for one program: its state and pid (when running). */
export function parseSupervisorStatus(text: string, program: string): { state: string; pid?: number } {
  const line = text
    .split("\n")
    .map((l) => l.trim())
    .find((l) => l.split(/\s+/)[0] === program || l.split(/\s+/)[0]?.startsWith(`${program}:`));
  if (!line) return { state: "UNKNOWN" };
  const [, state = "UNKNOWN"] = line.split(/\s+/);
  const pid = /\bpid (\d+)/.exec(line)?.[1];
  return pid ? { state, pid: Number(pid) } : { state };
}

/** What the auto-restart test keeps so a retry of the same run does not kill the app a second time. */
interface RestartKept {
  runId: string;
  row: Row;
}

/**
 * `verify.reliability`: the plan's reliability checks. App auto-restart (opt-in: it kills the
 * main program once over SSH and times Supervisor bringing it back), the target database taking
 * the configured number of connections at once, the app's error logs being written, and the
 * monitoring that will watch the new stack (KPI probe targets answering, samples flowing, where
 * alerts go).
 */
export function createVerifyReliabilityStep(deps: StepDeps): StepDefinition<Input> {
  const cfg = () => deps.file.verification.reliability;
  const serviceName = () => cfg().autoRestart.service ?? deps.file.target?.host?.supervisor.services[0]?.name;

  async function autoRestart(
    shell: LazyShell,
    input: Input,
    ctx: ContextOf<typeof verifyReliability>,
  ): Promise<Row> {
    const kept = await ctx.checkpoint.get("autoRestart");
    if (kept?.runId === ctx.run.id) return kept.row;
    const host = requireSection(deps.file, "target.host");
    const program = serviceName();
    if (!program) {
      throw new CutoverError(
        ErrorCode.BadArgument,
        "verification.reliability.autoRestart: no program to restart.",
        {
          hint: "Name it in `verification.reliability.autoRestart.service`, or list the app under `target.host.supervisor.services`.",
        },
      );
    }
    const { withinSeconds } = cfg().autoRestart;
    const sudo = sudoFor(host);
    const sh = await shell.get();
    const status = async () => {
      const r = await sh.exec(`${sudo}supervisorctl status ${shq(program)}`, {
        signal: ctx.signal,
        timeoutMs: 15_000,
      });
      return parseSupervisorStatus(`${r.stdout}\n${r.stderr}`, program);
    };
    const before = await status();
    if (before.state !== "RUNNING" || !before.pid) {
      return {
        measured: `${program} is ${before.state} before the test`,
        status: "fail",
        hint: `start it first and find out why it is not running: \`sudo supervisorctl tail ${program} stderr\``,
        figures: { restarted: false },
      };
    }
    const killed = await sh.exec(`${sudo}kill -KILL ${before.pid}`, {
      signal: ctx.signal,
      timeoutMs: 15_000,
    });
    if (killed.code !== 0) {
      return {
        measured: `could not kill pid ${before.pid}: ${(killed.stderr || killed.stdout).trim().slice(0, 150)}`,
        status: "fail",
        hint: `the SSH user needs passwordless sudo to run kill (target.host.sshUser)`,
        figures: { restarted: false },
      };
    }
    const t0 = performance.now();
    const deadline = t0 + withinSeconds * 1000;
    // Supervisor starts each program as its own process group: what is left of the killed one's
    // group (a master's workers) still holds its port, and a "restarted" program that cannot bind
    // it goes RUNNING after startsecs, exits, and loops while the leftovers serve the old code.
    const leftovers = async () => {
      const r = await sh.exec(`pgrep -g ${before.pid} || true`, { signal: ctx.signal, timeoutMs: 15_000 });
      return r.stdout.split(/\s+/).filter((p) => /^\d+$/.test(p)).length;
    };
    let last = before;
    let left = 0;
    let row: Row | undefined;
    while (performance.now() < deadline) {
      await sleep(input.restartPollMs, undefined, { signal: ctx.signal });
      last = await status();
      if (last.state === "RUNNING" && last.pid && last.pid !== before.pid) {
        left = await leftovers();
        if (left > 0) continue;
        const seconds = round((performance.now() - t0) / 1000, 1);
        row = {
          measured: `back in ${seconds} s (pid ${before.pid} → ${last.pid})`,
          status: "pass",
          figures: { seconds, restarted: true, oldPid: before.pid, newPid: last.pid },
        };
        break;
      }
    }
    row ??=
      left > 0
        ? {
            measured: `RUNNING again as pid ${last.pid}, but ${left} processes of the killed pid ${before.pid}'s group still run after ${withinSeconds} s`,
            status: "fail",
            hint: `the killed process's children outlived it and keep its port, so the restarted ${program} cannot bind it: make them end with their parent (Cutover's gunicorn.conf.py sets PR_SET_PDEATHSIG for its workers; run host.setup again), and see \`pgrep -a -g ${before.pid}\``,
            figures: { seconds: withinSeconds, restarted: false, oldPid: before.pid, leftovers: left },
          }
        : {
            measured: `not back after ${withinSeconds} s (now ${last.state}${last.pid ? ` pid ${last.pid}` : ""})`,
            status: "fail",
            hint: `Supervisor did not restart ${program}: check \`autorestart=true\` in /etc/supervisor/conf.d/${program}.conf, then \`sudo supervisorctl tail ${program} stderr\` for why it does not start`,
            figures: { seconds: withinSeconds, restarted: false, oldPid: before.pid },
          };
    await ctx.checkpoint.set("autoRestart", { runId: ctx.run.id, row } satisfies RestartKept);
    return row;
  }

  async function connectionPool(input: Input, ctx: StepContext): Promise<Row> {
    const wanted = cfg().dbConnectionPool.connections;
    const ep = await targetEndpoint(deps);
    const t0 = performance.now();
    const opened = await Promise.allSettled(
      Array.from({ length: wanted }, async () => {
        const c = await connect(ep, {
          timeoutSeconds: Math.ceil(input.connectTimeoutSeconds),
          readOnly: true,
          appName: "cutover-verify-pool",
        });
        try {
          await c.query("SELECT 1");
        } catch (err) {
          await c.end().catch(() => undefined);
          throw err;
        }
        return c;
      }),
    );
    const took = performance.now() - t0;
    const clients = opened
      .filter((o): o is PromiseFulfilledResult<pg.Client> => o.status === "fulfilled")
      .map((o) => o.value);
    let maxConnections: number | undefined;
    let inUse: number | undefined;
    try {
      if (clients[0]) {
        const r = await clients[0].query<{ max: string; used: string }>(
          "SELECT current_setting('max_connections') AS max, (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS used",
        );
        maxConnections = Number(r.rows[0]?.max);
        inUse = Number(r.rows[0]?.used);
      }
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    }
    ctx.signal.throwIfAborted();
    const failed = opened.find((o): o is PromiseRejectedResult => o.status === "rejected");
    const reason = failed
      ? String((failed.reason as Error)?.message ?? failed.reason)
          .split("\n")[0]!
          .slice(0, 200)
      : "";
    const ok = clients.length === wanted;
    const server =
      maxConnections !== undefined ? `; the server allows ${maxConnections}, ${inUse} in use` : "";
    const figures: CheckRow["figures"] = { opened: clients.length, wanted, ms: round(took) };
    if (maxConnections !== undefined) figures.maxConnections = maxConnections;
    if (inUse !== undefined) figures.inUse = inUse;
    return {
      measured: `${clients.length} of ${wanted} connections at once in ${ms(took)}${server}${failed ? `; refused: ${reason}` : ""}`,
      status: ok ? "pass" : "fail",
      ...(ok
        ? {}
        : {
            hint: "the database refused connections the app's pool will need: raise max_connections (the RDS parameter group) or the role's connection limit, or lower the app's pool size",
          }),
      figures,
    };
  }

  function logPaths(): string[] {
    const configured = cfg().errorLogging.logPaths;
    if (configured.length > 0) return configured;
    return (deps.file.target?.host?.supervisor.services ?? []).map(
      (s) => `/var/log/supervisor/${s.name}-stderr.log`,
    );
  }

  async function errorLog(shell: LazyShell, p: string, input: Input, ctx: StepContext): Promise<Row> {
    const host = requireSection(deps.file, "target.host");
    const sh = await shell.get();
    const script = `date +%s; stat -c '%s %Y' ${shq(p)} && { tail -n ${input.logTailLines} ${shq(p)} | grep -c -E 'ERROR|CRITICAL|Traceback' || true; }`;
    const r = await sh.exec(`${sudoFor(host)}sh -c ${shq(script)}`, {
      signal: ctx.signal,
      timeoutMs: 30_000,
    });
    const lines = r.stdout.trim().split("\n");
    const now = Number(lines[0]);
    const [size, mtime] = (lines[1] ?? "").split(" ").map(Number);
    if (
      r.code !== 0 ||
      size === undefined ||
      mtime === undefined ||
      Number.isNaN(size) ||
      Number.isNaN(mtime)
    ) {
      return {
        measured: `missing (${(r.stderr.trim().split("\n").pop() ?? "").slice(0, 120) || `exit ${r.code}`})`,
        status: "fail",
        hint: "the app's errors are not written there: check `stderr_logfile` in its Supervisor program (or fix logPaths)",
        figures: { exists: false },
      };
    }
    const errors = Number(lines[2] ?? 0);
    const ageSeconds = Math.max(0, now - mtime);
    const age =
      ageSeconds < 120
        ? `${ageSeconds} s`
        : ageSeconds < 7200
          ? `${Math.round(ageSeconds / 60)} min`
          : `${Math.round(ageSeconds / 3600)} h`;
    return {
      measured: `${round(size / 1024)} KB, written ${age} ago, ${errors} error line${errors === 1 ? "" : "s"} in the last ${input.logTailLines}`,
      status: "pass",
      figures: { exists: true, bytes: size, ageSeconds, errorLines: errors },
    };
  }

  async function probeTargets(ctx: StepContext): Promise<Row> {
    const { endpoints, timeoutMs } = deps.file.kpis.probes;
    if (endpoints.length === 0) {
      return {
        measured: "no KPI probe endpoints",
        status: "fail",
        hint: "list the endpoints to watch under `kpis.probes.endpoints` (e.g. the API's /health)",
        figures: { endpoints: 0 },
      };
    }
    const bad: string[] = [];
    let good = 0;
    for (const e of endpoints) {
      const a = await httpRequest(e.url, { timeoutMs, signal: ctx.signal });
      if (!a.error && a.status === e.expectStatus) good++;
      else bad.push(`${e.id}: ${a.error ?? `HTTP ${a.status}`}`);
    }
    return {
      measured: `${good} of ${endpoints.length} answer as expected${bad.length ? ` (${bad.join("; ")})` : ""}`,
      status: bad.length ? "fail" : "pass",
      ...(bad.length
        ? {
            hint: "a probe target that fails now would alert from the first minute: fix the URL or the service behind it",
          }
        : {}),
      figures: { endpoints: endpoints.length, answering: good },
    };
  }

  async function samplesFlowing(): Promise<Row> {
    const interval = deps.file.kpis.probes.intervalSeconds;
    const latest = await deps.db!.kpiSample.findFirst({ orderBy: { at: "desc" }, select: { at: true } });
    if (!latest) {
      return {
        measured: "no sample yet",
        status: "skip",
        hint: "the KPI monitor starts with the `kpi.monitor` step (after the switch)",
        figures: {},
      };
    }
    // samples are stamped with the bot's calendar: their age is measured on it too
    const now = (deps.clock ?? systemClock).now();
    const ageSeconds = Math.round((now.getTime() - latest.at.getTime()) / 1000);
    const ok = ageSeconds <= interval * 3;
    return {
      measured: `last sample ${ageSeconds} s ago`,
      status: ok ? "pass" : "fail",
      ...(ok
        ? {}
        : {
            hint: "the KPI monitor stopped sampling: check the bot's worker is running (`/migrate status`)",
          }),
      figures: { ageSeconds },
    };
  }

  function alertRoutes(): Row {
    const cost = deps.file.cost;
    const lt = deps.file.kpis.longTerm;
    const thresholds = `availability ≥ ${lt.availabilityPercent.min} %, avg ≤ ${lt.avgResponseMs.max} ms, DB ≤ ${lt.dbQueryMs.max} ms, errors ≤ ${lt.errorRatePercent.max} %`;
    return {
      measured: `KPI breaches (${thresholds}) post to ${deps.file.slack.channel}; ${cost ? `budget alert at ${cost.budgetAlert} ${cost.currency} (as the file says; AWS Budgets itself is not read)` : "no budget alert"}`,
      status: cost ? "pass" : "fail",
      ...(cost
        ? {}
        : {
            hint: "add the `cost` section with `budgetAlert` (the plan's is $100) so spending is watched too",
          }),
      figures: { channel: deps.file.slack.channel, ...(cost ? { budgetAlert: cost.budgetAlert } : {}) },
    };
  }

  async function measure(input: Input, ctx: StepContext): Promise<VerificationReport> {
    const c = cfg();
    const shell = new LazyShell(deps, input, ctx);
    const checks: Check[] = [];
    checks.push(
      c.autoRestart.enabled
        ? {
            id: "autoRestart",
            title: `App auto-restart (${serviceName() ?? "?"})`,
            target: `back within ${c.autoRestart.withinSeconds} s`,
            measure: () => autoRestart(shell, input, ctx),
          }
        : skipped(
            "autoRestart",
            "App auto-restart",
            "opt-in (it kills the app once)",
            "set `verification.reliability.autoRestart.enabled: true` to test it",
          ),
    );
    checks.push(
      c.dbConnectionPool.enabled
        ? {
            id: "dbPool",
            title: "Database connection pool",
            target: `${c.dbConnectionPool.connections} connections at once`,
            measure: () => connectionPool(input, ctx),
          }
        : skipped("dbPool", "Database connection pool", "disabled in the migration file"),
    );
    if (c.errorLogging.enabled) {
      const paths = logPaths();
      if (paths.length === 0) {
        checks.push({
          id: "errorLog",
          title: "Error logging",
          target: "log files exist",
          measure: async () => ({
            measured: "no log files to look at",
            status: "fail",
            hint: "list them in `verification.reliability.errorLogging.logPaths`, or the programs under `target.host.supervisor.services`",
            figures: {},
          }),
        });
      }
      for (const p of paths) {
        checks.push({
          id: `errorLog.${slug(p.split("/").pop() ?? p)}`,
          title: `Error log ${p}`,
          target: "exists and is written",
          measure: () => errorLog(shell, p, input, ctx),
        });
      }
    } else checks.push(skipped("errorLog", "Error logging", "disabled in the migration file"));
    if (c.monitoringAlerts.enabled) {
      checks.push({
        id: "monitoring.probes",
        title: "KPI probe targets",
        target: "every one answers as expected",
        measure: () => probeTargets(ctx),
      });
      checks.push(
        deps.db
          ? {
              id: "monitoring.samples",
              title: "KPI samples",
              target: `newer than ${deps.file.kpis.probes.intervalSeconds * 3} s`,
              measure: samplesFlowing,
            }
          : skipped("monitoring.samples", "KPI samples", "no state database in this process"),
      );
      checks.push({
        id: "monitoring.alerts",
        title: "Alert routes",
        target: "KPI and budget alerts configured",
        measure: async () => alertRoutes(),
      });
    } else checks.push(skipped("monitoring", "Monitoring alerts", "disabled in the migration file"));
    try {
      return await runChecks("reliability", checks, ctx, { only: input.only });
    } finally {
      await shell.close();
    }
  }

  return verificationStep(deps, verifyReliability, {
    measure,
    async plan() {
      const c = cfg();
      const changes: PlannedChange[] = [];
      if (c.autoRestart.enabled) {
        changes.push({
          action: "check",
          target: `auto-restart of ${serviceName() ?? "?"}`,
          detail: `kills it once over SSH and wants Supervisor to bring it back within ${c.autoRestart.withinSeconds} s — the app is down meanwhile`,
        });
      }
      if (c.dbConnectionPool.enabled) {
        changes.push({
          action: "check",
          target: "database connection pool",
          detail: `${c.dbConnectionPool.connections} connections at once`,
        });
      }
      if (c.errorLogging.enabled)
        for (const p of logPaths()) changes.push({ action: "check", target: `error log ${p}` });
      if (c.monitoringAlerts.enabled)
        changes.push({ action: "check", target: "KPI probe targets and alert routes" });
      return {
        summary: `would run ${changes.length} reliability checks${c.autoRestart.enabled ? ", including killing the app once" : " (auto-restart is opt-in and off)"}`,
        changes,
      };
    },
  });
}
