import type { View } from "@slack/types";
import { describe, expect, it } from "vitest";
import { parseMigrate } from "../../src/commands/parse.js";
import { parseMigrationFile } from "../../src/config/load.js";
import type { CutoverChange } from "../../src/jobs/cutover/types.js";
import type { DatabaseVerifyReport } from "../../src/jobs/steps/db/verify.js";
import type { DecommissionChange } from "../../src/jobs/steps/ops/decommission.js";
import type { StorageVerifyReport } from "../../src/jobs/steps/storage/verify.js";
import type { VerificationReport } from "../../src/jobs/steps/verify/report.js";
import type { KpiCheck } from "../../src/kpi/alerts.js";
import { checkMessage, checkView } from "../../src/sandbox/slack-limits.js";
import { auditView } from "../../src/views/audit.js";
import { esc, type Reply } from "../../src/views/blocks.js";
import { confirmRunView } from "../../src/views/confirm.js";
import {
  alertView,
  approveModal,
  confirmModal,
  cutoverRequestView,
  rollbackModal,
} from "../../src/views/cutover.js";
import { dbVerifyView } from "../../src/views/db-verify.js";
import { decommissionApproveModal, decommissionRequestView } from "../../src/views/decommission.js";
import { helpView, invalidUsageView, noticeView, unknownCommandView } from "../../src/views/help.js";
import { kpiAlertView } from "../../src/views/kpi.js";
import { runMessageView } from "../../src/views/run.js";
import { statusView } from "../../src/views/status.js";
import { storageVerifyView } from "../../src/views/storage-verify.js";
import { verificationView } from "../../src/views/verification.js";
import { verifyReport } from "../helpers/db-verify-report.js";

/*
 * Every view builder, fed long names, long errors and hostile text, must build what Slack takes
 * (the fake Slack's checks, src/sandbox/slack-limits.ts, from Slack's reference pages) and must
 * not let a person's text turn into a mention, a link or markup.
 */

/** what a careless or hostile person can put in a name, a reason, an error */
const HOSTILE = "<!channel> <@U0EVIL> <https://evil.example|click me> &amp; *bold* _it_ `tick ```fence";
const long = (n: number) => `${HOSTILE} ${"ABCDEFGHIJ ".repeat(Math.ceil(n / 11))}`.slice(0, n);
const LONG_ERROR = `${HOSTILE}\n${"pg_restore: error: could not execute query: ERROR: relation already exists\n".repeat(80)}`;
const DNS_NAME = `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(57)}.example`.slice(
  0,
  253,
);
const STEP = `s${"-x".repeat(31)}`; // the longest step id the file allows (63)
const now = new Date("2026-11-19T01:00:00Z");

function expectSlackTakes(reply: Reply): void {
  expect(checkMessage(reply)).toBeUndefined();
  expectNoInjection(reply);
}
function expectModalTakes(view: View): void {
  expect(checkView(view as unknown as Record<string, unknown>)).toBeUndefined();
  expectNoInjection(view);
}
/**
 * None of the hostile tokens survives as Slack markup where Slack parses it: the top-level text
 * (notifications) and every mrkdwn text object. (plain_text shows `<!channel>` as typed.)
 */
function expectNoInjection(payload: unknown): void {
  const parsed: string[] = [];
  const walk = (v: unknown, key?: string): void => {
    if (Array.isArray(v)) for (const x of v) walk(x);
    else if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      if (o.type === "mrkdwn" && typeof o.text === "string") parsed.push(o.text);
      for (const [k, x] of Object.entries(o)) if (k !== "text" || typeof x !== "string") walk(x, k);
    } else if (key === undefined && typeof v === "string") parsed.push(v);
  };
  const top = (payload as { text?: unknown }).text;
  if (typeof top === "string") parsed.push(top);
  walk((payload as { blocks?: unknown }).blocks);
  for (const text of parsed)
    for (const token of ["<!channel>", "<@U0EVIL>", "<https://evil"]) expect(text).not.toContain(token);
}

const change = (records = 3): CutoverChange => ({
  environment: long(300),
  zone: "example.com",
  records: Array.from({ length: records }, (_, i) => ({
    name: i === 0 ? DNS_NAME : `${i}.${DNS_NAME}`.slice(0, 253),
    type: "CNAME" as const,
    from: long(255),
    to: long(255),
    fromTtl: 60,
    originalTtl: 3600,
    ttl: 60,
    proxied: true,
  })),
  pages: {
    project: long(100),
    environment: "production",
    vars: [{ name: "NEXT_PUBLIC_API_URL", from: long(2000), to: long(2000) }],
    redeploy: true,
  },
});

/** mrkdwn and fallback texts with Slack's own tokens (`<@U…>`, `<!date^…>`, links) taken out */
function bareAngles(payload: unknown): string[] {
  const texts: string[] = [];
  const top = (payload as { text?: unknown }).text;
  if (typeof top === "string") texts.push(top);
  JSON.stringify((payload as { blocks?: unknown }).blocks, (_k, v) => {
    if (v && typeof v === "object" && (v as { type?: unknown }).type === "mrkdwn")
      texts.push((v as { text: string }).text);
    return v;
  });
  return texts.map((t) => t.replace(/<(?:[@#!][^<>]*|https?:[^<>]*)>/g, "")).filter((t) => /[<>]/.test(t));
}

describe("every view builder stays within Slack's limits and escapes what people typed", () => {
  it("KPI alerts say targets without a bare < or >, and escape the endpoint's error", () => {
    const check = (over: Partial<KpiCheck>): KpiCheck => ({
      key: "avg-latency",
      title: "Average response time",
      breached: true,
      value: 250,
      threshold: 200,
      bound: "max",
      unit: "ms",
      window: "the last 24 h",
      detail: `last error: ${LONG_ERROR}`,
      ...over,
    });
    for (const c of [
      check({}),
      check({ key: "availability", bound: "min", unit: "%", value: 50, threshold: 99.9 }),
      check({ breached: false }),
    ]) {
      const view = kpiAlertView({ check: c, previousSince: now }, now);
      expectSlackTakes(view);
      expect(bareAngles(view)).toEqual([]);
    }
    expect(kpiAlertView({ check: check({}), previousSince: now }, now).text).toContain("(target ≤ 200 ms)");
  });

  it("help, unknown input, usage and notices", () => {
    expectSlackTakes(helpView());
    expectSlackTakes(helpView("run"));
    expectSlackTakes(unknownCommandView(long(4000), "run"));
    expectSlackTakes(unknownCommandView("<!channel>"));
    for (const text of [`run x --${HOSTILE}`, `run x --${long(4000).replace(/\s/g, "")}`, `run ${HOSTILE}`]) {
      const cmd = parseMigrate(text);
      if (cmd.name !== "invalid") throw new Error(`${text}: ${cmd.name}`);
      expectSlackTakes(invalidUsageView(cmd.subcommand, cmd.message));
    }
    // a notice is mrkdwn its callers compose: what it quotes they escape
    expectSlackTakes(noticeView(esc(LONG_ERROR)));
    // the usage lines name arguments in angle brackets: shown, never parsed as links
    for (const reply of [helpView(), helpView("run"), invalidUsageView("run", "x")])
      expect(JSON.stringify(reply)).not.toMatch(/<step\|phase>/);
  });

  it("the run's progress message, with long errors, plans and results", () => {
    const step = (i: number) => ({
      step: `${STEP.slice(0, 60)}${i}`,
      status: i % 3 === 0 ? "failed" : i % 3 === 1 ? "succeeded" : "running",
      attempts: 3,
      progress: { done: 5, total: 10, unit: "tables", message: long(2000) },
      plan: {
        summary: long(2000),
        changes: Array.from({ length: 20 }, () => ({
          action: "create",
          target: long(500),
          detail: long(500),
        })),
      },
      result: { summary: long(3000), verify: { summary: long(3000) } },
      error: LONG_ERROR,
      startedAt: now,
      finishedAt: now,
    });
    const view = runMessageView(
      {
        id: "3f2a9c1e-0000-4000-8000-000000000000",
        target: long(500),
        kind: "phase",
        status: "running",
        dryRun: false,
        requestedBy: "U0OPERATOR",
        error: LONG_ERROR,
        createdAt: now,
        startedAt: now,
        finishedAt: null,
        steps: Array.from({ length: 60 }, (_, i) => step(i)),
      },
      now,
    );
    expectSlackTakes(view);
  });

  it("the audit trail, hundreds of rows of long targets", () => {
    const rows = Array.from({ length: 500 }, (_, i) => ({
      id: BigInt(i),
      at: now,
      actor: i % 2 ? "U0OPERATOR" : long(200),
      action: long(100),
      target: long(300),
      outcome: "refused",
      runId: "3f2a9c1e-0000-4000-8000-000000000000",
    }));
    expectSlackTakes(auditView(rows));
  });

  it("the confirmation of a destructive run, with the longest step id", () => {
    expectSlackTakes(confirmRunView(STEP, { replace: true, delete: true }));
  });

  it("the cutover request, the approver's modal and the alert", () => {
    const state = {
      approvalId: "a".repeat(36),
      change: change(20),
      prechecks: Array.from({ length: 30 }, () => ({ name: long(200), ok: false, detail: LONG_ERROR })),
      requestedBy: "U0OPERATOR",
      expiresAt: now,
      status: "pending",
      outsideWindow: { window: long(200), reason: long(3000) },
    };
    expectSlackTakes(cutoverRequestView(state));
    expectSlackTakes(
      cutoverRequestView({ ...state, status: "rejected", decidedBy: "U0APPROVER", note: long(3000) }),
    );
    expectModalTakes(approveModal("a".repeat(36), change(20)));
    // the intro is mrkdwn its callers compose (escaped); the word and title are plain text
    expectModalTakes(
      confirmModal({
        approvalId: "x",
        title: long(100),
        intro: `*Sure?*\n${"y".repeat(4000)}`,
        word: DNS_NAME,
      }),
    );
    expectSlackTakes(alertView(LONG_ERROR, true));
  });

  it("the rollback modal, with many values to restore and long ones", () => {
    // the modal shows the recorded values (it asks for none: issue 15); many and long, it still fits
    expectModalTakes(rollbackModal([esc(long(3000))]));
    expectModalTakes(rollbackModal(Array.from({ length: 120 }, () => esc(long(300)))));
    expectModalTakes(rollbackModal([]));
  });

  it("the decommission request and its modal", () => {
    const c: DecommissionChange = {
      environment: long(200),
      cutoverAt: "2026-11-19T01:00:00Z",
      sourceDatabase: long(500),
      archive: { bucket: long(63), prefix: long(1000) },
      checklist: Array.from({ length: 40 }, () => long(300)),
    };
    expectSlackTakes(
      decommissionRequestView({
        approvalId: "x",
        change: c,
        requestedBy: "U0OPERATOR",
        expiresAt: now,
        status: "pending",
      }),
    );
    expectModalTakes(decommissionApproveModal("x", c));
  });

  it("the status of a runbook of many phases with long titles and errors", () => {
    const phases = Array.from({ length: 60 }, (_, p) => ({
      id: `p${p}`,
      title: long(300),
      steps: Array.from({ length: 8 }, (_, s) => ({
        id: `p${p}-s${s}-${"x".repeat(50)}`,
        title: long(300),
        uses: "db.dump",
      })),
    }));
    const file = parseMigrationFile(
      `version: 1
project: ${JSON.stringify(long(200))}
environment: prod
slack: { channel: C0MIGRATE }
access: { operators: [U0OP], approvers: [U0AP], channels: [C0MIGRATE] }
runbook:
  phases:
${phases
  .map(
    (p) =>
      `    - id: ${p.id}\n      title: ${JSON.stringify(p.title)}\n      steps:\n${p.steps
        .map(
          (s) =>
            `        - { id: ${s.id}, title: ${JSON.stringify(s.title)}, uses: http.check, with: { url: "https://x.example/" } }`,
        )
        .join("\n")}`,
  )
  .join("\n")}
`,
      { checkEnv: false },
    );
    const latest = new Map(
      file.runbook.phases.flatMap((p) =>
        p.steps.map((s) => [
          s.id,
          {
            status: "failed",
            runId: "3f2a9c1e-0000",
            dryRun: false,
            requestedBy: "U0OPERATOR",
            startedAt: now,
            finishedAt: now,
            error: LONG_ERROR,
          },
        ]),
      ),
    );
    const recent = Array.from({ length: 50 }, () => ({
      id: "3f2a9c1e-0000",
      target: long(300),
      status: "failed",
      requestedBy: "U0OPERATOR",
      createdAt: now,
      dryRun: true,
    }));
    expectSlackTakes(
      statusView({
        file,
        latest,
        lock: { holder: "U0OPERATOR", acquiredAt: now, runId: "3f2a9c1e-0000" } as never,
        cutover: `⏳ ${"y".repeat(3000)}`,
        recent,
        available: new Set(["http.check"]),
        now,
      }),
    );
  });

  it("the verification, storage and database reports with many long rows", () => {
    const report: VerificationReport = {
      kind: "functional",
      runId: "r",
      startedAt: now.toISOString(),
      ms: 1000,
      baseUrl: long(300),
      ok: false,
      rows: Array.from({ length: 200 }, (_, i) => ({
        id: `c${i}`,
        title: long(300),
        measured: long(300),
        target: long(300),
        status: "fail" as const,
        hint: LONG_ERROR,
        figures: {},
      })),
    };
    expectSlackTakes(verificationView(report));
    const storage: StorageVerifyReport = {
      ok: false,
      source: { label: long(300), objects: 10_000_000, bytes: 1e12 },
      target: { label: long(300), objects: 9_999_000, bytes: 1e12 },
      matched: 9_999_000,
      matchedBytes: 1e12,
      checkedBy: { etag: 1, storedChecksum: 2, hashed: 3 },
      metadataChecked: true,
      differences: { missing: 1000, extra: 0, size: 0, content: 0, metadata: 0 },
      listed: Array.from({ length: 200 }, () => ({
        key: long(1024),
        kind: "missing" as const,
        detail: long(500),
      })),
      vanished: 0,
      seconds: 100,
      finishedAt: now.toISOString(),
    };
    expectSlackTakes(storageVerifyView(storage, { maxListed: 200 }));
    const db = verifyReport({
      identical: false,
      checkedAt: now.toISOString(),
      source: { where: long(300), version: "16.4" },
      target: { where: long(300), version: "16.4" },
      differences: Array.from({ length: 300 }, () => ({
        what: "table",
        object: long(300),
        source: long(200),
        target: long(200),
      })) as DatabaseVerifyReport["differences"],
      notes: Array.from({ length: 50 }, () => long(300)),
    });
    expectSlackTakes(dbVerifyView(db, { maxRows: 300 }));
  });
});
