import type { Logger } from "pino";
import type {
  CallOptions,
  CloudflareClients,
  DnsRecord,
  DnsZone,
  PagesProjectInfo,
} from "../../cloud/cloudflare.js";
import { probeOnce } from "../../cloud/probe.js";
import { type DnsConfig, type MigrationFile, requireSection } from "../../config/schema.js";
import { CutoverError, describeError, ErrorCode, isCutoverError } from "../../errors.js";
import type { Prisma } from "../../generated/prisma/client.js";
import { audit, lastAuditEvent } from "../../store/audit.js";
import type { Db } from "../../store/client.js";
import { newestExecution } from "../../store/runs.js";
import { type StepDeps, stateStore, stepNow } from "../define-step.js";
import { resolveValue } from "../outputs.js";
import { type LiveDeps, liveDeps, livePlan, livePreChecks } from "./live.js";
import type { CutoverChange, PreCheck, RecordChange } from "./types.js";

/** What the cutover needs: the state store, the file, and Cloudflare. */
export interface CutoverDeps {
  db: Db;
  file: MigrationFile;
  cloudflare: CloudflareClients | undefined;
  log: Logger;
  now: () => Date;
  /** the database half of a live cutover (the file's `replication` section); absent: DNS and Pages only */
  live?: LiveDeps | undefined;
}

/** The records and Pages variables as they were before the TTL was lowered: what rollback restores. */
export interface DnsSnapshot {
  takenAt: string;
  /** when the TTLs were lowered (the countdown to the cutover starts here) */
  loweredAt: string | null;
  records: Array<{ name: string; type: string; content: string | null; ttl: number; proxied: boolean }>;
  pages: { project: string; environment: string; vars: Record<string, string | null> } | null;
}

/** What the DNS steps (`type`) derive from the step deps: the state store, the calendar, the live database half. */
export function cutoverDepsOf(deps: StepDeps, type: string): CutoverDeps {
  return {
    db: stateStore(deps, type),
    file: deps.file,
    cloudflare: deps.cloudflare,
    log: deps.log,
    now: stepNow(deps),
    live: liveDeps(deps),
  };
}

export function cloudflareOf(deps: Pick<CutoverDeps, "cloudflare">): CloudflareClients {
  if (!deps.cloudflare) {
    throw new CutoverError(ErrorCode.BadArgument, "Cloudflare is not set up for this migration.", {
      hint: "Add the `dns` section (and `pages` for the front end) to the migration file and set the API token variable it names.",
    });
  }
  return deps.cloudflare;
}

const SNAPSHOT_STEP = "dns.lower-ttl";

/**
 * The snapshot the TTL-lowering step recorded, read from its latest successful execution;
 * when the runs are gone, from the audit trail, where the same snapshot was written first.
 */
export async function latestSnapshot(db: Db, file: MigrationFile): Promise<DnsSnapshot | undefined> {
  const stepIds = file.runbook.phases.flatMap((p) =>
    p.steps.filter((s) => s.uses === SNAPSHOT_STEP).map((s) => s.id),
  );
  const execution = await newestExecution(db, file.environment, stepIds, {
    statuses: ["succeeded"],
    checkpoint: "snapshot",
  });
  const fromRun = execution?.checkpoints[0]?.value as DnsSnapshot | undefined;
  if (fromRun?.loweredAt) return fromRun;
  const event = await lastAuditEvent(db, "dns.snapshot", file.environment, "ok");
  return (event?.details as { snapshot?: DnsSnapshot } | null)?.snapshot;
}

export async function recordSnapshot(
  db: Db,
  file: MigrationFile,
  snapshot: DnsSnapshot,
  actor: string,
  runId: string | null,
) {
  await audit(db, {
    actor,
    action: "dns.snapshot",
    target: file.environment,
    outcome: "ok",
    runId,
    details: { snapshot } as unknown as Record<string, unknown>,
  });
}

/** Reads the configured records and Pages variables from Cloudflare as they are now. */
export async function readLive(
  deps: CutoverDeps,
  signal?: AbortSignal,
): Promise<Omit<DnsSnapshot, "loweredAt">> {
  const { dns, pages } = cloudflareOf(deps);
  const dnsConfig = requireSection(deps.file, "dns");
  const zone = await findZone(deps, dnsConfig, signal);
  const records = [];
  for (const r of dnsConfig.records) {
    const rec = await dns.getRecord(zone, r.name, r.type, signal ? { signal } : undefined);
    records.push({
      name: r.name,
      type: r.type,
      content: rec?.content ?? null,
      ttl: rec?.ttl ?? 0,
      proxied: rec?.proxied ?? r.proxied,
    });
  }
  let pagesState: DnsSnapshot["pages"] = null;
  if (deps.file.pages) {
    const cfg = deps.file.pages;
    const info = await pages.getProject(cfg.project, signal ? { signal } : undefined);
    if (info.source === "direct_upload") throw directUploadRefusal(info, Object.keys(cfg.env));
    const vars = await pages.getEnvVars(cfg.project, {
      environment: cfg.environment,
      ...(signal ? { signal } : {}),
    });
    pagesState = {
      project: cfg.project,
      environment: cfg.environment,
      vars: Object.fromEntries(Object.keys(cfg.env).map((name) => [name, vars[name]?.value ?? null])),
    };
  }
  return { takenAt: deps.now().toISOString(), records, pages: pagesState };
}

/**
 * The zone to switch: `dns.zoneId` when the file gives it (then the token needs no Zone → Zone →
 * Read, and none is asked for), else looked up by name. Every path that touches DNS uses this.
 */
export async function configuredZone(
  deps: Pick<CutoverDeps, "cloudflare">,
  dnsConfig: DnsConfig,
  opts?: CallOptions,
): Promise<DnsZone> {
  if (dnsConfig.zoneId) return { id: dnsConfig.zoneId, name: dnsConfig.zone };
  return cloudflareOf(deps).dns.findZone(dnsConfig.zone, opts);
}

async function findZone(deps: CutoverDeps, dnsConfig: DnsConfig, signal?: AbortSignal): Promise<DnsZone> {
  return configuredZone(deps, dnsConfig, signal ? { signal } : undefined);
}

/**
 * Refuses a Direct Upload Pages project: its front end is built outside Cloudflare (CI or
 * `wrangler pages deploy`), so the project's variables never reach that build and Cloudflare
 * cannot start a new one. Found before anything changes, never after the switch.
 */
export function directUploadRefusal(project: PagesProjectInfo, vars: string[]): CutoverError {
  return new CutoverError(
    ErrorCode.BadArgument,
    `Pages project ${project.name} is a Direct Upload project: its front end is built outside Cloudflare and uploaded (CI or \`wrangler pages deploy\`), so setting ${vars.join(", ")} on the project would not reach it, and Cloudflare cannot rebuild it.`,
    {
      details: { project: project.name, source: project.source },
      hint: `Give the front end its API URL where it is built: set ${vars.join(", ")} in the CI job (or the \`wrangler pages deploy\` build) and deploy from there, or have the front end read the URL at run time. Then remove the \`pages\` section from the migration file, so the cutover switches DNS only.`,
    },
  );
}

/**
 * Exactly what the cutover would change, from live state: each record's value and TTL now, the
 * new value (resolved from the verified results of earlier steps), the TTL to settle on, and
 * the Pages variables. The approval is bound to this.
 */
export async function computeChange(
  deps: CutoverDeps,
  snapshot: DnsSnapshot,
  signal?: AbortSignal,
): Promise<CutoverChange> {
  const dnsConfig = requireSection(deps.file, "dns");
  const live = await readLive(deps, signal);
  const records: RecordChange[] = [];
  for (const [i, r] of dnsConfig.records.entries()) {
    const now = live.records[i]!;
    const before = snapshot.records.find((s) => s.name === r.name && s.type === r.type);
    // a record the cutover creates has no TTL yet: it settles on the file's, else Cloudflare's automatic (1)
    const originalTtl = before?.ttl || now.ttl || 1;
    records.push({
      name: r.name,
      type: r.type,
      from: now.content,
      to: await resolveValue(deps.db, deps.file, r.to),
      fromTtl: now.ttl,
      originalTtl,
      ttl: r.ttl ?? originalTtl,
      proxied: r.proxied,
    });
  }
  let pages: CutoverChange["pages"] = null;
  if (deps.file.pages && live.pages) {
    const cfg = deps.file.pages;
    const vars = [];
    for (const [name, spec] of Object.entries(cfg.env)) {
      vars.push({
        name,
        from: live.pages.vars[name] ?? null,
        to: await resolveValue(deps.db, deps.file, spec.to),
      });
    }
    pages = { project: cfg.project, environment: cfg.environment, vars, redeploy: cfg.redeploy };
  }
  const plan = livePlan(deps.file);
  return {
    environment: deps.file.environment,
    zone: dnsConfig.zone,
    records,
    pages,
    ...(plan ? { live: plan } : {}),
  };
}

/** The health URLs of the old and the new app. */
export async function healthTargets(
  deps: Pick<CutoverDeps, "db" | "file">,
): Promise<{ old?: string; new?: string; hostHeader?: string }> {
  const { file } = deps;
  const path = file.target?.host?.healthPath ?? "/health";
  const out: { old?: string; new?: string; hostHeader?: string } = {};
  if (file.source?.app) out.old = new URL(file.source.app.healthPath, file.source.app.url).toString();
  if (file.verification.baseUrl) out.new = new URL(path, file.verification.baseUrl).toString();
  else {
    try {
      const ip = await resolveValue(deps.db, file, { ref: "target.lightsail.staticIp" });
      out.new = `http://${ip}${path}`;
      const first = file.dns?.records[0]?.name;
      if (first) out.hostHeader = first;
    } catch {
      // not provisioned yet: the pre-check says so
    }
  }
  return out;
}

/** Latest result of each verify step type, for the pre-checks. */
async function latestVerify(db: Db, file: MigrationFile, uses: string) {
  const ids = file.runbook.phases.flatMap((p) => p.steps.filter((s) => s.uses === uses).map((s) => s.id));
  if (ids.length === 0) return undefined;
  return (
    (await newestExecution(db, file.environment, ids, { statuses: ["succeeded", "failed"] })) ?? undefined
  );
}

const RECENT_MS = 24 * 3600_000;

/** What must hold before anyone may approve a cutover; shown in the request. */
export async function preChecks(
  deps: CutoverDeps,
  snapshot: DnsSnapshot | undefined,
  signal?: AbortSignal,
): Promise<PreCheck[]> {
  const checks: PreCheck[] = [];
  const urls = await healthTargets(deps);
  if (urls.new) {
    const r = await probeOnce(urls.new, {
      timeoutMs: 5_000,
      ...(signal ? { signal } : {}),
      ...(urls.hostHeader ? { headers: { host: urls.hostHeader } } : {}),
    });
    checks.push({
      name: "new host healthy",
      ok: r.ok,
      detail: r.ok ? `${urls.new} answered ${r.status} in ${Math.round(r.ms)} ms` : `${urls.new}: ${r.error}`,
    });
  } else {
    checks.push({
      name: "new host healthy",
      ok: false,
      detail: "the new host's address is not known yet: provision it first",
    });
  }
  // a live database is proven at the switch itself (drained, then verified while frozen), not by a verify hours old
  if (deps.file.replication) {
    checks.push(
      ...(deps.live
        ? await livePreChecks(deps.live)
        : [
            {
              name: "replication running",
              ok: false,
              detail: "this process has no database access to check replication",
            },
          ]),
    );
  }
  for (const [uses, label] of [
    ...(deps.file.replication ? [] : ([["db.verify", "database verified identical"]] as const)),
    ["storage.verify", "storage verified identical"],
  ] as const) {
    const last = await latestVerify(deps.db, deps.file, uses);
    if (!deps.file.runbook.phases.some((p) => p.steps.some((s) => s.uses === uses))) continue;
    const age = last?.finishedAt
      ? deps.now().getTime() - last.finishedAt.getTime()
      : Number.POSITIVE_INFINITY;
    checks.push({
      name: label,
      ok: last?.status === "succeeded" && age <= RECENT_MS,
      detail: !last
        ? `never run: run \`${uses}\` first`
        : last.status !== "succeeded"
          ? `the last run failed: ${last.error ?? "see its thread"}`
          : age > RECENT_MS
            ? `last verified ${Math.round(age / 3600_000)} h ago: verify again`
            : `verified ${Math.round(age / 60_000)} min ago`,
    });
  }
  checks.push(...(await cloudflareChecks(deps, signal)));
  checks.push({
    name: "rollback targets recorded",
    ok: Boolean(snapshot),
    detail: snapshot
      ? `${snapshot.records.map((r) => `${r.name} = ${r.content ?? "(none)"} (TTL ${r.ttl} s)`).join(", ")} as read ${snapshot.takenAt}`
      : "no snapshot: lower the TTL first",
  });
  return checks;
}

/** A permission the switch or the rollback uses, as Cloudflare's token editor names it. */
interface NeededPermission {
  label: string;
  /** the variable holding the token that needs it */
  tokenEnv: string;
  /** a call that needs exactly this permission and changes nothing */
  prove(): Promise<unknown>;
}

const TXT_PROBE_CONTENT = "cutover permission check; safe to delete";

/**
 * Proves, before anyone may approve, each Cloudflare permission the switch and the rollback
 * will use, by calls that change nothing: Verify Token, then the reads, a no-op PATCH of an
 * existing record (DNS Edit; a TXT record created and deleted again when none exists yet) and
 * an empty PATCH of the Pages project (Pages Edit, which also covers starting a deployment).
 * Reading alone would let a read-only token through, and the switch would then fail half done.
 * The check names the missing permission and the variable of the token that lacks it.
 */
export async function cloudflareChecks(deps: CutoverDeps, signal?: AbortSignal): Promise<PreCheck[]> {
  const dnsConfig = deps.file.dns;
  if (!dnsConfig || !deps.cloudflare) return [];
  const { dns, pages } = deps.cloudflare;
  const opts = signal ? { signal } : {};
  const checks: PreCheck[] = [];
  const pagesCfg = deps.file.pages;

  // 1. the tokens themselves
  const tokens: Array<{ env: string; verify: () => Promise<{ status: string }> }> = [
    { env: dnsConfig.apiTokenEnv, verify: () => dns.verifyToken(opts) },
  ];
  if (pagesCfg && pagesCfg.apiTokenEnv !== dnsConfig.apiTokenEnv)
    tokens.push({ env: pagesCfg.apiTokenEnv, verify: () => pages.verifyToken(opts) });
  const badTokens: string[] = [];
  for (const t of tokens) {
    try {
      const v = await t.verify();
      if (v.status !== "active") badTokens.push(`the token in ${t.env} is ${v.status}`);
    } catch (err) {
      badTokens.push(`the token in ${t.env} was refused: ${describeError(err)}`);
    }
  }
  if (badTokens.length) {
    checks.push({
      name: "Cloudflare token can switch and roll back",
      ok: false,
      detail: `${badTokens.join("; ")}. Create a token with the permissions the cutover uses and put it in that variable.`,
    });
    return checks;
  }

  // 2. each permission, proven by a call that needs it and changes nothing
  let zone: DnsZone | undefined;
  const needed: NeededPermission[] = [];
  if (!dnsConfig.zoneId) {
    needed.push({
      label: "Zone → Zone → Read",
      tokenEnv: dnsConfig.apiTokenEnv,
      prove: async () => {
        zone = await dns.findZone(dnsConfig.zone, opts);
      },
    });
  }
  const existing: DnsRecord[] = [];
  needed.push({
    label: "Zone → DNS → Read",
    tokenEnv: dnsConfig.apiTokenEnv,
    prove: async () => {
      zone ??= await configuredZone(deps, dnsConfig, opts);
      for (const r of dnsConfig.records) {
        const rec = await dns.getRecord(zone, r.name, r.type, opts);
        if (rec) existing.push(rec);
      }
    },
  });
  needed.push({
    label: "Zone → DNS → Edit",
    tokenEnv: dnsConfig.apiTokenEnv,
    prove: async () => {
      zone ??= await configuredZone(deps, dnsConfig, opts);
      const first = existing[0];
      // PATCH with name and type only: Cloudflare keeps content, TTL and proxying as they are.
      if (first) return dns.updateRecord(first, {}, opts);
      const probe = await dns.createRecord(
        zone,
        { name: `_cutover-check.${zone.name}`, type: "TXT", content: TXT_PROBE_CONTENT, ttl: 1 },
        opts,
      );
      await dns.deleteRecord(probe, opts);
    },
  });
  if (pagesCfg) {
    needed.push({
      label: "Account → Cloudflare Pages → Read",
      tokenEnv: pagesCfg.apiTokenEnv,
      prove: async () => {
        const info = await pages.getProject(pagesCfg.project, opts);
        checks.push(
          info.source === "direct_upload"
            ? {
                name: "Pages project is built by Cloudflare",
                ok: false,
                detail: describeError(directUploadRefusal(info, Object.keys(pagesCfg.env))),
              }
            : {
                name: "Pages project is built by Cloudflare",
                ok: true,
                detail: `${info.name} builds from ${info.source} (branch ${info.productionBranch}), with the project's variables`,
              },
        );
      },
    });
    needed.push({
      label: "Account → Cloudflare Pages → Edit",
      tokenEnv: pagesCfg.apiTokenEnv,
      prove: () => pages.checkEditAccess(pagesCfg.project, opts),
    });
  }
  const missing: string[] = [];
  const failed: string[] = [];
  for (const n of needed) {
    try {
      await n.prove();
    } catch (err) {
      if (isCutoverError(err) && err.code === ErrorCode.Cancelled) throw err;
      if (isCutoverError(err) && err.code === ErrorCode.CloudflareAuthFailed)
        missing.push(`${n.label} (the token in ${n.tokenEnv})`);
      else failed.push(`${n.label} could not be checked: ${describeError(err)}`);
    }
  }
  const ok = missing.length === 0 && failed.length === 0;
  checks.unshift({
    name: "Cloudflare token can switch and roll back",
    ok,
    detail: ok
      ? `proven without changing anything: ${needed.map((n) => n.label).join(", ")}${dnsConfig.zoneId ? " (zone by id: no Zone Read needed)" : ""}`
      : [
          missing.length
            ? `missing ${missing.join(", ")}: Cloudflare answered 403 (code 10000). Add it to the token (dash.cloudflare.com → My Profile → API Tokens), then ask again`
            : "",
          ...failed,
        ]
          .filter(Boolean)
          .join("; "),
  });
  return checks;
}

/** "02:00–05:00 Asia/Singapore" and whether `now` is inside it. */
export function windowState(file: MigrationFile, now: Date): { inside: boolean; label: string } | undefined {
  const w = file.cutover.window;
  if (!w) return undefined;
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone: w.timezone,
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
    weekday: "short",
  })
    .formatToParts(now)
    .reduce<Record<string, string>>((acc, p) => {
      acc[p.type] = p.value;
      return acc;
    }, {});
  const minutes = Number(parts.hour) * 60 + Number(parts.minute);
  const toMin = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
  const start = toMin(w.start);
  const end = toMin(w.end);
  const inTime = start < end ? minutes >= start && minutes < end : minutes >= start || minutes < end;
  const day = (parts.weekday ?? "").toLowerCase().slice(0, 3);
  const inDay = !w.days || w.days.includes(day as (typeof w.days)[number]);
  return {
    inside: inTime && inDay,
    label: `${w.start}–${w.end} ${w.timezone}${w.days ? ` (${w.days.join(", ")})` : ""}`,
  };
}

/**
 * Cloudflare's automatic TTL (1): "Auto TTL" is 300 seconds for a record that is not proxied
 * (developers.cloudflare.com/dns/manage-dns-records/reference/ttl/); a proxied record's answers
 * are Cloudflare's own addresses, which the switch does not change.
 */
export const AUTOMATIC_TTL_SECONDS = 300;

/** The seconds resolvers may cache a record's answer for, automatic TTL included. */
export function effectiveTtlSeconds(r: { ttl: number; proxied: boolean }): number {
  if (r.ttl === 1) return r.proxied ? 0 : AUTOMATIC_TTL_SECONDS;
  return r.ttl;
}

/** Milliseconds until resolvers everywhere have dropped the old TTL's cached answers. */
export function ttlCountdownMs(snapshot: DnsSnapshot, now: Date): number {
  if (!snapshot.loweredAt) return Number.POSITIVE_INFINITY;
  const maxTtl = Math.max(0, ...snapshot.records.map(effectiveTtlSeconds));
  return Math.max(0, new Date(snapshot.loweredAt).getTime() + maxTtl * 1000 - now.getTime());
}

export type JsonChange = Prisma.InputJsonValue;
