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

/** The rehearsal's report: written as JSON and as Markdown to the data directory. */
export interface RehearsalReport {
  verdict: "passed" | "failed";
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** `at`: the moment the bot's calendar started at (--at), null for the machine's clock */
  options: { sizeMb: number; fail: string | null; at: string | null };
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
  checks: Check[];
  error?: string;
}

export const secs = (ms: number | null | undefined) =>
  ms === null || ms === undefined ? "—" : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;

const n = (v: number) => v.toLocaleString("en-US");

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
  if (r.fault)
    lines.push(
      `   injected into ${r.fault.step}: ${r.fault.whatFailed} → ${r.fault.whatTheBotDid.join("; ") || "—"}; end state ${r.fault.endStateCorrect ? "correct" : "WRONG"}`,
    );
  if (r.notInThisBuild.length)
    lines.push(`   not in this build: ${r.notInThisBuild.map((m) => `${m.id} (${m.uses})`).join(", ")}`);
  lines.push(`   report: ${paths.md}`, `           ${paths.json}`);
  return lines;
}
