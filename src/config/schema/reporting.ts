/**
 * What Cutover watches and reports after the switch: KPIs, cost and the daily digest.
 */
import { z } from "zod";
import { msg } from "./helpers.js";
import { hhmm, httpUrl, percent, seconds, slackChannel, stepId, timeZone } from "./scalars.js";

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
