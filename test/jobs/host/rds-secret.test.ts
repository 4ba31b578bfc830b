import { randomBytes } from "node:crypto";
import { CreateDBInstanceCommand, RDSClient } from "@aws-sdk/client-rds";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, isCutoverError } from "../../../src/errors.js";
import { rdsConnectionUrl, recordProvisioned } from "../../../src/jobs/provisioned.js";
import { type MotoHandle, useMoto } from "../../helpers/moto.js";
import { fileWith, tempDir } from "./fixtures.js";

/** moto's RDS keeps a managed master password in its Secrets Manager, as AWS does. */
let moto: MotoHandle;
let data: { dir: string; remove: () => Promise<void> };
const REGION = "ap-southeast-1";
const creds = { AWS_ACCESS_KEY_ID: "testing", AWS_SECRET_ACCESS_KEY: "testing" };

beforeAll(async () => {
  moto = await useMoto();
  data = await tempDir("cutover-rds-secret-");
});
afterAll(async () => {
  await data?.remove();
  await moto?.stop();
});

async function createInstance(identifier: string, managed: boolean) {
  const rds = new RDSClient({
    region: REGION,
    endpoint: moto.endpoint,
    credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
  });
  const out = await rds.send(
    new CreateDBInstanceCommand({
      DBInstanceIdentifier: identifier,
      Engine: "postgres",
      DBInstanceClass: "db.t4g.micro",
      AllocatedStorage: 20,
      MasterUsername: "gogojap_admin",
      ...(managed ? { ManageMasterUserPassword: true } : { MasterUserPassword: "Not-Managed-123" }),
    }),
  );
  rds.destroy();
  return out.DBInstance!;
}

const fileFor = (identifier: string) =>
  fileWith((f) => {
    f.target!.aws.region = REGION;
    const rds = f.target!.rds!;
    rds.identifier = identifier;
    delete rds.masterPasswordEnv;
    rds.masterPasswordStore = "secrets-manager";
  });

describe("the RDS master password kept by RDS in Secrets Manager", () => {
  it("is read back from the instance's secret to connect, and only there", async () => {
    const id = `cutover-sm-${randomBytes(4).toString("hex")}`;
    const instance = await createInstance(id, true);
    expect(instance.MasterUserSecret?.SecretArn).toMatch(/^arn:aws:secretsmanager:/);
    await recordProvisioned(data.dir, "production", { "target.rds.endpoint": "db.internal.example" });
    const file = await fileFor(id);
    const url = await rdsConnectionUrl({
      env: { AWS_ENDPOINT_URL: moto.endpoint, ...creds },
      dataDir: data.dir,
      file: { ...file, environment: "production" },
    });
    const parsed = new URL(url);
    expect(parsed.hostname).toBe("db.internal.example");
    expect(parsed.username).toBe(file.target!.rds!.masterUsername);
    // the password is the one in the secret RDS named on the instance
    const sm = new SecretsManagerClient({
      region: REGION,
      endpoint: moto.endpoint,
      credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
    });
    const secret = await sm.send(
      new GetSecretValueCommand({ SecretId: instance.MasterUserSecret!.SecretArn! }),
    );
    sm.destroy();
    const expected = (JSON.parse(secret.SecretString!) as { password: string }).password;
    expect(decodeURIComponent(parsed.password)).toBe(expected);
    expect(parsed.searchParams.get("sslmode")).toBe("require");
  });

  it("says to run rds.instance first when the instance does not exist, and what to do when it has no managed secret", async () => {
    await recordProvisioned(data.dir, "production", { "target.rds.endpoint": "db.internal.example" });
    const env = { AWS_ENDPOINT_URL: moto.endpoint, ...creds };
    const missing = await rdsConnectionUrl({
      env,
      dataDir: data.dir,
      file: { ...(await fileFor("cutover-sm-absent")), environment: "production" },
    }).catch((e: unknown) => e);
    expect(isCutoverError(missing, ErrorCode.BadArgument)).toBe(true);
    expect((missing as Error).message).toMatch(
      /cutover-sm-absent does not exist in ap-southeast-1 yet: run the rds.instance step first/,
    );

    const id = `cutover-nosm-${randomBytes(4).toString("hex")}`;
    await createInstance(id, false);
    const unmanaged = await rdsConnectionUrl({
      env,
      dataDir: data.dir,
      file: { ...(await fileFor(id)), environment: "production" },
    }).catch((e: unknown) => e);
    expect((unmanaged as Error).message).toContain("has no master password managed by RDS");
    expect(JSON.stringify(unmanaged)).not.toContain("Not-Managed-123");
  });
});
