import type { TestProject } from "vitest/node";
import { build } from "../scripts/build.mjs";
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

/**
 * Once per `vitest run`: compile src/ to dist/ (the tests that run `npx cutover` or `npm start`
 * run the compiled code, as users do, so it must be this tree's), (re)build the migrated template
 * database the database tests copy, and clear databases left behind by runs that died before
 * their teardown.
 */
export async function setup(project: TestProject): Promise<void> {
  await build();
  project.provide("cutoverTestRun", run);
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
  await dropLeftovers((token) => token === run);
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
