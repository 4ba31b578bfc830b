/**
 * Scalar types every section uses (names, regions, URLs, ports, durations, Slack ids, step ids) and
 * the `{ ref: … }` values one section takes from another.
 */
import { z } from "zod";
import { didYouMean } from "../../text/suggest.js";
import { isCidr, isHostname, isTimeZone, msg, show, timeZoneNames } from "./helpers.js";

export const ENV_NAME_RE = /^[A-Z_][A-Z0-9_]*$/;

/** The NAME of an environment variable (never its value), e.g. `NEON_DATABASE_URL`. */
export const envVarName = z
  .string()
  .regex(
    ENV_NAME_RE,
    "is not an environment variable name — write the NAME of the variable that holds the value " +
      "(capital letters, digits and _, e.g. NEON_DATABASE_URL) and put the value itself in Cutover's environment",
  );

/** A variable's name as the key of a mapping of variables (their values follow); `example` fits the section. */
export const envVarKey = (example: string) =>
  z.string().regex(
    ENV_NAME_RE,
    msg((v) => `${v} is not an environment variable name`, `use capitals, digits and _, e.g. ${example}`),
  );

export const awsRegion = z.string().regex(
  /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/,
  msg((v) => `${v} is not an AWS region`, "write the region code, e.g. ap-southeast-1 (Singapore)"),
);

// Any host, an IP address or localhost included: rehearsals and tests point at local stand-ins.
export const httpUrl = z.url({
  protocol: /^https?$/,
  ...msg((v) => `${v} is not an http(s) URL`, "write a full URL, e.g. https://api.example.com"),
});

/** An http(s) URL whose host may also be an IP address or localhost (an S3 API endpoint, a stand-in's). */
export const endpointUrl = z.url({
  protocol: /^https?$/,
  ...msg(
    (v) => `${v} is not an http(s) URL`,
    "write a full URL, e.g. https://<account>.r2.cloudflarestorage.com",
  ),
});

export const urlPath = z.string().regex(
  /^\/\S*$/,
  msg((v) => `${v} is not a URL path`, "start it with /, e.g. /health"),
);

export const hostname = z.string().refine(
  isHostname,
  msg((v) => `${v} is not a host name`, "write a lower-case DNS name, e.g. api.example.com"),
);

export const cidr = z.string().refine(
  isCidr,
  msg(
    (v) => `${v} is not a CIDR block`,
    "write an address and prefix length, e.g. 203.0.113.7/32 (one address)",
  ),
);

export const hhmm = z.string().regex(
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

export const port = z
  .number()
  .int("is not a whole number — a port is a whole number between 1 and 65535")
  .min(1, "is not a port — use a number between 1 and 65535")
  .max(65535, "is not a port — use a number between 1 and 65535");

export const percent = z
  .number()
  .min(0, "is below 0 — a percentage is between 0 and 100")
  .max(100, "is above 100 — a percentage is between 0 and 100");

export const seconds = (min: number, max: number) =>
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
export const lightsailName = (what: string, example: string) =>
  z.string().regex(
    /^[A-Za-z0-9_][A-Za-z0-9_-]{0,253}[A-Za-z0-9_]$/,
    msg(
      (v) => `${v} is not a valid ${what}`,
      `Lightsail names take letters, digits, '_' and '-' (no dots), at least two characters, starting and ending with a letter, digit or '_', e.g. ${example}`,
    ),
  );

export const tags = z.record(
  z
    .string()
    .min(1, "is an empty tag key — give each tag a name")
    .max(128, "is longer than 128 characters — shorten the tag key"),
  z.string().max(256, "is longer than 256 characters — shorten the tag value"),
);

export const slackPersonOrGroup = z.string().regex(
  /^[UWS][A-Z0-9]{2,}$/,
  msg(
    (v) => `${v} is not a Slack user or user-group id`,
    "use a member id (U… or W…: profile → ⋮ → Copy member ID) or a user-group id (S…)",
  ),
);

export const slackChannel = z.string().regex(
  /^[CG][A-Z0-9]{2,}$/,
  msg(
    (v) => `${v} is not a Slack channel id`,
    "open the channel, click its name and copy the Channel ID shown at the bottom (C…)",
  ),
);

export const stepId = z.string().regex(
  /^[a-z][a-z0-9-]{0,62}$/,
  msg(
    (v) => `${v} is not a valid id`,
    "use lower-case letters, digits and dashes, starting with a letter, e.g. db-dump",
  ),
);

export const stepType = z.string().regex(
  /^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$/,
  msg((v) => `${v} is not a step type name`, "use a name from the step catalogue, e.g. db.dump"),
);

export const cloudflareId = (what: string) =>
  z.string().regex(
    /^[0-9a-f]{32}$/,
    msg(
      (v) => `${v} is not a Cloudflare ${what}`,
      `copy the 32-character ${what} from the Cloudflare dashboard (Overview page, right column)`,
    ),
  );

/** Literal value or a reference: `{ env: NAME }` takes it from Cutover's environment, `{ ref: … }` from what Cutover provisioned. */
export const EnvRefSchema = z.strictObject({
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

export const refOf = <const R extends readonly [ValueRefName, ...ValueRefName[]]>(allowed: R) =>
  z.strictObject({
    /** a value Cutover knows after provisioning, e.g. target.lightsail.staticIp */
    ref: z.enum(allowed),
  });

export const PUBLIC_REFS = [
  "target.lightsail.staticIp",
  "target.rds.endpoint",
  "target.s3.bucket",
  "target.cloudfront.domain",
  "target.cloudfront.url",
  "source.app.url",
] as const;
export const ALL_REFS = [...PUBLIC_REFS, "target.rds.url"] as const;
