import type { LedgerReport } from "../sandbox/live-shop.js";
import type { MissingStep } from "./config.js";
import type { RunRecord } from "./team.js";

/** One thing the verdict rests on. */
export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface PhaseReport {
  id: string;
  title: string;
  status: "passed" | "failed" | "not run";
  ms: number;
  runs: RunRecord[];
  note?: string;
}

/** A chart the digest carried, saved next to the report. */
export interface DigestChart {
  /** the file's name next to the report ("rehearsal-cost.png") */
  file: string;
  /** its title in Slack */
  title: string;
  bytes: number;
  width: number;
  height: number;
}

export interface DigestReport {
  /** the message as the channel shows it (Block Kit rendered as text); null when none was posted */
  posted: string | null;
  note: string;
  /** the digest's local day, "YYYY-MM-DD" */
  day?: string;
  /** from the clock reaching digest.time to the message in the channel */
  ms?: number;
  charts: DigestChart[];
}

/** One switch of the live shop's traffic: as the customers saw it and as Cutover measured it. */
export interface LiveSwitch {
  /** "cutover 1", "rollback", "cutover 2" */
  name: string;
  /** when DNS moved for the traffic (its first request to the other app), ISO */
  at: string;
  /** as the traffic saw it: last acknowledged database write before the switch to the first after */
  traffic: { writeOutageMs: number | null; failedWrites: number };
  /** as Cutover measured it: dns.cutover's figures, or the rollback's (freeze to writable again) */
  cutover: { writeOutageMs: number | null; freezeMs?: number; drainMs?: number; verifyMs?: number };
  /** reads answered from this switch to the next (or the end), in % */
  readAvailabilityPct: number;
}

/** The live shop's ledger and replication, as the rehearsal measured them. */
export interface LiveReport {
  writesPerSecond: number;
  /** from the start of the data phase to the end of the rehearsal */
  trafficMs: number;
  ledger: LedgerReport | null;
  switches: LiveSwitch[];
  /** replication lag sampled every half second while replication ran (the publisher's measure) */
  lag: {
    samples: number;
    p50Ms: number | null;
    p99Ms: number | null;
    maxMs: number | null;
    maxBytes: number | null;
  };
  objects: {
    /** uploads acknowledged by each app, and how many are not on S3 at the end */
    onTarget: Record<string, { acknowledged: number; lost: number }>;
    /** after the rollback drill: uploads acknowledged until then that are not on R2 */
    onSourceAfterRollback: { acknowledged: number; lost: number } | null;
    /** what brought the uploads made on AWS back to R2 after the rollback, and how many */
    copiedBack: { objects: number; by: string } | null;
  };
  /** replication left after the final db.replication-teardown (each "kind name side"), or what was deliberately left */
  replicationLeft: string[] | null;
  notes: string[];
}

/** The rehearsal's report: written as JSON and as Markdown to the data directory. */
export interface RehearsalReport {
  verdict: "passed" | "failed";
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** `at`: the moment the bot's calendar started at (--at), null for the machine's clock */
  options: { sizeMb: number; fail: string | null; at: string | null; writesPerSecond?: number };
  world: {
    postgres: string;
    aws: string;
    sourceDatabaseMb: number;
    sourceRows: number;
    sourceObjects: number;
    sourceBytes: number;
    setupMs: number;
    /** stopping the bot and the world at the end */
    stopMs?: number;
  };
  people: { operator: string; approver: string };
  phases: PhaseReport[];
  database: {
    tables: Record<string, { source: number; target: number }>;
    rowsSource: number;
    rowsTarget: number;
    identical: boolean;
    verifyFigures?: Record<string, unknown>;
    verifySummary?: string;
  };
  storage: {
    objectsSource: number;
    objectsTarget: number;
    bytesSource: number;
    bytesTarget: number;
    identical: boolean;
    verifyFigures?: Record<string, unknown>;
    verifySummary?: string;
  };
  cutovers: Array<{
    requestedBy: string;
    approvedBy: string | null;
    differentPeople: boolean;
    approvalToSwitchMs: number | null;
    downtimeMs: number | null;
    errorRatePercent: number | null;
    samples: number | null;
    switchedMs: number | null;
    status: string;
    ttlWaitCompressedSeconds: number;
  }>;
  rollback: { by: string; ms: number | null; measuredMs: number; message: string; ok: boolean } | null;
  finalState: Record<string, string>;
  kpis: { posted: string | null; note: string };
  cost: { posted: string | null; note: string };
  /** the daily digest as the bot's scheduler posted it, read back from the channel */
  digest: DigestReport;
  notInThisBuild: MissingStep[];
  fault: {
    step: string;
    kind: string;
    fired: boolean;
    whatFailed: string;
    whatTheBotDid: string[];
    endStateCorrect: boolean;
  } | null;
  /** the live shop (absent when the rehearsal stopped before the data phase) */
  live?: LiveReport;
  checks: Check[];
  error?: string;
}

export const secs = (ms: number | null | undefined) =>
  ms === null || ms === undefined ? "—" : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;

const n = (v: number) => v.toLocaleString("en-US");
/** a percentage to two decimals at most: 99.68 */
const pct = (v: number) => `${Number(v.toFixed(2))} %`;

/** The report as Markdown, for people. */
export function reportMarkdown(r: RehearsalReport): string {
  const out: string[] = [];
  const verdict = r.verdict === "passed" ? "✅ PASSED — everything verified" : "❌ FAILED";
  out.push(`# Cutover rehearsal: ${verdict}`, "");
  out.push(
    `Started ${r.startedAt}, took ${secs(r.durationMs)} (world set-up ${secs(r.world.setupMs)}). Size: ${r.options.sizeMb} MB database${r.options.fail ? `; failure injected into \`${r.options.fail}\`` : ""}.`,
    `Operator ${r.people.operator}, approver ${r.people.approver}. PostgreSQL: ${r.world.postgres}; AWS: ${r.world.aws}.`,
    "",
  );
  if (r.error) out.push(`**Stopped early:** ${r.error}`, "");

  out.push("## Phases", "", "| phase | status | time | runs |", "|---|---|---|---|");
  for (const p of r.phases) {
    const runs = p.runs.map((x) => `\`${x.dryRun ? "plan " : ""}${x.target}\` ${x.status}`).join(", ");
    const note = p.note ? `${runs ? " — " : ""}${p.note.replace(/\|/g, "\\|").replace(/\n/g, " ")}` : "";
    out.push(`| ${p.title} (\`${p.id}\`) | ${p.status} | ${secs(p.ms)} | ${runs}${note} |`);
  }
  out.push(
    "",
    "### Steps",
    "",
    "| phase | step | status | tries | time | result |",
    "|---|---|---|---|---|---|",
  );
  for (const p of r.phases)
    for (const run of p.runs)
      for (const s of run.steps) {
        if (run.dryRun) continue;
        const result = (
          s.verifySummary ? `${s.summary ?? ""} — verified: ${s.verifySummary}` : (s.summary ?? s.error ?? "")
        )
          .replace(/\|/g, "\\|")
          .replace(/\n/g, " ");
        out.push(`| ${p.id} | \`${s.id}\` | ${s.status} | ${s.attempts} | ${secs(s.ms)} | ${result} |`);
      }

  out.push("", "## Data proven identical", "");
  out.push(
    `Database: ${n(r.database.rowsSource)} rows in the source, ${n(r.database.rowsTarget)} in the target — ${r.database.identical ? "identical" : "DIFFERENT"}.${r.database.verifySummary ? ` db.verify: ${r.database.verifySummary}` : ""}`,
    "",
    "| table | source rows | target rows |",
    "|---|---|---|",
    ...Object.entries(r.database.tables).map(([t, c]) => `| ${t} | ${n(c.source)} | ${n(c.target)} |`),
    "",
    `Storage: ${n(r.storage.objectsSource)} objects (${n(r.storage.bytesSource)} bytes) in the source, ${n(r.storage.objectsTarget)} objects (${n(r.storage.bytesTarget)} bytes) in the target — ${r.storage.identical ? "identical" : "DIFFERENT"}.${r.storage.verifySummary ? ` storage.verify: ${r.storage.verifySummary}` : ""}`,
    "",
  );

  out.push("## Cutover, rollback drill, cutover again", "");
  r.cutovers.forEach((c, i) => {
    out.push(
      `- Cutover ${i + 1}: requested by ${c.requestedBy}, approved by ${c.approvedBy ?? "nobody"}${c.differentPeople ? " (a second person)" : " (NOT a second person)"}; ${c.status}; switched in ${secs(c.switchedMs)}; measured downtime ${secs(c.downtimeMs)} over ${c.samples ?? 0} probes, error rate ${c.errorRatePercent ?? "—"} %. TTL wait of ${c.ttlWaitCompressedSeconds} s compressed by the rehearsal.`,
    );
  });
  if (r.rollback)
    out.push(
      `- Rollback drill by ${r.rollback.by}: ${r.rollback.ok ? "done" : "NOT done"}; the bot reports ${secs(r.rollback.ms)} from confirmation to verified (${secs(r.rollback.measuredMs)} seen from the channel). “${r.rollback.message.split("\n")[0]}”`,
    );
  if (r.live) out.push("", ...liveMarkdown(r.live));
  out.push("", "End state:", "", ...Object.entries(r.finalState).map(([k, v]) => `- ${k}: ${v}`), "");

  const posted = (label: string, x: { posted: string | null; note: string }) =>
    x.posted ? [`${label}, ${x.note}:`, "", "```", x.posted, "```", ""] : [`${label}: ${x.note}`, ""];
  out.push("## KPIs and cost", "", ...posted("KPIs", r.kpis), ...posted("Cost", r.cost));
  out.push(...posted("Daily digest", r.digest));
  for (const c of r.digest.charts)
    out.push(
      `![${c.title}](${c.file})`,
      "",
      `[${c.file}](${c.file}) — ${c.width}×${c.height} PNG, ${n(c.bytes)} bytes`,
      "",
    );

  if (r.fault) {
    out.push(
      "## Injected failure",
      "",
      `- Step: \`${r.fault.step}\` (${r.fault.kind})`,
      `- What failed: ${r.fault.whatFailed}`,
      `- What the bot did: ${r.fault.whatTheBotDid.join("; ") || "nothing visible"}`,
      `- End state still correct: ${r.fault.endStateCorrect ? "yes" : "NO"}`,
      "",
    );
  }

  out.push("## Not in this build", "");
  if (r.notInThisBuild.length === 0) out.push("Every step of the runbook ran.", "");
  else
    out.push(
      "These runbook steps name types this build does not have yet; the rehearsal left them out:",
      "",
      ...r.notInThisBuild.map(
        (m) => `- \`${m.id}\` (${m.uses}) in ${m.phase}: ${m.title} — not in this build`,
      ),
      "",
    );

  out.push("## Checks", "", ...r.checks.map((c) => `- ${c.ok ? "✅" : "❌"} ${c.name}: ${c.detail}`), "");
  return out.join("\n");
}

/** The live shop's ledger, the outage of each switch, lag and objects, as Markdown lines. */
export function liveMarkdown(l: LiveReport): string[] {
  const out = ["## The live shop: every acknowledged write", ""];
  const g = l.ledger;
  if (!g)
    return [...out, "No ledger: the traffic did not run to the end.", ...l.notes.map((x) => `- ${x}`), ""];
  const a = g.acknowledged;
  out.push(
    `Customers wrote at ${l.writesPerSecond} writes/s for ${secs(l.trafficMs)} through whichever app DNS named: ${n(a.writes)} acknowledged writes (${n(a.orders)} orders, ${n(a.payments)} payments, ${n(a.cancellations)} cancellations, ${n(a.uploads)} uploads). Checked against the database and the bucket the traffic ended on: **${g.lost} lost, ${g.duplicated} duplicated, ${g.misapplied} misapplied**${g.objects ? `; uploads: **${g.objects.lost} lost** of ${n(g.objects.acknowledged)}` : ""} — ${g.verdict === "passed" ? "✅ nothing lost" : "❌ LOSS"}.`,
    "",
    `Failed writes: ${n(g.failedWrites.count)}${
      Object.keys(g.failedWrites.byReason).length
        ? ` (${Object.entries(g.failedWrites.byReason)
            .map(([r, c]) => `${c} × “${r}”`)
            .join("; ")})`
        : ""
    }. Longest write outage seen by the traffic: ${secs(g.longestWriteOutageMs)}. Reads: ${n(g.reads.ok)} answered, ${n(g.reads.failed)} failed (${pct(g.reads.availabilityPct)}).`,
    "",
    "| switch | write outage seen by the traffic | failed writes | write outage measured by Cutover | freeze / drain / verify | reads available after it |",
    "|---|---|---|---|---|---|",
    ...l.switches.map(
      (s) =>
        `| ${s.name} (${s.at.slice(11, 23)}) | ${secs(s.traffic.writeOutageMs)} | ${s.traffic.failedWrites} | ${secs(s.cutover.writeOutageMs)} | ${secs(s.cutover.freezeMs)} / ${secs(s.cutover.drainMs)} / ${secs(s.cutover.verifyMs)} | ${pct(s.readAvailabilityPct)} |`,
    ),
    "",
    `Replication lag (${l.lag.samples} samples): p50 ${secs(l.lag.p50Ms)}, p99 ${secs(l.lag.p99Ms)}, max ${secs(l.lag.maxMs)} (${l.lag.maxBytes === null ? "—" : n(l.lag.maxBytes)} bytes at most).`,
    "",
    `Uploads on S3 at the end, by the app that took them: ${
      Object.entries(l.objects.onTarget)
        .map(([app, c]) => `${app} ${n(c.acknowledged)} acknowledged, ${c.lost} lost`)
        .join("; ") || "none"
    }.`,
  );
  if (l.objects.onSourceAfterRollback)
    out.push(
      `After the rollback drill, on R2: ${n(l.objects.onSourceAfterRollback.acknowledged)} uploads acknowledged until then, ${l.objects.onSourceAfterRollback.lost} lost${l.objects.copiedBack ? ` (${n(l.objects.copiedBack.objects)} copied back from S3 by ${l.objects.copiedBack.by})` : ""}.`,
    );
  out.push(
    "",
    l.replicationLeft === null
      ? "Replication left at the end: not checked."
      : l.replicationLeft.length
        ? `Replication left at the end: ${l.replicationLeft.join(", ")}.`
        : "No slot, publication or subscription left after db.replication-teardown.",
  );
  if (l.notes.length) out.push("", ...l.notes.map((x) => `- ${x}`));
  out.push("");
  return out;
}

/** The few lines `--quiet` prints, and the last lines of a full run. */
export function verdictLines(r: RehearsalReport, paths: { md: string; json: string }): string[] {
  const failed = r.checks.filter((c) => !c.ok);
  const head =
    r.verdict === "passed"
      ? `✅ Rehearsal passed in ${secs(r.durationMs)}: ${r.checks.length} checks verified.`
      : `❌ Rehearsal FAILED after ${secs(r.durationMs)}: ${failed.length} of ${r.checks.length} checks failed.`;
  const lines = [head];
  const first = (text: string) => text.split("\n")[0]!.slice(0, 300);
  if (r.error) {
    lines.push(`   stopped: ${first(r.error)}`);
    for (const l of r.error
      .split("\n")
      .filter((x) => x.startsWith("❌"))
      .slice(0, 4))
      lines.push(`     ${first(l)}`);
  }
  for (const c of failed.filter((c) => c.detail !== r.error).slice(0, 8))
    lines.push(`   ❌ ${c.name}: ${first(c.detail)}`);
  const cut = r.cutovers[0];
  if (cut)
    lines.push(
      `   rows ${n(r.database.rowsTarget)}/${n(r.database.rowsSource)} · objects ${n(r.storage.objectsTarget)}/${n(r.storage.objectsSource)} · downtime ${secs(cut.downtimeMs)} · rollback ${secs(r.rollback?.ms ?? null)}`,
    );
  const g = r.live?.ledger;
  if (r.live && g)
    lines.push(
      `   live shop: ${n(g.acknowledged.writes)} acknowledged writes at ${r.live.writesPerSecond}/s, ${g.lost} lost, ${g.duplicated} duplicated, ${g.misapplied} misapplied; uploads ${g.objects?.lost ?? "?"} lost of ${n(g.objects?.acknowledged ?? 0)}; ${n(g.failedWrites.count)} failed writes${g.unconfirmed ? ` (${g.unconfirmed} got no answer and took effect)` : ""}; reads ${pct(g.reads.availabilityPct)}`,
      `   write outage (traffic / Cutover): ${r.live.switches.map((s) => `${s.name} ${secs(s.traffic.writeOutageMs)} / ${secs(s.cutover.writeOutageMs)}`).join(" · ")}; lag p99 ${secs(r.live.lag.p99Ms)}; ${r.live.replicationLeft === null ? "replication left: not checked" : r.live.replicationLeft.length ? `left: ${r.live.replicationLeft.join(", ")}` : "no slot or publication left"}`,
    );
  if (r.fault)
    lines.push(
      `   injected into ${r.fault.step}: ${r.fault.whatFailed} → ${r.fault.whatTheBotDid.join("; ") || "—"}; end state ${r.fault.endStateCorrect ? "correct" : "WRONG"}`,
    );
  if (r.notInThisBuild.length)
    lines.push(`   not in this build: ${r.notInThisBuild.map((m) => `${m.id} (${m.uses})`).join(", ")}`);
  lines.push(`   report: ${paths.md}`, `           ${paths.json}`);
  return lines;
}
