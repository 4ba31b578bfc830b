import { z } from "zod";
import { type RateLimitWait, sameRecordContent } from "../../cloud/cloudflare.js";
import { probeOnce } from "../../cloud/probe.js";
import { describeError, ErrorCode, isCutoverError } from "../../errors.js";
import { lastUsedApproval } from "../../store/approvals.js";
import type { Progress, TypedCheckpoints } from "../define-step.js";
import {
  type CutoverDeps,
  cloudflareOf,
  configuredZone,
  type DnsSnapshot,
  healthTargets,
  latestSnapshot,
} from "./service.js";
import type { CutoverChange } from "./types.js";

export interface ApplyContext {
  signal: AbortSignal;
  checkpoint: TypedCheckpoints<typeof APPLY_CHECKPOINTS>;
  progress(p: Progress): void;
  /** bound on waiting for the Pages build */
  deploymentTimeoutMs?: number;
}

const recordKey = (r: { name: string; type: string }) => `record:${r.type}:${r.name}` as const;

/** What `applyChange` keeps, for the step that calls it to declare: each record switched, the Pages variables set, the deployment started. */
export const APPLY_CHECKPOINTS = {
  "record:*": z.object({ at: z.string(), from: z.string().nullable() }),
  "pages:vars": z.literal(true),
  "pages:deployment": z.string(),
};

/**
 * Carries out an approved change: the DNS records first, then the Pages variables and a new
 * deployment. Every finished part is checkpointed, so a rerun after a crash does only the rest.
 */
export async function applyChange(
  deps: CutoverDeps,
  change: CutoverChange,
  ctx: ApplyContext,
): Promise<{ deploymentId: string | null }> {
  const { dns, pages } = cloudflareOf(deps);
  const total = change.records.length + (change.pages ? 2 : 0);
  let done = 0;
  // A rate-limit wait is said in the run's message: what is waited for, and until when.
  const opts = {
    signal: ctx.signal,
    onWait: (w: RateLimitWait) =>
      ctx.progress({
        done,
        total,
        unit: "changes",
        message: `Cloudflare's rate limit: waiting ${Math.ceil(w.waitMs / 1000)} s, until ${w.until.toISOString().slice(11, 19)} UTC, before ${w.what}`,
      }),
  };
  // the file's zone id when given, as the plan and the rollback do: then no Zone Read is needed
  const dnsConfig = deps.file.dns;
  const zone =
    dnsConfig && dnsConfig.zone === change.zone
      ? await configuredZone(deps, dnsConfig, opts)
      : await dns.findZone(change.zone, opts);
  for (const r of change.records) {
    if (!(await ctx.checkpoint.get(recordKey(r)))) {
      const current = await dns.getRecord(zone, r.name, r.type, opts);
      const ttl = r.proxied ? 1 : r.ttl;
      const after = current
        ? await dns.updateRecord(current, { content: r.to, ttl, proxied: r.proxied }, opts)
        : await dns.createRecord(
            zone,
            { name: r.name, type: r.type, content: r.to, ttl, proxied: r.proxied },
            opts,
          );
      if (!sameRecordContent(r.type, after.content, r.to))
        throw new Error(`${r.type} ${r.name} reads back as ${after.content}, not ${r.to}`);
      await ctx.checkpoint.set(recordKey(r), { at: new Date().toISOString(), from: r.from });
    }
    ctx.progress({ done: ++done, total, unit: "changes", message: `${r.type} ${r.name} → ${r.to}` });
  }
  let deploymentId: string | null = null;
  if (change.pages) {
    const p = change.pages;
    const environment = p.environment as "production" | "preview";
    if (!(await ctx.checkpoint.get("pages:vars"))) {
      await pages.setEnvVars(p.project, Object.fromEntries(p.vars.map((v) => [v.name, v.to])), {
        ...opts,
        environment,
      });
      await ctx.checkpoint.set("pages:vars", true);
    }
    ctx.progress({
      done: ++done,
      total,
      unit: "changes",
      message: `Pages ${p.project}: ${p.vars.map((v) => v.name).join(", ")}`,
    });
    if (p.redeploy) {
      deploymentId = (await ctx.checkpoint.get("pages:deployment")) ?? null;
      if (deploymentId) {
        // A rerun: the build the last attempt started may have died meanwhile (failed, or
        // skipped because a newer queued build superseded it). Waiting on it again would fail
        // again; start a new one. A build still queued or running is waited on.
        const last = await pages.getDeployment(p.project, deploymentId, opts).catch((err: unknown) => {
          if (isCutoverError(err, ErrorCode.CloudflareNotFound)) return undefined;
          throw err;
        });
        if (!last || (last.done && !last.succeeded)) {
          ctx.progress({
            done,
            total,
            unit: "changes",
            message: `Pages deployment ${deploymentId} ${last ? `ended ${last.status} at ${last.stage}` : "is gone"}: starting a new one`,
          });
          deploymentId = null;
        }
      }
      // A build skipped while queued (superseded) is replaced by a new one, twice at most.
      for (let restarts = 0; ; restarts++) {
        if (!deploymentId) {
          deploymentId = (await pages.triggerDeployment(p.project, opts)).id;
          await ctx.checkpoint.set("pages:deployment", deploymentId);
        }
        try {
          await pages.waitForDeployment(p.project, deploymentId, {
            ...opts,
            // a Free plan builds one at a time: the wait includes the queue
            timeoutMs: ctx.deploymentTimeoutMs ?? 20 * 60_000,
            pollMs: 1_000,
            maxPollMs: 15_000,
            onProgress: (d) =>
              ctx.progress({
                done,
                total,
                unit: "changes",
                message: `Pages deployment ${d.stage}: ${d.status}${d.stage === "queued" ? " (waiting for the account's build slot)" : ""}`,
              }),
          });
          break;
        } catch (err) {
          const skipped = isCutoverError(err, ErrorCode.DeployFailed) && err.details.status === "skipped";
          if (!skipped || restarts >= 2) throw err;
          deploymentId = null;
        }
      }
    }
    ctx.progress({ done: ++done, total, unit: "changes", message: "front end redeployed" });
  }
  return { deploymentId };
}

/**
 * What rollback puts back: the values observed before the cutover (its record, else the snapshot
 * in the audit trail), else the values the migration file names as the old ones. Never a value a
 * person typed: nothing one person submits can point production somewhere new.
 */
export interface RollbackTargets {
  source: "cutover record" | "audit trail" | "migration file";
  records: Array<{ name: string; type: string; content: string | null; ttl: number; proxied: boolean }>;
  pages: { project: string; environment: string; vars: Record<string, string | null> } | null;
}

/**
 * Where the rollback values come from: the approved change that was carried out (its `from`
 * values and the TTL before the migration), else the snapshot written to the audit trail when
 * the TTL was lowered, else the migration file's `from` values (a record without one was created
 * by the cutover, so the rollback removes it). Undefined only when the file has no `dns` section.
 */
export async function findRollbackTargets(deps: CutoverDeps): Promise<RollbackTargets | undefined> {
  const used = await lastUsedApproval(deps.db, "dns.cutover", deps.file.environment);
  const snapshot: DnsSnapshot | undefined = await latestSnapshot(deps.db, deps.file);
  if (used) {
    const change = used.change as unknown as CutoverChange;
    return {
      source: "cutover record",
      records: change.records.map((r) => {
        const snap = snapshot?.records.find((s) => s.name === r.name && s.type === r.type);
        return {
          name: r.name,
          type: r.type,
          content: r.from,
          ttl: r.originalTtl,
          proxied: snap?.proxied ?? r.proxied,
        };
      }),
      pages: change.pages
        ? {
            project: change.pages.project,
            environment: change.pages.environment,
            vars: Object.fromEntries(change.pages.vars.map((v) => [v.name, v.from])),
          }
        : null,
    };
  }
  if (snapshot) return { source: "audit trail", records: snapshot.records, pages: snapshot.pages };
  return fileRollbackTargets(deps.file);
}

/** The old values as the migration file names them: the last resort, reviewed with the file. */
export function fileRollbackTargets(file: CutoverDeps["file"]): RollbackTargets | undefined {
  if (!file.dns) return undefined;
  return {
    source: "migration file",
    records: file.dns.records.map((r) => ({
      name: r.name,
      type: r.type,
      content: r.from ?? null,
      ttl: r.ttl ?? 300,
      proxied: r.proxied,
    })),
    pages: file.pages
      ? {
          project: file.pages.project,
          environment: file.pages.environment,
          vars: Object.fromEntries(Object.entries(file.pages.env).map(([n, v]) => [n, v.from])),
        }
      : null,
  };
}

export interface RollbackItem {
  what: string;
  ok: boolean;
  detail: string;
  /** where the value put back came from (the targets' source), for a record or the variables */
  from?: RollbackTargets["source"];
}

export interface RollbackReport {
  items: RollbackItem[];
  healthy: boolean | null;
  healthDetail: string;
  ms: number;
  complete: boolean;
}

/**
 * Puts DNS and the front end back. Each part is tried even when an earlier one failed, and
 * the report says exactly what is restored and what is not; running it again finishes the rest
 * (a part already as it should be is left alone).
 */
export async function rollback(
  deps: CutoverDeps,
  targets: RollbackTargets,
  signal: AbortSignal,
  /** told before a wait for Cloudflare's rate limit (the wait is capped and ends with `signal`) */
  onWait?: (wait: RateLimitWait) => void,
): Promise<RollbackReport> {
  const started = performance.now();
  const { dns, pages } = cloudflareOf(deps);
  // The caller's signal bounds the whole rollback: a longer rate-limit wait is refused at once,
  // so the report says until when instead of the rollback dying in the middle of the wait.
  const opts = { signal, maxRateLimitWaitMs: 60_000, ...(onWait ? { onWait } : {}) };
  const items: RollbackItem[] = [];
  const dnsConfig = deps.file.dns;
  let zone: Awaited<ReturnType<typeof dns.findZone>> | undefined;
  try {
    zone = dnsConfig ? await configuredZone(deps, dnsConfig, opts) : await dns.findZone("", opts);
  } catch (err) {
    items.push({ what: `zone ${dnsConfig?.zone}`, ok: false, detail: describeError(err) });
  }
  for (const r of targets.records) {
    const what = `${r.type} ${r.name}`;
    if (!zone) {
      items.push({ what, ok: false, detail: "not restored: the zone could not be read" });
      continue;
    }
    try {
      const current = await dns.getRecord(zone, r.name, r.type, opts);
      const ttl = r.proxied ? 1 : r.ttl;
      if (r.content === null) {
        if (current) await dns.deleteRecord(current, opts);
        items.push({
          what,
          ok: true,
          detail: current ? "removed (it did not exist before the cutover)" : "already absent",
        });
      } else if (
        current &&
        sameRecordContent(r.type, current.content, r.content) &&
        current.ttl === ttl &&
        current.proxied === r.proxied
      ) {
        items.push({ what, ok: true, detail: `already ${r.content} (TTL ${r.ttl} s)` });
      } else {
        const after = current
          ? await dns.updateRecord(current, { content: r.content, ttl, proxied: r.proxied }, opts)
          : await dns.createRecord(
              zone,
              { name: r.name, type: r.type as "A", content: r.content, ttl, proxied: r.proxied },
              opts,
            );
        items.push({
          what,
          ok: sameRecordContent(r.type, after.content, r.content),
          detail: `${current?.content ?? "(none)"} → ${after.content} (TTL ${r.ttl} s)`,
        });
      }
    } catch (err) {
      items.push({ what, ok: false, detail: `not restored: ${describeError(err)}` });
    }
  }
  if (targets.pages) {
    const p = targets.pages;
    const environment = p.environment as "production" | "preview";
    let varsOk = false;
    try {
      const now = await pages.getEnvVars(p.project, { ...opts, environment });
      const differs = Object.entries(p.vars).filter(([k, v]) => (now[k]?.value ?? null) !== v);
      if (differs.length)
        await pages.setEnvVars(p.project, Object.fromEntries(differs), { ...opts, environment });
      varsOk = true;
      items.push({
        what: `Pages ${p.project} variables`,
        ok: true,
        detail: differs.length ? `restored ${differs.map(([k]) => k).join(", ")}` : "already as before",
      });
    } catch (err) {
      items.push({
        what: `Pages ${p.project} variables`,
        ok: false,
        detail: `not restored: ${describeError(err)}`,
      });
    }
    if (varsOk) {
      try {
        const d = await pages.triggerDeployment(p.project, opts);
        items.push({
          what: `Pages ${p.project} deployment`,
          ok: true,
          detail: `redeploy started (${d.id}); it builds with the restored variables`,
        });
      } catch (err) {
        items.push({
          what: `Pages ${p.project} deployment`,
          ok: false,
          detail: `not started: ${describeError(err)}`,
        });
      }
    } else {
      items.push({
        what: `Pages ${p.project} deployment`,
        ok: false,
        detail: "not started: the variables are not restored yet",
      });
    }
  }
  const urls = await healthTargets(deps);
  let healthy: boolean | null = null;
  let healthDetail = "no old app URL in the migration file (source.app): check it by hand";
  if (urls.old) {
    const r = await probeOnce(urls.old, { timeoutMs: 5_000, signal });
    healthy = r.ok;
    healthDetail = r.ok
      ? `${urls.old} answered ${r.status} in ${Math.round(r.ms)} ms`
      : `${urls.old}: ${r.error}`;
  }
  // every value put back says where it came from, in the report and the channel
  const valued = new Set([
    ...targets.records.map((r) => `${r.type} ${r.name}`),
    ...(targets.pages ? [`Pages ${targets.pages.project} variables`] : []),
  ]);
  for (const i of items) if (valued.has(i.what)) i.from = targets.source;
  const complete = items.every((i) => i.ok);
  return { items, healthy, healthDetail, ms: performance.now() - started, complete };
}
