import Cloudflare, {
  APIConnectionTimeoutError,
  InternalServerError,
  PermissionDeniedError,
} from "cloudflare";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { FakeCloudflare } from "../../src/sandbox/FakeCloudflare.js";
import { waitForValue } from "../helpers/wait.js";

const TOKEN = "cf-test-token-5f1d0c";

let fake: FakeCloudflare;
let cf: Cloudflare;

const client = (opts: Partial<ConstructorParameters<typeof Cloudflare>[0]> = {}) =>
  new Cloudflare({ apiToken: TOKEN, baseURL: fake.baseUrl, maxRetries: 0, logLevel: "off", ...opts });

beforeAll(async () => {
  fake = new FakeCloudflare({ apiToken: TOKEN, deploymentMs: 150 });
  await fake.start();
  cf = client();
});
afterAll(async () => {
  await fake.stop();
});
afterEach(() => {
  fake.reset();
});

describe("FakeCloudflare: zones and DNS records through the official SDK", () => {
  it("pages a zone listing and ends with an empty page, which is how the SDK stops", async () => {
    for (const name of ["e.com", "a.com", "d.com", "b.com", "c.com"]) fake.addZone(name);
    const names: string[] = [];
    for await (const zone of cf.zones.list({ per_page: 2 })) names.push(zone.name);
    expect(names).toEqual(["a.com", "b.com", "c.com", "d.com", "e.com"]);
    const pages = fake.calls("GET /zones").map((c) => c.query.page ?? "1");
    expect(pages).toEqual(["1", "2", "3", "4"]);

    const first = await cf.zones.list({ per_page: 2 });
    expect(first.result_info).toMatchObject({ page: 1, per_page: 2, total_count: 5, total_pages: 3 });
    const byName = await cf.zones.list({ name: "c.com" });
    expect(byName.result.map((z) => z.name)).toEqual(["c.com"]);
  }, 5_000); // a fake that never answers an empty page makes the SDK loop: fail fast

  it("filters records by name (SDK's name.exact, or plain name) and type, across pages", async () => {
    const zone = fake.addZone("example.com");
    fake.addRecord("example.com", { name: "api.example.com", type: "TXT", content: "v=spf1 -all" });
    fake.addRecord("example.com", { name: "www.example.com", type: "CNAME", content: "example.pages.dev" });
    fake.addRecord("example.com", { name: "api.example.com", type: "AAAA", content: "2001:db8::1" });
    fake.addRecord("example.com", { name: "api.example.com", type: "A", content: "203.0.113.10", ttl: 300 });

    const byName: string[] = [];
    for await (const r of cf.dns.records.list({
      zone_id: zone.id,
      name: { exact: "api.example.com" },
      per_page: 2,
    }))
      byName.push(r.type);
    expect(byName).toEqual(["TXT", "AAAA", "A"]);
    expect(fake.calls("GET /zones/*/dns_records").at(0)?.query).toMatchObject({
      "name.exact": "api.example.com",
    });

    const a = await cf.dns.records.list({ zone_id: zone.id, name: { exact: "API.example.com" }, type: "A" });
    expect(a.result.map((r) => [r.content, r.ttl])).toEqual([["203.0.113.10", 300]]);

    const plain = await fetch(`${fake.baseUrl}/zones/${zone.id}/dns_records?name=www.example.com`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const body = (await plain.json()) as {
      success: boolean;
      result: { type: string }[];
      result_info: unknown;
    };
    expect(body.success).toBe(true);
    expect(body.result.map((r) => r.type)).toEqual(["CNAME"]);
    expect(body.result_info).toMatchObject({ page: 1, count: 1, total_count: 1 });
  }, 5_000);

  it("creates, reads, edits (PATCH), overwrites (PUT) and deletes a record; state follows", async () => {
    const zone = fake.addZone("example.com");
    const created = await cf.dns.records.create({
      zone_id: zone.id,
      name: "cdn",
      type: "CNAME",
      content: "d111111abcdef8.cloudfront.net",
      ttl: 300,
      comment: "added by cutover",
    });
    expect(created.name).toBe("cdn.example.com");
    expect((await cf.dns.records.get(created.id, { zone_id: zone.id })).content).toBe(
      "d111111abcdef8.cloudfront.net",
    );

    const edited = await cf.dns.records.edit(created.id, { zone_id: zone.id, ttl: 60 } as never);
    expect(edited).toMatchObject({
      ttl: 60,
      content: "d111111abcdef8.cloudfront.net",
      comment: "added by cutover",
    });

    const put = await cf.dns.records.update(created.id, {
      zone_id: zone.id,
      name: "cdn.example.com",
      type: "CNAME",
      content: "d222222abcdef8.cloudfront.net",
      ttl: 120,
    });
    // PUT overwrites: what the body leaves out goes back to its default
    expect(put).toMatchObject({
      content: "d222222abcdef8.cloudfront.net",
      ttl: 120,
      comment: null,
      proxied: false,
    });
    expect(fake.records("example.com").map((r) => [r.name, r.content, r.ttl])).toEqual([
      ["cdn.example.com", "d222222abcdef8.cloudfront.net", 120],
    ]);

    await cf.dns.records.delete(created.id, { zone_id: zone.id });
    expect(fake.records(zone.id)).toEqual([]);
    const gone = await cf.dns.records.get(created.id, { zone_id: zone.id }).catch((e: unknown) => e);
    expect(gone).toMatchObject({ status: 404, errors: [{ code: 81044, message: "Record does not exist." }] });
  });

  it("refuses what Cloudflare refuses: bad IPv4, TTL below the plan's minimum, CNAME beside an A", async () => {
    const zone = fake.addZone("example.com");
    const a = fake.addRecord("example.com", { name: "api.example.com", type: "A", content: "203.0.113.10" });
    const bad = await cf.dns.records
      .edit(a.id, { zone_id: zone.id, content: "not-an-ip" } as never)
      .catch((e) => e);
    expect(bad).toMatchObject({ status: 400, errors: [{ code: 9005 }] });
    const low = await cf.dns.records.edit(a.id, { zone_id: zone.id, ttl: 30 } as never).catch((e) => e);
    expect(low).toMatchObject({ status: 400, errors: [{ code: 9021 }] });
    const clash = await cf.dns.records
      .create({ zone_id: zone.id, name: "api.example.com", type: "CNAME", content: "x.example.net", ttl: 1 })
      .catch((e) => e);
    expect(clash).toMatchObject({ status: 400, errors: [{ code: 81053 }] });
    // nothing changed
    expect(fake.records("example.com")).toMatchObject([{ content: "203.0.113.10", ttl: 1 }]);
    // a proxied record's TTL reads as automatic
    const proxied = await cf.dns.records.edit(a.id, { zone_id: zone.id, proxied: true, ttl: 300 } as never);
    expect(proxied).toMatchObject({ proxied: true, ttl: 1 });
  });

  it("answers a wrong token with 403 and Cloudflare's error, and records the call without the token", async () => {
    const zone = fake.addZone("example.com");
    const wrong = client({ apiToken: "not-the-token-999" });
    const err = await wrong.zones.list({ name: "example.com" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermissionDeniedError);
    expect((err as PermissionDeniedError).errors).toEqual([{ code: 9109, message: "Invalid access token" }]);
    const call = await fake.waitFor("GET /zones");
    expect(call).toMatchObject({ authorized: false, status: 403, errorCodes: [9109] });
    expect(JSON.stringify(fake.calls())).not.toContain("not-the-token-999");
    expect(JSON.stringify(fake.calls())).not.toContain(TOKEN);
    expect(fake.records(zone.id)).toEqual([]);
  });
});

describe("FakeCloudflare: Pages through the official SDK", () => {
  const ACCOUNT = () => fake.accountId;

  it("reads a project's production variables and merges a PATCH (null removes, others stay)", async () => {
    fake.addPagesProject("web", {
      envVars: { NEXT_PUBLIC_API_URL: "https://old.example.app", NEXT_PUBLIC_SITE_NAME: "Shop" },
      secrets: { SENTRY_AUTH_TOKEN: "s3cret" },
    });
    const project = await cf.pages.projects.get("web", { account_id: ACCOUNT() });
    expect(project.deployment_configs.production.env_vars).toEqual({
      NEXT_PUBLIC_API_URL: { type: "plain_text", value: "https://old.example.app" },
      NEXT_PUBLIC_SITE_NAME: { type: "plain_text", value: "Shop" },
      SENTRY_AUTH_TOKEN: { type: "secret_text", value: "" },
    });

    const edited = await cf.pages.projects.edit("web", {
      account_id: ACCOUNT(),
      deployment_configs: {
        production: {
          env_vars: {
            NEXT_PUBLIC_API_URL: { type: "plain_text", value: "https://api.example.com" },
            NEXT_PUBLIC_SITE_NAME: null,
          },
        },
      },
    });
    expect(Object.keys(edited.deployment_configs.production.env_vars ?? {}).sort()).toEqual([
      "NEXT_PUBLIC_API_URL",
      "SENTRY_AUTH_TOKEN",
    ]);
    expect(fake.envVars("web")).toEqual({
      NEXT_PUBLIC_API_URL: "https://api.example.com",
      SENTRY_AUTH_TOKEN: "s3cret",
    });
    expect(fake.calls("PATCH /accounts/*/pages/projects/web")[0]?.body).toMatchObject({
      deployment_configs: { production: { env_vars: { NEXT_PUBLIC_SITE_NAME: null } } },
    });
  });

  it("creates a deployment (multipart) whose stage goes queued → active → deploy success", async () => {
    fake.addPagesProject("web", { envVars: { NEXT_PUBLIC_API_URL: "https://api.example.com" } });
    // five stages of 200 ms each: wide margins for a busy machine
    fake.setDeploymentDuration(1_000);
    const created = await cf.pages.projects.deployments.create("web", { account_id: ACCOUNT() });
    expect(created.latest_stage).toMatchObject({ name: "queued", status: "active" });
    expect(created.environment).toBe("production");
    expect(created.env_vars).toEqual({
      NEXT_PUBLIC_API_URL: { type: "plain_text", value: "https://api.example.com" },
    });

    const get = () =>
      cf.pages.projects.deployments.get(created.id, { account_id: ACCOUNT(), project_name: "web" });
    // polled, not slept on: past the queue, a later stage is at work
    const mid = await waitForValue(
      "the build to leave the queue",
      get,
      (d) => d.latest_stage.name !== "queued",
      {
        intervalMs: 20,
      },
    );
    expect(mid.latest_stage.status).toBe("active");
    expect(mid.stages[0]).toMatchObject({ name: "queued", status: "success" });

    const done = await waitForValue("the build to finish", get, (d) => d.latest_stage.status !== "active", {
      intervalMs: 50,
    });
    expect(done.latest_stage).toMatchObject({ name: "deploy", status: "success" });
    expect(done.stages.every((s) => s.status === "success")).toBe(true);

    const listed: string[] = [];
    for await (const d of cf.pages.projects.deployments.list("web", { account_id: ACCOUNT(), per_page: 1 }))
      listed.push(d.id);
    expect(listed).toEqual([created.id]);
    expect(fake.project("web")?.canonical_deployment?.id).toBe(created.id);
  });

  it("fails a deployment at the stage asked, and answers an unknown project with 8000007", async () => {
    fake.addPagesProject("web");
    fake.setDeploymentDuration(0);
    fake.failNextDeployment("web", "build");
    const d = await cf.pages.projects.deployments.create("web", { account_id: ACCOUNT() });
    expect(d.latest_stage).toMatchObject({ name: "build", status: "failure" });
    const again = await cf.pages.projects.deployments.create("web", { account_id: ACCOUNT() });
    expect(again.latest_stage).toMatchObject({ name: "deploy", status: "success" });

    const missing = await cf.pages.projects.get("nope", { account_id: ACCOUNT() }).catch((e: unknown) => e);
    expect(missing).toMatchObject({ status: 404, errors: [{ code: 8000007 }] });
  });
});

describe("FakeCloudflare: faults and latency", () => {
  it("failNext fails only the next matching call; failAfter lets n through then fails", async () => {
    const zone = fake.addZone("example.com");
    const a = fake.addRecord("example.com", { name: "api.example.com", type: "A", content: "203.0.113.10" });
    fake.failNext("PATCH /zones/*/dns_records/*", {
      status: 500,
      code: 10001,
      message: "Internal server error",
    });
    await expect(cf.dns.records.get(a.id, { zone_id: zone.id })).resolves.toMatchObject({ id: a.id });
    const err = await cf.dns.records
      .edit(a.id, { zone_id: zone.id, ttl: 60 } as never)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InternalServerError);
    expect((err as InternalServerError).errors).toEqual([{ code: 10001, message: "Internal server error" }]);
    await expect(cf.dns.records.edit(a.id, { zone_id: zone.id, ttl: 60 } as never)).resolves.toMatchObject({
      ttl: 60,
    });

    fake.failAfter(2, { status: 503, code: 10002, message: "Service unavailable" });
    await cf.zones.get({ zone_id: zone.id });
    await cf.zones.get({ zone_id: zone.id });
    await expect(cf.zones.get({ zone_id: zone.id })).rejects.toMatchObject({ status: 503 });
    await expect(cf.zones.get({ zone_id: zone.id })).rejects.toMatchObject({ status: 503 });
    fake.clearFaults();
    await expect(cf.zones.get({ zone_id: zone.id })).resolves.toMatchObject({ name: "example.com" });
  });

  it("delays answers so the SDK's timeout fires, and waitFor sees calls as they come", async () => {
    const zone = fake.addZone("example.com");
    fake.setLatency(400, "GET /zones/*");
    const slow = client({ timeout: 100 });
    const started = Date.now();
    await expect(slow.zones.get({ zone_id: zone.id })).rejects.toBeInstanceOf(APIConnectionTimeoutError);
    expect(Date.now() - started).toBeLessThan(350);
    fake.setLatency(0, "GET /zones/*");

    const waiting = fake.waitFor(
      (c) => c.method === "GET" && c.path === "/zones" && c.query.name === "late.com",
    );
    setTimeout(() => void cf.zones.list({ name: "late.com" }), 20);
    await expect(waiting).resolves.toMatchObject({ status: 200 });
    await expect(fake.waitFor("DELETE /zones/*", { timeoutMs: 50 })).rejects.toThrow(/waited 50 ms/);
  });
});

describe("FakeCloudflare: what the real API does that a one-token, instant fake would not", () => {
  it("gives a token only its permissions: 403 with code 10000 for the rest; Verify Token needs none", async () => {
    const zone = fake.addZone("example.com");
    const a = fake.addRecord("example.com", { name: "api.example.com", type: "A", content: "203.0.113.10" });
    fake.addPagesProject("web");
    fake.addToken("read-only-token", ["zone:read", "dns:read", "pages:read"]);
    const ro = client({ apiToken: "read-only-token" });
    await expect(ro.zones.list({ name: "example.com" })).resolves.toBeDefined();
    await expect(ro.dns.records.get(a.id, { zone_id: zone.id })).resolves.toMatchObject({
      content: "203.0.113.10",
    });
    await expect(ro.pages.projects.get("web", { account_id: fake.accountId })).resolves.toMatchObject({
      name: "web",
    });
    const edit = await ro.dns.records
      .edit(a.id, { zone_id: zone.id, ttl: 60 } as never)
      .catch((e: unknown) => e);
    expect(edit).toBeInstanceOf(PermissionDeniedError);
    expect((edit as PermissionDeniedError).errors).toEqual([
      { code: 10000, message: "Authentication error" },
    ]);
    const patch = await ro.pages.projects
      .edit("web", { account_id: fake.accountId })
      .catch((e: unknown) => e);
    expect(patch).toMatchObject({ status: 403, errors: [{ code: 10000 }] });
    expect(fake.records("example.com")[0]?.ttl).toBe(1);
    await expect(ro.user.tokens.verify()).resolves.toMatchObject({ status: "active" });

    // DNS Edit includes DNS Read, but not Zone Read
    fake.addToken("dns-only", ["dns:edit"]);
    const dnsOnly = client({ apiToken: "dns-only" });
    await expect(dnsOnly.dns.records.get(a.id, { zone_id: zone.id })).resolves.toBeDefined();
    await expect(dnsOnly.zones.list({ name: "example.com" })).rejects.toMatchObject({ status: 403 });
  });

  it("enforces the rate limit per token: 429 with retry-after, blocking every call until it ends", async () => {
    fake.addZone("example.com");
    fake.setRateLimit(3, 2_000);
    for (let i = 0; i < 3; i++) await cf.zones.list({ name: "example.com" });
    const refused = await fetch(`${fake.baseUrl}/zones`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("2");
    expect(((await refused.json()) as { errors: unknown[] }).errors).toEqual([
      { code: 971, message: "Please wait and consider throttling your request speed" },
    ]);
    // still blocked: a refused call does not count, and does not end the block early
    const again = await cf.zones.list({ name: "example.com" }).catch((e: unknown) => e);
    expect(again).toMatchObject({ status: 429 });
    // another token has a budget of its own
    fake.addToken("other", ["zone:read"]);
    await expect(client({ apiToken: "other" }).zones.list({ name: "example.com" })).resolves.toBeDefined();
  });

  it("stores an AAAA record in canonical form (RFC 5952), and finds an identical one whatever its spelling", async () => {
    const zone = fake.addZone("example.com");
    const r = await cf.dns.records.create({
      zone_id: zone.id,
      name: "api",
      type: "AAAA",
      content: "2001:0DB8:0000:0000::0020",
      ttl: 300,
    } as never);
    expect(r.content).toBe("2001:db8::20");
    const dup = await cf.dns.records
      .create({
        zone_id: zone.id,
        name: "api",
        type: "AAAA",
        content: "2001:db8:0:0:0:0:0:20",
        ttl: 300,
      } as never)
      .catch((e: unknown) => e);
    expect(dup).toMatchObject({ status: 400, errors: [{ code: 81058 }] });
  });

  it("refuses to build a Direct Upload project (it has no source): 400 with code 8000096", async () => {
    fake.addPagesProject("uploaded", { source: "direct_upload" });
    fake.addPagesProject("built");
    expect((await cf.pages.projects.get("uploaded", { account_id: fake.accountId })).source).toBeUndefined();
    expect((await cf.pages.projects.get("built", { account_id: fake.accountId })).source?.type).toBe(
      "github",
    );
    const err = await cf.pages.projects.deployments
      .create("uploaded", { account_id: fake.accountId })
      .catch((e) => e);
    expect(err).toMatchObject({ status: 400, errors: [{ code: 8000096 }] });
    expect(fake.deployments("uploaded")).toEqual([]);
  });

  it("builds one at a time (Free plan): a later build waits queued, and a queued one overtaken by a newer one is skipped", async () => {
    fake.addPagesProject("web");
    fake.setDeploymentDuration(800);
    const make = () => cf.pages.projects.deployments.create("web", { account_id: fake.accountId });
    const first = await make();
    const second = await make();
    expect(second.latest_stage).toMatchObject({ name: "queued", status: "active" });
    const third = await make();
    const view = (id: string) => fake.deployments("web").find((d) => d.id === id)!;
    expect(view(second.id)).toMatchObject({
      is_skipped: true,
      latest_stage: { name: "queued", status: "skipped" },
    });
    expect(view(third.id).latest_stage).toMatchObject({ name: "queued", status: "active" });
    await vi.waitFor(() => expect(view(first.id).latest_stage).toMatchObject({ status: "success" }), {
      timeout: 3_000,
    });
    // the third starts only when the first has finished
    expect(view(third.id).latest_stage.name).not.toBe("deploy");
    await vi.waitFor(
      () => expect(view(third.id).latest_stage).toMatchObject({ name: "deploy", status: "success" }),
      {
        timeout: 3_000,
      },
    );
    const thirdStarted = Date.parse(view(third.id).stages[1]!.started_on!);
    const firstEnded = Date.parse(view(first.id).latest_stage.ended_on!);
    expect(thirdStarted).toBeGreaterThanOrEqual(firstEnded);
  });
});
