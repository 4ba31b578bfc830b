import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { parseMigrationFile } from "../../../src/config/load.js";
import type { MigrationFile } from "../../../src/config/schema.js";
import type { StepDeps } from "../../../src/jobs/catalogue.js";
import type { RunInfo } from "../../../src/jobs/define-step.js";
import { createPorts } from "../../../src/ports.js";
import { generateEd25519, generateRsa } from "../../../src/sandbox/ssh-keys.js";
import { makeStepContext, type TestStepContext } from "../../helpers/step-context.js";

const EXAMPLE = join(import.meta.dirname, "../../../migration.example.yml");

/** The shipped example (the plan's configuration), parsed without checking the environment. */
export async function exampleFile(): Promise<MigrationFile> {
  const { readFile } = await import("node:fs/promises");
  return parseMigrationFile(await readFile(EXAMPLE, "utf8"), { checkEnv: false });
}

/** A copy of the example with some target sections changed. */
export async function fileWith(edit: (f: MigrationFile) => void): Promise<MigrationFile> {
  const f = structuredClone(await exampleFile());
  edit(f);
  return f;
}

/** A temporary data directory, removed by the returned function. */
export async function tempDir(
  prefix = "cutover-host-",
): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** An ed25519 client key pair, the private key written to `dir` (mode 0600). */
export async function clientKey(
  dir: string,
  name = "id_ed25519",
  type: "ed25519" | "rsa" = "ed25519",
): Promise<{ path: string; publicKey: string }> {
  const pair = type === "rsa" ? generateRsa(2048) : generateEd25519();
  const path = join(dir, name);
  await writeFile(path, pair.private, { mode: 0o600 });
  return { path, publicKey: pair.public };
}

export function depsFor(file: MigrationFile, dataDir: string, env: NodeJS.ProcessEnv): StepDeps {
  return { file, dataDir, env, ports: createPorts({ env }, file), log: pino({ level: "silent" }) };
}

/** Secret values the tests put in the environment, to prove none of them leaks. */
/** What lightsail.instance plans on an account holding none of the example file's resources, in order. */
export const LIGHTSAIL_EMPTY_ACCOUNT_PLAN = [
  "create key pair gogojap-key",
  "create instance gogojap-api",
  "create static IP gogojap-ip",
  "update firewall of gogojap-api",
];

export const SECRETS = {
  APP_SECRET_KEY: "s3cr3t-app-key-do-not-leak",
  ANTHROPIC_API_KEY: "sk-ant-test-do-not-leak-0001",
  APP_AWS_ACCESS_KEY_ID: "AKIAEXAMPLEDONOTLEAK1",
  APP_AWS_SECRET_ACCESS_KEY: "aws/secret+do-not-leak",
  CERTBOT_CLOUDFLARE_TOKEN: "cf-token-do-not-leak-42",
  RDS_MASTER_PASSWORD: "Db-Passw0rd-do-not-leak",
} as const;

/** A step context from the shared helper (in-memory checkpoints, recorded progress and log lines). */
export function stepContext(opts: { run?: Partial<RunInfo> } = {}): TestStepContext {
  return makeStepContext(opts);
}
