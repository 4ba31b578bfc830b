import { z } from "zod";
import { CutoverError, ErrorCode } from "../errors.js";
import { AccessSchema, EngineSchema, PhaseSchema, type StepSchema } from "./schema/core.js";
import { at, crossCheck, isRec, type SectionPath } from "./schema/cross-checks.js";
import {
  CutoverSchema,
  type FunctionalCheckSchema,
  ReplicationSchema,
  VerificationSchema,
} from "./schema/cutover.js";
import { type DnsRecordSchema, DnsSchema, PagesSchema } from "./schema/dns.js";
import type { HostSchema } from "./schema/host.js";
import { CostSchema, DigestSchema, KpiSchema } from "./schema/reporting.js";
import { slackChannel, timeZone } from "./schema/scalars.js";
import {
  type SourceAppSchema,
  type SourceDatabaseSchema,
  SourceSchema,
  type SourceStorageSchema,
} from "./schema/source.js";
import {
  type CloudFrontSchema,
  type LightsailSchema,
  type RdsSchema,
  type S3Schema,
  TargetSchema,
} from "./schema/target.js";

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
 * optional; a step whose type needs one (its `configSections`, checked by the loader) makes it required. Use
 * {@link requireSection} to read one with a useful error when it is absent.
 *
 * This file assembles the whole file's schema and re-exports what the rest of Cutover imports;
 * the parts live in ./schema/: helpers.ts (secrets, safe quoting), scalars.ts (the shared field
 * types and `{ ref: … }` values), one file per group of sections (core, source, target, host,
 * dns, cutover, reporting) and cross-checks.ts (rules that span sections).
 */

export { AccessSchema, EngineSchema, PhaseSchema, parseStepDuration, StepSchema } from "./schema/core.js";
export { missingStepSections, type SectionPath } from "./schema/cross-checks.js";
export {
  CutoverSchema,
  FunctionalCheckSchema,
  ReplicationSchema,
  VerificationSchema,
} from "./schema/cutover.js";
export { DnsRecordSchema, DnsSchema, PagesSchema } from "./schema/dns.js";
export { isSecretKeyName, secretValueKind, show } from "./schema/helpers.js";
export {
  COMMAND_PLACEHOLDERS,
  FETCH_PLACEHOLDERS,
  HostSchema,
  SupervisorServiceSchema,
} from "./schema/host.js";
export { CostLineSchema, CostSchema, DigestSchema, KpiSchema } from "./schema/reporting.js";
export { envVarName, timeZone, VALUE_REFS, type ValueRefName } from "./schema/scalars.js";
export { SourceAppSchema, SourceDatabaseSchema, SourceSchema, SourceStorageSchema } from "./schema/source.js";
export {
  AwsSchema,
  CloudFrontSchema,
  FirewallRuleSchema,
  LifecycleRuleSchema,
  LightsailSchema,
  MANAGED_CACHE_POLICIES,
  RdsSchema,
  S3Schema,
  TargetSchema,
} from "./schema/target.js";

// ───────────────────────────── sections and the file ─────────────────────────────

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
  .superRefine((file, ctx) => crossCheck(file, ctx), { when: () => true });

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
