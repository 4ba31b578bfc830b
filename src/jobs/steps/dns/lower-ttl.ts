import { z } from "zod";
import { type DnsConfig, requireSection } from "../../../config/schema.js";
import { CutoverError, ErrorCode } from "../../../errors.js";
import {
  cloudflareOf,
  configuredZone,
  cutoverDepsOf,
  type DnsSnapshot,
  effectiveTtlSeconds,
  readLive,
  recordSnapshot,
} from "../../cutover/service.js";
import type { StepDefinition, StepDeps } from "../../define-step.js";
import { defineStep } from "../../define-step.js";

/** Takes no options: what it switches comes from the file's \`dns\` and \`pages\` sections. */
const NoInput = z.any().transform((): Record<string, never> => ({}));

export const dnsLowerTtl = defineStep({
  type: "dns.lower-ttl",
  description: "lower the TTL of the records to switch and remember the old values",
  input: NoInput,
  configSections: ["dns"],
  // a handful of Cloudflare calls; more than a few minutes means Cloudflare is not answering
  timeLimit: 120,
  mutating: true,
  checkpoints: { snapshot: z.custom<DnsSnapshot>() },
});

/**
 * `dns.lower-ttl`: days or hours ahead of the cutover, lowers the TTL of the records to switch
 * (dns.cutoverTtl, 60 s by default), after recording their values and TTLs as read from
 * Cloudflare, and the Pages variables, in the run and in the audit trail: those are what
 * /rollback puts back. The cutover may start once the old TTL has elapsed.
 */
export function createDnsLowerTtlStep(stepDeps: StepDeps): StepDefinition<Record<string, never>> {
  const deps = cutoverDepsOf(stepDeps, dnsLowerTtl.type);
  return dnsLowerTtl.implement({
    async plan(_input, ctx) {
      const dns = requireSection(deps.file, "dns");
      const live = await readLive(deps, ctx.signal);
      return {
        summary: `would lower ${live.records.length} record(s) to TTL ${dns.cutoverTtl} s`,
        changes: live.records.map((r) =>
          r.content === null && isNew(dns, r)
            ? {
                action: "none" as const,
                target: `${r.type} ${r.name}`,
                detail: `new: the cutover creates it, with TTL ${dns.cutoverTtl} s`,
              }
            : {
                action: r.ttl === dns.cutoverTtl ? ("none" as const) : ("update" as const),
                target: `${r.type} ${r.name}`,
                detail: `${r.content ?? "(missing)"} · TTL ${r.ttl} s → ${dns.cutoverTtl} s`,
              },
        ),
      };
    },
    async run(_input, ctx) {
      const dnsConfig = requireSection(deps.file, "dns");
      const { dns } = cloudflareOf(deps);
      // The snapshot is taken once, before anything changes; a rerun keeps the first one.
      let snapshot = await ctx.checkpoint.get("snapshot");
      if (!snapshot) {
        const live = await readLive(deps, ctx.signal);
        // A record without `from` in the file is new: created by the cutover, nothing to lower now.
        const missing = live.records.filter((r) => r.content === null && !isNew(dnsConfig, r));
        if (missing.length) {
          throw new CutoverError(
            ErrorCode.CloudflareNotFound,
            `No ${missing.map((r) => `${r.type} ${r.name}`).join(", ")} in zone ${dnsConfig.zone}.`,
            {
              hint: "Check the record names and types under `dns.records` in the migration file.",
            },
          );
        }
        snapshot = { ...live, loweredAt: null };
        await ctx.checkpoint.set("snapshot", snapshot);
        await recordSnapshot(deps.db, deps.file, snapshot, ctx.run.requestedBy, ctx.run.id);
      }
      const zone = await configuredZone(deps, dnsConfig, { signal: ctx.signal });
      let changed = 0;
      for (const r of dnsConfig.records) {
        const rec = await dns.getRecord(zone, r.name, r.type, { signal: ctx.signal });
        if (!rec && r.from === undefined) continue; // new: the cutover creates it with the cutover TTL
        if (!rec)
          throw new CutoverError(
            ErrorCode.CloudflareNotFound,
            `${r.type} ${r.name} disappeared from zone ${dnsConfig.zone}.`,
          );
        if (rec.proxied) continue; // a proxied record's TTL is Cloudflare's own (automatic)
        if (rec.ttl !== dnsConfig.cutoverTtl) {
          await dns.updateRecord(rec, { ttl: dnsConfig.cutoverTtl }, { signal: ctx.signal });
          changed++;
        }
        ctx.progress({
          done: changed,
          total: dnsConfig.records.length,
          unit: "records",
          message: `${r.name} TTL ${dnsConfig.cutoverTtl} s`,
        });
      }
      const lowered: DnsSnapshot = { ...snapshot, loweredAt: snapshot.loweredAt ?? deps.now().toISOString() };
      await ctx.checkpoint.set("snapshot", lowered);
      await recordSnapshot(deps.db, deps.file, lowered, ctx.run.requestedBy, ctx.run.id);
      const maxTtl = Math.max(...snapshot.records.map(effectiveTtlSeconds));
      return {
        summary: `${changed} record(s) lowered to TTL ${dnsConfig.cutoverTtl} s; the cutover may start ${Math.round(maxTtl / 60)} min after ${lowered.loweredAt}`,
        figures: { lowered: changed, oldTtlSeconds: maxTtl, loweredAt: lowered.loweredAt! },
      };
    },
    async verify(_input, ctx) {
      const dnsConfig = requireSection(deps.file, "dns");
      const live = await readLive(deps, ctx.signal);
      const wrong = live.records.filter(
        (r) => !r.proxied && r.ttl !== dnsConfig.cutoverTtl && !(r.content === null && isNew(dnsConfig, r)),
      );
      return {
        ok: wrong.length === 0,
        summary: wrong.length
          ? `still high: ${wrong.map((r) => `${r.name} (${r.ttl} s)`).join(", ")}`
          : `every record at TTL ${dnsConfig.cutoverTtl} s`,
      };
    },
    async undo(_input, ctx) {
      const snapshot = await ctx.checkpoint.get("snapshot");
      if (!snapshot) return;
      const dnsConfig = requireSection(deps.file, "dns");
      const { dns } = cloudflareOf(deps);
      // the file's zone id when given: a token without Zone → Zone → Read must be able to undo too
      const zone = await configuredZone(deps, dnsConfig, { signal: ctx.signal });
      for (const r of snapshot.records) {
        const rec = await dns.getRecord(zone, r.name, r.type, { signal: ctx.signal });
        if (rec && !rec.proxied && rec.ttl !== r.ttl)
          await dns.updateRecord(rec, { ttl: r.ttl }, { signal: ctx.signal });
      }
    },
  });
}

/** Whether the file names `rec` as a new record (no `from`): it does not exist before the cutover. */
function isNew(dns: DnsConfig, rec: { name: string; type: string }): boolean {
  const r = dns.records.find((x) => x.name === rec.name && x.type === rec.type);
  return r !== undefined && r.from === undefined;
}
