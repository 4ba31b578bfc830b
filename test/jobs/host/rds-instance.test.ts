import { randomBytes } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname } from "node:path";
import { DescribeSecurityGroupsCommand, EC2Client } from "@aws-sdk/client-ec2";
import {
  AddTagsToResourceCommand,
  DescribeDBInstancesCommand,
  DescribeDBParameterGroupsCommand,
  DescribeDBParametersCommand,
  DescribeDBSnapshotsCommand,
  ModifyDBInstanceCommand,
  RDSClient,
  RemoveTagsFromResourceCommand,
} from "@aws-sdk/client-rds";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemClock } from "../../../src/clock.js";
import type { MigrationFile } from "../../../src/config/schema.js";
import { ErrorCode, isCutoverError } from "../../../src/errors.js";
import { masterPasswordPath, rdsConnectionUrl, readProvisioned } from "../../../src/jobs/provisioned.js";
import { createRdsInstanceStep } from "../../../src/jobs/steps/db/rds-instance.js";
import { MANAGED_TAG } from "../../../src/jobs/steps/host/lightsail-instance.js";
import { FakeLightsail } from "../../../src/sandbox/FakeLightsail.js";
import { type MotoHandle, useMoto } from "../../helpers/moto.js";
import { depsFor, fileWith, SECRETS, stepContext, tempDir } from "./fixtures.js";

const creds = { accessKeyId: "testing", secretAccessKey: "testing" };

/** An RDS endpoint in front of moto that refuses one action the way IAM does. */
async function denyingProxy(
  moto: string,
  action: string,
): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    if (new URLSearchParams(body).get("Action") === action) {
      res.writeHead(403, { "content-type": "text/xml" });
      res.end(
        `<ErrorResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/cutover is not authorized to perform: rds:${action} because no identity-based policy allows the rds:${action} action</Message></Error><RequestId>1</RequestId></ErrorResponse>`,
      );
      return;
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (typeof v === "string" && k !== "host") headers[k] = v;
    const upstream = await fetch(`${moto}${req.url}`, { method: req.method ?? "POST", headers, body });
    res.writeHead(upstream.status, { "content-type": upstream.headers.get("content-type") ?? "text/xml" });
    res.end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

describe("rds.instance against moto (RDS and EC2) and the Lightsail fake", () => {
  let moto: MotoHandle;
  let lightsail: FakeLightsail;
  let data: { dir: string; remove: () => Promise<void> };
  let staticIp: string;
  let baseEnv: NodeJS.ProcessEnv;

  beforeAll(async () => {
    moto = await useMoto();
    lightsail = new FakeLightsail();
    await lightsail.start();
    data = await tempDir();
    baseEnv = {
      AWS_ENDPOINT_URL_RDS: moto.endpoint,
      AWS_ENDPOINT_URL_EC2: moto.endpoint,
      AWS_ENDPOINT_URL_LIGHTSAIL: lightsail.url,
      AWS_ACCESS_KEY_ID: creds.accessKeyId,
      AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
      AWS_MAX_ATTEMPTS: "1",
    };
    // the Lightsail step has run: the static IP exists
    const { createLightsail } = await import("../../../src/cloud/lightsail.js");
    const ls = createLightsail({ region: "ap-southeast-1", endpoint: lightsail.url, credentials: creds });
    await ls.allocateStaticIp("gogojap-ip");
    staticIp = (await ls.getStaticIp("gogojap-ip"))!.ipAddress;
  });
  afterAll(async () => {
    await lightsail?.stop();
    await moto?.stop();
    await data?.remove();
  });

  const fileFor = (
    edit: (rds: NonNullable<MigrationFile["target"]>["rds"] & object) => void = () => undefined,
  ) =>
    fileWith((f) => {
      f.target!.rds!.identifier = `t-${randomBytes(4).toString("hex")}`;
      edit(f.target!.rds!);
    });
  const rdsClient = () =>
    new RDSClient({ region: "ap-southeast-1", endpoint: moto.endpoint, credentials: creds });

  it("creates the database as the plan says, with a security group admitting only the static IP, TLS required and a generated password kept 0600", async () => {
    const file = await fileFor((r) => {
      delete r.masterPasswordEnv;
      r.masterPasswordStore = "data-dir";
    });
    const id = file.target!.rds!.identifier;
    const step = createRdsInstanceStep(depsFor(file, data.dir, baseEnv));
    const input = step.parse({ pollMs: 20 });

    const plan = await step.plan(input, stepContext({ run: { dryRun: true } }));
    expect(plan.changes.map((c) => `${c.action} ${c.target}`)).toEqual([
      `create security group ${id}-db`,
      `create parameter group ${id}-pg14`,
      `create database ${id}`,
    ]);
    expect(plan.changes[0]!.detail).toBe(`admit ${staticIp}/32 on 5432/tcp`);
    expect(plan.changes[2]!.detail).toMatch(
      /PostgreSQL 14, db.t4g.micro, 20 GB gp3, backups 7 days, single AZ, encrypted, public/,
    );

    const ctx = stepContext();
    const out = await step.run(input, ctx);
    const db = (await rdsClient().send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: id })))
      .DBInstances![0]!;
    expect(db).toMatchObject({
      Engine: "postgres",
      DBInstanceClass: "db.t4g.micro",
      StorageType: "gp3",
      AllocatedStorage: 20,
      MultiAZ: false,
      BackupRetentionPeriod: 7,
      PubliclyAccessible: true,
      StorageEncrypted: true,
      MasterUsername: "gogojap_admin",
      DBName: "gogojap",
    });
    expect(db.EngineVersion).toMatch(/^14/);
    expect(db.DBParameterGroups?.[0]?.DBParameterGroupName).toBe(`${id}-pg14`);
    // the example is a live migration: logical replication set at creation, with TLS, no reboot needed later
    expect(plan.changes[1]!.detail).toContain("rds.logical_replication = 1");
    const params = await rdsClient().send(
      new DescribeDBParametersCommand({ DBParameterGroupName: `${id}-pg14`, Source: "user" }),
    );
    const set = Object.fromEntries((params.Parameters ?? []).map((p) => [p.ParameterName, p.ParameterValue]));
    expect(set).toMatchObject({ "rds.force_ssl": "1", "rds.logical_replication": "1" });
    const sgId = db.VpcSecurityGroups?.[0]?.VpcSecurityGroupId;
    const ec2 = new EC2Client({ region: "ap-southeast-1", endpoint: moto.endpoint, credentials: creds });
    const sg = (await ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [sgId!] }))).SecurityGroups![0]!;
    expect(sg.IpPermissions?.map((p) => [p.FromPort, p.IpRanges?.map((r) => r.CidrIp)])).toEqual([
      [5432, [`${staticIp}/32`]],
    ]);

    // the password: generated, stored 0600 in a 0700 folder, never in what the step reports
    const pwPath = masterPasswordPath(data.dir, id);
    const password = (await readFile(pwPath, "utf8")).trim();
    expect(password).toHaveLength(32);
    expect((await stat(pwPath)).mode & 0o777).toBe(0o600);
    expect((await stat(dirname(pwPath))).mode & 0o777).toBe(0o700);
    const shown = JSON.stringify([out, ctx.reports, ctx.logs, [...ctx.checkpoints]]);
    expect(shown).not.toContain(password);
    expect(out.figures).toMatchObject({ passwordLocation: pwPath, admits: `${staticIp}/32` });

    // the endpoint becomes the database copy's target
    const recorded = await readProvisioned(data.dir, "production");
    expect(recorded["target.rds.endpoint"]).toBe(db.Endpoint?.Address);
    const url = await rdsConnectionUrl({ env: baseEnv, dataDir: data.dir, file });
    expect(url).toBe(
      `postgresql://gogojap_admin:${encodeURIComponent(password)}@${db.Endpoint?.Address}:${db.Endpoint?.Port}/gogojap?sslmode=require`,
    );

    const verified = await step.verify(input, ctx);
    expect(verified.summary).toMatch(/TLS required, admits only/);
    expect(verified.ok).toBe(true);

    // a rerun changes nothing
    const again = await step.run(input, stepContext());
    expect(again.summary).toMatch(new RegExp(`^${id} already as configured`));
    expect((await step.plan(input, stepContext())).summary).toBe(`${id}: already as configured`);
  });

  it("undo deletes only a database Cutover created, keeping a final snapshot named for the step clock's moment, then its parameter and security groups", async () => {
    const file = await fileFor((r) => {
      delete r.masterPasswordEnv;
      r.masterPasswordStore = "data-dir";
    });
    const id = file.target!.rds!.identifier;
    const at = new Date("2026-12-07T10:00:00.000Z");
    const step = createRdsInstanceStep({
      ...depsFor(file, data.dir, baseEnv),
      clock: { now: () => at, sleep: systemClock.sleep },
    });
    const input = step.parse({ pollMs: 20 });
    const ctx = stepContext();
    await step.run(input, ctx);
    const rds = rdsClient();
    const describe = async () =>
      (await rds.send(new DescribeDBInstancesCommand({})).then((r) => r.DBInstances ?? [])).find(
        (d) => d.DBInstanceIdentifier === id,
      );
    const db = await describe();
    const sgId = db!.VpcSecurityGroups![0]!.VpcSecurityGroupId!;
    const arn = db!.DBInstanceArn!;

    // someone took Cutover's tag off (or the name now belongs to a database Cutover did not make)
    await rds.send(new RemoveTagsFromResourceCommand({ ResourceName: arn, TagKeys: [MANAGED_TAG] }));
    const refused = await step.undo!(input, ctx).catch((e: unknown) => e);
    expect(isCutoverError(refused) && refused.code).toBe(ErrorCode.ResourceConflict);
    expect((refused as Error).message).toBe(
      `Not deleting ${id}: it does not carry the ${MANAGED_TAG} tag, so Cutover did not create it.`,
    );
    expect(await describe()).toBeDefined();

    await rds.send(
      new AddTagsToResourceCommand({ ResourceName: arn, Tags: [{ Key: MANAGED_TAG, Value: "true" }] }),
    );
    await step.undo!(input, ctx);
    expect(await describe()).toBeUndefined();
    // its one manual snapshot (the automated backups are RDS's own)
    const snapshots = (await rds.send(new DescribeDBSnapshotsCommand({}))).DBSnapshots ?? [];
    expect(
      snapshots
        .filter((x) => x.DBInstanceIdentifier === id && x.SnapshotType === "manual")
        .map((x) => x.DBSnapshotIdentifier),
    ).toEqual([`${id}-cutover-undo-${at.getTime()}`]);
    const groups = (await rds.send(new DescribeDBParameterGroupsCommand({}))).DBParameterGroups ?? [];
    expect(groups.map((g) => g.DBParameterGroupName)).not.toContain(`${id}-pg14`);
    const ec2 = new EC2Client({ region: "ap-southeast-1", endpoint: moto.endpoint, credentials: creds });
    const left = (await ec2.send(new DescribeSecurityGroupsCommand({}))).SecurityGroups ?? [];
    expect(left.map((g) => g.GroupId)).not.toContain(sgId);
  });

  it("shows drift made outside Cutover and puts it back", async () => {
    const file = await fileFor();
    const id = file.target!.rds!.identifier;
    const env = { ...baseEnv, RDS_MASTER_PASSWORD: SECRETS.RDS_MASTER_PASSWORD };
    const step = createRdsInstanceStep(depsFor(file, data.dir, env));
    const input = step.parse({ pollMs: 20 });
    const ctx = stepContext();
    const out = await step.run(input, ctx);
    expect(JSON.stringify([out, ctx.reports, ctx.logs])).not.toContain(SECRETS.RDS_MASTER_PASSWORD);
    await rdsClient().send(
      new ModifyDBInstanceCommand({
        DBInstanceIdentifier: id,
        BackupRetentionPeriod: 1,
        ApplyImmediately: true,
      }),
    );
    const plan = await step.plan(input, stepContext());
    expect(plan.changes.find((c) => c.target === `database ${id}`)).toMatchObject({
      action: "update",
      detail: "backups kept 1 → 7 days",
    });
    expect((await step.verify(input, stepContext())).summary).toMatch(/differs: backups kept 1 → 7 days/);
    const fixed = await step.run(input, stepContext());
    expect(fixed.summary).toMatch(/modified .*backups kept 1 → 7 days/);
    expect((await step.verify(input, stepContext())).ok).toBe(true);
  });

  it("refuses an existing database it cannot turn into the configured one", async () => {
    const file = await fileFor();
    const env = { ...baseEnv, RDS_MASTER_PASSWORD: SECRETS.RDS_MASTER_PASSWORD };
    await createRdsInstanceStep(depsFor(file, data.dir, env)).run(
      { waitSeconds: 60, pollMs: 20, resetMasterPassword: false },
      stepContext(),
    );
    const other = structuredClone(file);
    other.target!.rds!.masterUsername = "someone_else";
    const step = createRdsInstanceStep(depsFor(other, data.dir, env));
    const err = await step.run(step.parse({}), stepContext()).catch((e: unknown) => e);
    expect(isCutoverError(err, ErrorCode.ResourceConflict)).toBe(true);
    expect((err as Error).message).toMatch(/its master user is gogojap_admin, not someone_else/);
  });

  it("names the missing IAM action when RDS refuses to create the database", async () => {
    const proxy = await denyingProxy(moto.endpoint, "CreateDBInstance");
    try {
      const file = await fileFor();
      const env = {
        ...baseEnv,
        AWS_ENDPOINT_URL_RDS: proxy.url,
        RDS_MASTER_PASSWORD: SECRETS.RDS_MASTER_PASSWORD,
      };
      const step = createRdsInstanceStep(depsFor(file, data.dir, env));
      const err = await step.run(step.parse({ pollMs: 20 }), stepContext()).catch((e: unknown) => e);
      expect(isCutoverError(err, ErrorCode.AwsPermissionDenied)).toBe(true);
      expect((err as Error).message).toMatch(/AWS refused rds:CreateDBInstance on database t-/);
      expect((err as { hint?: string }).hint).toMatch(/Add "rds:CreateDBInstance" to the IAM policy/);
    } finally {
      await proxy.close();
    }
  });

  it("stops before creating anything when the static IP does not exist yet", async () => {
    const file = await fileFor();
    file.target!.lightsail!.staticIpName = "not-allocated";
    const step = createRdsInstanceStep(
      depsFor(file, data.dir, { ...baseEnv, RDS_MASTER_PASSWORD: "x".repeat(12) }),
    );
    await expect(step.run(step.parse({}), stepContext())).rejects.toThrow(
      /run the lightsail.instance step first/,
    );
  });
});
