import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type CloudflareClients, createCloudflare } from "../../src/cloud/cloudflare.js";
import { CutoverError, describeError, ErrorCode, isCutoverError } from "../../src/errors.js";
import { FakeCloudflare } from "../../src/sandbox/FakeCloudflare.js";

const TOKEN = "cf-adapter-token-8c2e4a91";

let fake: FakeCloudflare;
let cf: CloudflareClients;

const build = (opts: { apiToken?: string; pageSize?: number; timeoutMs?: number } = {}) =>
  createCloudflare({
    apiToken: opts.apiToken ?? TOKEN,
    baseURL: fake.baseUrl,
    accountId: fake.accountId,
    maxRetries: 0,
    ...(opts.pageSize ? { pageSize: opts.pageSize } : {}),
    ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
  });

/** the error a promise rejects with (fails the test if it resolves) */
async function rejectionOf(p: Promise<unknown>): Promise<CutoverError> {
  const outcome = await p.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!("error" in outcome)) throw new Error(`expected a rejection, got ${JSON.stringify(outcome.value)}`);
  expect(outcome.error).toBeInstanceOf(CutoverError);
  return outcome.error as CutoverError;
}

/** what a person or a log line could ever see of an error */
const everything = (err: CutoverError) =>
  [err.message, describeError(err), JSON.stringify(err.details), err.hint ?? "", String(err.stack)].join(
    "\n",
  );

beforeAll(async () => {
  fake = new FakeCloudflare({ apiToken: TOKEN, deploymentMs: 200 });
  await fake.start();
  cf = build();
});
afterAll(async () => {
  await fake.stop();
});
afterEach(() => {
  fake.reset();
});

function seedZone() {
  const zone = fake.addZone("gogojap.com");
  fake.addZone("gogojap.net");
  // the name has other types too; with 2 a page the A record is on page 2
  fake.addRecord("gogojap.com", { name: "api.gogojap.com", type: "TXT", content: "v=spf1 -all" });
  fake.addRecord("gogojap.com", { name: "www.gogojap.com", type: "CNAME", content: "gogojap-web.pages.dev" });
  fake.addRecord("gogojap.com", { name: "api.gogojap.com", type: "AAAA", content: "2001:db8::10" });
  fake.addRecord("gogojap.com", { name: "api.gogojap.com", type: "MX", content: "mx.gogojap.com" });
  fake.addRecord("gogojap.com", { name: "api.gogojap.com", type: "A", content: "203.0.113.10", ttl: 3600 });
  return zone;
}

describe("DnsProvider over the official SDK", () => {
  it("finds the zone by name and a record that sits on page 2, and stops paging", async () => {
    const seeded = seedZone();
    const dns = build({ pageSize: 2 }).dns;
    const zone = await dns.findZone("GoGoJap.com.");
    expect(zone).toEqual({ id: seeded.id, name: "gogojap.com", status: "active" });

    const record = await dns.getRecord(zone, "api.gogojap.com", "A");
    expect(record).toMatchObject({ name: "api.gogojap.com", type: "A", content: "203.0.113.10", ttl: 3600 });
    const listing = fake.calls("GET /zones/*/dns_records");
    expect(listing.map((c) => c.query.page ?? "1")).toEqual(["1", "2"]);
    expect(listing[0]?.query).toMatchObject({ "name.exact": "api.gogojap.com", per_page: "2" });

    expect(await dns.getRecord(zone, "api.gogojap.com", "CNAME")).toBeUndefined();
  });

  it("says which zone is missing", async () => {
    seedZone();
    const err = await rejectionOf(cf.dns.findZone("example.org"));
    expect(err.code).toBe(ErrorCode.CloudflareNotFound);
    expect(err.message).toContain("example.org");
  });

  it("refuses to pick one of two records with the same name and type", async () => {
    const zone = fake.addZone("gogojap.com");
    fake.addRecord("gogojap.com", { name: "api.gogojap.com", type: "A", content: "203.0.113.10" });
    fake.addRecord("gogojap.com", { name: "api.gogojap.com", type: "A", content: "203.0.113.11" });
    const err = await rejectionOf(cf.dns.getRecord(zone, "api.gogojap.com", "A"));
    expect(err.code).toBe(ErrorCode.DnsRecordAmbiguous);
    expect(err.message).toContain("203.0.113.11");
  });

  it("lowers the TTL, then switches the content, reading each back", async () => {
    seedZone();
    const zone = await cf.dns.findZone("gogojap.com");
    const before = (await cf.dns.getRecord(zone, "api.gogojap.com", "A"))!;

    const lowered = await cf.dns.updateRecord(before, { ttl: 60 });
    expect(lowered).toMatchObject({ content: "203.0.113.10", ttl: 60, proxied: false });
    const switched = await cf.dns.updateRecord(before, { content: "198.51.100.7", ttl: 300 });
    expect(switched).toMatchObject({ id: before.id, content: "198.51.100.7", ttl: 300 });

    // the world holds it, and a fresh read agrees
    expect(fake.records("gogojap.com").find((r) => r.type === "A")).toMatchObject({
      content: "198.51.100.7",
      ttl: 300,
    });
    expect(await cf.dns.getRecord(zone, "api.gogojap.com", "A")).toMatchObject({
      content: "198.51.100.7",
      ttl: 300,
    });
    // each update was a PATCH followed by a GET of the record
    const writes = fake.calls((c) => c.path.includes("/dns_records/")).map((c) => c.method);
    expect(writes).toEqual(["PATCH", "GET", "PATCH", "GET"]);
  });

  it("creates a record the cutover adds and deletes it again (rollback)", async () => {
    seedZone();
    const zone = await cf.dns.findZone("gogojap.com");
    const cdn = await cf.dns.createRecord(zone, {
      name: "cdn.gogojap.com",
      type: "CNAME",
      content: "d111111abcdef8.cloudfront.net",
      ttl: 300,
    });
    expect(cdn).toMatchObject({
      name: "cdn.gogojap.com",
      content: "d111111abcdef8.cloudfront.net",
      ttl: 300,
    });
    expect(fake.records("gogojap.com").map((r) => r.name)).toContain("cdn.gogojap.com");
    await cf.dns.deleteRecord({ ...cdn, zoneName: zone.name });
    expect(fake.records("gogojap.com").map((r) => r.name)).not.toContain("cdn.gogojap.com");
  });

  it("turns a 500 on the PATCH into a CutoverError naming the record and Cloudflare's error", async () => {
    seedZone();
    const zone = await cf.dns.findZone("gogojap.com");
    const record = (await cf.dns.getRecord(zone, "api.gogojap.com", "A"))!;
    fake.failNext("PATCH /zones/*/dns_records/*", {
      status: 500,
      code: 10001,
      message: "Internal server error",
    });
    const err = await rejectionOf(cf.dns.updateRecord(record, { content: "198.51.100.7" }));
    expect(err.code).toBe(ErrorCode.CloudflareFailed);
    expect(err.message).toContain("A record api.gogojap.com in zone gogojap.com");
    expect(err.message).toContain("HTTP 500");
    expect(err.message).toContain("10001: Internal server error");
    expect(err.details).toMatchObject({ record: "api.gogojap.com", status: 500 });
    // nothing changed
    expect(fake.records("gogojap.com").find((r) => r.type === "A")?.content).toBe("203.0.113.10");
  });

  it("says the token was refused, with Cloudflare's code, and never shows the token", async () => {
    seedZone();
    const wrongToken = "cf-WRONG-token-3b7d11ff";
    const err = await rejectionOf(build({ apiToken: wrongToken }).dns.findZone("gogojap.com"));
    expect(err.code).toBe(ErrorCode.CloudflareAuthFailed);
    expect(err.message).toContain("9109");
    expect(err.message).toContain("Invalid access token");
    expect(err.message).toContain("zone gogojap.com");
    expect(everything(err)).not.toContain(wrongToken);
    expect(everything(err)).not.toContain(TOKEN);
  });

  it("bounds a call to a Cloudflare that does not answer", async () => {
    seedZone();
    fake.setLatency(2_000, "GET /zones");
    const started = Date.now();
    const err = await rejectionOf(build({ timeoutMs: 200 }).dns.findZone("gogojap.com"));
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(err.code).toBe(ErrorCode.TimedOut);
    expect(err.message).toContain("zone gogojap.com");
  });
});

describe("PagesProvider over the official SDK", () => {
  const seedProject = () =>
    fake.addPagesProject("gogojap-web", {
      envVars: {
        NEXT_PUBLIC_API_URL: "https://gogojap.zeabur.app",
        NEXT_PUBLIC_CDN_URL: "https://pub-0123.r2.dev",
        NEXT_PUBLIC_SITE_NAME: "GoGoJap",
      },
      secrets: { SENTRY_AUTH_TOKEN: "sentry-secret" },
    });

  it("reads the production variables; a secret shows no value", async () => {
    seedProject();
    expect(await cf.pages.getEnvVars("gogojap-web")).toEqual({
      NEXT_PUBLIC_API_URL: { type: "plain_text", value: "https://gogojap.zeabur.app" },
      NEXT_PUBLIC_CDN_URL: { type: "plain_text", value: "https://pub-0123.r2.dev" },
      NEXT_PUBLIC_SITE_NAME: { type: "plain_text", value: "GoGoJap" },
      SENTRY_AUTH_TOKEN: { type: "secret_text", value: undefined },
    });
  });

  it("sets some variables and keeps the others, sending only the ones that change", async () => {
    seedProject();
    const after = await cf.pages.setEnvVars("gogojap-web", {
      NEXT_PUBLIC_API_URL: "https://api.gogojap.com",
      NEXT_PUBLIC_CDN_URL: "https://d111111abcdef8.cloudfront.net",
    });
    expect(after.NEXT_PUBLIC_API_URL?.value).toBe("https://api.gogojap.com");
    expect(fake.envVars("gogojap-web")).toEqual({
      NEXT_PUBLIC_API_URL: "https://api.gogojap.com",
      NEXT_PUBLIC_CDN_URL: "https://d111111abcdef8.cloudfront.net",
      NEXT_PUBLIC_SITE_NAME: "GoGoJap",
      SENTRY_AUTH_TOKEN: "sentry-secret",
    });
    const patch = fake.calls("PATCH /accounts/*/pages/projects/gogojap-web")[0]?.body as {
      deployment_configs: { production: { env_vars: Record<string, unknown> } };
    };
    expect(Object.keys(patch.deployment_configs.production.env_vars).sort()).toEqual([
      "NEXT_PUBLIC_API_URL",
      "NEXT_PUBLIC_CDN_URL",
    ]);
  });

  it("triggers a deployment and waits until it is live", async () => {
    seedProject();
    await cf.pages.setEnvVars("gogojap-web", { NEXT_PUBLIC_API_URL: "https://api.gogojap.com" });
    const started = await cf.pages.triggerDeployment("gogojap-web");
    expect(started).toMatchObject({ stage: "queued", done: false, environment: "production" });
    const seen: string[] = [];
    const live = await cf.pages.waitForDeployment("gogojap-web", started.id, {
      timeoutMs: 5_000,
      pollMs: 40,
      onProgress: (d) => seen.push(`${d.stage}/${d.status}`),
    });
    expect(live).toMatchObject({ id: started.id, stage: "deploy", status: "success", succeeded: true });
    expect(seen.at(-1)).toBe("deploy/success");
    expect(seen.length).toBeGreaterThan(1);
    // the build ran with the new variable
    expect(fake.deployments("gogojap-web")[0]?.env_vars.NEXT_PUBLIC_API_URL?.value).toBe(
      "https://api.gogojap.com",
    );
  });

  it("reports a failed build, a wait that runs out, and a cancelled wait", async () => {
    seedProject();
    fake.failNextDeployment("gogojap-web", "build");
    const failing = await cf.pages.triggerDeployment("gogojap-web");
    const failed = await rejectionOf(cf.pages.waitForDeployment("gogojap-web", failing.id, { pollMs: 40 }));
    expect(failed.code).toBe(ErrorCode.DeployFailed);
    expect(failed.message).toContain("gogojap-web");
    expect(failed.message).toContain("build");

    fake.setDeploymentDuration(10_000);
    const slow = await cf.pages.triggerDeployment("gogojap-web");
    const t0 = Date.now();
    const timedOut = await rejectionOf(
      cf.pages.waitForDeployment("gogojap-web", slow.id, { timeoutMs: 250, pollMs: 100 }),
    );
    expect(timedOut.code).toBe(ErrorCode.TimedOut);
    expect(Date.now() - t0).toBeLessThan(1_000);

    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const cancelled = await rejectionOf(
      cf.pages.waitForDeployment("gogojap-web", slow.id, { pollMs: 5_000, signal: controller.signal }),
    );
    expect(isCutoverError(cancelled, ErrorCode.Cancelled)).toBe(true);
  });

  it("names the project Cloudflare does not know", async () => {
    seedProject();
    const err = await rejectionOf(cf.pages.getEnvVars("gogojap-wbe"));
    expect(err.code).toBe(ErrorCode.CloudflareNotFound);
    expect(err.message).toContain("gogojap-wbe");
    expect(err.message).toContain("8000007");
  });
});

describe("Cloudflare's rate limit (1,200 requests per 5 minutes, then 429 with retry-after)", () => {
  // The SDK's own default of 2 retries: the product's, and the one whose sleep was unbounded and deaf to a cancel.
  // A token of its own: the budget is per token, and a slow call left over from another test must not spend it.
  const RL_TOKEN = "cf-rate-limit-token-77aa";
  const withSdkRetries = (extra: { maxRateLimitWaitMs?: number } = {}) => {
    fake.addToken(RL_TOKEN, ["zone:read", "dns:edit"]);
    return createCloudflare({
      apiToken: RL_TOKEN,
      baseURL: fake.baseUrl,
      accountId: fake.accountId,
      ...extra,
    });
  };
  const statuses = () => fake.calls((c) => c.query.name === ZONE).map((c) => c.status);
  const ZONE = "ratelimit.example";

  it("waits out a 429 for its retry-after, saying first what it waits for and until when, then goes on", async () => {
    fake.addZone(ZONE);
    fake.setRateLimit(2, 1_000);
    const client = withSdkRetries();
    await client.dns.findZone(ZONE);
    await client.dns.findZone(ZONE);
    const waits: Array<{ what: string; waitMs: number; until: Date }> = [];
    const before = Date.now();
    const zone = await client.dns.findZone(ZONE, { onWait: (w) => waits.push(w) });
    expect(zone.name).toBe(ZONE);
    expect(waits).toEqual([
      { what: "looking up zone ratelimit.example", waitMs: 1_000, until: expect.any(Date) },
    ]);
    expect(waits[0]!.until.getTime()).toBeGreaterThanOrEqual(before + 1_000);
    // one refused request, no retries of the SDK's own on top
    expect(statuses()).toEqual([200, 200, 429, 200]);
  });

  it("stops waiting at once when the run is cancelled", async () => {
    fake.addZone(ZONE);
    fake.setRateLimit(1, 5_000);
    const client = withSdkRetries();
    await client.dns.findZone(ZONE);
    const controller = new AbortController();
    const started = Date.now();
    const pending = client.dns.findZone(ZONE, {
      signal: controller.signal,
      onWait: () => controller.abort(),
    });
    const err = await rejectionOf(pending);
    expect(err.code).toBe(ErrorCode.Cancelled);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("refuses to wait longer than its cap, and says until when the limit holds", async () => {
    fake.addZone(ZONE);
    fake.setRateLimit(1, 4_000);
    const client = withSdkRetries({ maxRateLimitWaitMs: 1_000 });
    await client.dns.findZone(ZONE);
    const started = Date.now();
    const err = await rejectionOf(client.dns.findZone(ZONE));
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(err.code).toBe(ErrorCode.RateLimited);
    expect(err.message).toMatch(/asks to wait 4 s, until \d{4}-\d\d-\d\dT/);
    expect(describeError(err)).toContain("Run the step again after that time");
    expect(statuses()).toEqual([200, 429]);
  });
});
