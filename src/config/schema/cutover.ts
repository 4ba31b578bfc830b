/**
 * The switch itself: live replication, the cutover's windows, and the checks that prove the new stack
 * works.
 */

import { z } from "zod";
import { repeats } from "./helpers.js";
import { COMMAND_PLACEHOLDERS, commandWith } from "./host.js";
import { envVarName, hhmm, httpUrl, percent, seconds, stepId, timeZone, urlPath } from "./scalars.js";

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
  /**
   * what the switch verifies while the source is frozen: the rows of the tables replication
   * changed (`changed`, the default: the freeze does not grow with the database), or of every
   * table (`all`). Definitions, sequences and large objects are compared either way.
   */
  switchVerify: z.enum(["changed", "all"]).default("changed"),
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
    for (const { item: c, index: i, first } of repeats(v.functional, (c) => c.id))
      ctx.addIssue({
        code: "custom",
        path: ["functional", i, "id"],
        message: `\`${c.id}\` is already used by functional[${first}] — give each check its own id`,
      });
  })
  .prefault({});
