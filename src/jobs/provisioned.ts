import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { MigrationFile, RdsConfig, ValueRefName } from "../config/schema.js";
import { CutoverError, ErrorCode, notSet } from "../errors.js";
import { type Ports, portsOf } from "../ports.js";

/**
 * Values one step provisions and another needs (the static IP, the database endpoint), kept in
 * a small JSON file per environment under the data directory. No secret is ever written here:
 * the RDS master password, when Cutover generates it, has its own file (mode 0600).
 *
 * Keys are the `{ ref: … }` names of the migration file (`target.lightsail.staticIp`,
 * `target.rds.endpoint`, …) plus a few companions (`target.rds.port`).
 *
 * @example const ip = (await readProvisioned(dataDir, "production"))["target.lightsail.staticIp"];
 */
export type ProvisionedKey = ValueRefName | "target.rds.port" | "target.rds.passwordLocation" | (string & {});

export function provisionedPath(dataDir: string, env: string): string {
  return join(dataDir, "provisioned", `${env.replace(/[^A-Za-z0-9_.-]/g, "_")}.json`);
}

export async function readProvisioned(dataDir: string, env: string): Promise<Record<string, string>> {
  try {
    return JSON.parse(await readFile(provisionedPath(dataDir, env), "utf8")) as Record<string, string>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw err;
  }
}

/** Merges values into the environment's record (atomically: a reader never sees half a file). */
export async function recordProvisioned(
  dataDir: string,
  env: string,
  values: Partial<Record<ProvisionedKey, string>>,
): Promise<void> {
  const path = provisionedPath(dataDir, env);
  const merged = { ...(await readProvisioned(dataDir, env)), ...values };
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(tmp, `${JSON.stringify(merged, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, path);
}

/** Where a master password Cutover generated is kept (`masterPasswordStore: data-dir`). */
export function masterPasswordPath(dataDir: string, identifier: string): string {
  return join(dataDir, "secrets", `rds-${identifier}.master-password`);
}

/** Characters RDS accepts in a master password (printable ASCII but / @ " and space), minus shell-awkward ones. */
const PASSWORD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_.~+=";

/** A new random master password, 32 characters. */
export function generatePassword(length = 32): string {
  const bytes = randomBytes(length * 2);
  let out = "";
  for (const b of bytes) {
    // rejection sampling keeps every character equally likely
    if (b < 256 - (256 % PASSWORD_ALPHABET.length)) out += PASSWORD_ALPHABET[b % PASSWORD_ALPHABET.length];
    if (out.length === length) break;
  }
  return out.length === length ? out : generatePassword(length);
}

/** Writes a new password file (0600 in a 0700 folder); never overwrites one. */
export async function storeGeneratedPassword(
  dataDir: string,
  identifier: string,
  password: string,
): Promise<string> {
  const path = masterPasswordPath(dataDir, identifier);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await chmod(dirname(path), 0o700);
  await writeFile(path, `${password}\n`, { mode: 0o600, flag: "wx" });
  return path;
}

/** Checks a password against RDS's rules without ever quoting it. */
export function checkMasterPassword(password: string, where: string): void {
  if (password.length < 8 || password.length > 128 || /[/@"\s]/.test(password)) {
    throw new CutoverError(
      ErrorCode.BadArgument,
      `${where} does not hold a password RDS accepts — it needs 8 to 128 printable characters without / @ " or spaces.`,
    );
  }
}

/** Where the master password lives, in words (for plans and reports; never the password). */
export function passwordLocation(rds: RdsConfig, dataDir: string): string {
  if (rds.masterPasswordEnv) return `environment variable ${rds.masterPasswordEnv}`;
  if (rds.masterPasswordStore === "data-dir") return masterPasswordPath(dataDir, rds.identifier);
  return "AWS Secrets Manager (managed by RDS)";
}

/**
 * The RDS master password, from where the migration file says it is kept: an environment
 * variable, the data directory, or the Secrets Manager secret RDS keeps for the instance.
 */
export async function readRdsMasterPassword(deps: {
  env: NodeJS.ProcessEnv;
  dataDir: string;
  rds: RdsConfig;
  /** the AWS region of the instance (target.aws.region); needed for secrets-manager */
  region?: string;
  /** where RDS and Secrets Manager are asked, for secrets-manager */
  ports: Pick<Ports, "rds" | "secrets">;
}): Promise<string> {
  const { rds } = deps;
  if (rds.masterPasswordEnv) {
    const value = deps.env[rds.masterPasswordEnv];
    if (!value) {
      throw notSet(rds.masterPasswordEnv, {
        hint: `Set ${rds.masterPasswordEnv} to the RDS master password (target.rds.masterPasswordEnv).`,
      });
    }
    return value;
  }
  if (rds.masterPasswordStore === "data-dir") {
    const path = masterPasswordPath(deps.dataDir, rds.identifier);
    try {
      return (await readFile(path, "utf8")).trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new CutoverError(
          ErrorCode.BadArgument,
          `The generated RDS master password is not in ${path}: run the rds.instance step first (it creates the file).`,
        );
      }
      throw err;
    }
  }
  // secrets-manager: RDS generated the password and keeps it in the secret named on the instance
  const region = deps.region ?? "us-east-1";
  const instance = await deps.ports.rds(region).describeInstance(rds.identifier);
  if (!instance) {
    throw new CutoverError(
      ErrorCode.BadArgument,
      `${rds.identifier} does not exist in ${region} yet: run the rds.instance step first (RDS then keeps its master password in Secrets Manager).`,
    );
  }
  if (!instance.masterUserSecretArn) {
    throw new CutoverError(
      ErrorCode.BadArgument,
      `${rds.identifier} has no master password managed by RDS, though the migration file says masterPasswordStore: secrets-manager.`,
      {
        hint: "Give the password through masterPasswordEnv, or turn on “Manage master credentials in AWS Secrets Manager” for the instance.",
      },
    );
  }
  return deps.ports.secrets(region).rdsManagedPassword(instance.masterUserSecretArn);
}

/**
 * The connection URL of the target database (`target.rds.url`), with the master password: for the
 * database copy and the host's .env only, never for a message or a log.
 */
export async function rdsConnectionUrl(deps: {
  env: NodeJS.ProcessEnv;
  dataDir: string;
  file: MigrationFile;
  ports?: Ports | undefined;
}): Promise<string> {
  const rds = deps.file.target?.rds;
  if (!rds) throw new CutoverError(ErrorCode.ConfigInvalid, "target.rds: missing from the migration file");
  const values = await readProvisioned(deps.dataDir, deps.file.environment);
  const endpoint = values["target.rds.endpoint"];
  if (!endpoint) {
    throw new CutoverError(
      ErrorCode.BadArgument,
      `The endpoint of ${rds.identifier} is not known yet: run the rds.instance step first.`,
    );
  }
  const port = values["target.rds.port"] ?? String(rds.port);
  const password = await readRdsMasterPassword({
    env: deps.env,
    dataDir: deps.dataDir,
    rds,
    ...(deps.file.target?.aws.region ? { region: deps.file.target.aws.region } : {}),
    ports: portsOf(deps),
  });
  const u = encodeURIComponent;
  return `postgresql://${u(rds.masterUsername)}:${u(password)}@${endpoint}:${port}/${u(rds.dbName)}?sslmode=require`;
}

/** Which step type provides each `{ ref: … }` value, for "run X first" messages. */
const PROVIDER: Record<string, string> = {
  "target.lightsail.staticIp": "lightsail.instance",
  "target.rds.endpoint": "rds.instance",
  "target.rds.url": "rds.instance",
  "target.s3.bucket": "s3.bucket",
  "target.cloudfront.domain": "s3.bucket",
  "target.cloudfront.url": "s3.bucket",
};

/**
 * The value behind a `{ ref: … }`: recorded by the providing step, or (for plain facts) the file.
 */
export async function resolveValueRef(
  deps: { env: NodeJS.ProcessEnv; dataDir: string; file: MigrationFile; ports?: Ports | undefined },
  ref: ValueRefName,
): Promise<string> {
  if (ref === "target.rds.url") return rdsConnectionUrl(deps);
  const recorded = (await readProvisioned(deps.dataDir, deps.file.environment))[ref];
  if (recorded) return recorded;
  if (ref === "target.s3.bucket" && deps.file.target?.s3) return deps.file.target.s3.bucket;
  if (ref === "source.app.url" && deps.file.source?.app) return deps.file.source.app.url;
  if (ref === "target.cloudfront.url") {
    const domain = (await readProvisioned(deps.dataDir, deps.file.environment))["target.cloudfront.domain"];
    if (domain) return `https://${deps.file.target?.cloudfront?.aliases[0] ?? domain}`;
  }
  throw new CutoverError(
    ErrorCode.BadArgument,
    `${ref} is not known yet${PROVIDER[ref] ? `: run the ${PROVIDER[ref]} step first` : ""}.`,
  );
}
