import { randomBytes, randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import { isIP } from "node:net";
import { CallRecord, FakeHttpServer, FaultPlan } from "./fake-harness.js";

/**
 * One request the fake received. The token is never kept: `authorized` says whether it matched.
 * `path` is relative to the API root (`/zones/…/dns_records`), without `/client/v4`.
 */
export interface CloudflareCall {
  method: string;
  path: string;
  /** query parameters (the last value of a repeated one), e.g. `{ "name.exact": "api.example.com", page: "2" }` */
  query: Record<string, string>;
  /** the parsed JSON body, the fields of a multipart form, or undefined */
  body: unknown;
  /** epoch milliseconds when the request arrived */
  at: number;
  authorized: boolean;
  /** the HTTP status the fake answered with */
  status: number;
  /** Cloudflare error codes in the answer (empty on success) */
  errorCodes: number[];
}

/** What a failing answer says. Defaults: HTTP 500, code 10001, "Internal server error". */
export interface CloudflareFault {
  status?: number;
  code?: number;
  message?: string;
}

/**
 * Which calls a fault, a latency or a `waitFor` applies to: `"PATCH /zones/*\/dns_records/*"`,
 * `"/accounts/*\/pages/projects/*"` (any method), a RegExp tested against `"METHOD /path"`, or a
 * predicate. In a string, `*` is one path segment and `**` any number of them.
 */
export type CallMatch = string | RegExp | ((call: CallInfo) => boolean);

/** What a {@link CallMatch} predicate sees of a call (faults match before the answer exists). */
export type CallInfo = Pick<CloudflareCall, "method" | "path" | "query" | "body" | "authorized">;

/** A DNS record as Cloudflare's API returns it. */
export interface FakeDnsRecord {
  id: string;
  zone_id: string;
  zone_name: string;
  name: string;
  type: string;
  content: string;
  ttl: number;
  proxied: boolean;
  proxiable: boolean;
  comment: string | null;
  tags: string[];
  settings: Record<string, unknown>;
  meta: Record<string, unknown>;
  created_on: string;
  modified_on: string;
}

export interface FakeZone {
  id: string;
  name: string;
  status: "active" | "pending" | "initializing" | "moved";
  account: { id: string; name: string };
}

export type FakeEnvVar = { type: "plain_text" | "secret_text"; value: string };

/** A stage of a Pages deployment (`latest_stage` and `stages[]`). */
export interface FakeStage {
  name: "queued" | "initialize" | "clone_repo" | "build" | "deploy";
  status: "idle" | "active" | "success" | "failure" | "canceled" | "skipped";
  started_on: string | null;
  ended_on: string | null;
}

/** A Pages deployment as Cloudflare's API returns it (the fields Cutover and its tests read). */
export interface FakeDeployment {
  id: string;
  short_id: string;
  project_id: string;
  project_name: string;
  environment: "production" | "preview";
  url: string;
  aliases: string[] | null;
  created_on: string;
  modified_on: string;
  latest_stage: FakeStage;
  stages: FakeStage[];
  /** the variables the build ran with (a snapshot taken when it was created; secrets show no value) */
  env_vars: Record<string, FakeEnvVar>;
  deployment_trigger: {
    type: "ad_hoc";
    metadata: { branch: string; commit_hash: string; commit_message: string; commit_dirty: boolean };
  };
  build_config: Record<string, unknown>;
  is_skipped: boolean;
  uses_functions: boolean;
}

/** A Pages project as Cloudflare's API returns it. */
export interface FakePagesProject {
  id: string;
  name: string;
  subdomain: string;
  domains: string[];
  production_branch: string;
  created_on: string;
  framework: string;
  framework_version: string;
  preview_script_name: string;
  production_script_name: string;
  uses_functions: boolean;
  build_config: Record<string, unknown>;
  deployment_configs: {
    production: Record<string, unknown> & { env_vars: Record<string, FakeEnvVar> };
    preview: Record<string, unknown> & { env_vars: Record<string, FakeEnvVar> };
  };
  latest_deployment: FakeDeployment | null;
  canonical_deployment: FakeDeployment | null;
  /** the Git repository Cloudflare builds from; absent on a Direct Upload project */
  source?: { type: "github" | "gitlab"; config: Record<string, unknown> };
}

export interface FakeCloudflareOptions {
  /** a bearer token with every permission; default "cf-sandbox-token" ({@link FakeCloudflare.addToken} adds scoped ones) */
  apiToken?: string;
  /** the account the Pages projects belong to; default a fixed 32-hex id */
  accountId?: string;
  /** default 0: any free port */
  port?: number;
  /** how long a Pages deployment takes from queued to success; default 300 ms */
  deploymentMs?: number;
  /** the lowest TTL a record may have besides 1 (automatic): 60 on most plans, 30 on Enterprise; default 60 */
  minTtl?: number;
  /**
   * The API's global limit, per token: "1200 requests per five minutes per user … If you exceed
   * this limit, all API calls for the next five minutes will be blocked, receiving a HTTP 429"
   * with `retry-after` ("the number of seconds, rounded up, until more capacity is available").
   * Source: https://developers.cloudflare.com/fundamentals/api/reference/limits/ . Default
   * `{ requests: 1200, windowMs: 300_000 }`; tests shrink it.
   */
  rateLimit?: { requests: number; windowMs: number };
  /** builds that run at once per account: 1 on the Free plan (Pages limits: "Concurrent builds"); default 1 */
  concurrentBuilds?: number;
}

/**
 * What a token may do, as the permission groups of Cloudflare's token editor: Zone → Zone → Read
 * (`zone:read`: list and read zones), Zone → DNS → Read / Edit, Account → Cloudflare Pages →
 * Read / Edit. Edit includes Read. A call the token may not make is answered 403 with error code
 * 10000, "Authentication error" (what the API answers a token lacking the permission).
 */
export type CloudflarePermission = "zone:read" | "dns:read" | "dns:edit" | "pages:read" | "pages:edit";

export const ALL_CLOUDFLARE_PERMISSIONS: readonly CloudflarePermission[] = [
  "zone:read",
  "dns:read",
  "dns:edit",
  "pages:read",
  "pages:edit",
];

export const FAKE_CLOUDFLARE_ACCOUNT_ID = "c0ffee00c0ffee00c0ffee00c0ffee00";

const API_ROOT = "/client/v4";
const STAGES: FakeStage["name"][] = ["queued", "initialize", "clone_repo", "build", "deploy"];
const RECORD_TYPES = new Set([
  "A",
  "AAAA",
  "CAA",
  "CERT",
  "CNAME",
  "DNSKEY",
  "DS",
  "HTTPS",
  "LOC",
  "MX",
  "NAPTR",
  "NS",
  "PTR",
  "SMIMEA",
  "SRV",
  "SSHFP",
  "SVCB",
  "TLSA",
  "TXT",
  "URI",
]);
const PROXIABLE = new Set(["A", "AAAA", "CNAME"]);

interface CfError {
  code: number;
  message: string;
}

/** An error answer inside a handler: thrown, turned into Cloudflare's envelope. */
class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly errors: CfError[],
  ) {
    super(errors.map((e) => `${e.code} ${e.message}`).join("; "));
  }
}

const fail = (status: number, code: number, message: string) => new ApiFailure(status, [{ code, message }]);

interface RecordState {
  id: string;
  name: string;
  type: string;
  content: string;
  ttl: number;
  proxied: boolean;
  comment: string | null;
  tags: string[];
  createdOn: string;
  modifiedOn: string;
}

interface ZoneState {
  id: string;
  name: string;
  status: FakeZone["status"];
  accountId: string;
  records: Map<string, RecordState>;
}

interface DeploymentState {
  id: string;
  shortId: string;
  environment: "production" | "preview";
  branch: string;
  commitHash: string;
  commitMessage: string;
  createdAt: number;
  durationMs: number;
  /** the stage it fails at, when it fails */
  failAt: FakeStage["name"] | undefined;
  envVars: Record<string, FakeEnvVar>;
}

interface ProjectState {
  id: string;
  name: string;
  /** the Git repository Cloudflare builds from; null for a Direct Upload project (wrangler / CI uploads the files) */
  source: { type: "github" | "gitlab"; config: Record<string, unknown> } | null;
  accountId: string;
  subdomain: string;
  productionBranch: string;
  createdOn: string;
  buildConfig: Record<string, unknown>;
  domains: string[];
  configs: { production: Record<string, unknown>; preview: Record<string, unknown> };
  env: { production: Map<string, FakeEnvVar>; preview: Map<string, FakeEnvVar> };
  /** newest first */
  deployments: DeploymentState[];
  failNext: FakeStage["name"][];
}

interface LatencyRule {
  match: CallMatch | undefined;
  ms: number;
}

type Reply = { status: number; body: unknown };
type Query = URLSearchParams;
type FakeCloudflareEvents = { call: [CloudflareCall] };

/**
 * A stand-in for Cloudflare's v4 API (zones, DNS records, Pages projects and deployments): a real
 * HTTP server on 127.0.0.1 that keeps its state in memory, answers in Cloudflare's envelope
 * (`{ success, errors, messages, result, result_info }`) and records every call. Point the
 * official SDK at it; lists answer `[]` past their last page, which is how the SDK knows to stop.
 *
 * Like the real API it gives each token only its permissions (403, code 10000), enforces the
 * per-token rate limit (429 with `retry-after`), returns AAAA records in canonical form, builds
 * one Pages deployment at a time (queued, skipped when superseded, failed on request) and
 * refuses to build a Direct Upload project.
 *
 * @example
 * const fake = new FakeCloudflare(); await fake.start();
 * const zone = fake.addZone("example.com");
 * fake.addRecord("example.com", { name: "api.example.com", type: "A", content: "203.0.113.10" });
 * const cf = new Cloudflare({ apiToken: fake.apiToken, baseURL: fake.baseUrl, maxRetries: 0 });
 * for await (const r of cf.dns.records.list({ zone_id: zone.id })) console.log(r.content);
 */
export class FakeCloudflare extends EventEmitter<FakeCloudflareEvents> {
  readonly apiToken: string;
  readonly accountId: string;
  private readonly portWanted: number;
  private readonly minTtl: number;
  private deploymentMs: number;
  private readonly initialDeploymentMs: number;
  private readonly server = new FakeHttpServer("FakeCloudflare", (req, res) => this.handle(req, res));
  private readonly record = new CallRecord<CloudflareCall>(
    "FakeCloudflare",
    structuredClone,
    (calls) =>
      `Calls so far: ${calls.map((c) => `${c.method} ${c.path} → ${c.status}`).join(", ") || "none"}`,
  );
  private zoneMap = new Map<string, ZoneState>();
  private projectMap = new Map<string, ProjectState>();
  private readonly faults = new FaultPlan<CallInfo, Required<CloudflareFault>>();
  private readonly failAfterRules = new FaultPlan<CallInfo, Required<CloudflareFault>>();
  private latencies: LatencyRule[] = [];
  private tokens = new Map<string, { id: string; permissions: Set<CloudflarePermission>; status: string }>();
  private rateLimit: { requests: number; windowMs: number };
  private readonly initialRateLimit: { requests: number; windowMs: number };
  /** per token: arrival times of the counted requests, and until when it is blocked */
  private usage = new Map<string, { times: number[]; blockedUntil: number }>();
  private readonly concurrentBuilds: number;

  constructor(options: FakeCloudflareOptions = {}) {
    super();
    this.apiToken = options.apiToken ?? "cf-sandbox-token";
    this.addToken(this.apiToken, ALL_CLOUDFLARE_PERMISSIONS);
    this.rateLimit = options.rateLimit ?? { requests: 1200, windowMs: 300_000 };
    this.initialRateLimit = this.rateLimit;
    this.concurrentBuilds = options.concurrentBuilds ?? 1;
    this.accountId = options.accountId ?? FAKE_CLOUDFLARE_ACCOUNT_ID;
    this.portWanted = options.port ?? 0;
    this.deploymentMs = options.deploymentMs ?? 300;
    this.initialDeploymentMs = this.deploymentMs;
    this.minTtl = options.minTtl ?? 60;
  }

  /** Listen on 127.0.0.1 (the port given in the options, or a free one). */
  async start(): Promise<void> {
    await this.server.start(this.portWanted);
  }

  /** Close the server and every connection still open. */
  async stop(): Promise<void> {
    await this.server.stop();
  }

  /** `http://127.0.0.1:PORT/client/v4`: the SDK's `baseURL` (or `CLOUDFLARE_BASE_URL`). */
  get baseUrl(): string {
    return `${this.server.origin}${API_ROOT}`;
  }

  // ---- seeding ---------------------------------------------------------------------------

  /**
   * Another API token the fake accepts, with only these permissions (see {@link CloudflarePermission}).
   * `status` is what `GET /user/tokens/verify` reports: a token that is not `active` is refused
   * everywhere else (401, code 1000 "Invalid API Token").
   */
  addToken(
    token: string,
    permissions: readonly CloudflarePermission[],
    status: "active" | "disabled" | "expired" = "active",
  ): void {
    this.tokens.set(token, { id: hexId(), permissions: new Set(permissions), status });
  }

  /** Change the rate limit (requests per window, per token); usage so far is forgotten. */
  setRateLimit(requests: number, windowMs: number): void {
    this.rateLimit = { requests, windowMs };
    this.usage.clear();
  }

  /** Add a zone (active unless told otherwise). */
  addZone(
    name: string,
    opts: { id?: string; status?: FakeZone["status"]; accountId?: string } = {},
  ): FakeZone {
    const zoneName = name.toLowerCase();
    const zone: ZoneState = {
      id: opts.id ?? hexId(),
      name: zoneName,
      status: opts.status ?? "active",
      accountId: opts.accountId ?? this.accountId,
      records: new Map(),
    };
    this.zoneMap.set(zone.id, zone);
    return this.zoneView(zone);
  }

  /** Add a DNS record to a zone (by name or id), checked as the API would check it. */
  addRecord(
    zone: string,
    record: {
      name: string;
      type: string;
      content: string;
      ttl?: number;
      proxied?: boolean;
      comment?: string;
    },
  ): FakeDnsRecord {
    const z = this.zoneByKey(zone);
    if (!z) throw new Error(`FakeCloudflare: no zone ${zone}`);
    try {
      return this.recordView(z, this.createRecord(z, record));
    } catch (err) {
      if (err instanceof ApiFailure) throw new Error(`FakeCloudflare: cannot add record: ${err.message}`);
      throw err;
    }
  }

  /** Add a Pages project with its production (and preview) variables. */
  addPagesProject(
    name: string,
    opts: {
      accountId?: string;
      productionBranch?: string;
      /** plain-text production variables */
      envVars?: Record<string, string>;
      /** encrypted production variables */
      secrets?: Record<string, string>;
      previewEnvVars?: Record<string, string>;
      domains?: string[];
      /**
       * How the project gets its files: built by Cloudflare from a GitHub/GitLab repository
       * (default github), or `direct_upload`: built elsewhere and uploaded by `wrangler pages
       * deploy` or CI. The API's project has `source` only in the first case.
       */
      source?: "github" | "gitlab" | "direct_upload";
    } = {},
  ): FakePagesProject {
    const toMap = (vars: Record<string, string> | undefined, type: FakeEnvVar["type"]) =>
      Object.entries(vars ?? {}).map(([k, value]) => [k, { type, value }] as const);
    const kind = opts.source ?? "github";
    const project: ProjectState = {
      id: randomUUID(),
      name,
      source:
        kind === "direct_upload"
          ? null
          : {
              type: kind,
              config: {
                owner: "cutover-sandbox",
                repo_name: name,
                production_branch: opts.productionBranch ?? "main",
                deployments_enabled: true,
                production_deployments_enabled: true,
                preview_deployment_setting: "all",
              },
            },
      accountId: opts.accountId ?? this.accountId,
      subdomain: `${name}.pages.dev`,
      productionBranch: opts.productionBranch ?? "main",
      createdOn: new Date().toISOString(),
      buildConfig: { build_command: "npm run build", destination_dir: "out", root_dir: "" },
      domains: opts.domains ?? [],
      configs: {
        production: { compatibility_date: "2024-01-01" },
        preview: { compatibility_date: "2024-01-01" },
      },
      env: {
        production: new Map([...toMap(opts.envVars, "plain_text"), ...toMap(opts.secrets, "secret_text")]),
        preview: new Map(toMap(opts.previewEnvVars, "plain_text")),
      },
      deployments: [],
      failNext: [],
    };
    this.projectMap.set(projectKey(project.accountId, name), project);
    return this.projectView(project);
  }

  // ---- faults and timing -----------------------------------------------------------------

  /**
   * Fail the next call that matches (any call when `match` is omitted) with Cloudflare's error
   * envelope. Faults queue up: call it twice to fail the next two matching calls.
   *
   * @example fake.failNext("PATCH /zones/*\/dns_records/*", { status: 500 });
   */
  failNext(match?: CallMatch, fault: CloudflareFault = {}): void {
    this.faults.add((key) => match === undefined || matches(match, key), fullFault(fault));
  }

  /** Answer the next `n` matching calls normally, then fail every later one until {@link clearFaults}. */
  failAfter(n: number, fault: CloudflareFault = {}, match?: CallMatch): void {
    this.failAfterRules.add((key) => match === undefined || matches(match, key), fullFault(fault), {
      after: n,
      times: Number.POSITIVE_INFINITY,
    });
  }

  /** Delay the answers to matching calls (every call when `match` is omitted); 0 removes the delay. */
  setLatency(ms: number, match?: CallMatch): void {
    this.latencies = this.latencies.filter((l) => l.match !== match);
    if (ms > 0) this.latencies.push({ match, ms });
  }

  /** The next deployment of the project fails at this stage (default "build"). */
  failNextDeployment(project: string, stage: FakeStage["name"] = "build"): void {
    this.projectOrThrow(project).failNext.push(stage);
  }

  /** How long later deployments take from queued to their last stage. */
  setDeploymentDuration(ms: number): void {
    this.deploymentMs = ms;
  }

  /** Remove every pending fault, failAfter rule and latency. */
  clearFaults(): void {
    this.faults.clear();
    this.failAfterRules.clear();
    this.latencies = [];
  }

  // ---- what happened ---------------------------------------------------------------------

  /** Every call so far, oldest first; only the matching ones when given. */
  calls(match?: CallMatch): CloudflareCall[] {
    return this.record.list(match === undefined ? undefined : (c) => matches(match, c));
  }

  /**
   * The first call, past or future, that matches. Rejects after `timeoutMs` (default 2000) with
   * the calls seen so far, so a failing test says what happened.
   */
  waitFor(match: CallMatch, options: { timeoutMs?: number } = {}): Promise<CloudflareCall> {
    return this.record.waitFor((c) => matches(match, c), String(match), options.timeoutMs ?? 2000);
  }

  /** The zones, as the API lists them. */
  zones(): FakeZone[] {
    return [...this.zoneMap.values()].map((z) => this.zoneView(z));
  }

  /** A zone's records (zone by name or id), in the order they were created. */
  records(zone: string): FakeDnsRecord[] {
    const z = this.zoneByKey(zone);
    if (!z) throw new Error(`FakeCloudflare: no zone ${zone}`);
    return [...z.records.values()].map((r) => this.recordView(z, r));
  }

  /** A Pages project as the API returns it, or undefined. */
  project(name: string): FakePagesProject | undefined {
    const p = this.findProject(name);
    return p && this.projectView(p);
  }

  /** A project's variables for one environment as plain values (secrets included, for assertions). */
  envVars(project: string, environment: "production" | "preview" = "production"): Record<string, string> {
    const p = this.projectOrThrow(project);
    return Object.fromEntries([...p.env[environment]].map(([k, v]) => [k, v.value]));
  }

  /** A project's deployments, newest first, with their stage as of now. */
  deployments(project: string): FakeDeployment[] {
    const p = this.projectOrThrow(project);
    return p.deployments.map((d) => this.deploymentView(p, d));
  }

  /** Forget every call, fault, zone, record and project; deployments take their first duration again. */
  reset(): void {
    this.record.clear();
    this.deploymentMs = this.initialDeploymentMs;
    this.zoneMap = new Map();
    this.projectMap = new Map();
    this.clearFaults();
    this.rateLimit = this.initialRateLimit;
    this.usage.clear();
    const main = this.tokens.get(this.apiToken);
    this.tokens = new Map(main ? [[this.apiToken, main]] : []);
  }

  // ---- HTTP ------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = Date.now();
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const method = (req.method ?? "GET").toUpperCase();
    const path = url.pathname.startsWith(API_ROOT)
      ? url.pathname.slice(API_ROOT.length) || "/"
      : url.pathname;
    const raw = await readBody(req);
    const auth = req.headers.authorization;
    const token = auth?.startsWith("Bearer ") ? auth.slice("Bearer ".length).trim() : undefined;
    const grant = token === undefined ? undefined : this.tokens.get(token);
    const authorized = grant !== undefined;

    let body: unknown;
    let reply: Reply;
    const headers: Record<string, string> = {};
    try {
      body = await parseBody(req.headers["content-type"], raw);
      const key: CallInfo = { method, path, query: Object.fromEntries(url.searchParams), body, authorized };
      // the budget counts a request when it arrives, however long its answer then takes
      if (grant) this.countRequest(token!, headers);
      const delay = [...this.latencies].reverse().find((l) => l.match === undefined || matches(l.match, key));
      if (delay) await sleep(delay.ms);
      if (!url.pathname.startsWith(`${API_ROOT}/`)) throw fail(404, 7000, "No route for that URI");
      if (auth === undefined)
        throw fail(400, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers");
      if (!grant) throw fail(403, 9109, "Invalid access token");
      if (method === "GET" && /^\/(user|accounts\/[^/]+)\/tokens\/verify$/.test(path)) {
        // Verify answers for the token itself; it needs no permission (API: "Verify Token").
        reply = ok({ id: grant.id, status: grant.status });
      } else {
        if (grant.status !== "active") throw fail(401, 1000, "Invalid API Token");
        const needs = permissionFor(method, path);
        if (needs && !hasPermission(grant.permissions, needs)) throw fail(403, 10000, "Authentication error");
        this.injectFault(key);
        reply = await this.route(method, path, url.searchParams, body);
      }
    } catch (err) {
      if (!(err instanceof ApiFailure)) throw err;
      reply = {
        status: err.status,
        body: { success: false, errors: err.errors, messages: [], result: null },
      };
    }

    const call: CloudflareCall = {
      method,
      path,
      query: Object.fromEntries(url.searchParams),
      body,
      at,
      authorized,
      status: reply.status,
      errorCodes: ((reply.body as { errors?: CfError[] }).errors ?? []).map((e) => e.code),
    };
    this.record.push(call);
    if (!res.destroyed) {
      res.writeHead(reply.status, {
        "content-type": "application/json; charset=utf-8",
        "cf-ray": `${randomBytes(8).toString("hex")}-SIN`,
        ...headers,
      });
      res.end(JSON.stringify(reply.body));
    }
    this.emit("call", structuredClone(call));
  }

  /**
   * Counts one request against the token's budget; past it, every request is refused with 429
   * and `retry-after` until the block ends ("all API calls for the next five minutes will be
   * blocked"). Refused requests do not count. Error code 971 is the API's "Please wait and
   * consider throttling your request speed".
   */
  private countRequest(token: string, headers: Record<string, string>): void {
    const now = Date.now();
    const { requests, windowMs } = this.rateLimit;
    const u = this.usage.get(token) ?? { times: [], blockedUntil: 0 };
    this.usage.set(token, u);
    if (now < u.blockedUntil) {
      headers["retry-after"] = String(Math.ceil((u.blockedUntil - now) / 1000));
      throw fail(429, 971, "Please wait and consider throttling your request speed");
    }
    u.times = u.times.filter((t) => t > now - windowMs);
    if (u.times.length >= requests) {
      u.blockedUntil = now + windowMs;
      u.times = [];
      headers["retry-after"] = String(Math.ceil(windowMs / 1000));
      throw fail(429, 971, "Please wait and consider throttling your request speed");
    }
    u.times.push(now);
  }

  private injectFault(key: CallInfo): void {
    const fault = this.faults.take(key) ?? this.failAfterRules.take(key);
    if (fault) throw fail(fault.status, fault.code, fault.message);
  }

  private async route(method: string, path: string, query: Query, body: unknown): Promise<Reply> {
    const seg = path.split("/").filter(Boolean).map(decodeURIComponent);
    const [a, b, c, d, e, f, g] = seg;
    if (a === "zones") {
      if (seg.length === 1 && method === "GET") return this.listZones(query);
      const zone = this.zoneOrFail(b!, path);
      if (seg.length === 2 && method === "GET") return ok(this.zoneView(zone));
      if (c === "dns_records") {
        if (seg.length === 3 && method === "GET") return this.listRecords(zone, query);
        if (seg.length === 3 && method === "POST")
          return ok(this.recordView(zone, this.createRecord(zone, body)));
        if (seg.length === 4) {
          const record = zone.records.get(d!);
          if (!record) throw fail(404, 81044, "Record does not exist.");
          if (method === "GET") return ok(this.recordView(zone, record));
          if (method === "PATCH")
            return ok(this.recordView(zone, this.editRecord(zone, record, body, false)));
          if (method === "PUT") return ok(this.recordView(zone, this.editRecord(zone, record, body, true)));
          if (method === "DELETE") {
            zone.records.delete(record.id);
            return ok({ id: record.id });
          }
        }
      }
    }
    if (a === "accounts" && c === "pages" && d === "projects") {
      if (b !== this.accountId && ![...this.projectMap.values()].some((p) => p.accountId === b)) {
        throw fail(403, 10000, "Authentication error");
      }
      if (seg.length === 4 && method === "GET") {
        const list = [...this.projectMap.values()].filter((p) => p.accountId === b);
        return paginate(
          list.map((p) => this.projectView(p)),
          query,
          10,
          100,
        );
      }
      const project = this.projectMap.get(projectKey(b!, e!));
      if (!project) {
        throw fail(
          404,
          8000007,
          "Project not found. The specified project name does not match any of your existing projects.",
        );
      }
      if (seg.length === 5 && method === "GET") return ok(this.projectView(project));
      if (seg.length === 5 && method === "PATCH")
        return ok(this.projectView(this.editProject(project, body)));
      if (f === "deployments") {
        if (seg.length === 6 && method === "GET") {
          const env = query.get("env");
          const list = project.deployments.filter((x) => !env || x.environment === env);
          return paginate(
            list.map((x) => this.deploymentView(project, x)),
            query,
            25,
            100,
          );
        }
        if (seg.length === 6 && method === "POST")
          return ok(this.deploymentView(project, this.deploy(project, body)));
        if (seg.length === 7 && method === "GET") {
          const dep = project.deployments.find((x) => x.id === g);
          if (!dep)
            throw fail(
              404,
              8000009,
              "The deployment ID you have specified does not exist. Update the deployment ID and try again.",
            );
          return ok(this.deploymentView(project, dep));
        }
      }
    }
    throw fail(404, 7000, "No route for that URI");
  }

  // ---- zones and records -----------------------------------------------------------------

  private listZones(query: Query): Reply {
    const name = query.get("name")?.toLowerCase();
    const status = query.get("status");
    const account = query.get("account.id");
    const list = [...this.zoneMap.values()]
      .filter((z) => !name || z.name === name)
      .filter((z) => !status || z.status === status)
      .filter((z) => !account || z.accountId === account)
      .sort((x, y) => x.name.localeCompare(y.name))
      .map((z) => this.zoneView(z));
    return paginate(list, query, 20, 50);
  }

  private listRecords(zone: ZoneState, query: Query): Reply {
    const lower = (k: string) => query.get(k)?.toLowerCase();
    const nameExact = lower("name.exact") ?? lower("name");
    const nameContains = lower("name.contains");
    const nameStarts = lower("name.startswith");
    const nameEnds = lower("name.endswith");
    const contentExact = lower("content.exact") ?? lower("content");
    const type = query.get("type")?.toUpperCase();
    const proxied = query.get("proxied");
    const list = [...zone.records.values()]
      .filter((r) => !type || r.type === type)
      .filter((r) => nameExact === undefined || r.name === nameExact)
      .filter((r) => nameContains === undefined || r.name.includes(nameContains))
      .filter((r) => nameStarts === undefined || r.name.startsWith(nameStarts))
      .filter((r) => nameEnds === undefined || r.name.endsWith(nameEnds))
      .filter((r) => contentExact === undefined || r.content.toLowerCase() === contentExact)
      .filter((r) => proxied === null || String(r.proxied) === proxied)
      .map((r) => this.recordView(zone, r));
    return paginate(list, query, 100, 5_000_000);
  }

  private createRecord(zone: ZoneState, body: unknown): RecordState {
    const input = asObject(body);
    const type = String(input.type ?? "").toUpperCase();
    if (!RECORD_TYPES.has(type)) throw fail(400, 9004, "DNS record type is invalid.");
    if (typeof input.name !== "string" || !input.name) throw fail(400, 9007, "DNS record name is invalid.");
    if (typeof input.content !== "string" || !input.content)
      throw fail(400, 9005, "Content for the record is invalid.");
    const now = new Date().toISOString();
    const record: RecordState = {
      id: hexId(),
      name: fullName(zone, input.name),
      type,
      content: input.content,
      ttl: input.ttl === undefined ? 1 : Number(input.ttl),
      proxied: input.proxied === true,
      comment: typeof input.comment === "string" ? input.comment : null,
      tags: Array.isArray(input.tags) ? input.tags.map(String) : [],
      createdOn: now,
      modifiedOn: now,
    };
    this.checkRecord(zone, record);
    zone.records.set(record.id, record);
    return record;
  }

  /** PATCH merges the given fields; PUT overwrites the record with the body. */
  private editRecord(zone: ZoneState, record: RecordState, body: unknown, overwrite: boolean): RecordState {
    const input = asObject(body);
    if (overwrite) {
      for (const k of ["name", "type", "content"] as const) {
        if (typeof input[k] !== "string" || !input[k]) throw fail(400, 9005, `DNS record ${k} is required.`);
      }
    }
    const next: RecordState = overwrite
      ? {
          ...record,
          name: fullName(zone, String(input.name)),
          type: String(input.type).toUpperCase(),
          content: String(input.content),
          ttl: input.ttl === undefined ? 1 : Number(input.ttl),
          proxied: input.proxied === true,
          comment: typeof input.comment === "string" ? input.comment : null,
          tags: Array.isArray(input.tags) ? input.tags.map(String) : [],
        }
      : {
          ...record,
          ...(typeof input.name === "string" ? { name: fullName(zone, input.name) } : {}),
          ...(typeof input.type === "string" ? { type: input.type.toUpperCase() } : {}),
          ...(typeof input.content === "string" ? { content: input.content } : {}),
          ...(input.ttl !== undefined ? { ttl: Number(input.ttl) } : {}),
          ...(typeof input.proxied === "boolean" ? { proxied: input.proxied } : {}),
          ...(input.comment !== undefined
            ? { comment: typeof input.comment === "string" ? input.comment : null }
            : {}),
          ...(Array.isArray(input.tags) ? { tags: input.tags.map(String) } : {}),
        };
    if (!RECORD_TYPES.has(next.type)) throw fail(400, 9004, "DNS record type is invalid.");
    this.checkRecord(zone, next);
    next.modifiedOn = new Date().toISOString();
    zone.records.set(record.id, next);
    return next;
  }

  private checkRecord(zone: ZoneState, r: RecordState): void {
    // Cloudflare stores and returns an AAAA record's address in its canonical text form
    // (RFC 5952: lower case, leading zeros dropped, the longest run of zero groups as "::"):
    // `2001:0DB8:0:0::0020` reads back as `2001:db8::20`.
    if (r.type === "AAAA" && isIP(r.content) === 6) r.content = canonicalIpv6(r.content);
    if (r.type === "A" && isIP(r.content) !== 4)
      throw fail(400, 9005, "Content for A record must be a valid IPv4 address.");
    if (r.type === "AAAA" && isIP(r.content) !== 6)
      throw fail(400, 9005, "Content for AAAA record must be a valid IPv6 address.");
    if (r.type === "CNAME" && !/^[a-z0-9_]([a-z0-9_.-]*[a-z0-9])?\.?$/i.test(r.content))
      throw fail(400, 9007, "Content for CNAME record is invalid.");
    if (!Number.isInteger(r.ttl) || (r.ttl !== 1 && (r.ttl < this.minTtl || r.ttl > 86_400)))
      throw fail(
        400,
        9021,
        `Invalid TTL. Must be between ${this.minTtl} and 86400 seconds, or 1 for Automatic.`,
      );
    if (r.proxied && !PROXIABLE.has(r.type)) throw fail(400, 9004, `${r.type} records cannot be proxied.`);
    const others = [...zone.records.values()].filter((o) => o.id !== r.id && o.name === r.name);
    if (r.type === "CNAME" && others.length > 0)
      throw fail(400, 81053, "An A, AAAA, or CNAME record with that host already exists.");
    if (r.type !== "CNAME" && others.some((o) => o.type === "CNAME"))
      throw fail(400, 81054, "A CNAME record with that host already exists.");
    if (others.some((o) => o.type === r.type && o.content.toLowerCase() === r.content.toLowerCase()))
      throw fail(400, 81058, "An identical record already exists.");
  }

  // ---- Pages -----------------------------------------------------------------------------

  private editProject(project: ProjectState, body: unknown): ProjectState {
    const input = asObject(body);
    if (typeof input.production_branch === "string") project.productionBranch = input.production_branch;
    if (input.build_config !== undefined)
      project.buildConfig = { ...project.buildConfig, ...asObject(input.build_config) };
    if (input.deployment_configs !== undefined) {
      const configs = asObject(input.deployment_configs);
      for (const env of ["production", "preview"] as const) {
        if (configs[env] === undefined || configs[env] === null) continue;
        const { env_vars: vars, ...rest } = asObject(configs[env]);
        project.configs[env] = { ...project.configs[env], ...rest };
        if (vars === undefined || vars === null) continue;
        // Cloudflare merges: a named variable is set, a variable set to null is removed, others stay.
        for (const [name, value] of Object.entries(asObject(vars))) {
          if (value === null) {
            project.env[env].delete(name);
            continue;
          }
          const v = asObject(value);
          const type = v.type ?? "plain_text";
          if ((type !== "plain_text" && type !== "secret_text") || typeof v.value !== "string") {
            throw fail(
              400,
              8000000,
              `Invalid environment variable ${name}: expected { type: "plain_text" | "secret_text", value }.`,
            );
          }
          project.env[env].set(name, { type, value: v.value });
        }
      }
    }
    return project;
  }

  private deploy(project: ProjectState, body: unknown): DeploymentState {
    const input = asObject(body);
    // A Direct Upload project has nothing for Cloudflare to build: a deployment is the uploaded
    // files, described by a manifest (cloudflare/cloudflare-go#4079: 400, code 8000096).
    if (!project.source && input.manifest === undefined)
      throw fail(400, 8000096, 'A "manifest" field was expected in the request body but was not provided.');
    const branch = typeof input.branch === "string" && input.branch ? input.branch : project.productionBranch;
    const environment = branch === project.productionBranch ? "production" : "preview";
    const id = randomUUID();
    const dep: DeploymentState = {
      id,
      shortId: id.slice(0, 8),
      environment,
      branch,
      commitHash: typeof input.commit_hash === "string" ? input.commit_hash : randomBytes(20).toString("hex"),
      commitMessage: typeof input.commit_message === "string" ? input.commit_message : "Redeploy",
      createdAt: Date.now(),
      durationMs: this.deploymentMs,
      failAt: project.failNext.shift(),
      envVars: Object.fromEntries([...project.env[environment]].map(([k, v]) => [k, { ...v }])),
    };
    project.deployments.unshift(dep);
    return dep;
  }

  /**
   * When each build of a project starts, or that it was skipped. Builds run
   * `concurrentBuilds` at a time (Free plan: one); the others wait in the queue at stage
   * `queued`. A queued build that a newer one overtakes before it starts is skipped, as Pages
   * skips a queued build superseded by a later one (`is_skipped`, stage `queued` → skipped).
   */
  private schedule(project: ProjectState): Map<string, { startAt: number } | { skippedAt: number }> {
    const out = new Map<string, { startAt: number } | { skippedAt: number }>();
    const oldestFirst = [...project.deployments].reverse();
    const busyUntil: number[] = [];
    for (const [i, dep] of oldestFirst.entries()) {
      busyUntil.sort((x, y) => x - y);
      const free = busyUntil.length < this.concurrentBuilds ? dep.createdAt : busyUntil[0]!;
      const startAt = Math.max(dep.createdAt, free);
      const newer = oldestFirst[i + 1];
      if (startAt > dep.createdAt && newer && newer.createdAt < startAt) {
        out.set(dep.id, { skippedAt: newer.createdAt });
        continue;
      }
      if (busyUntil.length >= this.concurrentBuilds) busyUntil.shift();
      busyUntil.push(startAt + dep.durationMs);
      out.set(dep.id, { startAt });
    }
    return out;
  }

  private stagesOf(
    project: ProjectState,
    dep: DeploymentState,
  ): { stages: FakeStage[]; latest: FakeStage; skipped: boolean } {
    const slot = this.schedule(project).get(dep.id) ?? { startAt: dep.createdAt };
    const now = Date.now();
    const created = new Date(dep.createdAt).toISOString();
    const idle = (name: FakeStage["name"]): FakeStage => ({
      name,
      status: "idle",
      started_on: null,
      ended_on: null,
    });
    if ("skippedAt" in slot || now < slot.startAt) {
      const skipped = "skippedAt" in slot && now >= slot.skippedAt;
      const queued: FakeStage = {
        name: "queued",
        status: skipped ? "skipped" : "active",
        started_on: created,
        ended_on: skipped ? new Date((slot as { skippedAt: number }).skippedAt).toISOString() : null,
      };
      const stages = [queued, ...STAGES.slice(1).map(idle)];
      return { stages, latest: queued, skipped };
    }
    const start = slot.startAt;
    const elapsed = now - start;
    const step = dep.durationMs / STAGES.length;
    const stamp = (ms: number) => new Date(start + ms).toISOString();
    const finished = elapsed >= dep.durationMs;
    const failIndex = dep.failAt === undefined ? -1 : STAGES.indexOf(dep.failAt);
    // the stage running now: each takes an equal share of the duration
    const current = finished
      ? failIndex >= 0
        ? failIndex
        : STAGES.length - 1
      : Math.min(Math.floor(elapsed / Math.max(step, 1)), failIndex >= 0 ? failIndex : STAGES.length - 1);
    const stages = STAGES.map((name, i): FakeStage => {
      if (i < current)
        return { name, status: "success", started_on: stamp(i * step), ended_on: stamp((i + 1) * step) };
      if (i > current) return { name, status: "idle", started_on: null, ended_on: null };
      if (!finished) return { name, status: "active", started_on: stamp(i * step), ended_on: null };
      return {
        name,
        status: failIndex >= 0 ? "failure" : "success",
        started_on: stamp(i * step),
        ended_on: stamp(dep.durationMs),
      };
    });
    // the queue time before the build started belongs to the queued stage
    stages[0] = { ...stages[0]!, started_on: created };
    return { stages, latest: stages[current]!, skipped: false };
  }

  // ---- views -----------------------------------------------------------------------------

  private zoneView(z: ZoneState): FakeZone & Record<string, unknown> {
    return {
      id: z.id,
      name: z.name,
      status: z.status,
      paused: false,
      type: "full",
      development_mode: 0,
      name_servers: ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
      original_name_servers: [],
      account: { id: z.accountId, name: "Cutover sandbox" },
      permissions: ["#dns_records:edit", "#dns_records:read", "#zone:read"],
      plan: { id: "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee", name: "Free Website", is_subscribed: true },
      created_on: "2024-01-01T00:00:00.000000Z",
      modified_on: "2024-01-01T00:00:00.000000Z",
      activated_on: "2024-01-01T00:00:00.000000Z",
    };
  }

  private recordView(z: ZoneState, r: RecordState): FakeDnsRecord {
    return {
      id: r.id,
      zone_id: z.id,
      zone_name: z.name,
      name: r.name,
      type: r.type,
      content: r.content,
      // a proxied record's TTL is automatic
      ttl: r.proxied ? 1 : r.ttl,
      proxied: r.proxied,
      proxiable: PROXIABLE.has(r.type),
      comment: r.comment,
      tags: [...r.tags],
      settings: {},
      meta: {},
      created_on: r.createdOn,
      modified_on: r.modifiedOn,
    };
  }

  private projectView(p: ProjectState): FakePagesProject {
    const vars = (env: "production" | "preview") => redactSecrets(Object.fromEntries(p.env[env]));
    const latest = p.deployments[0];
    const canonical = p.deployments.find((d) => d.environment === "production");
    return {
      id: p.id,
      name: p.name,
      subdomain: p.subdomain,
      domains: [...p.domains],
      production_branch: p.productionBranch,
      ...(p.source ? { source: structuredClone(p.source) } : {}),
      created_on: p.createdOn,
      framework: "next-static",
      framework_version: "14",
      preview_script_name: `pages-worker--${p.id}-preview`,
      production_script_name: `pages-worker--${p.id}-production`,
      uses_functions: false,
      build_config: { ...p.buildConfig },
      deployment_configs: {
        production: { ...structuredClone(p.configs.production), env_vars: vars("production") },
        preview: { ...structuredClone(p.configs.preview), env_vars: vars("preview") },
      },
      latest_deployment: latest ? this.deploymentView(p, latest) : null,
      canonical_deployment: canonical ? this.deploymentView(p, canonical) : null,
    };
  }

  private deploymentView(p: ProjectState, d: DeploymentState): FakeDeployment {
    const { stages, latest, skipped } = this.stagesOf(p, d);
    return {
      id: d.id,
      short_id: d.shortId,
      project_id: p.id,
      project_name: p.name,
      environment: d.environment,
      url: `https://${d.shortId}.${p.subdomain}`,
      aliases: d.environment === "production" ? [`https://${p.subdomain}`] : null,
      created_on: new Date(d.createdAt).toISOString(),
      modified_on: latest.ended_on ?? latest.started_on ?? new Date(d.createdAt).toISOString(),
      latest_stage: latest,
      stages,
      env_vars: redactSecrets(d.envVars),
      deployment_trigger: {
        type: "ad_hoc",
        metadata: {
          branch: d.branch,
          commit_hash: d.commitHash,
          commit_message: d.commitMessage,
          commit_dirty: false,
        },
      },
      build_config: { ...p.buildConfig },
      is_skipped: skipped,
      uses_functions: false,
    };
  }

  // ---- lookups ---------------------------------------------------------------------------

  private zoneByKey(key: string): ZoneState | undefined {
    return this.zoneMap.get(key) ?? [...this.zoneMap.values()].find((z) => z.name === key.toLowerCase());
  }

  private zoneOrFail(id: string, path: string): ZoneState {
    const zone = this.zoneMap.get(id);
    if (zone) return zone;
    throw new ApiFailure(400, [
      { code: 7003, message: `Could not route to ${path}, perhaps your object identifier is invalid?` },
      { code: 7000, message: "No route for that URI" },
    ]);
  }

  private findProject(name: string): ProjectState | undefined {
    return (
      this.projectMap.get(projectKey(this.accountId, name)) ??
      [...this.projectMap.values()].find((p) => p.name === name)
    );
  }

  private projectOrThrow(name: string): ProjectState {
    const p = this.findProject(name);
    if (!p) throw new Error(`FakeCloudflare: no Pages project ${name}`);
    return p;
  }
}

// ---- helpers -------------------------------------------------------------------------------

/** The permission a call needs (undefined: none beyond a valid token). */
function permissionFor(method: string, path: string): CloudflarePermission | undefined {
  const seg = path.split("/").filter(Boolean);
  const read = method === "GET";
  if (seg[0] === "zones") {
    if (seg[2] === "dns_records") return read ? "dns:read" : "dns:edit";
    return "zone:read";
  }
  if (seg[0] === "accounts" && seg[2] === "pages") return read ? "pages:read" : "pages:edit";
  return undefined;
}

function hasPermission(granted: Set<CloudflarePermission>, needs: CloudflarePermission): boolean {
  if (granted.has(needs)) return true;
  // Edit includes Read, as in the token editor's permission groups.
  return needs.endsWith(":read") && granted.has(needs.replace(":read", ":edit") as CloudflarePermission);
}

/** RFC 5952 text of an IPv6 address: WHATWG URL serialisation follows the same rules (section 4). */
function canonicalIpv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

function ok(result: unknown): Reply {
  return { status: 200, body: { success: true, errors: [], messages: [], result } };
}

/** One page of a list, in Cloudflare's shape; a page past the last one is empty, never an error. */
function paginate(items: unknown[], query: Query, defaultPerPage: number, maxPerPage: number): Reply {
  const page = positiveInt(query.get("page"), 1);
  const perPage = Math.min(positiveInt(query.get("per_page"), defaultPerPage), maxPerPage);
  const slice = items.slice((page - 1) * perPage, page * perPage);
  return {
    status: 200,
    body: {
      success: true,
      errors: [],
      messages: [],
      result: slice,
      result_info: {
        page,
        per_page: perPage,
        count: slice.length,
        total_count: items.length,
        total_pages: Math.max(1, Math.ceil(items.length / perPage)),
      },
    },
  };
}

function positiveInt(value: string | null, fallback: number): number {
  if (value === null) return fallback;
  const n = Number.parseInt(value, 10);
  if (!Number.isFinite(n) || n < 1) throw fail(400, 1004, `Invalid pagination parameter: ${value}`);
  return n;
}

function fullFault(f: CloudflareFault): Required<CloudflareFault> {
  return { status: f.status ?? 500, code: f.code ?? 10001, message: f.message ?? "Internal server error" };
}

function hexId(): string {
  return randomBytes(16).toString("hex");
}

function projectKey(accountId: string, name: string): string {
  return `${accountId}/${name}`;
}

/** Cloudflare takes a name relative to the zone too: `api` and `@` in zone example.com. */
function fullName(zone: ZoneState, name: string): string {
  const n = name.toLowerCase().replace(/\.$/, "");
  if (n === "@" || n === zone.name) return zone.name;
  return n.endsWith(`.${zone.name}`) ? n : `${n}.${zone.name}`;
}

function redactSecrets(vars: Record<string, FakeEnvVar>): Record<string, FakeEnvVar> {
  return Object.fromEntries(
    Object.entries(vars).map(([k, v]) => [
      k,
      v.type === "secret_text" ? { type: v.type, value: "" } : { ...v },
    ]),
  );
}

function asObject(value: unknown): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw fail(400, 9207, "Request body is invalid.");
  return value as Record<string, unknown>;
}

function matches(match: CallMatch, call: CallInfo): boolean {
  if (typeof match === "function") return match(call);
  if (match instanceof RegExp) return match.test(`${call.method} ${call.path}`);
  const m = /^([A-Z]+)\s+(.*)$/.exec(match.trim());
  const method = m?.[1];
  const pattern = m ? m[2]! : match.trim();
  if (method && method !== call.method) return false;
  const re = new RegExp(
    `^${pattern
      .split("**")
      .map((part) =>
        part
          .split("*")
          .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
          .join("[^/]+"),
      )
      .join(".*")}$`,
  );
  return re.test(call.path);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function parseBody(contentType: string | undefined, raw: Buffer): Promise<unknown> {
  if (raw.length === 0) return undefined;
  const type = contentType?.split(";")[0]?.trim().toLowerCase();
  if (type === "multipart/form-data") {
    try {
      const form = await new Response(new Uint8Array(raw), {
        headers: { "content-type": contentType! },
      }).formData();
      const fields: Record<string, string> = {};
      for (const [k, v] of form.entries()) fields[k] = typeof v === "string" ? v : `<file ${v.name}>`;
      return fields;
    } catch {
      throw fail(400, 8000000, "Could not parse the multipart form.");
    }
  }
  const text = raw.toString("utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw fail(400, 9207, "Request body is invalid.");
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The old value of the example.com world the tests and benches switch. */
export const EXAMPLE_OLD_IP = "203.0.113.10";

/**
 * The example.com world of the tests and benches as it is before a cutover: the A record of
 * api.example.com at {@link EXAMPLE_OLD_IP} (TTL 3600) and the `web` Pages project holding the
 * old API and CDN URLs, plus `extraVars` (a variable the cutover must leave alone).
 */
export function seedExampleCutover(cf: FakeCloudflare, extraVars: Record<string, string> = {}): void {
  cf.addZone("example.com");
  cf.addRecord("example.com", { name: "api.example.com", type: "A", content: EXAMPLE_OLD_IP, ttl: 3600 });
  cf.addPagesProject("web", {
    envVars: {
      NEXT_PUBLIC_API_URL: "https://old.example.app",
      NEXT_PUBLIC_CDN_URL: "https://pub-old.r2.dev",
      ...extraVars,
    },
  });
}
