import { isIP } from "node:net";
import type Cloudflare from "cloudflare";
import type { APIError } from "cloudflare";
import { CancelledError, CutoverError, ErrorCode } from "../errors.js";
import { lazyModule } from "./lazy-sdk.js";

// ───────────────────────────── ports ─────────────────────────────

/** Per-call options every port method takes. */
export interface CallOptions {
  /** aborts the HTTP call (and any wait); the method then throws a CancelledError */
  signal?: AbortSignal;
  /** told before Cutover waits out Cloudflare's rate limit, so a person sees what it waits for and until when */
  onWait?: (wait: RateLimitWait) => void;
  /** a lower cap than the client's on waiting out a rate limit in this call (a rollback has a budget) */
  maxRateLimitWaitMs?: number;
}

/** A wait for Cloudflare's rate limit (HTTP 429 with `retry-after`). */
export interface RateLimitWait {
  /** what the call was doing, e.g. "updating A record api.example.com in zone example.com" */
  what: string;
  waitMs: number;
  until: Date;
}

/** What the token named by the file may do, as Cloudflare's "Verify Token" reports it. */
export interface TokenStatus {
  /** `active`, `disabled` or `expired` */
  status: string;
}

/** A Pages project: how it gets built decides whether a variable change reaches the front end. */
export interface PagesProjectInfo {
  name: string;
  /**
   * `github` / `gitlab`: Cloudflare builds it from the repository, with the project's variables.
   * `direct_upload`: it is built elsewhere (CI, `wrangler pages deploy`) and uploaded, so the
   * project's variables never reach its build, and Cloudflare cannot start one.
   */
  source: "github" | "gitlab" | "direct_upload";
  productionBranch: string;
}

/** A Cloudflare zone (a domain). */
export interface DnsZone {
  id: string;
  name: string;
  status?: string;
}

/** A DNS record as Cloudflare holds it. A proxied record's `ttl` is 1 (automatic). */
export interface DnsRecord {
  id: string;
  zoneId: string;
  name: string;
  type: string;
  content: string;
  ttl: number;
  proxied: boolean;
  /** the zone's name, for messages */
  zoneName?: string;
  modifiedOn?: string;
}

/** What identifies a record for an update or a delete, and names it in an error. */
export type DnsRecordRef = Pick<DnsRecord, "id" | "zoneId" | "name" | "type"> & { zoneName?: string };

/** The fields of a record to change; those left out keep their value. */
export interface DnsRecordChange {
  content?: string;
  /** seconds, or 1 for automatic */
  ttl?: number;
  proxied?: boolean;
}

export interface NewDnsRecord {
  name: string;
  type: "A" | "AAAA" | "CNAME" | "TXT";
  content: string;
  ttl?: number;
  proxied?: boolean;
  comment?: string;
}

/**
 * DNS in the zone that keeps the domain. Every method throws a {@link CutoverError} naming the
 * zone or record and Cloudflare's error on failure.
 *
 * @example
 * const zone = await dns.findZone("example.com");
 * const rec = await dns.getRecord(zone, "api.example.com", "A");
 * if (rec) await dns.updateRecord(rec, { ttl: 60 });
 */
export interface DnsProvider {
  /** the zone with exactly this name (an active one when there are several); throws when there is none */
  findZone(name: string, opts?: CallOptions): Promise<DnsZone>;
  /** the one record with this name and type, or undefined; throws when there are several */
  getRecord(zone: DnsZone, name: string, type: string, opts?: CallOptions): Promise<DnsRecord | undefined>;
  /** changes content, TTL or proxying, then returns the record as read back from Cloudflare */
  updateRecord(record: DnsRecordRef, change: DnsRecordChange, opts?: CallOptions): Promise<DnsRecord>;
  /** creates a record (a record the cutover adds; rollback deletes it) and returns it as read back */
  createRecord(zone: DnsZone, record: NewDnsRecord, opts?: CallOptions): Promise<DnsRecord>;
  deleteRecord(record: DnsRecordRef, opts?: CallOptions): Promise<void>;
  /** whether the token is valid and active (needs no permission) */
  verifyToken(opts?: CallOptions): Promise<TokenStatus>;
}

export type PagesEnvironment = "production" | "preview";

/** A Pages build variable. Cloudflare never returns a secret's value: `value` is then undefined. */
export interface PagesEnvVar {
  type: "plain_text" | "secret_text";
  value: string | undefined;
}

/** A Pages deployment and where it has got to. */
export interface PagesDeployment {
  id: string;
  project: string;
  environment: PagesEnvironment;
  url: string;
  createdOn: string;
  /** `queued`, `initialize`, `clone_repo`, `build` or `deploy` */
  stage: string;
  /** `idle`, `active`, `success`, `failure`, `canceled` or `skipped` */
  status: string;
  /** finished, one way or the other */
  done: boolean;
  /** finished and live */
  succeeded: boolean;
}

export interface WaitForDeploymentOptions extends CallOptions {
  /** give up after this long; default 10 minutes */
  timeoutMs?: number;
  /** the first wait between polls; default 5 s, doubling up to `maxPollMs` */
  pollMs?: number;
  /** the longest wait between polls; default 15 s */
  maxPollMs?: number;
  /** called after each poll */
  onProgress?: (deployment: PagesDeployment) => void;
}

/**
 * The front end's Cloudflare Pages project: its build variables and its deployments.
 *
 * @example
 * await pages.setEnvVars("web", { NEXT_PUBLIC_API_URL: "https://api.example.com" });
 * const d = await pages.triggerDeployment("web");
 * await pages.waitForDeployment("web", d.id, { timeoutMs: 600_000, signal });
 */
export interface PagesProvider {
  /** the variables of one environment (default production) */
  getEnvVars(
    project: string,
    opts?: CallOptions & { environment?: PagesEnvironment },
  ): Promise<Record<string, PagesEnvVar>>;
  /**
   * Sets the given variables (null removes one) and keeps every other; a variable that is a
   * secret stays a secret. Returns the variables as read back; throws if Cloudflare did not
   * keep the others.
   */
  setEnvVars(
    project: string,
    vars: Record<string, string | null>,
    opts?: CallOptions & { environment?: PagesEnvironment },
  ): Promise<Record<string, PagesEnvVar>>;
  /** starts a new build of the branch (default: the production branch) with the current variables */
  triggerDeployment(project: string, opts?: CallOptions & { branch?: string }): Promise<PagesDeployment>;
  getDeployment(project: string, id: string, opts?: CallOptions): Promise<PagesDeployment>;
  /** the project and how it is built */
  getProject(project: string, opts?: CallOptions): Promise<PagesProjectInfo>;
  /**
   * Proves the token may edit the project by an edit that changes nothing (a PATCH with an
   * empty body). Cloudflare has no dry run; this is the harmless write the pre-checks use.
   */
  checkEditAccess(project: string, opts?: CallOptions): Promise<void>;
  /** whether the token is valid and active (needs no permission) */
  verifyToken(opts?: CallOptions): Promise<TokenStatus>;
  /** polls until the deployment is live; throws when it fails, is skipped, or the wait runs out */
  waitForDeployment(project: string, id: string, opts?: WaitForDeploymentOptions): Promise<PagesDeployment>;
}

/**
 * Whether two record contents are the same value. Cloudflare answers an AAAA record in its
 * canonical form (RFC 5952: `2001:db8::20` for `2001:0DB8:0:0::0020`), and names are
 * case-insensitive with an optional final dot, so text equality would call a switched record
 * unswitched.
 *
 * @example sameRecordContent("AAAA", "2001:db8::20", "2001:0db8:0:0:0:0:0:20") // true
 */
export function sameRecordContent(type: string, a: string | null, b: string | null): boolean {
  if (a === null || b === null) return a === b;
  const t = type.toUpperCase();
  if (t === "AAAA" && isIP(a) === 6 && isIP(b) === 6) return canonicalIpv6(a) === canonicalIpv6(b);
  if (t === "CNAME" || t === "MX" || t === "NS")
    return a.toLowerCase().replace(/\.$/, "") === b.toLowerCase().replace(/\.$/, "");
  return a === b;
}

/** RFC 5952 text of an IPv6 address: WHATWG URL serialisation follows the same rules (section 4). */
function canonicalIpv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

// ───────────────────────────── the adapter ─────────────────────────────

export interface CloudflareOptions {
  apiToken: string;
  /** default `https://api.cloudflare.com/client/v4` (or the SDK's CLOUDFLARE_BASE_URL) */
  baseURL?: string;
  /** the account of the Pages project; only Pages calls need it */
  accountId?: string;
  /** a fetch to use instead of the global one */
  fetch?: typeof fetch;
  /** per HTTP request; default 30 s */
  timeoutMs?: number;
  /** retries of a failed request (429, 5xx, connection errors) by the SDK; default 2 */
  maxRetries?: number;
  /** records / zones per listed page; default 100 */
  pageSize?: number;
  /**
   * The longest Cutover waits out a rate limit (HTTP 429) in one call; a longer `retry-after`
   * fails the call at once, saying until when. Default 5 min, the API's block time.
   */
  maxRateLimitWaitMs?: number;
  /** the clock the "until" of a rate-limit wait is told in; default the system's */
  now?: () => Date;
}

export interface CloudflareClients {
  dns: DnsProvider;
  pages: PagesProvider;
}

/** a list longer than this many pages is treated as a server that never ends its listing */
const MAX_PAGES = 1_000;

/** The official SDK, loaded at the first call (about 30 MB and 0.6 s that an idle bot does not need). */
let sdk: typeof import("cloudflare") | undefined;
const loadSdk = lazyModule(async () => {
  sdk = await import("cloudflare");
  return sdk;
});

type SdkErrorClass = "APIError" | "APIConnectionError" | "APIConnectionTimeoutError" | "APIUserAbortError";

/** Whether `err` is one of the SDK's errors; before the SDK has loaded, nothing can be. */
function isSdkError(err: unknown, kind: "APIError"): err is APIError;
function isSdkError(err: unknown, kind: SdkErrorClass): err is Error;
function isSdkError(err: unknown, kind: SdkErrorClass): boolean {
  return sdk !== undefined && err instanceof sdk[kind];
}

/**
 * Builds the DNS and Pages adapters over one official SDK client. Called by the deps factory
 * only; nothing here is a singleton.
 */
export function createCloudflare(options: CloudflareOptions): CloudflareClients {
  const baseFetch = options.fetch ?? fetch;
  const client = lazyModule(async () => {
    const { default: Cloudflare } = await loadSdk();
    return new Cloudflare({
      apiToken: options.apiToken,
      ...(options.baseURL === undefined ? {} : { baseURL: options.baseURL }),
      // The SDK sleeps for the whole `retry-after` of a 429 (up to 5 min, unbounded) and its
      // sleep ignores the abort signal (client.js retryRequest), so a cancel or a rollback would
      // stall behind it. Marking 429s not-to-retry (the SDK obeys `x-should-retry`) leaves the
      // wait to `withRateLimit`, which caps it, can be aborted and says what it waits for.
      fetch: async (input, init) => {
        const res = await baseFetch(input, init);
        if (res.status !== 429) return res;
        const headers = new Headers(res.headers);
        headers.set("x-should-retry", "false");
        return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
      },
      timeout: options.timeoutMs ?? 30_000,
      maxRetries: options.maxRetries ?? 2,
      // Errors reach people as CutoverErrors; the SDK's own console output would bypass the JSON log.
      logLevel: "off",
    });
  });
  const fail = errorMapper(options.apiToken, options.timeoutMs ?? 30_000);
  const pageSize = options.pageSize ?? 100;
  const limit: RateLimitPolicy = {
    maxWaitMs: options.maxRateLimitWaitMs ?? 300_000,
    now: options.now ?? (() => new Date()),
  };
  return {
    dns: new CloudflareDns(client, fail, pageSize, limit),
    pages: new CloudflarePages(client, fail, options.accountId, limit),
  };
}

type ErrorMapper = (err: unknown, what: string, details: Record<string, unknown>) => Error;

interface RateLimitPolicy {
  maxWaitMs: number;
  now: () => Date;
}

const req = (opts?: CallOptions) => (opts?.signal ? { signal: opts.signal } : undefined);

/**
 * Runs one Cloudflare call; on HTTP 429 waits the `retry-after` it names (at most
 * `maxWaitMs`, abortable, told to `opts.onWait` first) and tries once more. A longer wait, or
 * a second 429, fails with a RateLimited error saying until when.
 */
async function withRateLimit<T>(
  policy: RateLimitPolicy,
  what: string,
  opts: CallOptions | undefined,
  fn: () => Promise<T>,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isSdkError(err, "APIError") || err.status !== 429) throw err;
      const waitMs = retryAfterMs(err.headers) ?? 60_000;
      const until = new Date(policy.now().getTime() + waitMs);
      const cap = Math.min(policy.maxWaitMs, opts?.maxRateLimitWaitMs ?? Number.POSITIVE_INFINITY);
      if (attempt > 0 || waitMs > cap) {
        throw new CutoverError(
          ErrorCode.RateLimited,
          `Cloudflare's API rate limit (1,200 requests per 5 minutes for the token, the dashboard's included) refused ${what}; it asks to wait ${Math.ceil(waitMs / 1000)} s, until ${until.toISOString()}.`,
          {
            details: { what, waitMs, until: until.toISOString(), maxWaitMs: cap },
            hint: "Nothing more was changed. Run the step again after that time; meanwhile keep dashboard and other scripts off this token.",
          },
        );
      }
      opts?.onWait?.({ what, waitMs, until });
      await sleep(waitMs, opts?.signal);
    }
  }
}

/** `retry-after` in ms: seconds, or an HTTP date (RFC 9110 §10.2.3). */
function retryAfterMs(headers: Headers | Record<string, string> | undefined): number | undefined {
  const raw = headers instanceof Headers ? headers.get("retry-after") : headers?.["retry-after"];
  if (!raw) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

const recordLabel = (r: { type: string; name: string; zoneName?: string }) =>
  `${r.type} record ${r.name}${r.zoneName ? ` in zone ${r.zoneName}` : ""}`;

class CloudflareDns implements DnsProvider {
  constructor(
    private readonly client: () => Promise<Cloudflare>,
    private readonly fail: ErrorMapper,
    private readonly pageSize: number,
    private readonly limit: RateLimitPolicy,
  ) {}

  async verifyToken(opts?: CallOptions): Promise<TokenStatus> {
    return verifyToken(this.client, this.fail, this.limit, opts);
  }

  async findZone(name: string, opts?: CallOptions): Promise<DnsZone> {
    const wanted = name.toLowerCase().replace(/\.$/, "");
    const what = `looking up zone ${wanted}`;
    let zones: Cloudflare.Zones.Zone[];
    try {
      zones = await withRateLimit(this.limit, what, opts, async () =>
        allPages(
          (await this.client()).zones.list(
            { name: wanted, per_page: Math.min(this.pageSize, 50) },
            req(opts),
          ),
          what,
        ),
      );
    } catch (err) {
      throw this.fail(err, what, { zone: wanted });
    }
    const exact = zones.filter((z) => z.name.toLowerCase() === wanted);
    const active = exact.filter((z) => z.status === "active");
    const pick = active.length > 0 ? active : exact;
    if (pick.length === 0) {
      throw new CutoverError(
        ErrorCode.CloudflareNotFound,
        `Cloudflare has no zone ${wanted} that this token can see.`,
        {
          details: { zone: wanted },
          hint: "Check `dns.zone` in the migration file, and that the API token is allowed to read that zone (Zone → Zone → Read).",
        },
      );
    }
    if (pick.length > 1) {
      throw new CutoverError(
        ErrorCode.CloudflareFailed,
        `Cloudflare has ${pick.length} zones named ${wanted} (${pick.map((z) => z.id).join(", ")}).`,
        { details: { zone: wanted }, hint: "Set `dns.zoneId` in the migration file to the one to use." },
      );
    }
    const z = pick[0]!;
    return { id: z.id, name: z.name, status: z.status ?? "unknown" };
  }

  async getRecord(
    zone: DnsZone,
    name: string,
    type: string,
    opts?: CallOptions,
  ): Promise<DnsRecord | undefined> {
    const wanted = name.toLowerCase().replace(/\.$/, "");
    const wantedType = type.toUpperCase();
    const label = recordLabel({ type: wantedType, name: wanted, zoneName: zone.name });
    const what = `reading ${label}`;
    let records: Cloudflare.DNS.RecordResponse[];
    try {
      // Filter by name on the server; the type is checked here, so one listing serves any type.
      records = await withRateLimit(this.limit, what, opts, async () =>
        allPages(
          (await this.client()).dns.records.list(
            { zone_id: zone.id, name: { exact: wanted }, per_page: this.pageSize },
            req(opts),
          ),
          what,
        ),
      );
    } catch (err) {
      throw this.fail(err, what, { zone: zone.name, record: wanted, type: wantedType });
    }
    const found = records.filter((r) => r.name.toLowerCase() === wanted && r.type === wantedType);
    if (found.length > 1) {
      throw new CutoverError(
        ErrorCode.DnsRecordAmbiguous,
        `There are ${found.length} ${label} (${found.map((r) => r.content).join(", ")}); Cutover switches exactly one.`,
        {
          details: { zone: zone.name, record: wanted, type: wantedType, count: found.length },
          hint: "Delete the extra records in the Cloudflare dashboard, or switch them by hand.",
        },
      );
    }
    return found[0] && toRecord(found[0], { zoneId: zone.id, zoneName: zone.name });
  }

  async updateRecord(record: DnsRecordRef, change: DnsRecordChange, opts?: CallOptions): Promise<DnsRecord> {
    const label = recordLabel(record);
    const details = {
      zone: record.zoneName ?? record.zoneId,
      record: record.name,
      type: record.type,
      change,
    };
    try {
      await withRateLimit(this.limit, `updating ${label}`, opts, async () =>
        (await this.client()).dns.records.edit(
          record.id,
          {
            zone_id: record.zoneId,
            // Cloudflare's PATCH wants name and type alongside the changed fields.
            name: record.name,
            type: record.type as "A",
            ...(change.content === undefined ? {} : { content: change.content }),
            ...(change.ttl === undefined ? {} : { ttl: change.ttl }),
            ...(change.proxied === undefined ? {} : { proxied: change.proxied }),
          } as Cloudflare.DNS.RecordEditParams,
          req(opts),
        ),
      );
    } catch (err) {
      throw this.fail(err, `updating ${label}`, details);
    }
    return this.readBack(record, opts);
  }

  async createRecord(zone: DnsZone, record: NewDnsRecord, opts?: CallOptions): Promise<DnsRecord> {
    const label = recordLabel({ ...record, zoneName: zone.name });
    let created: Cloudflare.DNS.RecordResponse;
    try {
      created = await withRateLimit(this.limit, `creating ${label}`, opts, async () =>
        (await this.client()).dns.records.create(
          {
            zone_id: zone.id,
            name: record.name,
            type: record.type,
            content: record.content,
            ttl: record.ttl ?? 1,
            proxied: record.proxied ?? false,
            ...(record.comment === undefined ? {} : { comment: record.comment }),
          } as Cloudflare.DNS.RecordCreateParams,
          req(opts),
        ),
      );
    } catch (err) {
      throw this.fail(err, `creating ${label}`, { zone: zone.name, record: record.name, type: record.type });
    }
    return this.readBack(
      { id: created.id, zoneId: zone.id, zoneName: zone.name, name: record.name, type: record.type },
      opts,
    );
  }

  async deleteRecord(record: DnsRecordRef, opts?: CallOptions): Promise<void> {
    try {
      await withRateLimit(this.limit, `deleting ${recordLabel(record)}`, opts, async () =>
        (await this.client()).dns.records.delete(record.id, { zone_id: record.zoneId }, req(opts)),
      );
    } catch (err) {
      throw this.fail(err, `deleting ${recordLabel(record)}`, {
        zone: record.zoneName ?? record.zoneId,
        record: record.name,
        type: record.type,
      });
    }
  }

  private async readBack(record: DnsRecordRef, opts?: CallOptions): Promise<DnsRecord> {
    try {
      const read = await withRateLimit(this.limit, `reading back ${recordLabel(record)}`, opts, async () =>
        (await this.client()).dns.records.get(record.id, { zone_id: record.zoneId }, req(opts)),
      );
      return toRecord(read, record);
    } catch (err) {
      throw this.fail(err, `reading back ${recordLabel(record)}`, {
        zone: record.zoneName ?? record.zoneId,
        record: record.name,
        type: record.type,
      });
    }
  }
}

class CloudflarePages implements PagesProvider {
  constructor(
    private readonly client: () => Promise<Cloudflare>,
    private readonly fail: ErrorMapper,
    private readonly accountId: string | undefined,
    private readonly limit: RateLimitPolicy,
  ) {}

  async verifyToken(opts?: CallOptions): Promise<TokenStatus> {
    return verifyToken(this.client, this.fail, this.limit, opts);
  }

  async getProject(project: string, opts?: CallOptions): Promise<PagesProjectInfo> {
    const what = `reading Pages project ${project}`;
    try {
      const p = await withRateLimit(this.limit, what, opts, async () =>
        (await this.client()).pages.projects.get(project, { account_id: this.account() }, req(opts)),
      );
      // The API's project has `source` only when Cloudflare builds it from a repository.
      const type = (p as { source?: { type?: string } | null }).source?.type;
      return {
        name: p.name ?? project,
        source: type === "github" || type === "gitlab" ? type : "direct_upload",
        productionBranch: p.production_branch ?? "",
      };
    } catch (err) {
      throw this.fail(err, what, { project });
    }
  }

  async checkEditAccess(project: string, opts?: CallOptions): Promise<void> {
    const what = `checking that the token may edit Pages project ${project} (an edit that changes nothing)`;
    try {
      await withRateLimit(this.limit, what, opts, async () =>
        (await this.client()).pages.projects.edit(project, { account_id: this.account() }, req(opts)),
      );
    } catch (err) {
      throw this.fail(err, what, { project });
    }
  }

  async getEnvVars(
    project: string,
    opts?: CallOptions & { environment?: PagesEnvironment },
  ): Promise<Record<string, PagesEnvVar>> {
    const env = opts?.environment ?? "production";
    try {
      const p = await withRateLimit(this.limit, `reading Pages project ${project}`, opts, async () =>
        (await this.client()).pages.projects.get(project, { account_id: this.account() }, req(opts)),
      );
      return envVarsOf(p, env);
    } catch (err) {
      throw this.fail(err, `reading the ${env} variables of Pages project ${project}`, {
        project,
        environment: env,
      });
    }
  }

  async setEnvVars(
    project: string,
    vars: Record<string, string | null>,
    opts?: CallOptions & { environment?: PagesEnvironment },
  ): Promise<Record<string, PagesEnvVar>> {
    const env = opts?.environment ?? "production";
    const before = await this.getEnvVars(project, opts);
    const names = Object.keys(vars);
    const what = `setting ${names.join(", ")} on Pages project ${project} (${env})`;
    const patch: Record<string, { type: "plain_text" | "secret_text"; value: string } | null> = {};
    for (const [name, value] of Object.entries(vars)) {
      patch[name] = value === null ? null : { type: before[name]?.type ?? "plain_text", value };
    }
    let after: Record<string, PagesEnvVar>;
    try {
      const p = await withRateLimit(this.limit, what, opts, async () =>
        (await this.client()).pages.projects.edit(
          project,
          {
            account_id: this.account(),
            // Only the named variables are sent: Cloudflare merges, so the others stay as they are.
            deployment_configs: { [env]: { env_vars: patch } },
          } as Cloudflare.Pages.ProjectEditParams,
          req(opts),
        ),
      );
      after = envVarsOf(p, env);
    } catch (err) {
      throw this.fail(err, what, { project, environment: env, variables: names });
    }
    const lost = Object.keys(before).filter((k) => !(k in vars) && !(k in after));
    const wrong = Object.entries(vars).filter(([k, v]) =>
      v === null ? k in after : !(k in after) || (after[k]!.type === "plain_text" && after[k]!.value !== v),
    );
    if (lost.length > 0 || wrong.length > 0) {
      const parts = [
        lost.length ? `dropped ${lost.join(", ")}` : "",
        wrong.length ? `did not apply ${wrong.map(([k]) => k).join(", ")}` : "",
      ].filter(Boolean);
      throw new CutoverError(ErrorCode.CloudflareFailed, `Cloudflare ${parts.join(" and ")} while ${what}.`, {
        details: { project, environment: env, lost, notApplied: wrong.map(([k]) => k) },
        hint: "Check the project's variables under Settings → Environment variables in the Cloudflare dashboard before going on.",
      });
    }
    return after;
  }

  async triggerDeployment(
    project: string,
    opts?: CallOptions & { branch?: string },
  ): Promise<PagesDeployment> {
    try {
      const d = await withRateLimit(
        this.limit,
        `starting a deployment of Pages project ${project}`,
        opts,
        async () =>
          (await this.client()).pages.projects.deployments.create(
            project,
            { account_id: this.account(), ...(opts?.branch ? { branch: opts.branch } : {}) },
            req(opts),
          ),
      );
      return toDeployment(d, project);
    } catch (err) {
      throw this.fail(err, `starting a deployment of Pages project ${project}`, { project });
    }
  }

  async getDeployment(project: string, id: string, opts?: CallOptions): Promise<PagesDeployment> {
    try {
      const d = await withRateLimit(
        this.limit,
        `reading deployment ${id} of Pages project ${project}`,
        opts,
        async () =>
          (await this.client()).pages.projects.deployments.get(
            id,
            { account_id: this.account(), project_name: project },
            req(opts),
          ),
      );
      return toDeployment(d, project);
    } catch (err) {
      throw this.fail(err, `reading deployment ${id} of Pages project ${project}`, {
        project,
        deployment: id,
      });
    }
  }

  async waitForDeployment(
    project: string,
    id: string,
    opts: WaitForDeploymentOptions = {},
  ): Promise<PagesDeployment> {
    const timeoutMs = opts.timeoutMs ?? 600_000;
    // Poll gently: every request counts against the token's 1,200 per 5 minutes, shared with the
    // dashboard and the rest of the cutover. Start at `pollMs`, double up to `maxPollMs`.
    let pollMs = opts.pollMs ?? 5_000;
    const maxPollMs = Math.max(pollMs, opts.maxPollMs ?? 15_000);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (opts.signal?.aborted) throw new CancelledError();
      const d = await this.getDeployment(project, id, opts);
      opts.onProgress?.(d);
      if (d.succeeded) return d;
      if (d.done) {
        throw new CutoverError(
          ErrorCode.DeployFailed,
          `Deployment ${id} of Pages project ${project} ended with ${d.status} at stage ${d.stage}.`,
          {
            details: { project, deployment: id, stage: d.stage, status: d.status, url: d.url },
            hint: "Open the deployment's build log in the Cloudflare dashboard (Workers & Pages → the project → Deployments).",
          },
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new CutoverError(
          ErrorCode.TimedOut,
          `Deployment ${id} of Pages project ${project} was still at stage ${d.stage} (${d.status}) after ${Math.round(timeoutMs / 1000)} s.`,
          {
            details: { project, deployment: id, stage: d.stage, status: d.status, timeoutMs },
            hint: "It may still finish: check it in the Cloudflare dashboard, then verify again.",
          },
        );
      }
      await sleep(Math.min(pollMs, left), opts.signal);
      pollMs = Math.min(maxPollMs, pollMs * 2);
    }
  }

  private account(): string {
    if (!this.accountId) {
      throw new CutoverError(
        ErrorCode.ConfigInvalid,
        "No Cloudflare account id was given for the Pages project.",
        {
          hint: "Set `pages.accountId` in the migration file.",
        },
      );
    }
    return this.accountId;
  }
}

// ───────────────────────────── helpers ─────────────────────────────

/** Cloudflare's "Verify Token" (`GET /user/tokens/verify`): needs no permission, says whether the token is active. */
async function verifyToken(
  client: () => Promise<Cloudflare>,
  fail: ErrorMapper,
  limit: RateLimitPolicy,
  opts?: CallOptions,
): Promise<TokenStatus> {
  const what = "verifying the API token";
  try {
    const r = await withRateLimit(limit, what, opts, async () =>
      (await client()).user.tokens.verify(req(opts)),
    );
    return { status: r.status };
  } catch (err) {
    throw fail(err, what, {});
  }
}

/**
 * Every item of a listing. The SDK pages until a page comes back empty; this also stops at
 * `result_info.total_pages` (one request fewer) and refuses to go on for ever.
 */
async function allPages<T>(
  first: PromiseLike<{
    result: T[];
    result_info: unknown;
    hasNextPage(): boolean;
    getNextPage(): Promise<unknown>;
  }>,
  what: string,
): Promise<T[]> {
  type Page = Awaited<typeof first>;
  let page: Page = await first;
  const out: T[] = [];
  for (let n = 1; ; n++) {
    out.push(...page.result);
    const info = (page.result_info ?? {}) as { page?: number; total_pages?: number };
    if (!page.hasNextPage()) break;
    if (info.total_pages !== undefined && (info.page ?? n) >= info.total_pages) break;
    if (n >= MAX_PAGES) {
      throw new CutoverError(
        ErrorCode.CloudflareFailed,
        `Cloudflare kept returning pages (over ${MAX_PAGES}) while ${what}.`,
      );
    }
    page = (await page.getNextPage()) as Page;
  }
  return out;
}

function toRecord(r: Cloudflare.DNS.RecordResponse, zone: { zoneId: string; zoneName?: string }): DnsRecord {
  return {
    id: r.id,
    zoneId: zone.zoneId,
    ...(zone.zoneName ? { zoneName: zone.zoneName } : {}),
    name: r.name,
    type: r.type,
    content: String(r.content ?? ""),
    ttl: r.ttl,
    proxied: r.proxied ?? false,
    ...(r.modified_on ? { modifiedOn: r.modified_on } : {}),
  };
}

function envVarsOf(p: Cloudflare.Pages.Project, env: PagesEnvironment): Record<string, PagesEnvVar> {
  const vars = (p.deployment_configs?.[env]?.env_vars ?? {}) as Record<
    string,
    { type?: string; value?: string } | null
  >;
  const out: Record<string, PagesEnvVar> = {};
  for (const [name, v] of Object.entries(vars)) {
    if (!v) continue;
    out[name] =
      v.type === "secret_text"
        ? { type: "secret_text", value: undefined }
        : { type: "plain_text", value: v.value ?? "" };
  }
  return out;
}

function toDeployment(d: Cloudflare.Pages.Deployment, project: string): PagesDeployment {
  const stage = d.latest_stage?.name ?? "queued";
  const status = d.is_skipped ? "skipped" : (d.latest_stage?.status ?? "idle");
  const succeeded = stage === "deploy" && status === "success";
  return {
    id: d.id,
    project: d.project_name ?? project,
    environment: d.environment,
    url: d.url,
    createdOn: d.created_on,
    stage,
    status,
    done: succeeded || status === "failure" || status === "canceled" || status === "skipped",
    succeeded,
  };
}

/**
 * Turns what the SDK throws into a CutoverError that says what failed and what Cloudflare said.
 * The token never appears: not in the message, not in the details.
 */
function errorMapper(apiToken: string, timeoutMs: number): ErrorMapper {
  const scrub = (s: string) => (apiToken.length >= 4 ? s.split(apiToken).join("[secret]") : s);
  return (err, what, details) => {
    if (err instanceof CutoverError) return err;
    if (isSdkError(err, "APIUserAbortError")) return new CancelledError();
    if (isSdkError(err, "APIConnectionTimeoutError")) {
      return new CutoverError(
        ErrorCode.TimedOut,
        `Cloudflare did not answer within ${Math.round(timeoutMs / 1000)} s while ${what}.`,
        { details, hint: "Try again; if it repeats, check https://www.cloudflarestatus.com." },
      );
    }
    if (isSdkError(err, "APIConnectionError")) {
      // undici says "fetch failed"; the useful part (ECONNREFUSED, ENOTFOUND, …) is one cause deeper
      const cause = err.cause as
        | { message?: string; cause?: { code?: string; message?: string } }
        | undefined;
      const why = cause?.cause?.code ?? cause?.cause?.message ?? cause?.message;
      return new CutoverError(
        ErrorCode.Unreachable,
        `Could not reach Cloudflare while ${what}${why ? ` (${scrub(why)})` : ""}.`,
        { details, hint: "Check the network (and CLOUDFLARE_BASE_URL if set), then try again." },
      );
    }
    if (isSdkError(err, "APIError")) {
      const errors = (err.errors ?? []).map((e) => ({
        code: e.code,
        message: scrub(String(e.message)).replace(/\.$/, ""),
      }));
      const said = errors.length
        ? errors.map((e) => `error ${e.code}: ${e.message}`).join("; ")
        : "no error details";
      const facts = { ...details, status: err.status, cloudflareErrors: errors };
      const authCodes = new Set([9106, 9109, 10000, 6003, 6111, 6103]);
      if (
        err.status === 401 ||
        err.status === 403 ||
        errors.some((e) => e.code !== undefined && authCodes.has(e.code))
      ) {
        return new CutoverError(
          ErrorCode.CloudflareAuthFailed,
          `Cloudflare refused the API token while ${what} (HTTP ${err.status}, ${said}).`,
          {
            details: facts,
            hint: "Check the token named by `dns.apiTokenEnv` / `pages.apiTokenEnv`: it must be current and allowed Zone → DNS → Edit and Account → Cloudflare Pages → Edit.",
          },
        );
      }
      const code = err.status === 404 ? ErrorCode.CloudflareNotFound : ErrorCode.CloudflareFailed;
      return new CutoverError(
        code,
        `${capitalise(what)} failed: Cloudflare answered HTTP ${err.status} (${said}).`,
        {
          details: facts,
        },
      );
    }
    const message = err instanceof Error ? scrub(err.message) : "unknown error";
    return new CutoverError(ErrorCode.CloudflareFailed, `Cloudflare call failed while ${what}: ${message}.`, {
      details,
    });
  };
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new CancelledError());
    const onAbort = () => {
      clearTimeout(timer);
      reject(new CancelledError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
