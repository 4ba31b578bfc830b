// first: V8 settings that must hold before anything else loads
import "./runtime.js";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { App, HTTPReceiver, LogLevel, webApi } from "@slack/bolt";
import type { Logger } from "pino";
import type { Clock } from "./clock.js";
import { SlackProgress } from "./cloud/slack-progress.js";
import { AccessControl } from "./commands/access.js";
import type { CommandDeps } from "./commands/context.js";
import { announceInterruptedRollback } from "./commands/handlers/rollback.js";
import { refuseFutureRequests } from "./commands/inbound.js";
import { register } from "./commands/index.js";
import { collectEnvRefs, loadMigrationFile } from "./config/load.js";
import type { MigrationFile } from "./config/schema.js";
import { loadSettings, type Settings } from "./config/settings.js";
import { buildDeps, type Deps } from "./deps.js";
import { type DigestScheduler, startDailyDigest } from "./digest/index.js";
import { digestSources, kpiWindowGreen } from "./digest/sources.js";
import { CutoverError, describeError, ErrorCode } from "./errors.js";
import { KNOWN_STEP_TYPES, STEP_SECTIONS } from "./jobs/catalogue.js";
import { requestDecommissionApproval } from "./jobs/steps/ops/decommission.js";
import { createKpiMonitor, hasProbes, type KpiMonitor } from "./kpi/KpiMonitor.js";
import { startReplicationWatch } from "./kpi/replication-watch.js";
import { boltLogger, createLogger } from "./log.js";
import { httpRoutes, serveRoutes } from "./routes.js";
import { releaseStartupMemory } from "./runtime.js";
import { noticeView } from "./views/help.js";

export interface RunningCutover {
  /** the HTTP port (/slack/events in HTTP mode, /healthz and /metrics in both modes) */
  port: number;
  deps: Deps;
  app: App;
  /** the daily digest's schedule (undefined when digest.enabled is false) */
  digest?: DigestScheduler | undefined;
  stop(): Promise<void>;
}

/**
 * Loads the settings and the migration file together, so one message names everything that
 * is wrong with either before anything starts.
 */
export async function loadEverything(
  env: NodeJS.ProcessEnv,
): Promise<{ settings: Settings; file: MigrationFile }> {
  const problems: string[] = [];
  let settings: Settings | undefined;
  let file: MigrationFile | undefined;
  try {
    settings = loadSettings(env);
  } catch (err) {
    problems.push(describeError(err));
  }
  try {
    const configPath = settings?.configPath ?? env.CUTOVER_CONFIG ?? "./migration.yml";
    file = (
      await loadMigrationFile(configPath, {
        env,
        knownStepTypes: KNOWN_STEP_TYPES,
        stepSections: STEP_SECTIONS,
      })
    ).file;
  } catch (err) {
    problems.push(describeError(err));
  }
  if (!settings || !file) {
    throw new CutoverError(ErrorCode.ConfigInvalid, problems.join("\n\n"));
  }
  return { settings, file };
}

/** Every secret value the process holds, so the logger can blank them out. */
function secretValues(settings: Settings, file: MigrationFile, env: NodeJS.ProcessEnv): string[] {
  const values = [settings.slack.botToken];
  if (settings.slack.mode === "http") values.push(settings.slack.signingSecret);
  else values.push(settings.slack.appToken);
  for (const ref of collectEnvRefs(file)) {
    const v = env[ref.variable];
    if (v) values.push(v);
  }
  for (const name of ["DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "CLOUDFLARE_API_TOKEN"]) {
    if (env[name]) values.push(env[name]);
  }
  return values;
}

/** Starts the bot: state, queue and worker, the Bolt app over HTTP or Socket Mode. */
export async function startCutover(
  opts: {
    env?: NodeJS.ProcessEnv;
    logger?: Logger;
    /** the bot's calendar: cost and KPI windows, approval expiry, the TTL wait; default the machine's */
    clock?: Clock;
    /** the daily digest's time; default `clock` (a rehearsal moves it to the next morning) */
    digestClock?: Clock;
  } = {},
): Promise<RunningCutover> {
  const env = opts.env ?? process.env;

  // 1. Settings and the migration file, checked together before anything starts.
  const { settings, file } = await loadEverything(env);
  const log = opts.logger ?? createLogger({ secrets: secretValues(settings, file, env) });
  const deps = await buildDeps({
    file,
    log,
    databaseUrl: settings.databaseUrl,
    dataDir: settings.dataDir,
    env,
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  const now = () => deps.clock.now();

  // 2. The Bolt app, its listeners, and the run progress publisher.
  const slack = settings.slack;
  const clientOptions = settings.slackApiUrl ? { slackApiUrl: settings.slackApiUrl } : {};
  // Over HTTP, Bolt's receiver refuses a timestamp more than 5 minutes old; ours also one more
  // than 5 minutes ahead (src/commands/inbound.ts).
  const receiver =
    slack.mode === "http"
      ? new HTTPReceiver({
          signingSecret: slack.signingSecret,
          customRoutes: httpRoutes(deps),
          logger: boltLogger(log),
          logLevel: LogLevel.WARN,
          processBeforeResponse: false,
        })
      : undefined;
  if (receiver)
    receiver.requestListener = refuseFutureRequests(
      receiver.requestListener,
      () => new Date(),
      (ts) => log.warn({ ts }, "refused a Slack request timestamped in the future"),
    );
  const app = new App({
    token: slack.botToken,
    ...(slack.mode === "http"
      ? { receiver: receiver as HTTPReceiver }
      : // the Socket Mode client gets its own options object: it raises the retries on the one it is given
        {
          appToken: slack.appToken,
          socketMode: true,
          installerOptions: { clientOptions: { ...clientOptions } },
        }),
    clientOptions,
    logger: boltLogger(log),
    logLevel: LogLevel.WARN,
    processBeforeResponse: false,
  });
  const access = new AccessControl(file.access, async (usergroup) => {
    const res = await app.client.usergroups.users.list({ usergroup });
    return (res.users as string[] | undefined) ?? [];
  });
  const commandDeps: CommandDeps = {
    db: deps.db,
    runner: deps.runner,
    file,
    registry: deps.registry,
    access,
    log,
    now,
    cloudflare: deps.cloudflare,
    costExplorer: deps.costExplorer,
    live: deps.live,
    requestDecommission: (stepWith, by, channel) =>
      requestDecommissionApproval(
        {
          env,
          ports: deps.ports,
          file,
          dataDir: settings.dataDir,
          log,
          db: deps.db,
          now,
          kpiGreen: ({ since, until }) => kpiWindowGreen(deps.db, file, { since, until }),
        },
        stepWith,
        by,
        channel,
      ),
    slack: {
      async post(channel, reply) {
        const res = await app.client.chat.postMessage({ channel, text: reply.text, blocks: reply.blocks });
        return res.ts as string;
      },
      async update(channel, ts, reply) {
        await app.client.chat.update({ channel, ts, text: reply.text, blocks: reply.blocks });
      },
      async openView(triggerId, view) {
        const res = await app.client.views.open({ trigger_id: triggerId, view });
        return res.view?.id && res.view.hash ? { id: res.view.id, hash: res.view.hash } : undefined;
      },
    },
  };
  register(app, commandDeps, deps.metrics);
  app.error(async (err) => {
    log.error({ err: { message: err.message, code: err.code } }, "unhandled error in a Slack listener");
  });
  const progress = new SlackProgress(
    app.client,
    deps.db,
    log,
    file.slack.channel,
    file.engine.progressEditsPerSecond,
    // each run's first post is never retried blindly: a lost answer is looked up, not re-sent
    new webApi.WebClient(slack.botToken, {
      ...clientOptions,
      retryConfig: { retries: 0 },
      logger: boltLogger(log),
    }),
  );
  deps.events.add(progress);

  // 3. Start listening and working; stop cleanly.
  // The KPI probe job, when the file has something to probe: every replica ticks, pg-boss runs
  // each time slot once, and rounds begin once the kpi.monitor step has run (src/kpi/KpiMonitor.ts).
  const kpi: KpiMonitor | undefined = hasProbes(file)
    ? createKpiMonitor({
        ...deps,
        env,
        dataDir: settings.dataDir,
        now: () => now().getTime(),
        notify: async (reply) => {
          await commandDeps.slack?.post(file.slack.channel, reply);
        },
      })
    : undefined;

  let port = settings.port;
  let routesServer: Server | undefined;
  const closeRoutes = async () => {
    if (!routesServer) return;
    routesServer.closeAllConnections();
    await new Promise((r) => routesServer?.close(r));
  };
  try {
    if (slack.mode === "socket") {
      routesServer = await serveRoutes(httpRoutes(deps), settings.port);
      await app.start();
      port = (routesServer.address() as AddressInfo).port;
    } else {
      const server = (await app.start(settings.port)) as unknown as Server;
      port = (server.address() as AddressInfo).port;
    }
    await deps.runner.start();
    await kpi?.start();
  } catch (err) {
    await kpi?.stop().catch(() => undefined);
    await app.stop().catch(() => undefined);
    await closeRoutes();
    await deps.close();
    throw err;
  }
  log.info(
    { port, mode: slack.mode, env: file.environment, embeddedDb: deps.state.embedded },
    "Cutover is up",
  );
  // A live migration's replication is watched from the start: lag, a stopped subscriber, a lost slot.
  const stopReplicationWatch = deps.live
    ? startReplicationWatch({
        live: deps.live,
        db: deps.db,
        log,
        now,
        notify: async (reply) => {
          await commandDeps.slack?.post(file.slack.channel, reply);
        },
      })
    : undefined;
  // A rollback cut off by the stop before this start is said in the channel, once.
  void announceInterruptedRollback(commandDeps, async (text) => {
    await commandDeps.slack?.post(file.slack.channel, noticeView(text));
  }).catch((err) => log.warn({ err }, "could not check for an interrupted rollback"));

  // The daily digest: one message a day (one per day across replicas: the day is claimed in the
  // state database), progress, yesterday's KPIs and cost with two charts.
  const digest = startDailyDigest({
    db: deps.db,
    file,
    log,
    client: app.client,
    sources: digestSources({ db: deps.db, file, costExplorer: deps.costExplorer, log, live: deps.live }),
    clock: opts.digestClock ?? deps.clock,
  });

  let stopped = false;
  return {
    port,
    deps,
    app,
    digest,
    async stop() {
      if (stopped) return;
      stopped = true;
      stopReplicationWatch?.();
      await digest?.stop();
      await kpi?.stop();
      await deps.runner.stop();
      await progress.flush();
      await app.stop().catch((err) => log.warn({ err }, "error while stopping the Slack app"));
      await closeRoutes();
      await deps.close();
    },
  };
}

async function main(): Promise<void> {
  let running: RunningCutover;
  try {
    running = await startCutover();
  } catch (err) {
    process.stderr.write(`${describeError(err)}\n`);
    process.exit(1);
  }
  // once the tasks begun at start (the rollback notice, the digest's first look) have settled
  setTimeout(releaseStartupMemory, 2_000).unref();
  // One stop at a time: a second SIGTERM (a process manager that signals the whole group, a
  // wrapper passing the signal on, an impatient `kill`) must not cut the graceful stop short. A
  // second Ctrl-C in a terminal does leave at once.
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      if (signal === "SIGINT") process.exit(130);
      running.deps.log.info({ signal }, "already stopping");
      return;
    }
    stopping = true;
    running.deps.log.info({ signal }, "stopping");
    running.stop().then(
      () => process.exit(0),
      (err) => {
        running.deps.log.error({ err }, "error while stopping");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
