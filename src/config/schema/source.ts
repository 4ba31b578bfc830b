/**
 * Where the migration starts: the app, its database and its storage.
 */
import { z } from "zod";
import { awsRegion, endpointUrl, envVarName, httpUrl, urlPath } from "./scalars.js";

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
