import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseMigrationFile } from "../../src/config/load.js";
import { composeDigest, kpiBlocks, kpisGreen } from "../../src/digest/compose.js";
import { type StepLatest, summariseProgress } from "../../src/digest/progress.js";
import { stabilisationAt } from "../../src/digest/stabilisation.js";
import type { CostDigest, DigestInputs, KpiDigest } from "../../src/digest/types.js";

const file = parseMigrationFile(
  readFileSync(new URL("../../migration.example.yml", import.meta.url), "utf8"),
  { checkEnv: false },
);
const steps = file.runbook.phases.flatMap((p) => p.steps);
const now = new Date("2026-11-19T01:00:00Z"); // 09:00 in Singapore

const kpi: KpiDigest = {
  window: {
    from: new Date("2026-11-17T16:00:00Z"),
    to: new Date("2026-11-18T16:00:00Z"),
    label: "yesterday",
  },
  figures: { availabilityPct: 99.95, avgMs: 142, p95Ms: 260, errorRatePct: 0.02, dbMs: 7.5, samples: 1440 },
  targets: { availabilityPct: 99.9, avgMs: 200, dbMs: 50, errorRatePct: 0.1 },
  daily: [{ date: "2026-11-18", availabilityPct: 99.95, avgMs: 142, p95Ms: 260 }],
};
const cost: CostDigest = {
  month: "2026-11",
  currency: "USD",
  monthToDate: 52.3,
  forecast: 91.2,
  target: 85,
  budget: 100,
  daily: [{ date: "2026-11-01", amount: 2.9 }],
  asOf: new Date("2026-11-19T00:10:00Z"),
  topServices: [{ service: "Amazon Lightsail", amount: 26.4 }],
  savings: [
    { title: "RDS reserved", min: 6.1, max: 6.1 },
    { title: "S3 lifecycle", min: 2.5, max: 4 },
  ],
};

function text(reply: { text: string; blocks: unknown[] }): string {
  return `${reply.text}\n${JSON.stringify(reply.blocks)}`;
}

function inputs(over: Partial<DigestInputs>): DigestInputs {
  return {
    project: file.project,
    environment: file.environment,
    day: "2026-11-19",
    timezone: "Asia/Singapore",
    now,
    progress: summariseProgress(file, new Map(), [], null),
    stabilisation: null,
    kpi,
    cost,
    ...over,
  };
}

describe("the digest's progress part", () => {
  it("before anything ran: nothing done, the first step waits for an operator", () => {
    const p = summariseProgress(file, new Map(), [], null);
    expect(p.stepsDone).toBe(0);
    expect(p.stepsTotal).toBe(steps.length);
    expect(p.next?.stepId).toBe(steps[0]!.id);
    expect(p.waiting).toEqual([
      {
        what: expect.stringContaining(`\`${steps[0]!.id}\``),
        who: expect.stringContaining("<@U0123456789>"),
      },
    ]);
    expect(p.phases.every((ph) => ph.state === "not started")).toBe(true);
  });

  it("a pending cutover request waits for an approver; a failed step for an operator", () => {
    const latest = new Map<string, StepLatest>();
    for (const s of steps.slice(0, 3)) latest.set(s.id, { status: "succeeded", dryRun: false, runId: "r1" });
    latest.set(steps[3]!.id, { status: "failed", dryRun: false, runId: "r2" });
    const p = summariseProgress(
      file,
      latest,
      [{ action: "dns.cutover", requestedBy: "U0123456789", expiresAt: now }],
      null,
    );
    expect(p.stepsDone).toBe(3);
    expect(p.phases[0]!.state).toBe("done");
    expect(p.phases[1]!.state).toBe("failed");
    const lines = p.waiting.map((w) => `${w.what} — ${w.who}`).join("\n");
    expect(lines).toContain("DNS cutover requested by <@U0123456789>");
    expect(lines).toContain("an approver (<@U0987654321>)");
    expect(lines).toContain(`\`${steps[3]!.id}\` failed`);
  });

  it("a dry run does not count as done", () => {
    const latest = new Map<string, StepLatest>([
      [steps[0]!.id, { status: "succeeded", dryRun: true, runId: "r" }],
    ]);
    const p = summariseProgress(file, latest, [], null);
    expect(p.stepsDone).toBe(0);
    expect(p.next).toMatchObject({ stepId: steps[0]!.id, status: "planned" });
  });

  it("after the cutover the decommission waits for the end of the stabilisation window", () => {
    const latest = new Map<string, StepLatest>();
    for (const s of steps)
      if (s.uses !== "decommission") latest.set(s.id, { status: "succeeded", dryRun: false, runId: "r" });
    const stab = stabilisationAt(new Date("2026-11-14T19:00:00Z"), 14, now);
    expect(stab.day).toBe(5);
    expect(stab.over).toBe(false);
    const p = summariseProgress(file, latest, [], stab);
    expect(p.next?.stepId).toBe("decommission");
    expect(p.waiting[0]!.who).toContain("stabilisation window (day 5 of 14)");
    const later = summariseProgress(
      file,
      latest,
      [],
      stabilisationAt(stab.cutoverAt, 14, new Date("2026-12-01T00:00:00Z")),
    );
    expect(later.waiting[0]!.who).toContain("/migrate run decommission");
  });
});

describe("composeDigest", () => {
  it("shows progress, stabilisation day N of 14, KPIs against targets and cost against budget", () => {
    const stab = stabilisationAt(new Date("2026-11-14T19:00:00Z"), 14, now);
    const reply = composeDigest(inputs({ stabilisation: stab }));
    const all = text(reply);
    expect(reply.blocks[0]).toMatchObject({ type: "header" });
    expect(all).toContain("Daily digest — gogojap (production)");
    expect(all).toContain("Migration progress");
    expect(all).toContain("day 5 of 14 since the cutover");
    expect(all).toContain("KPIs yesterday");
    expect(all).toContain("✅ availability 99.95 % (target ≥ 99.9 %)");
    expect(all).toContain("✅ average response 142 ms, p95 260 ms (target ≤ 200 ms)");
    expect(all).toContain("1,440 samples");
    expect(all).toContain("month to date *$52.30*");
    expect(all).toContain("forecast *$91.20* by month end");
    expect(all).toContain("⚠️ forecast above the monthly target");
    expect(all).toContain("Amazon Lightsail $26.40");
    expect(all).toContain("Savings available: RDS reserved ~$6.10/month · S3 lifecycle ~$2.50–$4.00/month");
    expect(reply.text).toContain("stabilisation day 5/14");
    expect(reply.text).toContain("KPIs green");
  });

  it("shows a live migration's replication, one direction per line, and nothing without one", () => {
    const line =
      "target → source (the way back): streaming, 0.3 s (12.0 kB of WAL) behind, last reply 01:02:03 UTC";
    expect(text(composeDigest(inputs({ replication: [line] })))).toContain(`🔁 Replication: ${line}`);
    expect(text(composeDigest(inputs({})))).not.toContain("Replication");
  });

  it("still composes when cost and KPIs are unavailable, saying why", () => {
    const reply = composeDigest(
      inputs({
        kpi: { unavailable: "no KPI samples are stored yet" },
        cost: { unavailable: "Cost Explorer refused: AccessDeniedException (ce:GetCostAndUsage)" },
      }),
    );
    const all = text(reply);
    expect(all).toContain(
      "*Cost* — unavailable: Cost Explorer refused: AccessDeniedException (ce:GetCostAndUsage)",
    );
    expect(all).toContain("*KPIs* — unavailable: no KPI samples are stored yet");
    expect(all).toContain("not started — the window begins when DNS is switched");
    expect(reply.text).toContain("cost unavailable");
  });

  it("flags KPIs outside target and budget overruns", () => {
    const bad: KpiDigest = { ...kpi, figures: { ...kpi.figures, availabilityPct: 99.1, avgMs: 320 } };
    expect(kpisGreen(bad)).toBe(false);
    expect(kpisGreen(kpi)).toBe(true);
    const all = JSON.stringify(kpiBlocks(bad));
    expect(all).toContain("❌ availability 99.10 %");
    expect(all).toContain("❌ average response 320 ms");
    const over = text(composeDigest(inputs({ kpi: bad, cost: { ...cost, forecast: 120 } })));
    expect(over).toContain("🚨 forecast above the budget alert");
    expect(over).toContain("outside target");
  });

  it("says when the stabilisation window is over", () => {
    const stab = stabilisationAt(new Date("2026-11-01T00:00:00Z"), 14, now);
    expect(stab.over).toBe(true);
    expect(text(composeDigest(inputs({ stabilisation: stab })))).toContain("14-day window since the cutover");
  });
});
