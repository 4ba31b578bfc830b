import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { DbAddress } from "../../../cloud/db-identity.js";
import { fingerprintUrl } from "../../../cloud/postgres.js";

/**
 * The files that carry facts from one database step to the next, in the dump folder: the dump's
 * manifest, the `latest` pointer, and the partial-restore marker.
 */

/** Where a dump was taken: the source's address and its identity from inside, at dump time. */
export interface SourceIdentity {
  address: DbAddress;
  live: string | null;
}

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
