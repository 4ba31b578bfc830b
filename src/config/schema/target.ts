/**
 * What is built on AWS: the account, the Lightsail instance, RDS, S3 and CloudFront.
 */
import { z } from "zod";
import { didYouMean } from "../../text/suggest.js";
import { msg, repeats, show } from "./helpers.js";
import { HostSchema } from "./host.js";
import { awsRegion, cidr, envVarName, hostname, lightsailName, port, seconds, tags } from "./scalars.js";

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
    for (const { item: rule, index: i, first } of repeats(l.firewall, (r) => `${r.protocol}/${r.port}`))
      ctx.addIssue({
        code: "custom",
        path: ["firewall", i, "port"],
        message: `port ${rule.port}/${rule.protocol} is listed twice (also firewall[${first}]) — merge the two rules`,
      });
    l.firewall.forEach((rule, i) => {
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
    /**
     * an origin group: S3 primary, the old bucket's public URL (source.storage.publicUrl)
     * secondary on 403/404, so an upload not yet copied is served from the old bucket until the
     * post-switch sync and verify; s3.bucket with `originFailover: false` takes it off again
     */
    originFailover: z.boolean().default(false),
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

export const TargetSchema = z.strictObject({
  aws: AwsSchema,
  lightsail: LightsailSchema.optional(),
  rds: RdsSchema.optional(),
  s3: S3Schema.optional(),
  cloudfront: CloudFrontSchema.optional(),
  host: HostSchema.optional(),
});
