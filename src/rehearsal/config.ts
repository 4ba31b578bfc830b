import { readFile } from "node:fs/promises";
import path from "node:path";
import pino from "pino";
import { isMap, isSeq, parseDocument, type YAMLMap } from "yaml";
import { parseMigrationFile } from "../config/load.js";
import type { MigrationFile } from "../config/schema.js";
import { createStepRegistry } from "../jobs/catalogue.js";
import { createPorts } from "../ports.js";
import { SHOP_APP_ROLE } from "../sandbox/live-shop.js";
import type { Db } from "../store/client.js";
import type { World } from "./world.js";

/** Where the plan's example lives, relative to this file. */
export const EXAMPLE_FILE = path.join(import.meta.dirname, "../../migration.example.yml");

/** The simulated team: one operator, one approver (never the same person), one channel. */
export const PEOPLE = {
  operator: { id: "U0OPERATOR", name: "Mance (operator)" },
  approver: { id: "U0APPROVER", name: "Kiki (approver)" },
} as const;
export const CHANNEL = "C0REHEARSAL";

/** The old values the example file names (what the switch moves away from, and a rollback restores). */
export const OLD = {
  ip: "203.0.113.10",
  apiUrl: "https://gogojap.zeabur.app",
  cdnUrl: "https://pub-0123456789abcdef0123456789abcdef.r2.dev",
} as const;

/** A step of the example runbook this build cannot run: listed in the report, left out of the rehearsal. */
export interface MissingStep {
  phase: string;
  id: string;
  uses: string;
  title: string;
}

export interface RehearsalConfig {
  yaml: string;
  file: MigrationFile;
  /** runbook steps whose type this build does not have */
  missing: MissingStep[];
  /** phases left with no step at all */
  emptyPhases: string[];
}

/**
 * The step types this build's registry holds. Built the way the bot builds it; step factories
 * only keep their dependencies, so a stand-in for the state store is enough to list them.
 */
export function availableStepTypes(file: MigrationFile): Set<string> {
  const registry = createStepRegistry({
    env: {},
    ports: createPorts({ env: {} }, file),
    file,
    dataDir: "/nonexistent",
    log: pino({ level: "silent" }),
    db: {} as Db,
    cloudflare: undefined,
  });
  return new Set(registry.keys());
}

/** Extra `with:` options per step type: local addresses and short polls. Nothing else differs. */
function localWith(uses: string, world: World): Record<string, unknown> {
  switch (uses) {
    case "lightsail.instance":
    case "rds.instance":
      return { pollMs: 100 };
    case "host.setup":
      return { address: "127.0.0.1" };
    case "app.deploy":
      return { address: "127.0.0.1", healthIntervalMs: 200, healthTimeoutSeconds: 5 };
    case "cdn.check":
      return { baseUrl: world.cdn.url };
    case "verify.functional":
    case "verify.performance":
    case "verify.reliability":
      return { address: "127.0.0.1", cdnBaseUrl: world.cdn.url };
    default:
      return {};
  }
}

/**
 * The rehearsal's migration file: migration.example.yml (comments kept) with every endpoint
 * pointing at the local world, a short watch window after the switch, and the steps this build
 * cannot run left out (they are listed in the report as "not in this build").
 */
export async function rehearsalConfig(world: World): Promise<RehearsalConfig> {
  const text = await readFile(EXAMPLE_FILE, "utf8");
  const doc = parseDocument(text);
  const set = (p: (string | number)[], v: unknown) => doc.setIn(p, doc.createNode(v));
  const shared = !world.aws.own;

  doc.commentBefore = ` REHEARSAL COPY, written by \`npm run rehearse\`: migration.example.yml with every
 endpoint on this machine (generated ${new Date().toISOString()}). Only endpoints and timings differ.
${doc.commentBefore ?? ""}`;
  set(["slack", "channel"], CHANNEL);
  set(["access", "operators"], [PEOPLE.operator.id]);
  set(["access", "approvers"], [PEOPLE.approver.id]);
  set(["access", "channels"], [CHANNEL]);
  set(["access", "localOperator"], "rehearsal-terminal");
  set(["engine"], { attempts: 3, backoffMs: 500, progressEditsPerSecond: 2 });
  set(["source", "app", "url"], world.oldApp.url);
  set(["source", "storage", "endpoint"], world.r2.endpoint);
  set(["source", "storage", "bucket"], world.sourceBucket);
  set(["target", "s3", "bucket"], world.targetBucket);
  if (shared) set(["target", "rds", "identifier"], `gogojap-db-${world.token}`);
  // moto's RDS endpoint is a name, not a server: the copy goes to a local database instead
  set(["target", "rds", "urlEnv"], "RDS_DATABASE_URL");
  set(["target", "host", "sshPort"], world.host.port);
  // the instance's firewall opens the SSH port the host listens on (22 on a real instance)
  set(["target", "lightsail", "firewall", 0, "port"], world.host.port);
  set(["target", "host", "hostKeyFingerprint"], world.host.fingerprint);
  set(["verification", "baseUrl"], world.newApp.url);
  set(["verification", "functional", 2, "query"], "SELECT id FROM shop.users LIMIT 1");
  set(["kpis", "probes", "endpoints", 0, "url"], world.newApp.healthUrl);
  // the daily digest at the file's own time, in the rehearsal's channel (the rehearsal moves its clock)
  set(["digest", "enabled"], true);
  set(["digest", "channel"], CHANNEL);
  // the live shop's apps connect as shop_app on both sides: the freeze takes its write privileges
  set(["replication", "appRoles"], { source: SHOP_APP_ROLE, target: SHOP_APP_ROLE });
  set(["cutover", "watchWindowSeconds"], 5);
  set(["cutover", "probeIntervalSeconds"], 1);

  // Parse once to learn the step types, then leave out what this build cannot run.
  const first = parseMigrationFile(String(doc), { checkEnv: false });
  const available = availableStepTypes(first);
  const missing: MissingStep[] = [];
  const emptyPhases: string[] = [];
  const phases = doc.getIn(["runbook", "phases"]);
  if (!isSeq(phases)) throw new Error("migration.example.yml has no runbook.phases list");
  for (let p = phases.items.length - 1; p >= 0; p--) {
    const phase = phases.items[p] as YAMLMap;
    const phaseId = String(phase.get("id"));
    const steps = phase.get("steps");
    if (!isSeq(steps)) continue;
    for (let s = steps.items.length - 1; s >= 0; s--) {
      const step = steps.items[s];
      if (!isMap(step)) continue;
      const uses = String(step.get("uses"));
      const id = String(step.get("id"));
      if (!available.has(uses)) {
        missing.unshift({ phase: phaseId, id, uses, title: String(step.get("title") ?? id) });
        steps.items.splice(s, 1);
        continue;
      }
      const extra = localWith(uses, world);
      if (Object.keys(extra).length) {
        const current = (step.get("with") as YAMLMap | undefined)?.toJSON?.() ?? {};
        step.set("with", doc.createNode({ ...current, ...extra }, { flow: true }));
      }
    }
    if (steps.items.length === 0) {
      emptyPhases.unshift(phaseId);
      phases.items.splice(p, 1);
    }
  }
  const yaml = String(doc);
  return { yaml, file: parseMigrationFile(yaml, { checkEnv: false }), missing, emptyPhases };
}

/** The environment the bot runs with: Slack, state, AWS and Cloudflare endpoints, and every secret the file names. */
export function botEnv(
  world: World,
  opts: { configPath: string; dataDir: string; botToken: string; signingSecret: string },
): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    SLACK_BOT_TOKEN: opts.botToken,
    SLACK_SIGNING_SECRET: opts.signingSecret,
    SLACK_API_URL: world.slack.apiUrl,
    PORT: "0",
    DATABASE_URL: world.db.state,
    CUTOVER_CONFIG: opts.configPath,
    CUTOVER_DATA_DIR: opts.dataDir,
    LOG_LEVEL: "info",
    // AWS: moto for S3, RDS, EC2, CloudFront and ACM; the fake for Lightsail; for Cost Explorer,
    // moto seeded with the plan's bill behind the proxy that answers forecasts and reservations
    AWS_ENDPOINT_URL: world.aws.endpoint,
    AWS_ENDPOINT_URL_LIGHTSAIL: world.lightsail.url,
    AWS_ENDPOINT_URL_COST_EXPLORER: world.costExplorer.url,
    AWS_ACCESS_KEY_ID: "testing",
    AWS_SECRET_ACCESS_KEY: "testing",
    AWS_REGION: "ap-southeast-1",
    AWS_MAX_ATTEMPTS: "2",
    AWS_CONFIG_FILE: "/dev/null",
    AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
    CLOUDFLARE_BASE_URL: world.cloudflare.baseUrl,
    // the variables migration.example.yml names
    NEON_DATABASE_URL: world.db.source,
    RDS_DATABASE_URL: world.db.target,
    R2_ACCESS_KEY_ID: "S3RVER",
    R2_SECRET_ACCESS_KEY: "S3RVER",
    RDS_MASTER_PASSWORD: "Rehearsal-Passw0rd-not-real",
    LIGHTSAIL_SSH_KEY_PATH: world.sshKeyPath,
    CERTBOT_CLOUDFLARE_TOKEN: "cf-certbot-rehearsal-token",
    APP_SECRET_KEY: "rehearsal-app-secret",
    ANTHROPIC_API_KEY: "sk-ant-rehearsal-not-real",
    APP_AWS_ACCESS_KEY_ID: "AKIAREHEARSALNOTREAL",
    APP_AWS_SECRET_ACCESS_KEY: "rehearsal/not+real",
    CLOUDFLARE_API_TOKEN: world.cloudflareToken,
    VERIFY_API_TOKEN: "rehearsal-verify-token",
  };
}
