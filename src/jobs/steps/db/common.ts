import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import path from "node:path";
import { z } from "zod";
import { type DbAddress, liveIdentity, resolveDbAddress, sameDatabase } from "../../../cloud/db-identity.js";
import { connect, describeUrl, type Endpoint, fingerprintUrl } from "../../../cloud/postgres.js";
import { requireSection } from "../../../config/schema.js";
import { CutoverError, ErrorCode, notSet } from "../../../errors.js";
import type { StepDeps } from "../../index.js";
import { rdsConnectionUrl } from "../../provisioned.js";

/**
 * What the database steps (db.preflight, db.dump, db.restore, db.verify) share: their options,
 * where the two databases are, where dumps live, and the files that carry facts from one step
 * to the next (the dump's manifest, the `latest` pointer, the partial-restore marker).
 */

/** Options every database step accepts in its `with:` block. */
export const CommonOptions = z.object({
  /** parallel jobs for pg_dump / pg_restore / the comparison; default: the machine's cores */
  jobs: z.number().int().min(1).max(64).optional(),
  /** folder holding pg_dump and pg_restore; default PATH, or a newer /usr/lib/postgresql/<major>/bin */
  binDir: z.string().min(1).optional(),
  /** where dumps live; default CUTOVER_DATA_DIR/dumps/<environment> (relative paths are under the data dir) */
  dumpDir: z.string().min(1).optional(),
  /** how long a connection attempt may take before the side counts as unreachable */
  connectTimeoutSeconds: z.number().int().min(1).max(120).default(10),
});
export type CommonOptions = z.infer<typeof CommonOptions>;

/** The `with:` block of the runbook's db.dump step, so the other steps find its folder and jobs. */
function dumpStepWith(deps: StepDeps): Record<string, unknown> {
  for (const phase of deps.file.runbook.phases)
    for (const step of phase.steps) if (step.uses === "db.dump") return step.with ?? {};
  return {};
}

export function jobsFor(deps: StepDeps, input: { jobs?: number | undefined }): number {
  const fromDump = dumpStepWith(deps).jobs;
  return input.jobs ?? (typeof fromDump === "number" ? fromDump : availableParallelism());
}

/** The folder dumps of this environment live in. */
export function dumpRoot(deps: StepDeps, input: { dumpDir?: string | undefined }): string {
  const fromDump = dumpStepWith(deps).dumpDir;
  const configured = input.dumpDir ?? (typeof fromDump === "string" ? fromDump : undefined);
  if (configured) return path.resolve(deps.dataDir, configured);
  // "." and ".." would name the dumps folder itself or the data folder: dots lead no name
  const name = deps.file.environment.replace(/[^A-Za-z0-9_.-]/g, "_").replace(/^\./, "_");
  return path.join(deps.dataDir, "dumps", name);
}

/** The source database (read-only use), from `source.database.urlEnv`. */
export function sourceEndpoint(deps: StepDeps): Endpoint {
  const db = requireSection(deps.file, "source.database");
  const url = deps.env[db.urlEnv];
  if (!url) {
    throw notSet(db.urlEnv, {
      hint: `Set ${db.urlEnv} to the source database's URL (postgres://user:password@host/db?sslmode=require), then run it again.`,
    });
  }
  return { side: "source", from: db.urlEnv, url };
}

/** The target database: `target.rds.urlEnv` when set, else the provisioned RDS endpoint and master user. */
export async function targetEndpoint(deps: StepDeps): Promise<Endpoint> {
  const rds = requireSection(deps.file, "target.rds");
  if (rds.urlEnv) {
    const url = deps.env[rds.urlEnv];
    if (!url) {
      throw notSet(rds.urlEnv, {
        hint: `Set ${rds.urlEnv} to the target database's URL (target.rds.urlEnv), then run it again.`,
      });
    }
    return { side: "target", from: rds.urlEnv, url };
  }
  const url = await rdsConnectionUrl({
    env: deps.env,
    dataDir: deps.dataDir,
    file: deps.file,
    ports: deps.ports,
  });
  return { side: "target", from: `the RDS instance ${rds.identifier}`, url };
}

/**
 * Refuses, before anything runs, a target that is the source: the same server and database under
 * any spelling of its URL (another host name for the same address, other parameters, another
 * user), or, when both answer, the same database seen from inside. Cutover never writes to the
 * source. Resolves with the source's address for the caller's other checks.
 */
export async function refuseSourceAsTarget(
  deps: StepDeps,
  target: Endpoint,
  opts: { timeoutSeconds?: number } = {},
): Promise<DbAddress> {
  const source = sourceEndpoint(deps);
  const { same, first: from } = await compareDatabases(source, target, opts);
  if (same) {
    throw new CutoverError(
      ErrorCode.TargetIsSource,
      `The target database (${target.from}: ${describeUrl(target.url)}) is the source database (${source.from}: ${describeUrl(source.url)}). Cutover never writes to the source, so nothing was done.`,
      { hint: `Point ${target.from} at the new database (the RDS instance), not at the source.` },
    );
  }
  return from;
}

/**
 * Whether two URLs reach one database under any spelling: by address first, then, when both
 * answer, from inside (a proxy or an alias this machine cannot resolve). Also gives the first
 * URL's address for the caller's other checks.
 */
export async function compareDatabases(
  a: Endpoint,
  b: Endpoint,
  opts: { timeoutSeconds?: number } = {},
): Promise<{ same: boolean; first: DbAddress }> {
  const [first, second] = await Promise.all([resolveDbAddress(a.url), resolveDbAddress(b.url)]);
  if (sameDatabase(first, second)) return { same: true, first };
  const [x, y] = await Promise.all([liveIdentityOf(a, opts), liveIdentityOf(b, opts)]);
  return { same: x !== null && x === y, first };
}

async function liveIdentityOf(ep: Endpoint, opts: { timeoutSeconds?: number }): Promise<string | null> {
  try {
    const client = await connect(ep, { timeoutSeconds: opts.timeoutSeconds ?? 10, readOnly: true });
    try {
      return await liveIdentity(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch {
    return null; // unreachable: the address comparison stands alone
  }
}

/** Where a dump was taken: the source's address and its identity from inside, at dump time. */
export interface SourceIdentity {
  address: DbAddress;
  live: string | null;
}

/**
 * Refuses a dump not taken from the configured source: one with no record of where it came
 * from, or whose source is neither at the configured source's address nor (seen from inside) the
 * configured source's database.
 */
export async function refuseForeignDump(
  deps: StepDeps,
  manifest: DumpManifest,
  opts: { timeoutSeconds?: number } = {},
): Promise<void> {
  const source = sourceEndpoint(deps);
  const taken = manifest.sourceIdentity;
  const retake = `Take a dump of the configured source (${source.from}) with the db.dump step, then restore that.`;
  if (!taken) {
    throw new CutoverError(
      ErrorCode.DumpInvalid,
      `The dump ${manifest.name} does not record which database it was taken from, so it is not restored.`,
      { hint: retake },
    );
  }
  const now = await resolveDbAddress(source.url);
  if (sameDatabase(taken.address, now)) return;
  const live = await liveIdentityOf(source, opts);
  if (live !== null && taken.live !== null && live === taken.live) return;
  throw new CutoverError(
    ErrorCode.DumpInvalid,
    `The dump ${manifest.name} was taken from ${manifest.source.where}, not from the configured source (${source.from}: ${describeUrl(source.url)}), so it is not restored.`,
    { hint: retake },
  );
}

// ───────────────────────────── the dump's manifest ─────────────────────────────

/** A post-data object, by how its existence is checked on the target (names unquoted). */
export interface ManifestObject {
  kind: "index" | "constraint" | "trigger" | "rule" | "policy" | "statistics" | "event-trigger";
  schema: string;
  name: string;
  /** the table, in `schema`, for constraints, triggers, rules and policies */
  table?: string;
}

/**
 * Written by db.dump next to pg_dump's files: which table each data entry loads and which object
 * each post-data entry creates (read from the source catalog in the dump's own snapshot, keyed
 * by `<catalog oid>:<object oid>` as `pg_restore --list` shows them), so a resumed restore can
 * tell what a crash left done.
 */
export interface DumpManifest {
  format: 1;
  name: string;
  startedAt: string;
  finishedAt: string;
  /** the snapshot's time on the source: the dump holds the data as of this instant */
  snapshotAt: string;
  source: { where: string; version: string; major: number };
  /** which database the dump was taken from, so a restore refuses a dump of another one */
  sourceIdentity?: SourceIdentity;
  client: { version: string; major: number };
  jobs: number;
  compression: string;
  /** tables (r) and materialized views (m) by oid: quoted qualified name, size estimate */
  tables: Record<string, { name: string; kind: "r" | "m"; bytes: number; rows: number }>;
  objects: Record<string, ManifestObject>;
  /** bytes on disk */
  bytes: number;
  seconds: number;
  /**
   * a live migration: the dump was taken in the snapshot its replication slot exported, so the
   * slot streams exactly the changes made after it (db.replicate subscribes to it)
   */
  replication?: { slot: string; publication: string; consistentPoint: string };
}

export const MANIFEST_FILE = "cutover-manifest.json";
const LATEST_FILE = "latest";
const MARKER_FILE = "restore-state.json";

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, file);
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as T;
  } catch (err) {
    // a folder that is missing, or a path through a file: nothing recorded there
    if (["ENOENT", "ENOTDIR"].includes((err as NodeJS.ErrnoException).code ?? "")) return undefined;
    throw err;
  }
}

export async function writeManifest(dir: string, manifest: DumpManifest): Promise<void> {
  await writeAtomic(path.join(dir, MANIFEST_FILE), `${JSON.stringify(manifest)}\n`);
}

export async function readManifest(dir: string): Promise<DumpManifest | undefined> {
  return readJson<DumpManifest>(path.join(dir, MANIFEST_FILE));
}

/** Points `latest` at a finished dump folder (by name, inside the root). */
export async function setLatestDump(root: string, name: string): Promise<void> {
  await writeAtomic(path.join(root, LATEST_FILE), `${name}\n`);
}

/** The newest finished dump: its folder and manifest; undefined when there is none. */
export async function latestDump(root: string): Promise<{ dir: string; manifest: DumpManifest } | undefined> {
  let name: string;
  try {
    name = (await readFile(path.join(root, LATEST_FILE), "utf8")).trim();
  } catch (err) {
    if (["ENOENT", "ENOTDIR"].includes((err as NodeJS.ErrnoException).code ?? "")) return undefined;
    throw err;
  }
  const dir = path.join(root, name);
  const manifest = await readManifest(dir);
  return manifest ? { dir, manifest } : undefined;
}

/** Finished dump folders in the root, oldest first. */
export async function finishedDumps(root: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const n of names.filter((x) => x.startsWith("dump-") && !x.includes(".")).sort()) {
    if (await readManifest(path.join(root, n))) out.push(n);
  }
  return out;
}

/** Removes the oldest finished dumps beyond `keep`, never `protect`. */
export async function pruneDumps(root: string, keep: number, protect: string[]): Promise<string[]> {
  const all = await finishedDumps(root);
  const removed: string[] = [];
  for (const name of all.slice(0, Math.max(0, all.length - keep))) {
    if (protect.includes(name)) continue;
    await rm(path.join(root, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

// ───────────────────────────── the partial-restore marker ─────────────────────────────

/**
 * Says that a target holds a restore Cutover started and has not finished. The preflight of a
 * rerun reads it to accept that non-empty target, and the restore to clear it without
 * `--replace`: the objects in it are Cutover's own.
 */
export interface RestoreMarker {
  /** host:port/db of the target */
  target: string;
  dump: string;
  runId: string;
  phase: "pre-data" | "data" | "post-data" | "analyze" | "done";
  /** pid of the pg_restore running now, so a new worker can stop one a crash left behind */
  pid?: number;
  updatedAt: string;
}

export async function readMarker(root: string): Promise<RestoreMarker | undefined> {
  return readJson<RestoreMarker>(path.join(root, MARKER_FILE));
}

export async function writeMarker(root: string, marker: Omit<RestoreMarker, "updatedAt">): Promise<void> {
  await mkdir(root, { recursive: true });
  await writeAtomic(
    path.join(root, MARKER_FILE),
    `${JSON.stringify({ ...marker, updatedAt: new Date().toISOString() })}\n`,
  );
}

/** Whether the marker says this target holds Cutover's own unfinished restore. */
export function holdsPartialRestore(marker: RestoreMarker | undefined, targetUrl: string): boolean {
  return marker !== undefined && marker.phase !== "done" && marker.target === fingerprintUrl(targetUrl);
}

// ───────────────────────────── small helpers ─────────────────────────────

/** Stops a process a crashed worker left behind, if it is still the program we started. */
export async function stopStray(pid: number | undefined, program: string): Promise<boolean> {
  if (!pid || pid === process.pid) return false;
  try {
    const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
    // the program itself, or Debian's pg_wrapper (a perl script of that name) not yet exec'd
    // into it: a stray caught in that moment was left running for ever (seen under load)
    if (!argv.slice(0, 2).some((a) => a.endsWith(program))) return false;
  } catch {
    return false; // gone (or not Linux: nothing to read, nothing to stop)
  }
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return false;
  }
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
  return true;
}

/** Calls fn at most once a second (and once more at the end with `flush`). */
export function throttle(fn: () => void | Promise<void>, everyMs = 1_000) {
  let last = 0;
  let running: Promise<void> | undefined;
  return {
    poke() {
      if (Date.now() - last < everyMs || running) return;
      last = Date.now();
      running = Promise.resolve(fn())
        .catch(() => undefined)
        .finally(() => {
          running = undefined;
        });
    },
    async flush() {
      await running;
      last = Date.now();
      await fn();
    },
  };
}
