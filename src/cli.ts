// first: V8 settings that must hold before anything else loads
import "./runtime.js";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { AccessControl } from "./commands/access.js";
import type { Caller, CommandDeps } from "./commands/context.js";
import { dispatchMigrate } from "./commands/dispatch.js";
import { performRollback } from "./commands/handlers/rollback.js";
import { parseMigrate } from "./commands/parse.js";
import { collectEnvRefs, loadMigrationFile } from "./config/load.js";
import { buildDeps } from "./deps.js";
import { digestDeps } from "./digest/index.js";
import { digestSources } from "./digest/sources.js";
import { describeError } from "./errors.js";
import { KNOWN_STEP_TYPES, STEP_SECTIONS } from "./jobs/catalogue.js";
import { createLogger } from "./log.js";
import { isFinished, loadRun } from "./store/runs.js";
import { helpView, invalidUsageView, unknownCommandView } from "./views/help.js";
import { runMessageView } from "./views/run.js";
import { renderBlocksAsText } from "./views/text.js";

const USAGE = `Usage: npx cutover <command> [arguments]

The same commands as /migrate in Slack, run as the migration file's local operator:
  help | plan [phase|step] | status | run <step|phase> [--dry-run] | cancel <run> | audit [n]
  undo <phase|step> [--dry-run] [--confirm]   tear down what Cutover created there, newest first
  verify [database|storage|cdn|functional|performance|reliability|all]   compares, here, now
  digest    posts today's daily digest to its channel now (needs SLACK_BOT_TOKEN)
  rollback --confirm    the emergency way back, for when Slack is unreachable

For the night Slack is down, and for scripts. Exit status: 0 on success, 1 when the command
was refused or failed or the run it started failed, 2 when the command line or the set-up is wrong.
Environment: CUTOVER_CONFIG (default ./migration.yml), CUTOVER_DATA_DIR, DATABASE_URL;
SLACK_BOT_TOKEN and SLACK_API_URL for digest.`;

/**
 * The terminal front end: parses like `/migrate`, runs the same handlers as the local operator,
 * and for `run`/`undo`/`plan`/`verify` works the runs it queued in this process and follows them to the end.
 */
export async function cli(
  argv: string[],
  env: NodeJS.ProcessEnv,
  out: NodeJS.WritableStream,
): Promise<number> {
  const write = (s: string) => out.write(`${s}\n`);
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h") {
    write(USAGE);
    return 0;
  }
  const rollbackNow = argv[0] === "rollback";
  if (rollbackNow && !argv.includes("--confirm")) {
    write(
      "`npx cutover rollback` puts DNS and the front end back as they were before the cutover.\nAdd --confirm to do it now.",
    );
    return 2;
  }
  const cmd = rollbackNow
    ? parseMigrate("status")
    : parseMigrate(argv.map((a) => (/\s/.test(a) ? `"${a}"` : a)).join(" "));
  if (cmd.name === "help" || cmd.name === "unknown" || cmd.name === "invalid") {
    const reply =
      cmd.name === "help"
        ? helpView(cmd.topic)
        : cmd.name === "unknown"
          ? unknownCommandView(cmd.input, cmd.suggestion)
          : invalidUsageView(cmd.subcommand, cmd.message);
    write(cmd.name === "help" && !cmd.topic ? USAGE : renderBlocksAsText(reply.blocks, reply.text));
    return cmd.name === "help" ? 0 : 2;
  }

  let file: Awaited<ReturnType<typeof loadMigrationFile>>["file"];
  try {
    file = (
      await loadMigrationFile(env.CUTOVER_CONFIG ?? "./migration.yml", {
        env,
        knownStepTypes: KNOWN_STEP_TYPES,
        stepSections: STEP_SECTIONS,
      })
    ).file;
  } catch (err) {
    write(describeError(err));
    return 2;
  }
  const secrets = collectEnvRefs(file).flatMap((r) => (env[r.variable] ? [env[r.variable]!] : []));
  if (env.SLACK_BOT_TOKEN) secrets.push(env.SLACK_BOT_TOKEN);
  const log = createLogger({ secrets, level: env.LOG_LEVEL ?? "warn", destination: process.stderr });
  let deps: Awaited<ReturnType<typeof buildDeps>>;
  try {
    deps = await buildDeps({
      file,
      log,
      databaseUrl: env.DATABASE_URL,
      dataDir: path.resolve(env.CUTOVER_DATA_DIR ?? "./.cutover"),
      env,
    });
  } catch (err) {
    write(describeError(err));
    return 2;
  }
  try {
    const access = new AccessControl(file.access, async () => []);
    const commandDeps: CommandDeps = {
      db: deps.db,
      runner: deps.runner,
      file,
      registry: deps.registry,
      access,
      log,
      now: () => new Date(),
      cloudflare: deps.cloudflare,
      costExplorer: deps.costExplorer,
      live: deps.live,
    };
    // `digest` posts to Slack as the bot does, with the bot's token; the Slack client loads only for it
    const token = env.SLACK_BOT_TOKEN?.trim();
    if (cmd.name === "digest" && token) {
      const { webApi } = await import("@slack/bolt");
      commandDeps.digest = digestDeps({
        db: deps.db,
        file,
        log,
        client: new webApi.WebClient(token, env.SLACK_API_URL ? { slackApiUrl: env.SLACK_API_URL } : {}),
        sources: digestSources({ db: deps.db, file, costExplorer: deps.costExplorer, log, live: deps.live }),
      });
    }
    if (rollbackNow) {
      const started = performance.now();
      try {
        const { report, text } = await performRollback(commandDeps, file.access.localOperator, {
          viaSlack: false,
          reason: "from the terminal",
        });
        write(`${text}\nFrom confirmation to verified: ${Math.round(performance.now() - started)} ms.`);
        return report.complete ? 0 : 1;
      } catch (err) {
        write(describeError(err));
        return 1;
      }
    }
    const caller: Caller = {
      user: file.access.localOperator,
      via: "terminal",
      channel: null,
      idempotencyKey: null,
    };
    const reply = await dispatchMigrate(cmd, caller, commandDeps);
    write(renderBlocksAsText(reply.blocks, reply.text));
    if (reply.outcome !== "ok") return reply.outcome === "invalid" ? 2 : 1;
    const works = cmd.name === "run" || cmd.name === "undo" || cmd.name === "plan" || cmd.name === "verify";
    if (!works) return 0;
    // a run command that queued nothing (a confirmation asked instead) did not do what was asked
    if (!reply.runs?.length) return 1;
    return await followRuns(deps, reply.runs, file.access.localOperator, write);
  } finally {
    await deps.close();
  }
}

/**
 * Works the runs this command queued, here, one after the other, printing each change of a run's
 * progress and, at its end, every failed step's error in full. The process never starts the
 * queue's worker, so it never takes up a run someone else queued; on Ctrl-C its own runs are
 * cancelled, so none is left queued for another process to pick up by accident.
 */
async function followRuns(
  deps: Awaited<ReturnType<typeof buildDeps>>,
  ids: string[],
  operator: string,
  write: (s: string) => void,
): Promise<number> {
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    write("Interrupted: cancelling this command's runs…");
    for (const id of ids) deps.runner.cancel(id, operator).catch(() => undefined);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let code = 0;
  // Parts of a sharded step (a bucket sync's key ranges) are jobs any worker takes: this process
  // works them too, alongside any replica of the bot, so a terminal run finishes on its own.
  if (deps.file.engine.shardWorkers > 0) await deps.runner.workShards(deps.file.engine.shardWorkers);
  try {
    for (const id of ids) {
      // executes here; if a bot's worker already holds the run, this returns and the loop follows it
      const work = deps.runner.execute(id);
      let last = "";
      for (;;) {
        const run = await loadRun(deps.db, id);
        if (!run) return 1;
        const text = renderBlocksAsText(runMessageView(run, deps.clock.now(), { results: true }).blocks);
        if (text !== last) {
          write(text);
          last = text;
        }
        if (isFinished(run.status)) {
          for (const step of run.steps)
            if (step.status === "failed" && step.error) write(`\n${step.step} failed:\n${step.error}`);
          if (run.status !== "succeeded") code = 1;
          break;
        }
        await new Promise((r) => setTimeout(r, 300));
      }
      await work;
      if (interrupted) return 130;
    }
    return code;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const code = await cli(process.argv.slice(2), process.env, process.stdout);
  process.exit(code);
}
