import pg from "pg";
import { PgBoss } from "pg-boss";
import type { Logger } from "pino";
import { type Clock, systemClock } from "./clock.js";
import { type AwsClientOptions, awsOptionsFromEnv } from "./cloud/aws-access.js";
import { type CdnAdmin, createCdnAdmin } from "./cloud/cdn.js";
import { type CloudflareClients, createCloudflare } from "./cloud/cloudflare.js";
import { COST_EXPLORER_REGION, type CostExplorerApi, createCostExplorer } from "./cloud/cost-explorer.js";
import { createSecurityGroups, type SecurityGroupApi } from "./cloud/ec2.js";
import { createLightsail, type LightsailApi } from "./cloud/lightsail.js";
import { createObjectStore, type ObjectStore, type StoreSide } from "./cloud/object-store.js";
import { createRds, type RdsApi } from "./cloud/rds.js";
import { type BucketAdmin, createBucketAdmin } from "./cloud/s3-bucket.js";
import { createSecrets, type SecretsApi } from "./cloud/secrets.js";
import { type ConnectOptions, connectShell, publicKeyOf, type RemoteShell } from "./cloud/ssh.js";
import { type MigrationFile, requireSection } from "./config/schema.js";
import { CutoverError, ErrorCode } from "./errors.js";
import { createPrismaClient, type Db } from "./store/client.js";

/**
 * Every client Cutover talks to the outside world through, built here and nowhere else
 * (DESIGN.md: "the only place that constructs an SDK client"). A port is a lazily built,
 * memoised client: nothing is built, and no SDK package loads (src/cloud/lazy-sdk.ts), until a
 * step first asks for it, and then once per set of options. Steps, the KPI sampler and the
 * commands take ports; none reads credentials or endpoints from the environment itself.
 *
 * @example const ports = createPorts({ env: process.env }, file); await ports.lightsail().getStaticIp("app-ip");
 */
export interface Ports {
  /** Lightsail in `region` (default target.lightsail.region) */
  lightsail(region?: string): LightsailApi;
  /** RDS in `region` (default target.aws.region) */
  rds(region?: string): RdsApi;
  /** EC2 security groups in `region` (default target.aws.region) */
  securityGroups(region?: string): SecurityGroupApi;
  /** Secrets Manager in `region` (default target.aws.region): the passwords RDS manages */
  secrets(region?: string): SecretsApi;
  /** the target bucket's settings (target.s3) */
  bucketAdmin(): BucketAdmin;
  /** CloudFront (global, signed for us-east-1) */
  cdn(): CdnAdmin;
  /** Cost Explorer (us-east-1, or AWS_ENDPOINT_URL_COST_EXPLORER) */
  costExplorer(): CostExplorerApi;
  /**
   * The buckets' object APIs. Each call opens a store sized for its caller (sockets, checksums),
   * which the caller closes (`destroy()`); a missing source key is a SettingsMissing error then.
   */
  s3: {
    source(opts?: { maxSockets?: number }): ObjectStore;
    target(opts?: { maxSockets?: number; writeChecksums?: boolean }): ObjectStore;
  };
  /** SSH to the app host */
  ssh: SshConnector;
  /** DNS and Pages; undefined when the file has no `dns` section */
  cloudflare: CloudflareClients | undefined;
  /** the calendar (see src/clock.ts) */
  clock: Clock;
  /** the state database's one pool, with the Prisma client and the job queue over it; only where a state URL was given */
  state: StatePorts | undefined;
  /** destroys every client built so far (the state pool is ended by its owner, see {@link StatePorts}) */
  close(): void;
}

/** Opens host-key-checked SSH sessions, and reads public keys (ssh2 loads on first use). */
export interface SshConnector {
  connect(opts: ConnectOptions): Promise<RemoteShell>;
  /** the OpenSSH public key line of a private key ("ssh-rsa AAAA… cutover") */
  publicKeyOf(privateKey: string, label: string): Promise<string>;
}

/**
 * The state database: one pg pool that Prisma, the job queue and the runner's advisory locks all
 * draw from, so one number bounds the connections a replica holds.
 */
export interface StatePorts {
  pool: pg.Pool;
  db: Db;
  /**
   * The job queue on the same pool, not started: pg-boss runs its statements through `db` (it
   * needs no LISTEN connection, polling being its default) and leaves the pool open when it stops.
   */
  boss: PgBoss;
  /** disconnects Prisma and ends the pool; call after the queue has stopped */
  close(): Promise<void>;
}

export interface PortSettings {
  /** the environment endpoints and credentials are read from (AWS_*, CLOUDFLARE_*, the file's named variables) */
  env: NodeJS.ProcessEnv;
  /** default the machine's */
  clock?: Clock;
  /** the state database, when this process has one (the bot, the CLI) */
  state?: { url: string; log: Logger };
}

/**
 * The size of the state pool: what the runner's lock pool (6), pg-boss's (4) and Prisma's
 * default (10) held apart before they shared one. A run holds one connection for its advisory
 * lock the whole time it runs, so the pool stays well above the runs one process works at once.
 */
export const STATE_POOL_MAX = 20;

/** Builds the ports for `file`; nothing is connected or loaded until first used. */
export function createPorts(settings: PortSettings, file: MigrationFile): Ports {
  const { env } = settings;
  const built = new Map<string, { destroy?: () => void }>();
  /** one client per service and options; options are read from the environment at each ask */
  const memo = <T extends object>(service: string, opts: unknown, build: () => T): T => {
    const key = `${service}:${JSON.stringify(opts)}`;
    let client = built.get(key) as T | undefined;
    if (!client) {
      client = build();
      built.set(key, client as { destroy?: () => void });
    }
    return client;
  };
  const aws = (service: string, region: string): AwsClientOptions => awsOptionsFromEnv(env, service, region);
  const awsRegion = () => file.target?.aws.region ?? "us-east-1";

  const lightsail = (region?: string) => {
    const opts = aws("LIGHTSAIL", region ?? requireSection(file, "target.lightsail").region);
    return memo("lightsail", opts, () => createLightsail(opts));
  };
  const rds = (region?: string) => {
    const opts = aws("RDS", region ?? awsRegion());
    return memo("rds", opts, () => createRds(opts));
  };
  const securityGroups = (region?: string) => {
    const opts = aws("EC2", region ?? awsRegion());
    return memo("ec2", opts, () => createSecurityGroups(opts));
  };
  const secrets = (region?: string) => {
    const opts = aws("SECRETSMANAGER", region ?? awsRegion());
    return memo("secretsmanager", opts, () => createSecrets(opts));
  };
  const bucketAdmin = () => {
    const s3 = requireSection(file, "target.s3");
    const a = aws("S3", s3.region);
    const opts = {
      bucket: s3.bucket,
      region: s3.region,
      ...(a.endpoint ? { endpoint: a.endpoint } : {}),
      ...(a.credentials ? { credentials: a.credentials } : {}),
      ...(a.maxAttempts ? { maxAttempts: a.maxAttempts } : {}),
      credentialSource: targetCredentialSource(a),
    };
    return memo("s3-admin", opts, () => createBucketAdmin(opts));
  };
  const cdn = () => {
    const a = aws("CLOUDFRONT", "us-east-1");
    const opts = {
      ...(a.endpoint ? { endpoint: a.endpoint } : {}),
      ...(a.credentials ? { credentials: a.credentials } : {}),
      ...(a.maxAttempts ? { maxAttempts: a.maxAttempts } : {}),
    };
    return memo("cloudfront", opts, () => createCdnAdmin(opts));
  };
  const costExplorer = () => {
    const opts = aws("COST_EXPLORER", COST_EXPLORER_REGION);
    return memo("ce", opts, () => createCostExplorer(opts));
  };

  const state = settings.state ? createStatePorts(settings.state.url, settings.state.log) : undefined;
  let cloudflare: { clients: CloudflareClients | undefined } | undefined;
  return {
    lightsail,
    rds,
    securityGroups,
    secrets,
    bucketAdmin,
    cdn,
    costExplorer,
    s3: {
      source: (opts = {}) => openSourceStore(env, file, opts),
      target: (opts = {}) => openTargetStore(env, file, opts),
    },
    ssh: { connect: connectShell, publicKeyOf },
    // built at the first read, like the AWS ports: a process that never switches DNS never pays for it
    get cloudflare() {
      cloudflare ??= { clients: buildCloudflare(file, env) };
      return cloudflare.clients;
    },
    clock: settings.clock ?? systemClock,
    state,
    close() {
      for (const client of built.values()) client.destroy?.();
      built.clear();
    },
  };
}

/**
 * The ports `deps` carry, or, for a caller that has none (a one-off read of a recorded value in a
 * test), ports over its environment built for this call.
 */
export function portsOf(deps: {
  env: NodeJS.ProcessEnv;
  file: MigrationFile;
  ports?: Ports | undefined;
}): Ports {
  return deps.ports ?? createPorts({ env: deps.env }, deps.file);
}

/**
 * How often pg-boss looks for jobs whose worker stopped beating (and refreshes its queue counts):
 * the job queue's settings for that, in every process on the state database (a test's supervisor
 * too, test/jobs/shard-workers.ts, so it hands a dead worker's part over as the product does).
 */
export const JOB_QUEUE_SUPERVISION = {
  superviseIntervalSeconds: 10,
  monitorIntervalSeconds: 10,
} as const;

/** The state database's one pool, and Prisma and the job queue over it. */
function createStatePorts(url: string, log: Logger): StatePorts {
  const pool = new pg.Pool({ connectionString: url, max: STATE_POOL_MAX });
  pool.on("error", (err) => log.warn({ err: err.message }, "state database connection dropped"));
  const db = createPrismaClient(pool);
  const boss = new PgBoss({
    db: { executeSql: (text, values) => pool.query(text, values) },
    // A part whose worker died (its heartbeat 10 s old, src/jobs/shards.ts) is failed and retried
    // elsewhere at the next supervisor pass that claims its queue's monitor: at pg-boss's 60 s for
    // both, 10-70 s after the death (62 s measured), and a stall limit below that stopped the step.
    // At 10 s a dead worker's part is handed over about 10-25 s after it died (pg-boss allows >= 1).
    ...JOB_QUEUE_SUPERVISION,
  });
  boss.on("error", (err: Error) => log.warn({ err: err.message }, "job queue error"));
  return {
    pool,
    db,
    boss,
    async close() {
      await db.$disconnect().catch((err: Error) => log.warn({ err: err.message }, "error while closing"));
      if (!pool.ended) await pool.end();
    },
  };
}

/**
 * DNS and Pages over the official SDK, when the file switches DNS. Each uses the token of the
 * variable its own section names (`dns.apiTokenEnv`, `pages.apiTokenEnv`): one team keeps a
 * zone-scoped DNS token apart from the account's Pages token.
 */
export function buildCloudflare(file: MigrationFile, env: NodeJS.ProcessEnv): CloudflareClients | undefined {
  if (!file.dns) return undefined;
  const common = env.CLOUDFLARE_BASE_URL ? { baseURL: env.CLOUDFLARE_BASE_URL } : {};
  const dns = createCloudflare({ apiToken: env[file.dns.apiTokenEnv] ?? "", ...common }).dns;
  const pages = createCloudflare({
    apiToken: env[file.pages?.apiTokenEnv ?? file.dns.apiTokenEnv] ?? "",
    ...common,
    ...(file.pages ? { accountId: file.pages.accountId } : {}),
  }).pages;
  return { dns, pages };
}

const targetCredentialSource = (a: AwsClientOptions) =>
  a.credentials
    ? "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
    : "the AWS credentials Cutover runs with (profile, role or environment)";

/** The source bucket (R2), read-only use, with its keys from the variables the migration file names. */
function openSourceStore(
  env: NodeJS.ProcessEnv,
  file: MigrationFile,
  opts: { maxSockets?: number },
): ObjectStore {
  const src = requireSection(file, "source.storage");
  const missing = [src.accessKeyIdEnv, src.secretAccessKeyEnv].filter((name) => !env[name]);
  if (missing.length > 0) {
    throw new CutoverError(
      ErrorCode.SettingsMissing,
      `${missing.join(" and ")} ${missing.length > 1 ? "are" : "is"} not set: the source bucket's keys are read from ${src.accessKeyIdEnv} and ${src.secretAccessKeyEnv}.`,
      {
        hint: `Set ${missing.join(" and ")} in Cutover's environment (an R2 API token with Object Read), then run the step again.`,
      },
    );
  }
  return createObjectStore({
    side: "source" satisfies StoreSide,
    provider:
      src.provider?.includes("R2") || /r2\.cloudflarestorage\.com/.test(src.endpoint)
        ? "R2"
        : "S3-compatible",
    bucket: src.bucket,
    region: src.region,
    endpoint: src.endpoint,
    credentials: {
      accessKeyId: env[src.accessKeyIdEnv]!,
      secretAccessKey: env[src.secretAccessKeyEnv]!,
    },
    credentialSource: `${src.accessKeyIdEnv} / ${src.secretAccessKeyEnv}`,
    forcePathStyle: src.forcePathStyle,
    writeChecksums: false,
    ...(opts.maxSockets ? { maxSockets: opts.maxSockets } : {}),
  });
}

/**
 * The target bucket (S3): the SDK's standard chain and endpoint variables, read from the given
 * environment (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL point it at moto in tests).
 */
function openTargetStore(
  env: NodeJS.ProcessEnv,
  file: MigrationFile,
  opts: { maxSockets?: number; writeChecksums?: boolean },
): ObjectStore {
  const s3 = requireSection(file, "target.s3");
  const aws = awsOptionsFromEnv(env, "S3", s3.region);
  return createObjectStore({
    side: "target",
    provider: "S3",
    bucket: s3.bucket,
    region: s3.region,
    ...(aws.endpoint ? { endpoint: aws.endpoint } : {}),
    ...(aws.credentials ? { credentials: aws.credentials } : {}),
    credentialSource: targetCredentialSource(aws),
    ...(aws.maxAttempts ? { maxAttempts: aws.maxAttempts } : {}),
    ...(opts.maxSockets ? { maxSockets: opts.maxSockets } : {}),
    ...(opts.writeChecksums !== undefined ? { writeChecksums: opts.writeChecksums } : {}),
  });
}
