import { isIP } from "node:net";
import { z } from "zod";
import { CutoverError, ErrorCode } from "../errors.js";
import { editDistance } from "../text/suggest.js";

/**
 * The migration file's schema. The loader (./load.ts) validates a YAML file against it and
 * reports every problem at once. Secrets never appear here: a setting that needs one names
 * the environment variable that holds it (fields ending in `Env`, or `{ env: NAME }` values).
 *
 * Conventions the loader relies on:
 * - every object is strict, so a misspelled key is an error (with a "did you mean");
 * - a hand-written message reads "what is wrong — how to fix" (it contains " — "); the loader
 *   prints such messages verbatim after the field's path and words the other issues itself;
 * - a message never quotes a value that could be a secret (see {@link show}).
 *
 * Sections a migration may not need (`source.*`, `target.*`, `dns`, `pages`, `cost`) are
 * optional; a step whose type needs one ({@link missingStepSections}) makes it required. Use
 * {@link requireSection} to read one with a useful error when it is absent.
 */

// ───────────────────────────── helpers shared with the loader ─────────────────────────────

const SECRET_VALUE_PATTERNS: ReadonlyArray<readonly [RegExp, string]> = [
  [/^[a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:[^/\s@]+@/i, "a URL with a password in it"],
  [/^xox[abposre]-/, "a Slack token"],
  [/^xapp-/, "a Slack app-level token"],
  [/^sk-ant-/, "an Anthropic API key"],
  [/^sk-[A-Za-z0-9_-]{20,}$/, "an API key"],
  [/^(AKIA|ASIA)[A-Z0-9]{16}$/, "an AWS access key id"],
  [/^(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_)/, "a GitHub token"],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "a private key"],
  [/^eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*$/, "a JSON Web Token"],
];

/** What kind of secret a literal value looks like ("a Slack token"), or undefined. */
export function secretValueKind(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  for (const [re, kind] of SECRET_VALUE_PATTERNS) if (re.test(value.trim())) return kind;
  return undefined;
}

const SECRET_KEY_RE =
  /(password|passwd|passphrase|pwd|secret|secretkey|secretaccesskey|token|apikey|accesskey|accesskeyid|privatekey|clientsecret|credential|credentials|authorization|cookie|connectionstring|dsn)$/;

/**
 * Whether a key names a secret that must not be written into the file (`password`,
 * `secretAccessKey`, `apiToken`, `ANTHROPIC_API_KEY`, …). Keys ending in `Env` name a variable
 * instead, so they are fine.
 */
export function isSecretKeyName(key: string): boolean {
  const k = key.toLowerCase().replace(/[^a-z0-9]/g, "");
  if (k.endsWith("env")) return false;
  return SECRET_KEY_RE.test(k);
}

/** A short, safe rendering of a value for a message: `value` or "this value" when it may be secret or long. */
export function show(value: unknown): string {
  if (typeof value === "number" || typeof value === "boolean") return `\`${String(value)}\``;
  if (typeof value === "string") {
    if (value.length === 0) return "an empty value";
    if (value.length > 60 || secretValueKind(value) || /[\n\r]/.test(value)) return "this value";
    return `\`${value}\``;
  }
  if (value === null) return "an empty value (null)";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return "this value";
}

/**
 * Edit distance (optimal string alignment: insertions, deletions, substitutions and
 * transpositions of neighbours).
 */
export { editDistance };

/**
 * The candidates closest to `word` (ignoring case, `_` and `-`), best first, or [] when none
 * is close enough to be a plausible misspelling.
 */
export function closest(word: string, candidates: Iterable<string>, max = 3): string[] {
  return closestScored(word, candidates, max).map(([c]) => c);
}

function closestScored(word: string, candidates: Iterable<string>, max: number): Array<[string, number]> {
  const norm = (s: string) => s.toLowerCase().replace(/[_\-\s]/g, "");
  const w = norm(word);
  const scored: Array<[string, number]> = [];
  for (const c of new Set(candidates)) {
    if (c === word) continue;
    const n = norm(c);
    let score = editDistance(w, n);
    // "bucketName" for "bucket", "region" for "awsRegion": a containment is a near miss.
    if (score > 0 && w.length >= 4 && n.length >= 4 && (n.includes(w) || w.includes(n)))
      score = Math.min(score, 2);
    const limit = Math.max(1, Math.min(3, Math.floor(Math.max(w.length, n.length) / 3)));
    if (score <= limit) scored.push([c, score]);
  }
  scored.sort((x, y) => x[1] - y[1] || x[0].localeCompare(y[0]));
  return scored.slice(0, max);
}

/** " (did you mean `x`?)" or "" when nothing is close. */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const scored = closestScored(word, candidates, 3);
  if (scored.length === 0) return "";
  // Equally close candidates are all offered: "gp4" could be gp2 or gp3.
  const best = scored.filter(([, d]) => d === scored[0]![1]).map(([c]) => `\`${c}\``);
  return ` (did you mean ${best.join(" or ")}?)`;
}

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function timeZoneNames(): string[] {
  try {
    return [...Intl.supportedValuesOf("timeZone"), "UTC"];
  } catch {
    return ["UTC"];
  }
}

function isCidr(value: string): boolean {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(value);
  if (!m) return false;
  const version = isIP(m[1]!);
  const bits = Number(m[2]);
  return (version === 4 && bits <= 32) || (version === 6 && bits <= 128);
}

const HOSTNAME_RE = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/;

function isHostname(value: string): boolean {
  return HOSTNAME_RE.test(value);
}

/** A check message built from what is wrong (given the value) and how to fix it. */
const msg = (what: (shown: string) => string, fix: string) => ({
  error: (iss: { input?: unknown }) => `${what(show(iss.input))} — ${fix}`,
});

// ───────────────────────────── scalar types ─────────────────────────────

const ENV_NAME_RE = /^[A-Z_][A-Z0-9_]*$/;

/** The NAME of an environment variable (never its value), e.g. `NEON_DATABASE_URL`. */
export const envVarName = z
  .string()
  .regex(
    ENV_NAME_RE,
    "is not an environment variable name — write the NAME of the variable that holds the value " +
      "(capital letters, digits and _, e.g. NEON_DATABASE_URL) and put the value itself in Cutover's environment",
  );

const awsRegion = z.string().regex(
  /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/,
  msg((v) => `${v} is not an AWS region`, "write the region code, e.g. ap-southeast-1 (Singapore)"),
);

// Any host, an IP address or localhost included: rehearsals and tests point at local stand-ins.
const httpUrl = z.url({
  protocol: /^https?$/,
  ...msg((v) => `${v} is not an http(s) URL`, "write a full URL, e.g. https://api.example.com"),
});

/** An http(s) URL whose host may also be an IP address or localhost (an S3 API endpoint, a stand-in's). */
const endpointUrl = z.url({
  protocol: /^https?$/,
  ...msg(
    (v) => `${v} is not an http(s) URL`,
    "write a full URL, e.g. https://<account>.r2.cloudflarestorage.com",
  ),
});

const urlPath = z.string().regex(
  /^\/\S*$/,
  msg((v) => `${v} is not a URL path`, "start it with /, e.g. /health"),
);

const hostname = z.string().refine(
  isHostname,
  msg((v) => `${v} is not a host name`, "write a lower-case DNS name, e.g. api.example.com"),
);

const cidr = z.string().refine(
  isCidr,
  msg(
    (v) => `${v} is not a CIDR block`,
    "write an address and prefix length, e.g. 203.0.113.7/32 (one address)",
  ),
);

const hhmm = z.string().regex(
  /^([01]\d|2[0-3]):[0-5]\d$/,
  msg((v) => `${v} is not a time of day`, 'write it as HH:MM on the 24-hour clock, in quotes, e.g. "02:00"'),
);

/** An IANA time zone such as `Asia/Singapore`, checked against the runtime's Intl data. */
export const timeZone = z.string().refine(isTimeZone, {
  error: (iss) => {
    const input = typeof iss.input === "string" ? iss.input : "";
    return `${show(iss.input)} is not an IANA time zone — write it like Asia/Singapore or UTC${didYouMean(input, timeZoneNames())}`;
  },
});

const port = z
  .number()
  .int("is not a whole number — a port is a whole number between 1 and 65535")
  .min(1, "is not a port — use a number between 1 and 65535")
  .max(65535, "is not a port — use a number between 1 and 65535");

const percent = z
  .number()
  .min(0, "is below 0 — a percentage is between 0 and 100")
  .max(100, "is above 100 — a percentage is between 0 and 100");

const seconds = (min: number, max: number) =>
  z
    .number()
    .int("is not a whole number of seconds — drop the fraction")
    .min(min, `is too short — use at least ${min} seconds`)
    .max(max, `is too long — use at most ${max} seconds`);

/**
 * A Lightsail resource name. The API's pattern is `\w[\w\-]*\w` (ResourceName in the
 * Lightsail API reference, e.g. API_SetupHistoryResource): letters, digits, '_' and '-', at
 * least two characters, no '-' at either end, no dots.
 */
const lightsailName = (what: string, example: string) =>
  z.string().regex(
    /^[A-Za-z0-9_][A-Za-z0-9_-]{0,253}[A-Za-z0-9_]$/,
    msg(
      (v) => `${v} is not a valid ${what}`,
      `Lightsail names take letters, digits, '_' and '-' (no dots), at least two characters, starting and ending with a letter, digit or '_', e.g. ${example}`,
    ),
  );

const tags = z.record(
  z
    .string()
    .min(1, "is an empty tag key — give each tag a name")
    .max(128, "is longer than 128 characters — shorten the tag key"),
  z.string().max(256, "is longer than 256 characters — shorten the tag value"),
);

const slackPersonOrGroup = z.string().regex(
  /^[UWS][A-Z0-9]{2,}$/,
  msg(
    (v) => `${v} is not a Slack user or user-group id`,
    "use a member id (U… or W…: profile → ⋮ → Copy member ID) or a user-group id (S…)",
  ),
);

const slackChannel = z.string().regex(
  /^[CG][A-Z0-9]{2,}$/,
  msg(
    (v) => `${v} is not a Slack channel id`,
    "open the channel, click its name and copy the Channel ID shown at the bottom (C…)",
  ),
);

const stepId = z.string().regex(
  /^[a-z][a-z0-9-]{0,62}$/,
  msg(
    (v) => `${v} is not a valid id`,
    "use lower-case letters, digits and dashes, starting with a letter, e.g. db-dump",
  ),
);

const stepType = z.string().regex(
  /^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$/,
  msg((v) => `${v} is not a step type name`, "use a name from the step catalogue, e.g. db.dump"),
);

const cloudflareId = (what: string) =>
  z.string().regex(
    /^[0-9a-f]{32}$/,
    msg(
      (v) => `${v} is not a Cloudflare ${what}`,
      `copy the 32-character ${what} from the Cloudflare dashboard (Overview page, right column)`,
    ),
  );

/** Literal value or a reference: `{ env: NAME }` takes it from Cutover's environment, `{ ref: … }` from what Cutover provisioned. */
const EnvRefSchema = z.strictObject({
  /** the environment variable (in Cutover's environment) holding the value */
  env: envVarName,
});

/** Values Cutover knows once it has provisioned or read something, usable as `{ ref: … }`. */
export const VALUE_REFS = {
  "target.lightsail.staticIp": "the Lightsail static IP address",
  "target.rds.endpoint": "the RDS instance's host name",
  "target.rds.url": "the RDS connection URL, with the master password (host environment only)",
  "target.s3.bucket": "the S3 bucket name",
  "target.cloudfront.domain": "the CloudFront distribution's domain (d….cloudfront.net)",
  "target.cloudfront.url": "https:// plus the CloudFront domain (or its first alias)",
  "source.app.url": "the old app's URL",
} as const;
export type ValueRefName = keyof typeof VALUE_REFS;

const refOf = <const R extends readonly [ValueRefName, ...ValueRefName[]]>(allowed: R) =>
  z.strictObject({
    /** a value Cutover knows after provisioning, e.g. target.lightsail.staticIp */
    ref: z.enum(allowed),
  });

const PUBLIC_REFS = [
  "target.lightsail.staticIp",
  "target.rds.endpoint",
  "target.s3.bucket",
  "target.cloudfront.domain",
  "target.cloudfront.url",
  "source.app.url",
] as const;
const ALL_REFS = [...PUBLIC_REFS, "target.rds.url"] as const;

// ───────────────────────────── access and engine (core) ─────────────────────────────

export const StepSchema = z.strictObject({
  /** unique across the whole runbook (phases and steps); commands name steps by it */
  id: stepId,
  title: z.string().min(1, "is empty — give the step a short title or remove the key").optional(),
  /** the step type from the catalogue (src/jobs/catalogue.ts) */
  uses: stepType,
  /** whether the step changes the world (takes the environment lock); defaults from the catalogue */
  mutates: z.boolean().optional(),
  /** whether the step waits for a second person's approval before it runs; defaults from the catalogue */
  requiresApproval: z.boolean().optional(),
  /** options for the step type; the catalogue validates them */
  with: z.record(z.string(), z.unknown()).default({}),
  /**
   * the longest the step may take, all attempts together, e.g. "90s", "20m", "1h30m"; "none"
   * lifts the limit. Defaults from the step's declaration (its `timeLimit`); past it the step is stopped
   * and fails with what it was waiting on.
   */
  timeout: z
    .union([z.string(), z.number()])
    .transform((v, ctx) => {
      const seconds = parseStepDuration(v);
      if (seconds === undefined) {
        ctx.addIssue({
          code: "custom",
          message: `${JSON.stringify(v)} is not a duration — write it like "90s", "20m", "2h" or "1h30m" (or "none" for no limit)`,
        });
        return z.NEVER;
      }
      return seconds;
    })
    .optional(),
});

/**
 * Seconds in a step duration ("90s", "20m", "1h30m", a bare number of seconds), null for
 * "none", undefined when unreadable. Between 1 s and 7 days.
 */
export function parseStepDuration(v: string | number): number | null | undefined {
  if (typeof v === "number") return Number.isInteger(v) && v >= 1 && v <= 604_800 ? v : undefined;
  const text = v.trim().toLowerCase();
  if (text === "none") return null;
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  if (!m || text === "") return undefined;
  const seconds = Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
  return seconds >= 1 && seconds <= 604_800 ? seconds : undefined;
}

export const PhaseSchema = z.strictObject({
  id: stepId,
  title: z.string().min(1, "is empty — give the phase a title, e.g. 准备 Preparation"),
  description: z.string().optional(),
  /** when the plan schedules it, free text such as "Day 1-2" */
  schedule: z.string().optional(),
  steps: z.array(StepSchema).min(1, "has no steps — list at least one step, or remove the phase"),
});

export const AccessSchema = z.strictObject({
  /** who may run, cancel and roll back: Slack user ids (U…/W…) or user-group ids (S…) */
  operators: z.array(slackPersonOrGroup).min(1, "is empty — list at least one Slack user or user-group id"),
  /** who may approve a cutover: user or user-group ids */
  approvers: z.array(slackPersonOrGroup).min(1, "is empty — list at least one Slack user or user-group id"),
  /** channels that accept commands other than help */
  channels: z.array(slackChannel).min(1, "is empty — list at least one channel id (C…)"),
  /** the name the terminal front end (`npx cutover`) acts as */
  localOperator: z.string().min(1).default("local-operator"),
});

export const EngineSchema = z
  .strictObject({
    /** attempts per step before the run fails */
    attempts: z.number().int().min(1).max(20).default(3),
    /** first retry delay; doubles each attempt */
    backoffMs: z.number().int().min(0).max(600_000).default(2_000),
    /** most progress-message edits per second per channel */
    progressEditsPerSecond: z.number().min(0.1).max(5).default(1),
    /**
     * a step that has reported progress and then reports none for this long is stopped and
     * tried again from its checkpoint (a stalled connection); 1 s at least, for the tests
     */
    stallSeconds: z.number().int().min(1).max(86_400).default(600),
    /**
     * parts of sharded steps (a bucket sync's key ranges) each process works at once; every
     * replica, and a terminal running `npx cutover run`, takes parts from the same queue
     */
    shardWorkers: z.number().int().min(0).max(64).default(2),
  })
  .default({ attempts: 3, backoffMs: 2_000, progressEditsPerSecond: 1, stallSeconds: 600, shardWorkers: 2 });

// ───────────────────────────── source ─────────────────────────────

export const SourceAppSchema = z.strictObject({
  /** a label for people, e.g. Zeabur */
  provider: z.string().optional(),
  /** the old app's base URL */
  url: httpUrl,
  healthPath: urlPath.default("/health"),
});

export const SourceDatabaseSchema = z.strictObject({
  provider: z.string().optional(),
  /** the variable holding the source PostgreSQL URL (read-only use) */
  urlEnv: envVarName,
});

export const SourceStorageSchema = z.strictObject({
  provider: z.string().optional(),
  /** the S3-compatible API endpoint, e.g. https://<account>.r2.cloudflarestorage.com */
  endpoint: endpointUrl,
  bucket: z.string().min(1, "is empty — write the source bucket's name"),
  /** "auto" for Cloudflare R2, otherwise the bucket's region */
  region: z.union([z.literal("auto"), awsRegion]).default("auto"),
  accessKeyIdEnv: envVarName,
  secretAccessKeyEnv: envVarName,
  /** the public base URL objects are served from today (the old CDN URL) */
  publicUrl: httpUrl.optional(),
  /** only copy keys under this prefix */
  prefix: z.string().default(""),
  forcePathStyle: z.boolean().default(true),
});

export const SourceSchema = z.strictObject({
  app: SourceAppSchema.optional(),
  database: SourceDatabaseSchema.optional(),
  storage: SourceStorageSchema.optional(),
});

// ───────────────────────────── target ─────────────────────────────

export const AwsSchema = z.strictObject({
  /** the main region (RDS, Cost Explorer data, budgets), e.g. ap-southeast-1 */
  region: awsRegion,
  accountId: z
    .string()
    .regex(
      /^\d{12}$/,
      msg((v) => `${v} is not an AWS account id`, 'write the 12 digits in quotes, e.g. "123456789012"'),
    )
    .optional(),
});

export const FirewallRuleSchema = z.strictObject({
  port,
  /** last port of a range; defaults to `port` */
  toPort: port.optional(),
  protocol: z.enum(["tcp", "udp", "all"]).default("tcp"),
  /** who may connect; defaults to anyone (0.0.0.0/0) */
  cidrs: z.array(cidr).optional(),
});

export const LightsailSchema = z
  .strictObject({
    instanceName: lightsailName("Lightsail instance name", "app-server"),
    region: awsRegion,
    availabilityZone: z.string().regex(
      /^[a-z]{2}(-[a-z]+)+-\d{1,2}[a-z]$/,
      msg((v) => `${v} is not an availability zone`, "write the region plus a letter, e.g. ap-southeast-1a"),
    ),
    /** Lightsail blueprint id; Ubuntu 22.04 LTS is `ubuntu_22_04` */
    blueprintId: z
      .string()
      .regex(
        /^[a-z0-9_]+$/,
        msg((v) => `${v} is not a Lightsail blueprint id`, "use an id such as ubuntu_22_04"),
      )
      .default("ubuntu_22_04"),
    /** the size wanted; `id` pins a bundle (e.g. medium_3_0), otherwise the smallest bundle meeting the numbers is used */
    bundle: z.strictObject({
      id: z
        .string()
        .regex(
          /^[a-z0-9_]+$/,
          msg((v) => `${v} is not a Lightsail bundle id`, "use an id such as medium_3_0"),
        )
        .optional(),
      cpu: z.number().int().min(1).max(64),
      ramGb: z.number().positive().max(512),
      diskGb: z.number().int().min(8).max(16_384),
      transferTb: z.number().positive().max(100),
    }),
    keyPairName: lightsailName("key pair name", "app-key"),
    staticIpName: lightsailName("static IP name", "app-ip"),
    /** public ports; anything not listed is closed */
    firewall: z
      .array(FirewallRuleSchema)
      .min(1, "is empty — open at least 22 (SSH), 80 and 443")
      .default([
        { port: 22, protocol: "tcp" },
        { port: 80, protocol: "tcp" },
        { port: 443, protocol: "tcp" },
      ]),
    tags: tags.default({}),
  })
  .superRefine((l, ctx) => {
    if (!l.availabilityZone.startsWith(l.region)) {
      ctx.addIssue({
        code: "custom",
        path: ["availabilityZone"],
        message: `\`${l.availabilityZone}\` is not in region \`${l.region}\` — use a zone of that region, e.g. ${l.region}a`,
      });
    }
    const seen = new Map<string, number>();
    l.firewall.forEach((rule, i) => {
      const key = `${rule.protocol}/${rule.port}`;
      const first = seen.get(key);
      if (first !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["firewall", i, "port"],
          message: `port ${rule.port}/${rule.protocol} is listed twice (also firewall[${first}]) — merge the two rules`,
        });
      } else seen.set(key, i);
      if (rule.toPort !== undefined && rule.toPort < rule.port) {
        ctx.addIssue({
          code: "custom",
          path: ["firewall", i, "toPort"],
          message: `is below port ${rule.port} — toPort ends the range, so it must be ≥ port`,
        });
      }
    });
  });

export const RdsSchema = z
  .strictObject({
    identifier: z.string().regex(
      /^[a-z](?!.*--)[a-z0-9-]{0,61}[a-z0-9]$/,
      msg(
        (v) => `${v} is not a valid RDS identifier`,
        "use 1–63 lower-case letters, digits and single hyphens, starting with a letter, e.g. app-db",
      ),
    ),
    engine: z.literal("postgres").default("postgres"),
    /** major ("14") or major.minor ("14.12"), as a quoted string */
    engineVersion: z.string().regex(
      /^\d{1,2}(\.\d{1,2})?$/,
      msg((v) => `${v} is not a PostgreSQL version`, 'write the major version in quotes, e.g. "14"'),
    ),
    instanceClass: z.string().regex(
      /^db\.[a-z0-9]+\.[a-z0-9]+$/,
      msg((v) => `${v} is not an RDS instance class`, "write it like db.t4g.micro"),
    ),
    storageType: z.enum(["gp2", "gp3", "io1", "io2"]).default("gp3"),
    allocatedStorageGb: z
      .number()
      .int()
      .min(20, "is below 20 — RDS PostgreSQL needs at least 20 GB")
      .max(65_536),
    /** let RDS grow the storage up to this size */
    maxAllocatedStorageGb: z.number().int().min(20).max(65_536).optional(),
    multiAz: z.boolean().default(false),
    backupRetentionDays: z
      .number()
      .int()
      .min(0)
      .max(35, "is above 35 — RDS keeps automated backups for at most 35 days")
      .default(7),
    /** reachable from the internet; the security group still allows only `ingress` */
    publiclyAccessible: z.boolean().default(false),
    ingress: z
      .strictObject({
        /** allow the Lightsail instance's static IP (target.lightsail.staticIpName) on the database port */
        fromLightsailStaticIp: z.boolean().default(true),
        /** more sources, e.g. an office address for a break-glass session */
        extraCidrs: z.array(cidr).default([]),
      })
      .prefault({}),
    port: port.default(5432),
    /** encryption at rest (KMS) */
    storageEncrypted: z.boolean().default(true),
    kmsKeyId: z.string().optional(),
    /** rds.force_ssl = 1: clients must use TLS */
    requireTls: z.boolean().default(true),
    masterUsername: z
      .string()
      .regex(
        /^[A-Za-z][A-Za-z0-9_]{0,62}$/,
        msg(
          (v) => `${v} is not a valid master user name`,
          "use letters, digits and _, starting with a letter, e.g. app_admin",
        ),
      )
      .refine(
        (v) => v.toLowerCase() !== "rdsadmin",
        "is reserved by RDS — pick another name, e.g. app_admin",
      ),
    /** the variable holding the master password Cutover sets (one of this or masterPasswordStore) */
    masterPasswordEnv: envVarName.optional(),
    /**
     * where a generated master password is kept: `secrets-manager` (RDS generates and keeps it in AWS
     * Secrets Manager) or `data-dir` (Cutover generates it into CUTOVER_DATA_DIR/secrets/, mode 0600)
     */
    masterPasswordStore: z.enum(["secrets-manager", "data-dir"]).optional(),
    dbName: z.string().regex(
      /^[A-Za-z][A-Za-z0-9_]{0,62}$/,
      msg((v) => `${v} is not a valid database name`, "use letters, digits and _, starting with a letter"),
    ),
    /**
     * the variable holding the target database's connection URL, for a database Cutover did not
     * create (or a rehearsal); without it the URL is built from the provisioned endpoint, the master
     * user and password, and dbName
     */
    urlEnv: envVarName.optional(),
    deletionProtection: z.boolean().default(true),
    tags: tags.default({}),
  })
  .superRefine((r, ctx) => {
    if ((r.masterPasswordEnv === undefined) === (r.masterPasswordStore === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: ["masterPasswordEnv"],
        message:
          r.masterPasswordEnv === undefined
            ? "is missing — name the variable that holds the master password (masterPasswordEnv: RDS_MASTER_PASSWORD), or set masterPasswordStore: secrets-manager"
            : "is set together with masterPasswordStore — keep only one of the two",
      });
    }
    if (r.maxAllocatedStorageGb !== undefined && r.maxAllocatedStorageGb <= r.allocatedStorageGb) {
      ctx.addIssue({
        code: "custom",
        path: ["maxAllocatedStorageGb"],
        message: `is not above allocatedStorageGb (${r.allocatedStorageGb}) — raise it, or remove it to turn storage autoscaling off`,
      });
    }
    r.ingress.extraCidrs.forEach((c, i) => {
      if (r.publiclyAccessible && /\/0$/.test(c)) {
        ctx.addIssue({
          code: "custom",
          path: ["ingress", "extraCidrs", i],
          message: `\`${c}\` opens the public database to the whole internet — allow single addresses (…/32) instead`,
        });
      }
    });
  });

const IA_CLASSES = new Set(["STANDARD_IA", "ONEZONE_IA"]);

export const LifecycleRuleSchema = z.strictObject({
  id: z.string().min(1).max(255),
  /** only objects under this key prefix; "" for all */
  prefix: z.string().default(""),
  transitions: z
    .array(
      z
        .strictObject({
          afterDays: z.number().int().min(0),
          storageClass: z.enum([
            "STANDARD_IA",
            "ONEZONE_IA",
            "INTELLIGENT_TIERING",
            "GLACIER_IR",
            "GLACIER",
            "DEEP_ARCHIVE",
          ]),
        })
        .superRefine((t, ctx) => {
          if (IA_CLASSES.has(t.storageClass) && t.afterDays < 30) {
            ctx.addIssue({
              code: "custom",
              path: ["afterDays"],
              message: `is ${t.afterDays} — S3 moves objects to ${t.storageClass} only after at least 30 days; use 30 or more`,
            });
          }
        }),
    )
    .default([]),
  expireAfterDays: z.number().int().min(1).optional(),
});

export const S3Schema = z.strictObject({
  bucket: z.string().regex(
    /^(?!xn--)(?!.*\.\.)(?!\d+\.\d+\.\d+\.\d+$)(?!.*-s3alias$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
    msg(
      (v) => `${v} is not a valid S3 bucket name`,
      "use 3–63 lower-case letters, digits, dots and hyphens, e.g. app-media",
    ),
  ),
  region: awsRegion,
  storageClass: z
    .enum(["STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"])
    .default("STANDARD"),
  versioning: z.boolean().default(false),
  blockPublicAccess: z.boolean().default(true),
  lifecycle: z.array(LifecycleRuleSchema).default([]),
  tags: tags.default({}),
});

/** AWS managed cache policies: name → id. A custom policy is given by its id. */
export const MANAGED_CACHE_POLICIES = {
  CachingOptimized: "658327ea-f89d-4fab-a63d-7e88639e58f6",
  CachingDisabled: "4135ea2d-6df8-44a3-9df3-4b5a84be39ad",
  CachingOptimizedForUncompressedObjects: "b2884449-e4de-46a7-ac36-70bc7f1ddd6d",
} as const;

export const CloudFrontSchema = z
  .strictObject({
    /** PriceClass_100 (North America, Europe), PriceClass_200 (+ Asia, Middle East, Africa), PriceClass_All */
    priceClass: z.enum(["PriceClass_100", "PriceClass_200", "PriceClass_All"]).default("PriceClass_200"),
    /** default TTL; must match the cache policy's (86400 for CachingOptimized) */
    defaultTtlSeconds: seconds(0, 31_536_000).default(86_400),
    compress: z.boolean().default(true),
    /** a managed policy name (CachingOptimized) or a custom cache policy id */
    cachePolicy: z
      .string()
      .refine(
        (v) =>
          v in MANAGED_CACHE_POLICIES ||
          /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(v),
        {
          error: (iss) =>
            `${show(iss.input)} is not a cache policy — use ${Object.keys(MANAGED_CACHE_POLICIES).join(", ")} or a cache policy id` +
            (typeof iss.input === "string" ? didYouMean(iss.input, Object.keys(MANAGED_CACHE_POLICIES)) : ""),
        },
      )
      .default("CachingOptimized"),
    /** serve the private bucket through an origin access control (no public bucket) */
    originAccessControl: z.boolean().default(true),
    viewerProtocolPolicy: z
      .enum(["redirect-to-https", "https-only", "allow-all"])
      .default("redirect-to-https"),
    /** custom domains (CNAMEs); need a certificate */
    aliases: z.array(hostname).default([]),
    /** ACM certificate for the aliases: an existing one in us-east-1, or request one (validated through dns) */
    certificate: z
      .strictObject({
        arn: z
          .string()
          .regex(
            /^arn:aws[a-z-]*:acm:us-east-1:\d{12}:certificate\/[0-9a-f-]+$/,
            msg(
              (v) => `${v} is not an ACM certificate ARN in us-east-1`,
              "CloudFront only uses certificates from us-east-1; copy the ARN from ACM in that region",
            ),
          )
          .optional(),
        request: z.boolean().default(false),
      })
      .optional(),
    comment: z.string().max(128).optional(),
  })
  .superRefine((c, ctx) => {
    if (c.cachePolicy === "CachingOptimized" && c.defaultTtlSeconds !== 86_400) {
      ctx.addIssue({
        code: "custom",
        path: ["defaultTtlSeconds"],
        message: `is ${c.defaultTtlSeconds}, but the managed CachingOptimized policy's default TTL is 86400 — use 86400, or a custom cache policy id for another TTL`,
      });
    }
    if (c.aliases.length > 0 && !c.certificate?.arn && !c.certificate?.request) {
      ctx.addIssue({
        code: "custom",
        path: ["certificate"],
        message:
          "is missing — custom domains (aliases) need a certificate: set certificate.arn (ACM, us-east-1) or certificate.request: true",
      });
    }
    if (c.certificate?.arn && c.certificate.request) {
      ctx.addIssue({
        code: "custom",
        path: ["certificate", "request"],
        message: "is true while an arn is given — keep only one of the two",
      });
    }
  });

/** Placeholders allowed in host commands; the deploy step fills them in. */
export const COMMAND_PLACEHOLDERS = {
  appDir: "host.appDir",
  current: "the live release's app folder (appDir/current/<release.workdir>)",
  venv: "the Python virtualenv (appDir/venv)",
  gunicorn: "the gunicorn command line built from host.gunicorn",
} as const;

/** Placeholders allowed in release.fetchCommand. */
export const FETCH_PLACEHOLDERS = {
  repo: "release.repo",
  ref: "release.ref",
  archiveUrl: "release.archiveUrl",
  dir: "the new release folder",
} as const;

const commandWith = (allowed: Record<string, string>) =>
  z
    .string()
    .min(1, "is empty — write the command")
    .superRefine((cmd, ctx) => {
      for (const m of cmd.matchAll(/\{([^{}\s]*)\}/g)) {
        const p = m[1] ?? "";
        if (!(p in allowed)) {
          ctx.addIssue({
            code: "custom",
            message: `uses an unknown placeholder {${p}} — use one of ${Object.keys(allowed)
              .map((k) => `{${k}}`)
              .join(", ")}${didYouMean(p, Object.keys(allowed))}`,
          });
        }
      }
    });

const gitRepo = z.string().refine(
  (v) => /^https:\/\/\S+$/.test(v) || /^(ssh:\/\/)?[\w.-]+@[\w.-]+[:/]\S+$/.test(v),
  msg((v) => `${v} is not a git repository address`, "write an https:// URL or git@host:owner/repo.git"),
);

export const SupervisorServiceSchema = z.strictObject({
  name: z.string().regex(
    /^[A-Za-z0-9_-]+$/,
    msg((v) => `${v} is not a valid service name`, "use letters, digits, '_' and '-', e.g. app-worker"),
  ),
  description: z.string().optional(),
  command: commandWith(COMMAND_PLACEHOLDERS),
  /** working directory; defaults to {current} */
  directory: z.string().optional(),
  autorestart: z.boolean().default(true),
  numprocs: z.number().int().min(1).max(32).default(1),
  stopWaitSeconds: seconds(1, 3600).default(30),
});

export const HostSchema = z
  .strictObject({
    sshUser: z
      .string()
      .regex(
        /^[a-z_][a-z0-9_-]{0,31}$/,
        msg((v) => `${v} is not a Unix user name`, "write it like ubuntu"),
      )
      .default("ubuntu"),
    sshPort: port.default(22),
    /** the variable holding the PATH of the SSH private key file for the key pair */
    sshKeyPathEnv: envVarName,
    /** pin the host key (from `ssh-keygen -lf`); without it the first key seen is trusted and recorded */
    hostKeyFingerprint: z
      .string()
      .regex(
        /^SHA256:[A-Za-z0-9+/]{43}=?$/,
        msg(
          (_v) => "is not an SSH host key fingerprint",
          "copy it from `ssh-keygen -lf <key>.pub`: SHA256:…",
        ),
      )
      .optional(),
    /** the Unix user the services run as; defaults to sshUser */
    appUser: z
      .string()
      .regex(
        /^[a-z_][a-z0-9_-]{0,31}$/,
        msg((v) => `${v} is not a Unix user name`, "write it like app"),
      )
      .optional(),
    appDir: z.string().regex(
      /^\/[^\s]*[^/\s]$/,
      msg((v) => `${v} is not an absolute folder path`, "write it like /opt/app"),
    ),
    /** Python version installed on the host, quoted: "3.11" */
    python: z
      .string()
      .regex(
        /^3\.\d{1,2}$/,
        msg((v) => `${v} is not a Python 3 version`, 'write it in quotes, e.g. "3.11"'),
      )
      .default("3.11"),
    /**
     * where the app's Python packages come from: `pip` (the virtualenv installs them from the
     * package index) or `os` (apt packages listed under `packages`, e.g. python3-fastapi, seen by
     * a virtualenv made with --system-site-packages; for a host without the package index, and
     * only where the OS's python3 is the configured version, as on Debian 12 with "3.11")
     */
    pythonPackages: z.enum(["pip", "os"]).default("pip"),
    /** apt packages installed besides Python, Nginx, Supervisor and Redis */
    packages: z
      .array(
        z.string().regex(
          /^[a-z0-9][a-z0-9.+-]*$/,
          msg((v) => `${v} is not an apt package name`, "write it like postgresql-client"),
        ),
      )
      .default(["postgresql-client"]),
    release: z
      .strictObject({
        /** git repository to deploy from (or archiveUrl) */
        repo: gitRepo.optional(),
        ref: z.string().min(1).default("main"),
        /** a .tar.gz to deploy instead of a git checkout */
        archiveUrl: httpUrl.optional(),
        /** replaces the built-in fetch; placeholders {repo} {ref} {archiveUrl} {dir} */
        fetchCommand: commandWith(FETCH_PLACEHOLDERS).optional(),
        /** the variable holding the PATH of a deploy key for a private repository */
        deployKeyPathEnv: envVarName.optional(),
        /** the app's folder inside the release, e.g. backend */
        workdir: z
          .string()
          .regex(
            /^(\.|[^/\s][^\s]*)$/,
            msg((v) => `${v} is not a relative folder`, "write it like backend, or . for the top"),
          )
          .default("."),
        installCommand: commandWith(COMMAND_PLACEHOLDERS).default(
          "{venv}/bin/pip install -r requirements.txt",
        ),
        /** run after install, before the services restart, e.g. database migrations */
        migrateCommand: commandWith(COMMAND_PLACEHOLDERS).optional(),
        /** releases kept on the host for a quick switch back */
        keep: z.number().int().min(1).max(20).default(3),
      })
      .superRefine((r, ctx) => {
        if ((r.repo === undefined) === (r.archiveUrl === undefined) && r.fetchCommand === undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["repo"],
            message:
              r.repo === undefined
                ? "is missing — say where the code comes from: repo (git) with ref, or archiveUrl, or a fetchCommand"
                : "is set together with archiveUrl — keep only one of the two",
          });
        }
      }),
    gunicorn: z.strictObject({
      /** the ASGI/WSGI app, module:variable */
      app: z.string().regex(
        /^[A-Za-z_][\w.]*:[A-Za-z_]\w*$/,
        msg((v) => `${v} is not a module:variable`, "write it like app.main:app"),
      ),
      workers: z.number().int().min(1).max(64).default(5),
      workerClass: z.string().default("uvicorn.workers.UvicornWorker"),
      bind: z
        .string()
        .regex(
          /^(\d{1,3}(\.\d{1,3}){3}|localhost|unix:\/\S+):?\d*$/,
          msg((v) => `${v} is not a bind address`, "write it like 127.0.0.1:8000"),
        )
        .default("127.0.0.1:8000"),
      timeoutSeconds: seconds(1, 3600).default(60),
    }),
    nginx: z.strictObject({
      /** names the site answers to, e.g. api.example.com */
      serverNames: z.array(hostname).min(1, "is empty — list the API's host name, e.g. api.example.com"),
      clientMaxBodyMb: z.number().int().min(1).max(10_240).default(25),
      /** how the host gets its TLS certificate */
      tls: z
        .strictObject({
          /** letsencrypt-dns: certbot DNS-01 through Cloudflare (works before DNS points here); letsencrypt-http: HTTP-01 (after DNS points here) */
          mode: z
            .enum(["letsencrypt-dns", "letsencrypt-http", "cloudflare-origin", "none"])
            .default("letsencrypt-dns"),
          email: z
            .email(
              msg(
                (v) => `${v} is not an e-mail address`,
                "Let's Encrypt sends expiry warnings there; write it like ops@example.com",
              ),
            )
            .optional(),
          /** for letsencrypt-dns: the variable holding a Cloudflare token limited to Zone → DNS → Edit (it is copied to the host) */
          dnsApiTokenEnv: envVarName.optional(),
        })
        .superRefine((t, ctx) => {
          if (t.mode.startsWith("letsencrypt") && !t.email) {
            ctx.addIssue({
              code: "custom",
              path: ["email"],
              message: "is missing — Let's Encrypt needs a contact address, e.g. email: ops@example.com",
            });
          }
          if (t.mode === "letsencrypt-dns" && !t.dnsApiTokenEnv) {
            ctx.addIssue({
              code: "custom",
              path: ["dnsApiTokenEnv"],
              message:
                "is missing — name the variable holding a Cloudflare token limited to Zone → DNS → Edit, e.g. dnsApiTokenEnv: CERTBOT_CLOUDFLARE_TOKEN",
            });
          }
        })
        .prefault({}),
    }),
    supervisor: z.strictObject({
      services: z
        .array(SupervisorServiceSchema)
        .min(1, "is empty — list the services to run, e.g. the web app and its workers"),
    }),
    redis: z
      .strictObject({
        /** install and run Redis on the host */
        local: z.boolean().default(true),
        url: z
          .string()
          .regex(
            /^rediss?:\/\/\S+$/,
            msg((v) => `${v} is not a Redis URL`, "write it like redis://127.0.0.1:6379/0"),
          )
          .default("redis://127.0.0.1:6379/0"),
      })
      .prefault({}),
    /** the app's environment file on the host; secrets come from Cutover's environment ({ env: NAME }) */
    appEnv: z
      .strictObject({
        /** relative to the app folder */
        path: z.string().min(1).default(".env"),
        vars: z
          .record(
            z.string().regex(
              ENV_NAME_RE,
              msg(
                (v) => `${v} is not an environment variable name`,
                "use capitals, digits and _, e.g. DATABASE_URL",
              ),
            ),
            z.union([z.string(), z.number(), z.boolean(), EnvRefSchema, refOf(ALL_REFS)], {
              error:
                "is not a value — write a plain value, { env: VAR_NAME } for a secret, or { ref: target.rds.url } for a value Cutover provisions",
            }),
          )
          .default({}),
      })
      .prefault({}),
    healthPath: urlPath.default("/health"),
  })
  .superRefine((h, ctx) => {
    const seen = new Map<string, number>();
    h.supervisor.services.forEach((s, i) => {
      const first = seen.get(s.name);
      if (first !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["supervisor", "services", i, "name"],
          message: `\`${s.name}\` is already used by supervisor.services[${first}] — give each service its own name`,
        });
      } else seen.set(s.name, i);
    });
  });

export const TargetSchema = z.strictObject({
  aws: AwsSchema,
  lightsail: LightsailSchema.optional(),
  rds: RdsSchema.optional(),
  s3: S3Schema.optional(),
  cloudfront: CloudFrontSchema.optional(),
  host: HostSchema.optional(),
});

// ───────────────────────────── DNS and Pages ─────────────────────────────

const article = (word: string) => (/^[AEIOU]/.test(word) ? "an" : "a");

export const DnsRecordSchema = z
  .strictObject({
    /** the full record name, e.g. api.example.com */
    name: hostname,
    type: z.enum(["A", "AAAA", "CNAME"]),
    /** the value today; rollback puts it back. Omit for a record the cutover creates (rollback deletes it). */
    from: z.string().min(1).optional(),
    /** the value after the cutover: literal, or { ref: target.lightsail.staticIp } / { ref: target.cloudfront.domain } */
    to: z.union(
      [
        z.string().min(1),
        refOf(["target.lightsail.staticIp", "target.cloudfront.domain", "target.rds.endpoint"]),
      ],
      {
        error:
          "is not a record value — write the value, or { ref: target.lightsail.staticIp } for the new host's address",
      },
    ),
    /** orange-cloud proxying in Cloudflare; a proxied record's TTL is automatic */
    proxied: z.boolean().default(false),
    /** the TTL to settle on after the cutover; defaults to the record's TTL before the migration */
    ttl: seconds(30, 86_400).optional(),
  })
  .superRefine((r, ctx) => {
    const check = (value: string, key: "from" | "to") => {
      const ok =
        r.type === "A" ? isIP(value) === 4 : r.type === "AAAA" ? isIP(value) === 6 : isHostname(value);
      if (!ok) {
        const want =
          r.type === "A" ? "an IPv4 address" : r.type === "AAAA" ? "an IPv6 address" : "a host name";
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `${show(value)} is not ${want}, which ${article(r.type)} ${r.type} record needs — correct the value or the type`,
        });
      }
    };
    if (r.from !== undefined) check(r.from, "from");
    if (typeof r.to === "string") check(r.to, "to");
    else {
      const refIsIp = r.to.ref === "target.lightsail.staticIp";
      if (refIsIp !== (r.type === "A")) {
        ctx.addIssue({
          code: "custom",
          path: ["to", "ref"],
          message: `\`${r.to.ref}\` cannot be the value of ${article(r.type)} ${r.type} record — use type ${refIsIp ? "A" : "CNAME"}`,
        });
      }
    }
  });

export const DnsSchema = z
  .strictObject({
    provider: z.literal("cloudflare").default("cloudflare"),
    /** the zone name, e.g. example.com */
    zone: hostname,
    /** the zone id (Cloudflare dashboard → the domain → Overview); looked up by name when absent */
    zoneId: cloudflareId("zone id").optional(),
    apiTokenEnv: envVarName.default("CLOUDFLARE_API_TOKEN"),
    /** TTL the records are lowered to ahead of the cutover (Cloudflare: 60 or more; 30 on Enterprise) */
    cutoverTtl: seconds(30, 86_400).default(60),
    records: z
      .array(DnsRecordSchema)
      .min(1, "is empty — list the records the cutover switches, e.g. the API's A record"),
  })
  .superRefine((d, ctx) => {
    const seen = new Map<string, number>();
    d.records.forEach((r, i) => {
      if (r.name !== d.zone && !r.name.endsWith(`.${d.zone}`)) {
        ctx.addIssue({
          code: "custom",
          path: ["records", i, "name"],
          message: `\`${r.name}\` is not in zone \`${d.zone}\` — use a name ending in .${d.zone}`,
        });
      }
      const key = `${r.name}/${r.type}`;
      const first = seen.get(key);
      if (first !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["records", i, "name"],
          message: `${r.type} ${r.name} is listed twice (also records[${first}]) — keep one`,
        });
      } else seen.set(key, i);
    });
  });

export const PagesSchema = z.strictObject({
  /** the Cloudflare Pages project name */
  project: z.string().regex(
    /^[a-z0-9][a-z0-9-]{0,57}$/,
    msg(
      (v) => `${v} is not a Pages project name`,
      "copy it from Workers & Pages in the Cloudflare dashboard",
    ),
  ),
  accountId: cloudflareId("account id"),
  apiTokenEnv: envVarName.default("CLOUDFLARE_API_TOKEN"),
  environment: z.enum(["production", "preview"]).default("production"),
  /** the front end's build variables that change: value today (from) and after the cutover (to) */
  env: z
    .record(
      z.string().regex(
        ENV_NAME_RE,
        msg(
          (v) => `${v} is not an environment variable name`,
          "use capitals, digits and _, e.g. NEXT_PUBLIC_API_URL",
        ),
      ),
      z.strictObject({
        from: z.string().min(1),
        to: z.union([z.string().min(1), refOf(PUBLIC_REFS)], {
          error:
            "is not a value — write the new value, or { ref: target.cloudfront.url } for a value Cutover provisions",
        }),
      }),
    )
    .refine(
      (e) => Object.keys(e).length > 0,
      "is empty — list the variables to switch, e.g. NEXT_PUBLIC_API_URL",
    ),
  /** start a new deployment after changing the variables (they apply to new builds only) */
  redeploy: z.boolean().default(true),
});

// ───────────────────────────── cutover, verification, KPIs, cost, digest ─────────────────────────────

/**
 * The live cutover (the shop keeps writing): PostgreSQL logical replication from the source to
 * the target from the copy on, an approved switch that freezes the app's writes for seconds, and
 * reverse replication after it so that a rollback loses nothing. Without this section the
 * database moves as a snapshot.
 */
export const ReplicationSchema = z.strictObject({
  /**
   * The database roles the apps connect as: a freeze takes their write privileges (reads go on).
   * Each must be a role of its own, neither a superuser nor the role Cutover connects as.
   */
  appRoles: z.strictObject({
    /** the old app's role on the source (e.g. Neon's app role) */
    source: z.string().min(1, "is empty — name the role the old app connects to the source as"),
    /** the new app's role on the target (RDS) */
    target: z.string().min(1, "is empty — name the role the new app connects to the target as"),
  }),
  /**
   * the variable holding the source's URL as the TARGET server reaches it (its subscription
   * connects there); default: source.database.urlEnv
   */
  sourceConnectionEnv: envVarName.optional(),
  /** the variable holding the target's URL as the SOURCE server reaches it (for reverse replication); default the target's URL */
  targetConnectionEnv: envVarName.optional(),
  /** the switch may start only while the lag is under this */
  maxLagSeconds: seconds(0, 3600).default(5),
  /** post once when the lag passes this, once when it recovers */
  alertLagSeconds: seconds(1, 86_400).default(60),
  /** how long transactions already writing at the freeze may take to finish before they are ended */
  inflightMs: z.number().int().min(0).max(60_000).default(1_000),
  /** how long the drain to the frozen side's WAL position may take before the switch is unwound */
  drainTimeoutSeconds: seconds(1, 3600).default(60),
  /** start reverse replication (target → source) at the switch, so a rollback brings every write home */
  reverse: z.boolean().default(true),
});

export const CutoverSchema = z
  .strictObject({
    /** the maintenance window the DNS switch must start in */
    window: z
      .strictObject({
        start: hhmm,
        end: hhmm,
        timezone: timeZone,
        days: z.array(z.enum(["mon", "tue", "wed", "thu", "fri", "sat", "sun"])).optional(),
      })
      .refine((w) => w.start !== w.end, {
        path: ["end"],
        message: 'equals start — the window would be empty; e.g. start: "02:00", end: "05:00"',
      })
      .optional(),
    /** refuse to start a cutover outside the window */
    enforceWindow: z.boolean().default(true),
    /** an approval request expires after this many minutes */
    approvalExpiryMinutes: z.number().int().min(1).max(1440).default(30),
    /** how long to watch the new stack after the switch before calling it done */
    watchWindowSeconds: seconds(5, 86_400).default(900),
    /** how often to probe during the watch window */
    probeIntervalSeconds: seconds(1, 300).default(10),
  })
  .refine((c) => c.probeIntervalSeconds < c.watchWindowSeconds, {
    path: ["probeIntervalSeconds"],
    message: "is not shorter than watchWindowSeconds — probe more often than once per watch window",
  })
  .prefault({});

const checkBase = {
  id: stepId,
  title: z.string().optional(),
};

const httpMethod = z.enum(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]);

export const FunctionalCheckSchema = z.discriminatedUnion("kind", [
  z.strictObject({
    ...checkBase,
    /** an HTTP request to the new API */
    kind: z.literal("http"),
    method: httpMethod.default("GET"),
    path: urlPath,
    /** JSON body for POST/PUT/PATCH */
    body: z.unknown().optional(),
    /** the variable holding a bearer token for an endpoint that needs a signed-in user */
    bearerTokenEnv: envVarName.optional(),
    expectStatus: z.number().int().min(100).max(599).default(200),
    expectBodyContains: z.string().optional(),
    /** the JSON response (or the array at jsonPath, dot-separated) has at least this many items */
    minItems: z.number().int().min(0).optional(),
    jsonPath: z.string().optional(),
    timeoutMs: z.number().int().min(100).max(300_000).default(10_000),
  }),
  z.strictObject({
    ...checkBase,
    /** a read-only SQL query against the target database */
    kind: z.literal("sql"),
    query: z
      .string()
      .min(1)
      .refine(
        (q) => /^\s*(select|with|show|explain)\b/i.test(q),
        "is not read-only — checks may only SELECT",
      ),
    minRows: z.number().int().min(0).default(1),
    /** compare the result with the same query on the source */
    compareWithSource: z.boolean().default(false),
  }),
  z.strictObject({
    ...checkBase,
    /** upload a file then download it: through the app's endpoint (path) or straight to the bucket and back through the CDN */
    kind: z.literal("upload"),
    path: urlPath.optional(),
    fileField: z.string().default("file"),
    sizeKb: z.number().int().min(1).max(1_048_576).default(256),
    bearerTokenEnv: envVarName.optional(),
  }),
  z.strictObject({
    ...checkBase,
    /** a command on the host over SSH, e.g. celery inspect ping */
    kind: z.literal("command"),
    command: commandWith(COMMAND_PLACEHOLDERS),
    expectExitCode: z.number().int().min(0).max(255).default(0),
    expectOutputContains: z.string().optional(),
    timeoutSeconds: seconds(1, 3600).default(60),
  }),
]);

export const VerificationSchema = z
  .strictObject({
    /** where checks are sent; defaults to the new host (its static IP, with the first DNS record's name as Host) */
    baseUrl: httpUrl.optional(),
    functional: z.array(FunctionalCheckSchema).default([]),
    performance: z
      .strictObject({
        api: z
          .strictObject({
            maxAvgMs: z.number().positive().default(200),
            paths: z.array(urlPath).min(1).default(["/health"]),
            samples: z.number().int().min(1).max(10_000).default(20),
          })
          .prefault({}),
        database: z
          .strictObject({
            maxAvgMs: z.number().positive().default(50),
            query: z.string().min(1).default("SELECT 1"),
            samples: z.number().int().min(1).max(10_000).default(20),
          })
          .prefault({}),
        upload: z
          .strictObject({
            minMBps: z.number().positive().default(1),
            sizeMb: z.number().positive().max(1024).default(5),
          })
          .prefault({}),
        cdn: z
          .strictObject({
            minHitRatioPercent: percent.default(80),
            /** objects fetched twice through the CDN to measure hits */
            sampleObjects: z.number().int().min(1).max(10_000).default(50),
          })
          .prefault({}),
      })
      .prefault({}),
    reliability: z
      .strictObject({
        /** kill the main service and expect supervisor to bring it back: disruptive, so opt-in */
        autoRestart: z
          .strictObject({
            enabled: z.boolean().default(false),
            service: z.string().optional(),
            withinSeconds: seconds(1, 600).default(30),
          })
          .prefault({}),
        /** open this many connections to the target database at once */
        dbConnectionPool: z
          .strictObject({
            enabled: z.boolean().default(true),
            connections: z.number().int().min(1).max(1000).default(20),
          })
          .prefault({}),
        /** the app writes errors to its logs (supervisor log files) */
        errorLogging: z
          .strictObject({ enabled: z.boolean().default(true), logPaths: z.array(z.string()).default([]) })
          .prefault({}),
        /** KPI probes are running and the budget alert exists */
        monitoringAlerts: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
      })
      .prefault({}),
  })
  .superRefine((v, ctx) => {
    const seen = new Map<string, number>();
    v.functional.forEach((c, i) => {
      const first = seen.get(c.id);
      if (first !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["functional", i, "id"],
          message: `\`${c.id}\` is already used by functional[${first}] — give each check its own id`,
        });
      } else seen.set(c.id, i);
    });
  })
  .prefault({});

const period = z.enum(["daily", "weekly", "monthly"]);
const atMost = (value: number, p: "daily" | "weekly" | "monthly") =>
  z.strictObject({ max: z.number().min(0), period: period.default(p) }).prefault({ max: value });
const atLeast = (value: number, p: "daily" | "weekly" | "monthly") =>
  z.strictObject({ min: z.number().min(0), period: period.default(p) }).prefault({ min: value });

export const KpiSchema = z
  .strictObject({
    /** the migration's success criteria */
    migration: z
      .strictObject({
        maxDowntimeMinutes: z.number().min(0).default(60),
        dataIntegrityPercent: percent.default(100),
        functionalAvailabilityPercent: percent.default(100),
        maxPerformanceDegradationPercent: percent.default(10),
        maxErrorRatePercent: percent.default(0.1),
      })
      .prefault({}),
    /** running targets, checked over their period */
    longTerm: z
      .strictObject({
        availabilityPercent: atLeast(99.9, "daily"),
        avgResponseMs: atMost(200, "daily"),
        dbQueryMs: atMost(50, "daily"),
        /** in cost.currency */
        monthlyCost: z.strictObject({ max: z.number().min(0), period: period.default("monthly") }).optional(),
        errorRatePercent: atMost(0.1, "weekly"),
      })
      .prefault({}),
    probes: z
      .strictObject({
        intervalSeconds: seconds(1, 3600).default(60),
        timeoutMs: z.number().int().min(100).max(60_000).default(5_000),
        endpoints: z
          .array(
            z.strictObject({
              id: stepId,
              url: httpUrl,
              expectStatus: z.number().int().min(100).max(599).default(200),
            }),
          )
          .default([]),
        /** time a trivial query on the target database each probe */
        database: z
          .strictObject({ enabled: z.boolean().default(true), query: z.string().min(1).default("SELECT 1") })
          .prefault({}),
      })
      .prefault({}),
    /** KPI samples older than this are deleted */
    retentionDays: z.number().int().min(1).max(3650).default(90),
  })
  .prefault({});

const amountOrRange = (kind: string) =>
  z.union(
    [
      z.number().min(0),
      z
        .strictObject({ min: z.number().min(0), max: z.number().min(0) })
        .refine((r) => r.min <= r.max, { path: ["max"], message: "is below min — swap the two" }),
    ],
    { error: `is not ${kind} — write a number, or { min: …, max: … } for a range` },
  );

export const CostLineSchema = z.strictObject({
  service: z.string().min(1),
  /** per month, in cost.currency */
  monthly: amountOrRange("an amount"),
  note: z.string().optional(),
  /** Cost Explorer SERVICE names this line is measured against, e.g. "Amazon Lightsail" */
  awsServices: z.array(z.string().min(1)).default([]),
});

export const CostSchema = z
  .strictObject({
    currency: z
      .string()
      .regex(
        /^[A-Z]{3}$/,
        msg((v) => `${v} is not a currency code`, "write it like USD"),
      )
      .default("USD"),
    /** the monthly spend the migration aims to stay under */
    monthlyTarget: z.number().positive(),
    /** the AWS budget alert threshold */
    budgetAlert: z.number().positive(),
    /** what the old stack costs per month */
    current: z.array(CostLineSchema).default([]),
    /** what the plan expects the new stack to cost per month */
    target: z.array(CostLineSchema).default([]),
    optimisations: z
      .array(
        z.strictObject({
          id: stepId,
          title: z.string().min(1),
          savingsPercent: amountOrRange("a percentage"),
          /** the cost lines (by service) it applies to */
          appliesTo: z.array(z.string()).default([]),
        }),
      )
      .default([]),
    /** what the plan expects after the optimisations */
    optimisedMonthly: amountOrRange("an amount").optional(),
  })
  .superRefine((c, ctx) => {
    if (c.budgetAlert < c.monthlyTarget) {
      ctx.addIssue({
        code: "custom",
        path: ["budgetAlert"],
        message: `(${c.budgetAlert}) is below monthlyTarget (${c.monthlyTarget}) — the alert would fire while still on target; raise it to at least ${c.monthlyTarget}`,
      });
    }
    c.optimisations.forEach((o, i) => {
      const values =
        typeof o.savingsPercent === "number"
          ? [o.savingsPercent]
          : [o.savingsPercent.min, o.savingsPercent.max];
      if (values.some((v) => v > 100)) {
        ctx.addIssue({
          code: "custom",
          path: ["optimisations", i, "savingsPercent"],
          message: "is above 100 — a saving is a percentage between 0 and 100",
        });
      }
    });
  });

export const DigestSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    /** local time of the daily digest, "HH:MM" */
    time: hhmm.default("09:00"),
    timezone: timeZone.default("UTC"),
    /** daily digests run for this many days after the cutover */
    stabilisationDays: z.number().int().min(1).max(365).default(14),
    /** defaults to slack.channel */
    channel: slackChannel.optional(),
  })
  .prefault({});

// ───────────────────────────── sections and the file ─────────────────────────────

/** Optional sections, by path. */
export type SectionPath =
  | "source.app"
  | "source.database"
  | "source.storage"
  | "target.lightsail"
  | "target.rds"
  | "target.s3"
  | "target.cloudfront"
  | "target.host"
  | "dns"
  | "pages"
  | "replication"
  | "cost";

const REF_SECTIONS: Record<ValueRefName, SectionPath> = {
  "target.lightsail.staticIp": "target.lightsail",
  "target.rds.endpoint": "target.rds",
  "target.rds.url": "target.rds",
  "target.s3.bucket": "target.s3",
  "target.cloudfront.domain": "target.cloudfront",
  "target.cloudfront.url": "target.cloudfront",
  "source.app.url": "source.app",
};

type Rec = Record<string, unknown>;
const isRec = (v: unknown): v is Rec => typeof v === "object" && v !== null && !Array.isArray(v);
const at = (v: unknown, ...keys: string[]): unknown =>
  keys.reduce<unknown>((o, k) => (isRec(o) ? o[k] : undefined), v);
const hasSection = (file: unknown, path: SectionPath): boolean => isRec(at(file, ...path.split(".")));
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/**
 * Steps whose type needs a section the file lacks. Each step type declares its sections
 * (`configSections` in its `defineStep`); src/jobs/catalogue.ts gathers them as STEP_SECTIONS,
 * which `loadMigrationFile` passes here as `stepSections`.
 */
export function missingStepSections(
  file: unknown,
  stepSections: Readonly<Record<string, readonly SectionPath[]>>,
): Array<{ path: Array<string | number>; message: string }> {
  const out: Array<{ path: Array<string | number>; message: string }> = [];
  arr(at(file, "runbook", "phases")).forEach((phase, p) => {
    arr(at(phase, "steps")).forEach((step, s) => {
      const uses = at(step, "uses");
      if (typeof uses !== "string") return;
      for (const section of stepSections[uses] ?? []) {
        if (!hasSection(file, section)) {
          out.push({
            path: ["runbook", "phases", p, "steps", s, "uses"],
            message: `step type \`${uses}\` needs the \`${section}\` section, which is missing — add it (migration.example.yml has one) or remove the step`,
          });
        }
      }
    });
  });
  return out;
}

/**
 * Checks across sections. Runs even when other parts of the file are invalid (so one report
 * holds everything), hence it reads the value defensively.
 */
function crossCheck(file: unknown, ctx: z.RefinementCtx): void {
  const issue = (path: PropertyKey[], message: string) => ctx.addIssue({ code: "custom", path, message });

  // Ids: unique across phases and steps, because commands name either.
  const ids = new Map<string, string>();
  const claim = (id: unknown, where: string, path: PropertyKey[]) => {
    if (typeof id !== "string") return;
    const first = ids.get(id);
    if (first !== undefined) {
      issue(
        path,
        `\`${id}\` is already used by ${first} — ids must be unique across all phases and steps (commands name them); rename one`,
      );
    } else ids.set(id, where);
  };
  arr(at(file, "runbook", "phases")).forEach((phase, p) => {
    claim(at(phase, "id"), `runbook.phases[${p}]`, ["runbook", "phases", p, "id"]);
    arr(at(phase, "steps")).forEach((step, s) => {
      claim(at(step, "id"), `runbook.phases[${p}].steps[${s}]`, ["runbook", "phases", p, "steps", s, "id"]);
    });
  });

  // { ref: … } values need the section that provides them.
  const refs: Array<[unknown, PropertyKey[]]> = [];
  arr(at(file, "dns", "records")).forEach((r, i) => {
    refs.push([at(r, "to", "ref"), ["dns", "records", i, "to", "ref"]]);
  });
  const pagesEnv = at(file, "pages", "env");
  if (isRec(pagesEnv))
    for (const [k, v] of Object.entries(pagesEnv))
      refs.push([at(v, "to", "ref"), ["pages", "env", k, "to", "ref"]]);
  const vars = at(file, "target", "host", "appEnv", "vars");
  if (isRec(vars))
    for (const [k, v] of Object.entries(vars))
      refs.push([at(v, "ref"), ["target", "host", "appEnv", "vars", k, "ref"]]);
  for (const [ref, path] of refs) {
    if (typeof ref === "string" && ref in REF_SECTIONS) {
      const section = REF_SECTIONS[ref as ValueRefName];
      if (!hasSection(file, section))
        issue(
          path,
          `\`${ref}\` comes from the \`${section}\` section, which is missing — add it, or write the value itself`,
        );
    }
  }

  // The database lets the Lightsail static IP in: there must be one.
  if (
    at(file, "target", "rds", "ingress", "fromLightsailStaticIp") !== false &&
    hasSection(file, "target.rds")
  ) {
    if (!hasSection(file, "target.lightsail")) {
      issue(
        ["target", "rds", "ingress", "fromLightsailStaticIp"],
        "allows the Lightsail static IP, but target.lightsail is missing — add target.lightsail, or set this to false and list extraCidrs",
      );
    }
  }

  // Cutover reaches the host over SSH: the firewall must let it.
  const firewall = at(file, "target", "lightsail", "firewall");
  if (hasSection(file, "target.host") && Array.isArray(firewall)) {
    const sshPort = at(file, "target", "host", "sshPort") ?? 22;
    const open = firewall.some((rule) => {
      const from = at(rule, "port");
      const to = at(rule, "toPort") ?? from;
      return (
        typeof from === "number" &&
        typeof to === "number" &&
        typeof sshPort === "number" &&
        from <= sshPort &&
        sshPort <= to
      );
    });
    if (!open) {
      issue(
        ["target", "lightsail", "firewall"],
        `does not open the SSH port ${String(sshPort)} that target.host uses — add { port: ${String(sshPort)} } (with cidrs to limit who may connect)`,
      );
    }
  }

  // Two-person rule: someone other than the operator must be able to approve.
  const operators = arr(at(file, "access", "operators")).filter((v) => typeof v === "string");
  const approvers = arr(at(file, "access", "approvers")).filter((v) => typeof v === "string");
  const allPeople = [...operators, ...approvers].every((v) => !(v as string).startsWith("S"));
  if (allPeople && approvers.length > 0 && operators.length > 0) {
    const people = new Set([...operators, ...approvers]);
    if (people.size === 1) {
      issue(
        ["access", "approvers"],
        "holds only the one operator — a cutover needs a second person's approval; add another approver (or a user group, S…)",
      );
    }
  }
}

export const MigrationFileSchema = z
  .strictObject({
    version: z.literal(1),
    project: z.string().min(1, "is empty — name the project, e.g. gogojap"),
    /** the environment this file migrates; one mutating run per environment at a time */
    environment: z.string().min(1).default("production"),
    /** how times are shown to people */
    timezone: timeZone.default("UTC"),
    slack: z.strictObject({ channel: slackChannel }),
    access: AccessSchema,
    engine: EngineSchema,
    source: SourceSchema.optional(),
    target: TargetSchema.optional(),
    dns: DnsSchema.optional(),
    pages: PagesSchema.optional(),
    replication: ReplicationSchema.optional(),
    cutover: CutoverSchema,
    verification: VerificationSchema,
    kpis: KpiSchema,
    cost: CostSchema.optional(),
    digest: DigestSchema,
    runbook: z.strictObject({
      phases: z.array(PhaseSchema).min(1, "is empty — list at least one phase with its steps"),
    }),
  })
  .superRefine(crossCheck, { when: () => true });

export type MigrationFile = z.infer<typeof MigrationFileSchema>;
export type PhaseConfig = z.infer<typeof PhaseSchema>;
export type StepConfig = z.infer<typeof StepSchema>;
export type AccessConfig = z.infer<typeof AccessSchema>;
export type SourceConfig = z.infer<typeof SourceSchema>;
export type TargetConfig = z.infer<typeof TargetSchema>;
export type LightsailConfig = z.infer<typeof LightsailSchema>;
export type RdsConfig = z.infer<typeof RdsSchema>;
export type S3Config = z.infer<typeof S3Schema>;
export type CloudFrontConfig = z.infer<typeof CloudFrontSchema>;
export type HostConfig = z.infer<typeof HostSchema>;
export type DnsConfig = z.infer<typeof DnsSchema>;
export type DnsRecordConfig = z.infer<typeof DnsRecordSchema>;
export type PagesConfig = z.infer<typeof PagesSchema>;
export type CutoverConfig = z.infer<typeof CutoverSchema>;
export type ReplicationConfig = z.infer<typeof ReplicationSchema>;
export type VerificationConfig = z.infer<typeof VerificationSchema>;
export type FunctionalCheck = z.infer<typeof FunctionalCheckSchema>;
export type KpiConfig = z.infer<typeof KpiSchema>;
export type CostConfig = z.infer<typeof CostSchema>;
export type DigestConfig = z.infer<typeof DigestSchema>;

interface SectionTypes {
  "source.app": z.infer<typeof SourceAppSchema>;
  "source.database": z.infer<typeof SourceDatabaseSchema>;
  "source.storage": z.infer<typeof SourceStorageSchema>;
  "target.lightsail": LightsailConfig;
  "target.rds": RdsConfig;
  "target.s3": S3Config;
  "target.cloudfront": CloudFrontConfig;
  "target.host": HostConfig;
  dns: DnsConfig;
  pages: PagesConfig;
  replication: ReplicationConfig;
  cost: CostConfig;
}

/**
 * Reads an optional section, throwing a ConfigInvalid error that says what to add when it is absent.
 * @example const rds = requireSection(file, "target.rds");
 */
export function requireSection<P extends SectionPath>(file: MigrationFile, path: P): SectionTypes[P] {
  const value = at(file, ...path.split("."));
  if (!isRec(value)) {
    throw new CutoverError(
      ErrorCode.ConfigInvalid,
      `${path}: missing from the migration file — add the \`${path}\` section (migration.example.yml has one)`,
      {
        details: {
          problems: [
            `${path}: missing from the migration file — add the \`${path}\` section (migration.example.yml has one)`,
          ],
        },
      },
    );
  }
  return value as unknown as SectionTypes[P];
}
