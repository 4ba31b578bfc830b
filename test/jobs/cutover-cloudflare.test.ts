import { Writable } from "node:stream";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { parseMigrationFile } from "../../src/config/load.js";
import type { MigrationFile } from "../../src/config/schema.js";
import { buildCloudflare } from "../../src/deps.js";
import { CutoverError, ErrorCode } from "../../src/errors.js";
import { applyChange, rollback } from "../../src/jobs/cutover/apply.js";
import {
  type CutoverDeps,
  type DnsSnapshot,
  preChecks,
  readLive,
  ttlCountdownMs,
} from "../../src/jobs/cutover/service.js";
import type { CutoverChange } from "../../src/jobs/cutover/types.js";
import { createDnsLowerTtlStep } from "../../src/jobs/steps/dns/lower-ttl.js";
import { createLogger } from "../../src/log.js";
import { type CloudflarePermission, FakeCloudflare } from "../../src/sandbox/FakeCloudflare.js";
import { createPrismaClient, type Db } from "../../src/store/client.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { makeStepContext, makeStepDeps } from "../helpers/step-context.js";

const ACCOUNT = "0123456789abcdef0123456789abcdef";
const DNS_TOKEN = "cf-dns-token-5f1c0a77";
const PAGES_TOKEN = "cf-pages-token-9e2d4b13";
const OLD_IP = "203.0.113.10";
const NEW_IP = "198.51.100.7";

let fake: FakeCloudflare;
let state: TestDatabase;
let db: Db;
let zoneId: string;
const log = createLogger({
  secrets: [],
  level: "silent",
  destination: new Writable({ write: (_c, _e, cb) => cb() }),
});

function migration(opts: { zoneId?: string; records?: string; project?: string } = {}): MigrationFile {
  const records =
    opts.records ??
    `    - { name: api.example.com, type: A, from: ${OLD_IP}, to: ${NEW_IP} }
    - { name: cdn.example.com, type: CNAME, to: d111.cloudfront.net }`;
  return parseMigrationFile(
    `version: 1
project: testco
environment: test
slack: { channel: C0MIGRATE }
access: { operators: [U0OPERATOR], approvers: [U0APPROVER], channels: [C0MIGRATE] }
dns:
  zone: example.com
${opts.zoneId ? `  zoneId: ${opts.zoneId}\n` : ""}  apiTokenEnv: DNS_TOKEN
  records:
${records}
pages:
  project: ${opts.project ?? "web"}
  accountId: ${ACCOUNT}
  apiTokenEnv: PAGES_TOKEN
  env:
    NEXT_PUBLIC_API_URL: { from: "https://old.example.app", to: "https://api.example.com" }
verification:
  baseUrl: http://127.0.0.1:1
runbook:
  phases:
    - id: switch
      title: Switch
      steps:
        - { id: lower-ttl, uses: dns.lower-ttl }
        - { id: dns-cutover, uses: dns.cutover }
`,
    { checkEnv: false },
  );
}

/** The deps the bot builds for a file: the clients come from the deps factory, with each section's token. */
function depsFor(file: MigrationFile): CutoverDeps {
  const cloudflare = buildCloudflare(file, {
    DNS_TOKEN,
    PAGES_TOKEN,
    CLOUDFLARE_BASE_URL: fake.baseUrl,
  });
  return { db, file, cloudflare, log, now: () => new Date() };
}

function tokens(dns: CloudflarePermission[], pages: CloudflarePermission[]) {
  fake.addToken(DNS_TOKEN, dns);
  fake.addToken(PAGES_TOKEN, pages);
}

const FULL_DNS: CloudflarePermission[] = ["zone:read", "dns:edit"];

const check = (checks: Array<{ name: string; ok: boolean; detail: string }>, name: string) => {
  const c = checks.find((x) => x.name === name);
  if (!c) throw new Error(`no pre-check "${name}" among: ${checks.map((x) => x.name).join(", ")}`);
  return c;
};

function changeOf(records: CutoverChange["records"], pages = true): CutoverChange {
  return {
    environment: "test",
    zone: "example.com",
    records,
    pages: pages
      ? {
          project: "web",
          environment: "production",
          vars: [
            { name: "NEXT_PUBLIC_API_URL", from: "https://old.example.app", to: "https://api.example.com" },
          ],
          redeploy: true,
        }
      : null,
  };
}

const A_CHANGE = {
  name: "api.example.com",
  type: "A" as const,
  from: OLD_IP,
  to: NEW_IP,
  fromTtl: 60,
  originalTtl: 3600,
  ttl: 60,
  proxied: false,
};

beforeAll(async () => {
  state = await createTestDatabase("cutover_cloudflare");
  db = createPrismaClient(state.url);
  fake = new FakeCloudflare({ accountId: ACCOUNT, deploymentMs: 200 });
  await fake.start();
});
afterAll(async () => {
  await fake?.stop();
  await db?.$disconnect();
  await state?.drop();
});
afterEach(() => {
  fake.reset();
});

function seed(opts: { source?: "github" | "direct_upload"; aaaa?: string } = {}) {
  zoneId = fake.addZone("example.com").id;
  fake.addRecord("example.com", { name: "api.example.com", type: "A", content: OLD_IP, ttl: 3600 });
  if (opts.aaaa) fake.addRecord("example.com", { name: "api.example.com", type: "AAAA", content: opts.aaaa });
  fake.addPagesProject("web", {
    envVars: { NEXT_PUBLIC_API_URL: "https://old.example.app", KEEP_ME: "yes" },
    ...(opts.source ? { source: opts.source } : {}),
  });
}

describe("token scopes: the pre-checks prove what the switch and the rollback will use", () => {
  it("names the Pages Edit permission a read-only Pages token lacks, before anyone may approve", async () => {
    seed();
    tokens(FULL_DNS, ["pages:read"]);
    const checks = await preChecks(depsFor(migration()), undefined);
    const scope = check(checks, "Cloudflare token can switch and roll back");
    expect(scope.ok).toBe(false);
    expect(scope.detail).toContain("Account → Cloudflare Pages → Edit (the token in PAGES_TOKEN)");
    expect(scope.detail).not.toContain("DNS → Edit");
    // the request is refused: the handler posts no approval while a check fails
    expect(checks.filter((c) => !c.ok).map((c) => c.name)).toContain(
      "Cloudflare token can switch and roll back",
    );
  });

  it("names DNS Edit for a token that can only read DNS", async () => {
    seed();
    tokens(["zone:read", "dns:read"], ["pages:edit"]);
    const scope = check(
      await preChecks(depsFor(migration()), undefined),
      "Cloudflare token can switch and roll back",
    );
    expect(scope.ok).toBe(false);
    expect(scope.detail).toContain("Zone → DNS → Edit (the token in DNS_TOKEN)");
    expect(scope.detail).not.toContain("Pages");
  });

  it("passes with every permission, and its proving writes change nothing", async () => {
    seed();
    tokens(FULL_DNS, ["pages:edit"]);
    const before = { records: fake.records("example.com"), vars: fake.envVars("web") };
    const scope = check(
      await preChecks(depsFor(migration()), undefined),
      "Cloudflare token can switch and roll back",
    );
    expect(scope).toMatchObject({ ok: true });
    expect(scope.detail).toContain("Zone → DNS → Edit");
    expect(scope.detail).toContain("Account → Cloudflare Pages → Edit");
    const after = fake.records("example.com");
    expect(after.map(({ modified_on: _m, ...r }) => r)).toEqual(
      before.records.map(({ modified_on: _m, ...r }) => r),
    );
    expect(fake.envVars("web")).toEqual(before.vars);
    // a write was really made: reading alone would let a read-only token through
    expect(fake.calls("PATCH /zones/*/dns_records/*").filter((c) => c.status === 200)).toHaveLength(1);
    expect(fake.calls("PATCH /accounts/*/pages/projects/web").filter((c) => c.status === 200)).toHaveLength(
      1,
    );
    expect(fake.deployments("web")).toEqual([]);
  });

  it("proves DNS Edit with a TXT record created and deleted again when no record exists yet", async () => {
    seed();
    tokens(FULL_DNS, ["pages:edit"]);
    const file = migration({
      records: "    - { name: cdn.example.com, type: CNAME, to: d111.cloudfront.net }",
    });
    const before = fake.records("example.com");
    const scope = check(
      await preChecks(depsFor(file), undefined),
      "Cloudflare token can switch and roll back",
    );
    expect(scope.ok).toBe(true);
    expect(fake.records("example.com")).toEqual(before);
    expect(fake.calls("DELETE /zones/*/dns_records/*").map((c) => c.status)).toEqual([200]);
  });

  it("builds the Pages client from pages.apiTokenEnv and the DNS client from dns.apiTokenEnv", async () => {
    seed();
    // two tokens, each good for its own half only
    tokens(FULL_DNS, ["pages:edit"]);
    const live = await readLive(depsFor(migration()));
    expect(live.records[0]).toMatchObject({ content: OLD_IP, ttl: 3600 });
    expect(live.pages?.vars).toEqual({ NEXT_PUBLIC_API_URL: "https://old.example.app" });
    expect(fake.calls().filter((c) => c.status !== 200)).toEqual([]);
  });

  it("with dns.zoneId, the switch, the rollback and the TTL undo never list zones (no Zone Read needed)", async () => {
    seed();
    tokens(["dns:edit"], ["pages:edit"]);
    const file = migration({ zoneId });
    const deps = depsFor(file);
    const scope = check(await preChecks(deps, undefined), "Cloudflare token can switch and roll back");
    expect(scope.ok).toBe(true);

    const ctx = makeStepContext();
    await applyChange(deps, changeOf([A_CHANGE]), ctx);
    expect(fake.records("example.com").find((r) => r.type === "A")?.content).toBe(NEW_IP);

    const report = await rollback(
      deps,
      {
        source: "cutover record",
        records: [{ name: "api.example.com", type: "A", content: OLD_IP, ttl: 3600, proxied: false }],
        pages: null,
      },
      new AbortController().signal,
    );
    expect(report.items).toEqual([expect.objectContaining({ ok: true })]);

    const lower = makeStepContext();
    const snapshot: DnsSnapshot = {
      takenAt: new Date().toISOString(),
      loweredAt: new Date().toISOString(),
      records: [{ name: "api.example.com", type: "A", content: OLD_IP, ttl: 7200, proxied: false }],
      pages: null,
    };
    lower.checkpoints.set("snapshot", snapshot);
    await createDnsLowerTtlStep(makeStepDeps({ file: deps.file, db, cloudflare: deps.cloudflare })).undo!(
      {},
      lower,
    );
    expect(fake.records("example.com").find((r) => r.type === "A")?.ttl).toBe(7200);
    expect(fake.calls("GET /zones")).toEqual([]);
  });
});

describe("Pages projects Cloudflare does not build", () => {
  it("refuses a Direct Upload project in the pre-checks and before any change, saying how the front end gets its URL", async () => {
    seed({ source: "direct_upload" });
    tokens(FULL_DNS, ["pages:edit"]);
    const deps = depsFor(migration());
    const source = check(await preChecks(deps, undefined), "Pages project is built by Cloudflare");
    expect(source.ok).toBe(false);
    expect(source.detail).toContain("Direct Upload");
    expect(source.detail).toContain("set NEXT_PUBLIC_API_URL in the CI job");
    // the plan, the TTL step and the switch all read live state first: refused there, before a write
    const err = await readLive(deps).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CutoverError);
    expect((err as CutoverError).code).toBe(ErrorCode.BadArgument);
    // only the pre-checks' no-op edits were made: nothing switched, no build asked for
    expect(
      fake
        .calls()
        .filter((c) => c.method !== "GET")
        .map((c) => c.body),
    ).toEqual([{ name: "api.example.com", type: "A" }, {}]);
    expect(fake.envVars("web")).toEqual({ NEXT_PUBLIC_API_URL: "https://old.example.app", KEEP_ME: "yes" });
    expect(fake.records("example.com").find((r) => r.type === "A")?.content).toBe(OLD_IP);
  });
});

describe("AAAA records in canonical form", () => {
  it("switches and rolls back an AAAA record written in the file in a non-canonical form", async () => {
    seed({ aaaa: "2001:db8::10" });
    tokens(FULL_DNS, ["pages:edit"]);
    const deps = depsFor(migration());
    const aaaa = {
      ...A_CHANGE,
      type: "AAAA" as const,
      from: "2001:0DB8:0:0:0:0:0:0010",
      to: "2001:0DB8:0000::0020",
    };
    await applyChange(deps, changeOf([aaaa], false), makeStepContext());
    expect(fake.records("example.com").find((r) => r.type === "AAAA")?.content).toBe("2001:db8::20");

    // the recorded value, written as a person might (upper case, zeros in full)
    const restore = () =>
      rollback(
        deps,
        {
          source: "cutover record",
          records: [
            { name: "api.example.com", type: "AAAA", content: "2001:0DB8::0010", ttl: 3600, proxied: false },
          ],
          pages: null,
        },
        new AbortController().signal,
      );
    const report = await restore();
    expect(report.items).toEqual([expect.objectContaining({ ok: true })]);
    expect(report.complete).toBe(true);
    // a second rollback sees it already restored
    const again = await restore();
    expect(again.items[0]?.detail).toMatch(/^already /);
  });
});

describe("automatic TTL in the countdown", () => {
  it("counts an unproxied record's automatic TTL (1) as 300 s, a proxied one's as nothing", () => {
    const loweredAt = new Date("2030-01-01T00:00:00Z");
    const snap = (proxied: boolean): DnsSnapshot => ({
      takenAt: loweredAt.toISOString(),
      loweredAt: loweredAt.toISOString(),
      records: [{ name: "api.example.com", type: "A", content: OLD_IP, ttl: 1, proxied }],
      pages: null,
    });
    const tenSecondsLater = new Date(loweredAt.getTime() + 10_000);
    expect(ttlCountdownMs(snap(false), tenSecondsLater)).toBe(290_000);
    expect(ttlCountdownMs(snap(true), tenSecondsLater)).toBe(0);
  });
});

describe("slow, queued, skipped and failed Pages builds", () => {
  it("on a rerun, starts a new build instead of waiting again on the dead one it checkpointed", async () => {
    seed();
    tokens(FULL_DNS, ["pages:edit"]);
    const deps = depsFor(migration());
    fake.failNextDeployment("web", "build");
    const first = makeStepContext();
    const failed = await applyChange(deps, changeOf([A_CHANGE]), first).catch((e: unknown) => e);
    expect((failed as CutoverError).code).toBe(ErrorCode.DeployFailed);
    const dead = first.checkpoints.get("pages:deployment");

    // the next attempt, with the same checkpoints
    const second = makeStepContext({ checkpoints: first.checkpoints });
    const { deploymentId } = await applyChange(deps, changeOf([A_CHANGE]), second);
    expect(deploymentId).not.toBe(dead);
    const deps2 = fake.deployments("web");
    expect(deps2.map((d) => [d.id, d.latest_stage.name, d.latest_stage.status])).toEqual([
      [deploymentId, "deploy", "success"],
      [dead, "build", "failure"],
    ]);
    expect(second.reports.map((r) => r.message).join("\n")).toContain(
      `Pages deployment ${dead} ended failure at build`,
    );
  });

  it("replaces its build when a newer queued build supersedes it, and waits through the queue", async () => {
    seed();
    tokens(FULL_DNS, ["pages:edit"]);
    const deps = depsFor(migration());
    fake.setDeploymentDuration(1_200);
    // someone's build is running: the Free plan's one build slot is taken
    const outsider = () =>
      fetch(`${fake.baseUrl}/accounts/${ACCOUNT}/pages/projects/web/deployments`, {
        method: "POST",
        headers: { authorization: `Bearer ${fake.apiToken}` },
      });
    await outsider();
    const ctx = makeStepContext();
    const applying = applyChange(deps, changeOf([A_CHANGE], true), ctx);
    await vi.waitFor(() => expect(fake.deployments("web")).toHaveLength(2), { timeout: 5_000 });
    const ours = fake.deployments("web")[0]!.id;
    await outsider(); // queued after ours: ours is skipped
    const { deploymentId } = await applying;
    expect(deploymentId).not.toBe(ours);
    const all = fake.deployments("web");
    expect(all.find((d) => d.id === ours)?.is_skipped).toBe(true);
    expect(all.find((d) => d.id === deploymentId)?.latest_stage).toMatchObject({
      name: "deploy",
      status: "success",
    });
    expect(
      ctx.reports.some((r) =>
        /queued: active \(waiting for the account's build slot\)/.test(r.message ?? ""),
      ),
    ).toBe(true);
  }, 20_000);
});

describe("Cloudflare's rate limit during the switch and the rollback", () => {
  it("says in the run's progress, and to the rollback, what it waits for and until when, then finishes", async () => {
    seed();
    tokens(FULL_DNS, ["pages:edit"]);
    const deps = depsFor(migration());
    // a budget of 3 requests a second per token: the switch and the rollback each run into it
    fake.setRateLimit(3, 1_000);
    const ctx = makeStepContext();
    await applyChange(deps, changeOf([A_CHANGE], false), ctx);
    expect(fake.records("example.com").find((r) => r.type === "A")?.content).toBe(NEW_IP);
    const said = ctx.reports
      .map((r) => r.message ?? "")
      .filter((m) => m.startsWith("Cloudflare's rate limit"));
    expect(said.length).toBeGreaterThan(0);
    expect(said[0]).toMatch(
      /^Cloudflare's rate limit: waiting 1 s, until \d\d:\d\d:\d\d UTC, before (reading|updating|reading back) /,
    );

    const waits: string[] = [];
    const report = await rollback(
      deps,
      {
        source: "cutover record",
        records: [{ name: "api.example.com", type: "A", content: OLD_IP, ttl: 3600, proxied: false }],
        pages: null,
      },
      new AbortController().signal,
      (w) => waits.push(w.what),
    );
    expect(report.complete).toBe(true);
    expect(waits.length).toBeGreaterThan(0);
    expect(fake.calls().filter((c) => c.status === 429).length).toBeGreaterThanOrEqual(2);
  }, 20_000);
});

describe("a rollback under a long rate-limit block", () => {
  it("reports at once, item by item, until when Cloudflare blocks the token, instead of dying mid-wait", async () => {
    seed();
    tokens(FULL_DNS, ["pages:edit"]);
    const deps = depsFor(migration({ zoneId }));
    fake.setRateLimit(1, 120_000);
    // someone's script spends the DNS token's budget: its next request starts a 120 s block
    await fetch(`${fake.baseUrl}/zones/${zoneId}`, { headers: { authorization: `Bearer ${DNS_TOKEN}` } });
    const started = Date.now();
    const report = await rollback(
      deps,
      {
        source: "cutover record",
        records: [{ name: "api.example.com", type: "A", content: OLD_IP, ttl: 3600, proxied: false }],
        pages: null,
      },
      AbortSignal.timeout(120_000),
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(report.complete).toBe(false);
    expect(report.items[0]?.detail).toMatch(
      /^not restored: Cloudflare's API rate limit .* asks to wait 12\d s, until 20\d\d-/,
    );
    expect(report.items[0]?.detail).toContain("Run the step again after that time");
  });
});
