import type { KnownBlock } from "@slack/types";
import type { CostReport, CostSummary } from "../cloud/cost-explorer.js";
import { context, esc, header, type Reply, section } from "./blocks.js";

/** "$42.10", or "EUR 42.10" for another currency. */
export function money(amount: number, currency: string): string {
  const fixed = amount.toFixed(2);
  return currency === "USD" ? `${amount < 0 ? "-" : ""}$${fixed.replace("-", "")}` : `${currency} ${fixed}`;
}

function signed(amount: number, currency: string): string {
  return `${amount >= 0 ? "+" : "−"}${money(Math.abs(amount), currency)}`;
}

const STATUS: Record<CostReport["status"], string> = {
  "on-target": "✅ on target",
  "over-target": "⚠️ above the monthly target",
  "over-budget": "🚨 above the budget alert",
};

function monthName(asOf: Date): string {
  return new Intl.DateTimeFormat("en-GB", { month: "long", year: "numeric", timeZone: "UTC" }).format(asOf);
}

/** One line saying cost is unavailable, why, and what to do (the digest uses it as is). */
export function costUnavailableText(s: Extract<CostSummary, { available: false }>): string {
  return `💰 Cost unavailable: ${s.reason}.${s.permission ? ` Missing IAM permission: \`${s.permission}\`.` : ""} ${s.hint}`;
}

/** The cost report as blocks without a header (the digest embeds them). */
export function costBlocks(s: CostSummary): KnownBlock[] {
  if (!s.available) return [section(esc(costUnavailableText(s)))];
  const c = s.currency;
  const forecastText = s.forecast.available
    ? `${money(s.projected.amount, c)}${s.forecast.low !== undefined && s.forecast.high !== undefined ? ` (${money(s.monthToDate + s.forecast.low, c)}–${money(s.monthToDate + s.forecast.high, c)})` : ""}`
    : `~${money(s.projected.amount, c)} _extrapolated: forecast unavailable (${esc(s.forecast.reason)})_`;
  const blocks: KnownBlock[] = [
    {
      type: "section",
      fields: [
        {
          type: "mrkdwn",
          text: `*Month to date*\n${money(s.monthToDate, c)} over ${s.daysElapsed} of ${s.daysInMonth} days`,
        },
        { type: "mrkdwn", text: `*Forecast, month end*\n${forecastText}` },
        {
          type: "mrkdwn",
          text: `*Target / budget alert*\n${money(s.monthlyTarget, c)} / ${money(s.budgetAlert, c)}`,
        },
        {
          type: "mrkdwn",
          text: `*Status*\n${STATUS[s.status]}${s.lastMonth.total > 0 ? ` · last month ${money(s.lastMonth.total, c)}` : ""}`,
        },
      ],
    },
  ];
  if (s.byService.length) {
    const top = s.byService
      .slice(0, 8)
      .map(
        (x) =>
          `• ${esc(x.service)} ${money(x.monthToDate, c)}${x.lastMonthSamePeriod || x.change ? ` (${signed(x.change, c)} vs the same days last month)` : ""}`,
      );
    if (s.byService.length > 8) top.push(`…and ${s.byService.length - 8} more services`);
    blocks.push(section(`*By service*\n${top.join("\n")}`));
  } else {
    blocks.push(section("No cost recorded this month yet."));
  }
  if (s.movers.length) {
    blocks.push(
      section(
        `*Biggest movers vs last month*\n${s.movers
          .map(
            (m) =>
              `${m.change >= 0 ? "▲" : "▼"} ${esc(m.service)} ${signed(m.change, c)} (${money(m.lastMonthSamePeriod, c)} → ${money(m.monthToDate, c)})`,
          )
          .join("\n")}`,
      ),
    );
  }
  if (s.lines.length) {
    blocks.push(
      section(
        `*Against the plan*\n${s.lines
          .map((l) => {
            const plan =
              l.planned.min === l.planned.max
                ? money(l.planned.max, c)
                : `${money(l.planned.min, c)}–${money(l.planned.max, c)}`;
            const mark = s.daysElapsed === 0 ? "▫️" : l.projected <= l.planned.max ? "✅" : "⚠️";
            return `${mark} ${esc(l.service)}: ${money(l.monthToDate, c)} so far, ~${money(l.projected, c)} for the month (plan ${plan})`;
          })
          .join("\n")}`,
      ),
    );
  }
  if (s.optimisations.length) {
    const range = (o: { min: number; max: number }) =>
      o.min === o.max ? money(o.max, c) : `${money(o.min, c)}–${money(o.max, c)}`;
    blocks.push(
      section(
        `*The plan's optimisations, on this month's spend*\n${s.optimisations
          .map(
            (o) =>
              `• ${esc(o.title)}: saves ~${range(o.saving)}/month${o.source === "cost explorer" ? " (Cost Explorer's recommendation)" : ` (of ${money(o.monthlyBase, c)} on ${o.appliesTo.map(esc).join(", ")})`}`,
          )
          .join("\n")}`,
      ),
    );
  }
  const r = s.reservation;
  if (!r.available) {
    blocks.push(context(`RDS reservation savings unavailable: ${esc(r.reason)}. ${esc(r.hint)}`));
  } else if (r.recommendation) {
    const rec = r.recommendation;
    blocks.push(
      section(
        `*Savings available*\nRDS reserved instance (1 year, all upfront): ${rec.count} × ${esc(rec.instanceType ?? "instance")} saves ${money(rec.monthlySavings, rec.currency)}/month${rec.savingsPercent !== undefined ? ` (${rec.savingsPercent.toFixed(0)} %)` : ""}${rec.upfrontCost !== undefined ? `, ${money(rec.upfrontCost, rec.currency)} upfront` : ""}${rec.breakEvenMonths !== undefined ? `, breaks even in ${rec.breakEvenMonths.toFixed(1)} months` : ""}.${r.plannedPercent !== undefined ? ` The plan expected ${r.plannedPercent} %.` : ""}`,
      ),
    );
  } else {
    blocks.push(
      context(
        `No RDS reservation recommended yet (Cost Explorer looks at the last 30 days of use).${r.plannedPercent !== undefined ? ` The plan expects ${r.plannedPercent} % from one.` : ""}`,
      ),
    );
  }
  return blocks;
}

/** `/migrate cost` */
export function costView(s: CostSummary): Reply {
  if (!s.available) {
    const text = costUnavailableText(s);
    return { text, blocks: [header("Cost"), section(esc(text))] };
  }
  const c = s.currency;
  const text = `Cost ${s.freshness}: ${money(s.monthToDate, c)} month to date, ${s.projected.basis === "forecast" ? "forecast" : "extrapolated"} ${money(s.projected.amount, c)} for the month against a target of ${money(s.monthlyTarget, c)} (budget alert ${money(s.budgetAlert, c)}) — ${STATUS[s.status]}`;
  return {
    text,
    blocks: [
      header(`Cost — ${monthName(s.asOf)}`),
      ...costBlocks(s),
      context(
        `From AWS Cost Explorer, ${s.freshness}. Kept for the day (each request costs $0.01); \`/migrate cost refresh\` asks again.`,
      ),
    ],
  };
}
