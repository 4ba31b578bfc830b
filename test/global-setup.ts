import { readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { build } from "../scripts/build.mjs";
import { type LogicalServer, startLogicalServer } from "../src/sandbox/logical-server.js";
import { applyMigrations } from "../src/store/migrate.js";
import {
  databaseUrl,
  dropDatabase,
  listTestDatabases,
  runOf,
  runToken,
  serverUrl,
  TEMPLATE_DATABASE,
  withTemplateLock,
} from "./helpers/db.js";

const run = runToken();
const LOGICAL_PREFIX = "cutover-logical-";
const logicalDir = path.join(tmpdir(), `${LOGICAL_PREFIX}${run}`);
let logical: Promise<LogicalServer | undefined> | undefined;

/**
 * Once per `vitest run`: compile src/ to dist/ (the tests that run `npx cutover` or `npm start`
 * run the compiled code, as users do, so it must be this tree's), (re)build the migrated template
 * database the database tests copy, and clear databases left behind by runs that died before
 * their teardown.
 */
export async function setup(project: TestProject): Promise<void> {
  await build();
  project.provide("cutoverTestRun", run);
  // The second PostgreSQL (17, wal_level = logical) the replication tests use: started in the
  // background, so runs that do not need it do not wait for it; test/helpers/logical.ts waits for
  // the file it writes when it is up (or failed).
  const readyFile = path.join(logicalDir, "server.json");
  project.provide("cutoverLogicalServerFile", readyFile);
  await stopDeadLogicalServers();
  logical = startLogicalServer({ dir: logicalDir }).then(
    async (server) => {
      await writeReady(readyFile, { adminUrl: server.adminUrl, version: server.version });
      return server;
    },
    async (err: Error) => {
      await writeReady(readyFile, { error: err.message }).catch(() => undefined);
      return undefined;
    },
  );
  await dropLeftovers((token) => token !== run && !processAlive(Number.parseInt(token, 36)));
  await withTemplateLock(async (client) => {
    const template = client.escapeIdentifier(TEMPLATE_DATABASE);
    await client.query(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${template} TEMPLATE template0`);
    await applyMigrations(databaseUrl(TEMPLATE_DATABASE));
  });
}

/** Drops this run's databases that a test did not drop itself. */
export async function teardown(): Promise<void> {
  try {
    await dropLeftovers((token) => token === run);
  } finally {
    await (await logical)?.stop();
    await rm(logicalDir, { recursive: true, force: true });
  }
}

async function writeReady(file: string, content: object): Promise<void> {
  await writeFile(`${file}.tmp`, JSON.stringify(content), { mode: 0o600 });
  await rename(`${file}.tmp`, file); // whole or not at all for a reader polling it
}

/**
 * A run that died before its teardown leaves its logical server running: end it (a fast
 * shutdown, by the PID in its own postmaster.pid) and remove its folder.
 */
async function stopDeadLogicalServers(): Promise<void> {
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    if (!name.startsWith(LOGICAL_PREFIX)) continue;
    const token = name.slice(LOGICAL_PREFIX.length);
    if (token === run || processAlive(Number.parseInt(token, 36))) continue;
    const dir = path.join(tmpdir(), name);
    const pidText = await readFile(path.join(dir, "postgres", "postmaster.pid"), "utf8").catch(() => "");
    const pid = Number.parseInt(pidText.split("\n")[0] ?? "", 10);
    const cmd =
      Number.isInteger(pid) && pid > 0 ? await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "") : "";
    if (cmd.includes(dir)) {
      process.kill(pid, "SIGINT");
      for (let i = 0; i < 100 && processAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    }
    await rm(dir, { recursive: true, force: true });
  }
}

async function dropLeftovers(shouldDrop: (runToken: string) => boolean): Promise<void> {
  // Another machine's PIDs mean nothing here: only judge runs on a local server.
  const local = ["127.0.0.1", "localhost", "[::1]"].includes(new URL(serverUrl()).hostname);
  for (const name of await listTestDatabases()) {
    const token = runOf(name);
    if (token === undefined) continue;
    if (token !== run && !local) continue;
    if (shouldDrop(token)) await dropDatabase(name);
  }
}

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === "EPERM";
  }
}
