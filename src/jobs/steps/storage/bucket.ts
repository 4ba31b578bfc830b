import type { DistributionConfig } from "@aws-sdk/client-cloudfront";
import type { LifecycleRule } from "@aws-sdk/client-s3";
import { z } from "zod";
import type { CdnAdmin, DistributionInfo } from "../../../cloud/cdn.js";
import type { BucketAdmin, BucketState } from "../../../cloud/s3-bucket.js";
import {
  type CloudFrontConfig,
  MANAGED_CACHE_POLICIES,
  requireSection,
  type S3Config,
} from "../../../config/schema.js";
import { CutoverError, ErrorCode } from "../../../errors.js";
import type { PlannedChange, StepContext, StepDefinition, StepDeps, StepOutcome } from "../../define-step.js";
import { defineStep } from "../../define-step.js";
import { recordProvisioned } from "../../provisioned.js";

const Input = z.strictObject({
  /** overrides target.cloudfront.originFailover: false takes the old bucket out once the post-switch sync and verify are done */
  originFailover: z.boolean().optional(),
});
type Input = z.infer<typeof Input>;

export const s3Bucket = defineStep({
  type: "s3.bucket",
  description: "create or check the S3 bucket, its lifecycle rule and the CloudFront distribution",
  input: Input,
  configSections: ["target.s3"],
  // a new CloudFront distribution takes up to ~15 minutes to deploy
  timeLimit: 2_700,
  mutating: true,
  checkpoints: { distribution: z.object({ id: z.string(), domain: z.string() }) },
});

/** The bucket's REST endpoint CloudFront fetches from. */
export function s3OriginDomain(bucket: string, region: string): string {
  return `${bucket}.s3.${region}.amazonaws.com`;
}

const POLICY_SID = "CutoverCloudFrontRead";

/** The name of the origin access control Cutover creates for a bucket (CloudFront allows 64 characters). */
export function oacName(bucket: string): string {
  return `cutover-${bucket}`.slice(0, 64);
}

function lifecycleRule(r: S3Config["lifecycle"][number]): LifecycleRule {
  return {
    ID: r.id,
    Status: "Enabled",
    Filter: { Prefix: r.prefix },
    ...(r.transitions.length
      ? { Transitions: r.transitions.map((t) => ({ Days: t.afterDays, StorageClass: t.storageClass })) }
      : {}),
    ...(r.expireAfterDays ? { Expiration: { Days: r.expireAfterDays } } : {}),
  };
}

function ruleKey(r: LifecycleRule): string {
  const prefix = r.Filter?.Prefix ?? r.Prefix ?? "";
  const transitions = (r.Transitions ?? [])
    .map((t) => `${t.Days}:${t.StorageClass}`)
    .sort()
    .join(",");
  return JSON.stringify([r.ID, r.Status, prefix, transitions, r.Expiration?.Days ?? null]);
}

function describeRule(r: S3Config["lifecycle"][number]): string {
  const moves = r.transitions.map((t) => `Standard → ${t.storageClass} after ${t.afterDays} days`);
  if (r.expireAfterDays) moves.push(`expire after ${r.expireAfterDays} days`);
  return `${moves.join(", ")}${r.prefix ? ` (keys under ${r.prefix})` : ""}`;
}

/** A JSON string with object keys sorted, for comparing policies. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object")
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  return JSON.stringify(v);
}

function policyStatement(bucket: string, distributionArn: string) {
  return {
    Sid: POLICY_SID,
    Effect: "Allow",
    Principal: { Service: "cloudfront.amazonaws.com" },
    Action: "s3:GetObject",
    Resource: `arn:aws:s3:::${bucket}/*`,
    Condition: { StringEquals: { "AWS:SourceArn": distributionArn } },
  };
}

function cachePolicyId(cf: CloudFrontConfig): string {
  return (MANAGED_CACHE_POLICIES as Record<string, string>)[cf.cachePolicy] ?? cf.cachePolicy;
}

/** The old bucket as CloudFront reaches it: the host and path of its public URL. */
export interface FailoverOrigin {
  domain: string;
  path: string;
}

/** Ids of what origin failover adds to a distribution: the old bucket's origin and the group. */
export function failoverIds(bucket: string): { origin: string; group: string } {
  return { origin: `old-${bucket}`, group: `failover-${bucket}` };
}

/**
 * The old bucket's origin when the distribution should fail over to it (the step's input wins over
 * target.cloudfront.originFailover), or undefined. R2's S3 API needs signed requests CloudFront
 * cannot make, so the old bucket is reached at its public URL.
 */
export function failoverOrigin(
  deps: StepDeps,
  cf: CloudFrontConfig,
  input: { originFailover?: boolean | undefined },
): FailoverOrigin | undefined {
  if (!(input.originFailover ?? cf.originFailover)) return undefined;
  const publicUrl = deps.file.source?.storage?.publicUrl;
  if (!publicUrl)
    throw new CutoverError(
      ErrorCode.BadArgument,
      "Origin failover needs the old bucket's public URL, and source.storage.publicUrl is not set.",
      {
        hint: "Set source.storage.publicUrl to the URL objects are served from today (R2's public bucket URL or its custom domain), or set target.cloudfront.originFailover: false.",
      },
    );
  const u = new URL(publicUrl);
  return { domain: u.host, path: u.pathname.replace(/\/$/, "") };
}

/** The parts of a distribution's configuration Cutover manages, as the migration file says. */
export function desiredDistribution(
  cf: CloudFrontConfig,
  s3: S3Config,
  oacId: string | undefined,
  failover?: FailoverOrigin,
): DistributionConfig {
  const originId = `s3-${s3.bucket}`;
  const ids = failoverIds(s3.bucket);
  const withCert = Boolean(cf.certificate?.arn) && cf.aliases.length > 0;
  return {
    CallerReference: `cutover-${s3.bucket}`,
    Comment: cf.comment ?? `Cutover: ${s3.bucket}`,
    Enabled: true,
    PriceClass: cf.priceClass,
    IsIPV6Enabled: true,
    Origins: {
      Quantity: failover ? 2 : 1,
      Items: [
        {
          Id: originId,
          DomainName: s3OriginDomain(s3.bucket, s3.region),
          OriginPath: "",
          ...(oacId ? { OriginAccessControlId: oacId } : {}),
          S3OriginConfig: { OriginAccessIdentity: "" },
          CustomHeaders: { Quantity: 0 },
        },
        ...(failover
          ? [
              {
                Id: ids.origin,
                DomainName: failover.domain,
                OriginPath: failover.path,
                CustomHeaders: { Quantity: 0 },
                CustomOriginConfig: {
                  HTTPPort: 80,
                  HTTPSPort: 443,
                  OriginProtocolPolicy: "https-only" as const,
                  OriginSslProtocols: { Quantity: 1, Items: ["TLSv1.2" as const] },
                },
              },
            ]
          : []),
      ],
    },
    // CloudFront fails over to the second member for GET and HEAD when the first answers one of
    // these: S3 behind an origin access control answers 403 for a key it lacks, 404 with ListBucket
    OriginGroups: failover
      ? {
          Quantity: 1,
          Items: [
            {
              Id: ids.group,
              FailoverCriteria: { StatusCodes: { Quantity: 2, Items: [403, 404] } },
              Members: { Quantity: 2, Items: [{ OriginId: originId }, { OriginId: ids.origin }] },
            },
          ],
        }
      : { Quantity: 0 },
    DefaultCacheBehavior: {
      TargetOriginId: failover ? ids.group : originId,
      ViewerProtocolPolicy: cf.viewerProtocolPolicy,
      CachePolicyId: cachePolicyId(cf),
      Compress: cf.compress,
      AllowedMethods: {
        Quantity: 2,
        Items: ["GET", "HEAD"],
        CachedMethods: { Quantity: 2, Items: ["GET", "HEAD"] },
      },
    },
    Aliases: withCert ? { Quantity: cf.aliases.length, Items: [...cf.aliases] } : { Quantity: 0 },
    ViewerCertificate: withCert
      ? {
          ACMCertificateArn: cf.certificate!.arn!,
          SSLSupportMethod: "sni-only",
          MinimumProtocolVersion: "TLSv1.2_2021",
        }
      : { CloudFrontDefaultCertificate: true },
  };
}

/**
 * What differs between a distribution's configuration and the desired one, as short phrases. A
 * field the API did not report (moto leaves an origin's OriginAccessControlId out) is not compared.
 */
export function distributionDrift(
  current: DistributionConfig,
  desired: DistributionConfig,
  manageAliases: boolean,
): string[] {
  const out: string[] = [];
  const d = desired.DefaultCacheBehavior!;
  const c = current.DefaultCacheBehavior;
  if (current.Enabled !== true) out.push("enable it");
  if (current.PriceClass !== desired.PriceClass)
    out.push(`price class ${current.PriceClass} → ${desired.PriceClass}`);
  if ((current.Comment ?? "") !== desired.Comment) out.push("comment");
  const want = desired.Origins!.Items![0]!;
  // a behaviour may target an origin group: its first member is the primary origin
  const group = current.OriginGroups?.Items?.find((g) => g.Id === c?.TargetOriginId);
  const primaryId = group?.Members?.Items?.[0]?.OriginId ?? c?.TargetOriginId;
  const origin = current.Origins?.Items?.find((o) => o.Id === primaryId) ?? current.Origins?.Items?.[0];
  const wantGroup = desired.OriginGroups?.Items?.[0];
  const haveFailover = group
    ? current.Origins?.Items?.find((o) => o.Id === group.Members?.Items?.[1]?.OriginId)
    : undefined;
  const wantFailover = desired.Origins!.Items![1];
  if (!wantGroup && group) out.push("origin failover off");
  if (
    wantGroup &&
    (group?.Id !== wantGroup.Id ||
      haveFailover?.DomainName !== wantFailover?.DomainName ||
      (haveFailover?.OriginPath ?? "") !== (wantFailover?.OriginPath ?? "") ||
      [...(group?.FailoverCriteria?.StatusCodes?.Items ?? [])].sort().join(",") !== "403,404")
  )
    out.push(`origin failover to ${wantFailover?.DomainName} on 403/404`);
  if (origin?.DomainName !== want.DomainName)
    out.push(`origin ${origin?.DomainName ?? "(none)"} → ${want.DomainName}`);
  if (
    origin &&
    origin.OriginAccessControlId !== undefined &&
    origin.OriginAccessControlId !== (want.OriginAccessControlId ?? "")
  )
    out.push("origin access control");
  if (c?.ViewerProtocolPolicy !== d.ViewerProtocolPolicy)
    out.push(`viewer protocol ${c?.ViewerProtocolPolicy} → ${d.ViewerProtocolPolicy}`);
  if (c?.CachePolicyId !== d.CachePolicyId) out.push("cache policy");
  if (c?.Compress !== d.Compress) out.push(`compression ${d.Compress ? "on" : "off"}`);
  if (manageAliases) {
    const have = [...(current.Aliases?.Items ?? [])].sort().join(",");
    const wantAliases = [...(desired.Aliases?.Items ?? [])].sort().join(",");
    if (have !== wantAliases) out.push(`aliases ${wantAliases || "(none)"}`);
    if (
      (current.ViewerCertificate?.ACMCertificateArn ?? "") !==
      (desired.ViewerCertificate?.ACMCertificateArn ?? "")
    )
      out.push("certificate");
  }
  return out;
}

/** The current configuration with the managed fields set as desired; everything else kept. */
function mergeDistribution(
  current: DistributionConfig,
  desired: DistributionConfig,
  manageAliases: boolean,
): DistributionConfig {
  const want = desired.Origins!.Items!;
  const ours = new Set([...want.map((o) => o.Id), failoverIds(want[0]!.Id!.replace(/^s3-/, "")).origin]);
  const others = (current.Origins?.Items ?? []).filter((o) => !ours.has(o.Id));
  const items = [...others, ...want];
  const groupId = failoverIds(want[0]!.Id!.replace(/^s3-/, "")).group;
  const groups = [
    ...(current.OriginGroups?.Items ?? []).filter((g) => g.Id !== groupId),
    ...(desired.OriginGroups?.Items ?? []),
  ];
  return {
    ...current,
    Enabled: true,
    PriceClass: desired.PriceClass,
    Comment: desired.Comment ?? "",
    Origins: { Quantity: items.length, Items: items },
    OriginGroups: groups.length ? { Quantity: groups.length, Items: groups } : { Quantity: 0 },
    DefaultCacheBehavior: {
      ...current.DefaultCacheBehavior,
      ...desired.DefaultCacheBehavior!,
    },
    ...(manageAliases ? { Aliases: desired.Aliases, ViewerCertificate: desired.ViewerCertificate } : {}),
  };
}

interface Reconciled {
  changes: PlannedChange[];
  distribution?: DistributionInfo;
  region: string;
}

interface Ports {
  bucket: BucketAdmin;
  cdn: CdnAdmin;
}

/** The bucket and CloudFront ports; shared clients, closed with the process's ports. */
async function withPorts<T>(deps: StepDeps, fn: (p: Ports) => Promise<T>): Promise<T> {
  const ports = deps.ports;
  return fn({ bucket: ports.bucketAdmin(), cdn: ports.cdn() });
}

/**
 * Reads the bucket and the distribution and, for every setting that differs from the migration
 * file, records a change; with `apply` it makes each change as it goes (later ones need the ids
 * of earlier ones: the distribution needs the origin access control, the policy the distribution).
 */
async function reconcile(
  deps: StepDeps,
  ports: Ports,
  ctx: StepContext,
  apply: boolean,
  input: Input = {},
): Promise<Reconciled> {
  const s3 = requireSection(deps.file, "target.s3");
  const cf = deps.file.target?.cloudfront;
  const signal = ctx.signal;
  const changes: PlannedChange[] = [];
  const { bucket, cdn } = ports;
  const name = `bucket ${s3.bucket}`;
  const step = async (change: PlannedChange, act: () => Promise<void>) => {
    changes.push(change);
    if (apply && change.action !== "none" && change.action !== "check") {
      signal.throwIfAborted();
      await act();
      ctx.log.info({ change: `${change.action} ${change.target}` }, "s3.bucket changed");
    }
  };

  let state: BucketState = await bucket.state(signal);
  if (state.exists && state.region && state.region !== s3.region) {
    throw new CutoverError(
      ErrorCode.RegionMismatch,
      `The ${bucket.label} already exists in ${state.region}, but target.s3.region is ${s3.region}.`,
      {
        details: { side: "target", actualRegion: state.region, expectedRegion: s3.region },
        hint: `Set target.s3.region to ${state.region} if this is the right bucket, or choose another bucket name.`,
      },
    );
  }
  const created = !state.exists;
  await step(
    created
      ? { action: "create", target: name, detail: `in ${s3.region}` }
      : { action: "none", target: name, detail: `exists in ${state.region ?? s3.region}` },
    async () => {
      await bucket.create(s3.region, signal);
      state = { exists: true, region: s3.region, lifecycle: [], tags: {} };
    },
  );

  if (s3.blockPublicAccess) {
    const b = state.publicAccessBlock;
    const blocked =
      b?.BlockPublicAcls && b.IgnorePublicAcls && b.BlockPublicPolicy && b.RestrictPublicBuckets;
    await step(
      {
        action: blocked ? "none" : created ? "create" : "update",
        target: "public access block",
        detail: "all public access blocked",
      },
      () => bucket.blockPublicAccess(signal),
    );
  }

  await step(
    state.encryption
      ? {
          action: "none",
          target: "default encryption",
          detail: state.encryption === "AES256" ? "SSE-S3 (AES256)" : state.encryption,
        }
      : { action: created ? "create" : "update", target: "default encryption", detail: "SSE-S3 (AES256)" },
    () => bucket.encryptByDefault(signal),
  );

  const versioned = state.versioning === "Enabled";
  if (s3.versioning !== versioned && (s3.versioning || state.versioning)) {
    await step({ action: "update", target: "versioning", detail: s3.versioning ? "enable" : "suspend" }, () =>
      bucket.setVersioning(s3.versioning, signal),
    );
  }

  if (s3.lifecycle.length > 0) {
    const wanted = s3.lifecycle.map(lifecycleRule);
    const have = new Set(state.lifecycle.map(ruleKey));
    const missing = s3.lifecycle.filter((_r, i) => !have.has(ruleKey(wanted[i]!)));
    for (const r of s3.lifecycle) {
      const isMissing = missing.includes(r);
      await step(
        {
          action: isMissing ? (state.lifecycle.some((x) => x.ID === r.id) ? "update" : "create") : "none",
          target: `lifecycle rule ${r.id}`,
          detail: describeRule(r),
        },
        async () => {
          // One PUT holds every rule: keep rules Cutover does not manage, replace ours.
          if (r !== missing[0]) return;
          const ours = new Set(s3.lifecycle.map((x) => x.id));
          await bucket.setLifecycle(
            [...state.lifecycle.filter((x) => !ours.has(x.ID ?? "")), ...wanted],
            signal,
          );
        },
      );
    }
  }

  const tagDiff = Object.entries(s3.tags).filter(([k, v]) => state.tags[k] !== v);
  if (tagDiff.length > 0) {
    await step(
      { action: "update", target: "tags", detail: tagDiff.map(([k, v]) => `${k}=${v}`).join(", ") },
      () => bucket.setTags({ ...state.tags, ...s3.tags }, signal),
    );
  }

  if (!cf) return { changes, region: s3.region };

  // ── CloudFront ──
  let oacId: string | undefined;
  if (cf.originAccessControl) {
    const oacLabel = `origin access control ${oacName(s3.bucket)}`;
    const found = await cdn.findOriginAccessControl(oacName(s3.bucket), signal);
    oacId = found?.id;
    await step(
      found
        ? { action: "none", target: oacLabel }
        : { action: "create", target: oacLabel, detail: "SigV4, always sign, S3 origin" },
      async () => {
        oacId = (
          await cdn.createOriginAccessControl(oacName(s3.bucket), `Cutover: reads ${s3.bucket}`, signal)
        ).id;
      },
    );
  }

  if (cf.cachePolicy && !(cf.cachePolicy in MANAGED_CACHE_POLICIES)) {
    const ttl = await cdn.cachePolicyDefaultTtl(cf.cachePolicy, signal);
    if (ttl !== undefined && ttl !== cf.defaultTtlSeconds) {
      throw new CutoverError(
        ErrorCode.ResourceConflict,
        `Cache policy ${cf.cachePolicy} has a default TTL of ${ttl} s, but target.cloudfront.defaultTtlSeconds is ${cf.defaultTtlSeconds}.`,
        { hint: "Make the two agree: change the cache policy, or defaultTtlSeconds." },
      );
    }
  }

  const manageAliases = Boolean(cf.certificate?.arn);
  const origin = s3OriginDomain(s3.bucket, s3.region);
  const failover = failoverOrigin(deps, cf, input);
  const desired = desiredDistribution(cf, s3, oacId, failover);
  const what = `${cf.priceClass}, cache policy ${cf.cachePolicy} (default TTL ${cf.defaultTtlSeconds} s), compression ${cf.compress ? "on" : "off"}, ${cf.viewerProtocolPolicy}`;
  let distribution = await cdn.findDistributionByOrigin(origin, signal);
  if (!distribution) {
    await step(
      {
        action: "create",
        target: "CloudFront distribution",
        detail: `origin ${origin}${cf.originAccessControl ? " through the origin access control" : ""}${failover ? `, failing over to ${failover.domain} on 403/404` : ""}; ${what}`,
      },
      async () => {
        distribution = await cdn.createDistribution(desired, signal);
        await ctx.checkpoint.set("distribution", { id: distribution.id, domain: distribution.domain });
      },
    );
  } else {
    const current = await cdn.getDistribution(distribution.id, signal);
    const drift = distributionDrift(current.config, desired, manageAliases);
    const id = distribution.id;
    await step(
      drift.length > 0
        ? {
            action: "update",
            target: `CloudFront distribution ${id} (${distribution.domain})`,
            detail: drift.join("; "),
          }
        : { action: "none", target: `CloudFront distribution ${id} (${distribution.domain})`, detail: what },
      async () => {
        distribution = await cdn.updateDistribution(
          id,
          current.etag,
          mergeDistribution(current.config, desired, manageAliases),
          signal,
        );
      },
    );
  }
  if (cf.aliases.length > 0 && !manageAliases) {
    changes.push({
      action: "check",
      target: `aliases ${cf.aliases.join(", ")}`,
      detail:
        "not attached yet: they need an ACM certificate (certificate.arn) first; the d….cloudfront.net name works meanwhile",
    });
  }

  if (cf.originAccessControl) {
    const statements = state.policy?.Statement ?? [];
    const arn = distribution?.arn;
    const ours = arn ? policyStatement(s3.bucket, arn) : undefined;
    const current = statements.find((s) => s.Sid === POLICY_SID);
    const same = ours && current && canonical(current) === canonical(ours);
    await step(
      same
        ? { action: "none", target: "bucket policy", detail: "CloudFront may read objects; nobody else" }
        : {
            action: current ? "update" : "create",
            target: "bucket policy",
            detail: `allow ${arn ? `distribution ${distribution?.id}` : "the new distribution"} (and only it) to read objects`,
          },
      async () => {
        const arnNow = distribution?.arn;
        if (!arnNow) return;
        const others = statements.filter((s) => s.Sid !== POLICY_SID);
        await bucket.setPolicy(
          { Version: "2012-10-17", Statement: [...others, policyStatement(s3.bucket, arnNow)] },
          signal,
        );
      },
    );
  }
  return { changes, ...(distribution ? { distribution } : {}), region: s3.region };
}

function summarise(changes: PlannedChange[], done: boolean): string {
  const acting = changes.filter((c) => c.action !== "none" && c.action !== "check");
  if (acting.length === 0)
    return "nothing to change: the bucket and the distribution already match the migration file";
  const verb = done ? "" : "would ";
  return `${verb}${acting.map((c) => `${c.action} ${c.target}`).join(", ")}`;
}

/**
 * Reads back the CloudFront domain the `s3.bucket` step stored in an execution's result (the run's
 * `result` JSON): `figures.distributionDomain`.
 */
export function distributionDomainOf(result: unknown): string | undefined {
  const figures = (result as { figures?: Record<string, unknown> } | null | undefined)?.figures;
  const domain = figures?.distributionDomain;
  return typeof domain === "string" && domain ? domain : undefined;
}

/**
 * `s3.bucket`: the target bucket (region, public access blocked, default encryption, the lifecycle
 * rule, tags) and, when `target.cloudfront` is set, a CloudFront distribution in front of it
 * through an origin access control, with the bucket policy letting only that distribution read.
 * Idempotent: a rerun finds everything in place and says so. The distribution's domain is kept for
 * the cutover and the front end (`figures.distributionDomain`, `{ ref: target.cloudfront.domain }`).
 */
export function createS3BucketStep(deps: StepDeps): StepDefinition<Input> {
  return s3Bucket.implement({
    async plan(input, ctx) {
      return withPorts(deps, async (ports) => {
        const { changes } = await reconcile(deps, ports, ctx, false, input);
        return { summary: summarise(changes, false), changes };
      });
    },

    async run(input, ctx): Promise<StepOutcome> {
      return withPorts(deps, async (ports) => {
        const { changes, distribution, region } = await reconcile(deps, ports, ctx, true, input);
        const s3 = requireSection(deps.file, "target.s3");
        const cf = deps.file.target?.cloudfront;
        const figures: Record<string, string | number | boolean> = {
          bucket: s3.bucket,
          region,
          changes: changes.filter((c) => c.action !== "none" && c.action !== "check").length,
        };
        if (distribution) {
          figures.distributionId = distribution.id;
          figures.distributionDomain = distribution.domain;
          figures.distributionArn = distribution.arn;
          await ctx.checkpoint.set("distribution", { id: distribution.id, domain: distribution.domain });
          const alias = cf?.aliases[0];
          await recordProvisioned(deps.dataDir, ctx.run.env, {
            "target.s3.bucket": s3.bucket,
            "target.cloudfront.domain": distribution.domain,
            "target.cloudfront.url": `https://${alias ?? distribution.domain}`,
          });
        } else {
          await recordProvisioned(deps.dataDir, ctx.run.env, { "target.s3.bucket": s3.bucket });
        }
        const summary = summarise(changes, true);
        return {
          summary: distribution ? `${summary}; CDN at ${distribution.domain}` : summary,
          figures,
        };
      });
    },

    async verify(input, ctx) {
      return withPorts(deps, async (ports) => {
        const { changes, distribution } = await reconcile(deps, ports, ctx, false, input);
        const pending = changes.filter((c) => c.action !== "none" && c.action !== "check");
        return {
          ok: pending.length === 0,
          summary:
            pending.length === 0
              ? `bucket, lifecycle, encryption, public access block${distribution ? ` and distribution ${distribution.domain}` : ""} as configured`
              : `still differs: ${pending.map((c) => `${c.target}${c.detail ? ` (${c.detail})` : ""}`).join("; ")}`,
          figures: {
            pending: pending.length,
            ...(distribution ? { distributionDomain: distribution.domain } : {}),
          },
        };
      });
    },

    /**
     * Takes the distribution down (disable, wait for CloudFront, delete) and its origin access
     * control, and deletes the bucket only when it is empty: objects are never deleted here.
     */
    async undo(_input, ctx) {
      await withPorts(deps, async ({ bucket, cdn }) => {
        const s3 = requireSection(deps.file, "target.s3");
        const found = await cdn.findDistributionByOrigin(s3OriginDomain(s3.bucket, s3.region), ctx.signal);
        if (found) {
          const full = await cdn.getDistribution(found.id, ctx.signal);
          if (full.config.CallerReference?.startsWith("cutover-")) {
            ctx.log.info({ id: found.id }, "disabling and deleting the distribution Cutover created");
            await cdn.disableAndDelete(found.id, { signal: ctx.signal });
          } else ctx.log.warn({ id: found.id }, "the distribution was not created by Cutover; left in place");
        }
        const oac = await cdn.findOriginAccessControl(oacName(s3.bucket), ctx.signal);
        if (oac) await cdn.deleteOriginAccessControl(oac.id, ctx.signal);
        const state = await bucket.state(ctx.signal);
        if (!state.exists) return;
        if (await bucket.isEmpty(ctx.signal)) await bucket.deleteBucket(ctx.signal);
        else
          ctx.log.warn(
            { bucket: s3.bucket },
            "the bucket holds objects; left in place (delete it by hand if wanted)",
          );
      });
    },
  });
}
