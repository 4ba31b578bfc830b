/**
 * Cloudflare: the DNS records the cutover flips, and the Pages project.
 */
import { isIP } from "node:net";
import { z } from "zod";
import { isHostname, msg, repeats, show } from "./helpers.js";
import { cloudflareId, envVarKey, envVarName, hostname, PUBLIC_REFS, refOf, seconds } from "./scalars.js";

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
    d.records.forEach((r, i) => {
      if (r.name !== d.zone && !r.name.endsWith(`.${d.zone}`)) {
        ctx.addIssue({
          code: "custom",
          path: ["records", i, "name"],
          message: `\`${r.name}\` is not in zone \`${d.zone}\` — use a name ending in .${d.zone}`,
        });
      }
    });
    for (const { item: r, index: i, first } of repeats(d.records, (r) => `${r.name}/${r.type}`))
      ctx.addIssue({
        code: "custom",
        path: ["records", i, "name"],
        message: `${r.type} ${r.name} is listed twice (also records[${first}]) — keep one`,
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
      envVarKey("NEXT_PUBLIC_API_URL"),
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
