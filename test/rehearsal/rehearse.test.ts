import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PNG_SIGNATURE, pngSize } from "../../src/charts/png.js";
import type { RehearsalReport } from "../../src/rehearsal/report.js";

const ROOT = path.join(import.meta.dirname, "../..");
const dirs: string[] = [];

/** `npm run rehearse -- …` as a newcomer runs it: a child process, its exit status and output. */
async function rehearse(
  args: string[],
  timeoutMs = 280_000,
): Promise<{ code: number | null; out: string; err: string; dir: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), "cutover-rehearse-test-"));
  dirs.push(dir);
  const child = spawn(process.execPath, ["--import", "tsx", "src/sandbox/rehearse.ts", ...args], {
    cwd: ROOT,
    env: { ...process.env, CUTOVER_DATA_DIR: dir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const timer = setTimeout(() => child.kill("SIGINT"), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
  clearTimeout(timer);
  return { code, out, err, dir };
}

async function reportOf(out: string): Promise<RehearsalReport> {
  const json = /(\/\S+rehearsal-report\.json)/.exec(out)?.[1];
  expect(json, `no report path in the output:\n${out}`).toBeDefined();
  return JSON.parse(await readFile(json!, "utf8")) as RehearsalReport;
}

afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe("npm run rehearse", () => {
  it("says what is wrong with a bad command line, and starts nothing", async () => {
    const badStep = await rehearse(["--fail", "nope"]);
    expect(badStep.code).toBe(2);
    expect(badStep.err).toContain(
      '--fail nope: the rehearsal cannot inject a failure into "nope". Choose one of:',
    );
    expect(badStep.err).toContain("dns-cutover");
    const badSize = await rehearse(["--size", "big"]);
    expect(badSize.code).toBe(2);
    expect(badSize.err).toContain("--size big is not a size: give the source database's size in MB");
    const noZone = await rehearse(["--at", "2026-12-01T00:00"]);
    expect(noZone.code).toBe(2);
    expect(noZone.err).toContain("--at 2026-12-01T00:00 is not a moment: give a date and time with its zone");
    const badRate = await rehearse(["--writes-per-second", "0"]);
    expect(badRate.code).toBe(2);
    expect(badRate.err).toContain(
      "--writes-per-second 0 is not a rate: give a whole number of writes per second",
    );
    const unknown = await rehearse(["--fast"]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain("Unknown option --fast");
  });

  it("runs the whole runbook live through the bot: customers write throughout, not one acknowledged write or upload is lost across cutover, rollback and cutover again", async () => {
    const started = Date.now();
    // 29 November, 20:00 in Singapore (the file's digest zone) and 12:00 in UTC (Cost Explorer's),
    // so the run stays on that day in both; the digest is the next morning, the month's last day.
    // The calendar is the test's, whatever day the suite runs on (the 1st: the --fail case below).
    const { code, out, err } = await rehearse(["--quiet", "--at", "2026-11-29T20:00+08:00"]);
    const report = await reportOf(out);
    const failed = report.checks.filter((c) => !c.ok);
    expect(failed, `${out}\n${err}`).toEqual([]);
    expect(code).toBe(0);
    expect(report.verdict).toBe("passed");
    // --quiet prints the verdict only: no channel transcript
    expect(out).toMatch(/✅ Rehearsal passed in/);
    expect(out).not.toContain("/migrate run");

    expect(report.database.rowsSource).toBeGreaterThan(1000);
    // the traffic stopped and reverse replication brought its last writes home: both sides equal
    expect(report.database.rowsTarget).toBe(report.database.rowsSource);
    for (const [table, c] of Object.entries(report.database.tables)) expect(c.target, table).toBe(c.source);
    expect(report.database.tables["public.live_orders"]?.target).toBeGreaterThan(0);
    expect(report.storage.objectsSource).toBeGreaterThan(100);
    // S3 holds every R2 object, and the uploads made on AWS since the last switch
    expect(report.storage.objectsTarget).toBeGreaterThan(report.storage.objectsSource);
    expect(report.storage.verifySummary).toMatch(/identical on both sides/);

    // the live shop's ledger: every acknowledged write and upload exactly once where the traffic ended
    const live = report.live!;
    expect(live.writesPerSecond).toBe(20);
    const ledger = live.ledger!;
    expect(ledger.acknowledged.writes).toBeGreaterThanOrEqual(1000);
    expect(ledger.acknowledged.uploads).toBeGreaterThan(0);
    expect(ledger).toMatchObject({ verdict: "passed", lost: 0, duplicated: 0, misapplied: 0 });
    expect(ledger.objects).toMatchObject({ lost: 0 });
    expect(Object.keys(live.objects.onTarget).sort()).toEqual(["new", "old"]);
    expect(live.objects.onSourceAfterRollback).toMatchObject({ lost: 0 });
    expect(live.switches.map((x) => x.name)).toEqual(["cutover 1", "rollback", "cutover 2"]);
    for (const x of live.switches) {
      // the freeze is felt: an outage, measured by the traffic and by Cutover
      expect(x.traffic.writeOutageMs, x.name).toBeGreaterThan(0);
      expect(x.cutover.writeOutageMs, x.name).toBeGreaterThan(0);
      expect(x.cutover.drainMs, x.name).toBeGreaterThanOrEqual(0);
    }
    expect(live.lag.samples).toBeGreaterThan(0);
    expect(live.replicationLeft).toEqual([]);
    expect(out).toMatch(
      /live shop: [\d,]+ acknowledged writes at 20\/s, 0 lost, 0 duplicated, 0 misapplied; uploads 0 lost/,
    );

    expect(report.cutovers).toHaveLength(2);
    for (const c of report.cutovers) {
      expect(c.status).toBe("succeeded");
      expect(c.requestedBy).toBe("U0OPERATOR");
      expect(c.approvedBy).toBe("U0APPROVER");
      expect(c.differentPeople).toBe(true);
      expect(typeof c.downtimeMs).toBe("number");
      expect(c.samples).toBeGreaterThan(0);
    }
    expect(report.rollback?.ok).toBe(true);
    expect(report.rollback?.ms).toBeGreaterThan(0);
    expect(report.finalState["Pages NEXT_PUBLIC_API_URL"]).toBe("https://api.gogojap.com");
    for (const id of ["prepare", "data", "deploy", "verify-switch"]) {
      const phase = report.phases.find((p) => p.id === id);
      expect(phase?.status, id).toBe("passed");
    }
    expect(report.fault).toBeNull();
    // cost from the seeded Cost Explorer: real figures, the forecast and the RDS reservation
    expect(report.options.at).toBe("2026-11-29T12:00:00.000Z");
    expect(report.cost.posted).toContain("COST — NOVEMBER 2026");
    expect(report.cost.posted).toMatch(/\*Month to date\*[\s\S]*\$[1-9]\d*\.\d\d over 28 of 30 days/);
    expect(report.cost.posted).toContain("1 × db.t4g.micro saves $6.65/month");
    expect(report.cost.posted).not.toMatch(/forecast unavailable|Deserialization|SyntaxError/);

    // the daily digest as the bot's scheduler posted it the next morning, with its two charts
    expect(report.digest.posted).toMatch(/^DAILY DIGEST — GOGOJAP \(PRODUCTION\) · MON 30 NOV/m);
    expect(report.digest.posted).toMatch(/KPIs yesterday\* — all within target/);
    expect(report.digest.posted).toMatch(/Cost 2026-11\* — ✅ on track/);
    expect(report.digest.posted).toContain("Amazon Lightsail $");
    expect(report.digest.posted).not.toMatch(/unavailable|no samples yet/);
    const reportDir = path.dirname(/(\/\S+rehearsal-report\.json)/.exec(out)![1]!);
    expect(report.digest.charts.map((c) => c.file).sort()).toEqual([
      "rehearsal-cost.png",
      "rehearsal-kpi.png",
    ]);
    for (const c of report.digest.charts) {
      const bytes = await readFile(path.join(reportDir, c.file));
      expect(bytes.subarray(0, 8).equals(PNG_SIGNATURE), c.file).toBe(true);
      expect(pngSize(bytes)).toEqual({ width: c.width, height: c.height });
      expect(c.width).toBeGreaterThanOrEqual(400);
      expect(bytes.length).toBe(c.bytes);
    }

    // the Markdown report sits next to the JSON, linking the charts
    const md = await readFile(/(\/\S+rehearsal-report\.md)/.exec(out)![1]!, "utf8");
    expect(md).toContain("# Cutover rehearsal: ✅ PASSED");
    expect(md).toContain("](rehearsal-cost.png)");
    expect(md).toContain("](rehearsal-kpi.png)");
    expect(Date.now() - started).toBeLessThan(280_000);
  }, 300_000);

  it("shows recovery from an injected Cloudflare error in the DNS switch, and the end state is still correct", async () => {
    // the first minute of a month in UTC: Cost Explorer has no complete day of December yet
    const { code, out, err } = await rehearse([
      "--quiet",
      "--fail",
      "dns-cutover",
      "--at",
      "2026-12-01T00:00Z",
    ]);
    const report = await reportOf(out);
    expect(
      report.checks.filter((c) => !c.ok),
      `${out}\n${err}`,
    ).toEqual([]);
    expect(code).toBe(0);
    expect(report.fault).toMatchObject({
      step: "dns-cutover",
      kind: "Cloudflare error",
      fired: true,
      endStateCorrect: true,
    });
    expect(report.fault?.whatFailed).toMatch(/Cloudflare answered HTTP 500 to \d+ DNS record update call/);
    expect(report.fault?.whatTheBotDid.join("\n")).toMatch(/retried the step: succeeded on attempt 2/);
    expect(out).toContain("injected into dns-cutover");
    expect(report.cost.posted).toContain("COST — DECEMBER 2026");
    expect(report.cost.posted).toMatch(/\$0\.00 over 0 of 31 days/);
    expect(report.cost.posted).not.toMatch(/forecast unavailable|NaN|Infinity/);
  }, 300_000);
});
