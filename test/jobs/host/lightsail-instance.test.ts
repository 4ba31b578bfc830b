import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { MigrationFile } from "../../../src/config/schema.js";
import { ErrorCode, isCutoverError, NOT_RETRYABLE } from "../../../src/errors.js";
import { readProvisioned } from "../../../src/jobs/provisioned.js";
import { createLightsailInstanceStep } from "../../../src/jobs/steps/host/lightsail-instance.js";
import { FakeLightsail } from "../../../src/sandbox/FakeLightsail.js";
import {
  clientKey,
  depsFor,
  fileWith,
  LIGHTSAIL_EMPTY_ACCOUNT_PLAN,
  stepContext,
  tempDir,
} from "./fixtures.js";

describe("lightsail.instance against the Lightsail fake", () => {
  let fake: FakeLightsail;
  let data: { dir: string; remove: () => Promise<void> };
  let file: MigrationFile;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    file = await fileWith(() => undefined);
  });
  beforeEach(async () => {
    fake = new FakeLightsail({ pendingMs: 60 });
    await fake.start();
    data = await tempDir();
    const key = await clientKey(data.dir, "id_rsa", "rsa");
    env = {
      AWS_ENDPOINT_URL_LIGHTSAIL: fake.url,
      AWS_ACCESS_KEY_ID: "AKIDFAKE",
      AWS_SECRET_ACCESS_KEY: "fake",
      AWS_MAX_ATTEMPTS: "1",
      LIGHTSAIL_SSH_KEY_PATH: key.path,
    };
  });
  afterEach(async () => {
    await fake.stop();
    await data.remove();
  });
  afterAll(() => undefined);

  const step = (f = file) => createLightsailInstanceStep(depsFor(f, data.dir, env));
  const input = (raw: Record<string, unknown> = {}) => step().parse({ pollMs: 20, ...raw });

  it("plans the whole set on an empty account, from the file's values", async () => {
    const plan = await step().plan(input(), stepContext({ run: { dryRun: true } }));
    expect(plan.changes.map((c) => `${c.action} ${c.target}`)).toEqual(LIGHTSAIL_EMPTY_ACCOUNT_PLAN);
    expect(plan.changes[1]!.detail).toMatch(
      /ubuntu_22_04, medium_3_0 \(2 vCPU, 4 GB RAM, 80 GB disk, 4 TB transfer/,
    );
    expect(plan.changes[1]!.detail).toMatch(/ap-southeast-1a/);
    expect(fake.operations().filter((o) => !o.startsWith("Get"))).toEqual([]);
  });

  it("creates the instance, waits for it, attaches a static IP and opens only 22/80/443; a rerun is a no-op", async () => {
    const ctx = stepContext();
    const out = await step().run(input(), ctx);
    expect(out.summary).toMatch(/imported key pair gogojap-key; created instance gogojap-api \(medium_3_0\)/);
    const inst = fake.instances.get("gogojap-api")!;
    expect(inst).toMatchObject({
      bundleId: "medium_3_0",
      blueprintId: "ubuntu_22_04",
      availabilityZone: "ap-southeast-1a",
      keyPairName: "gogojap-key",
    });
    expect(inst.tags).toMatchObject({ project: "gogojap", "cutover:managed": "true" });
    expect(inst.ports.map((p) => `${p.fromPort}/${p.protocol} ${p.cidrs.join(",")}`).sort()).toEqual([
      "22/tcp 0.0.0.0/0",
      "443/tcp 0.0.0.0/0",
      "80/tcp 0.0.0.0/0",
    ]);
    const ip = fake.staticIps.get("gogojap-ip")!;
    expect(ip.attachedTo).toBe("gogojap-api");
    expect(out.figures).toMatchObject({ staticIp: ip.ipAddress, bundleId: "medium_3_0", ports: "22,80,443" });
    // the wait said what it waited for
    expect(
      ctx.reports.some((p) =>
        /waiting for instance gogojap-api to be running \(now pending\)/.test(p.message ?? ""),
      ),
    ).toBe(true);
    // recorded for the RDS security group and the SSH steps
    expect((await readProvisioned(data.dir, "production"))["target.lightsail.staticIp"]).toBe(ip.ipAddress);
    expect((await step().verify(input(), ctx)).ok).toBe(true);

    const before = fake.operations().length;
    const again = await step().run(input(), stepContext());
    expect(again.summary).toMatch(/^gogojap-api already as configured/);
    const mutating = fake
      .operations()
      .slice(before)
      .filter((o) => !o.startsWith("Get"));
    expect(mutating).toEqual([]);
    const plan = await step().plan(input(), stepContext());
    expect(plan.summary).toBe("gogojap-api: already as configured");
  });

  it("shows firewall drift in the plan and closes what the file does not list", async () => {
    await step().run(input(), stepContext());
    fake.instances.get("gogojap-api")!.ports.push({
      fromPort: 8080,
      toPort: 8080,
      protocol: "tcp",
      cidrs: ["0.0.0.0/0"],
      ipv6Cidrs: [],
    });
    const plan = await step().plan(input(), stepContext());
    const fw = plan.changes.find((c) => c.target.startsWith("firewall"))!;
    expect(fw.action).toBe("update");
    expect(fw.detail).toMatch(/close 8080\/tcp from 0.0.0.0\/0/);
    expect((await step().verify(input(), stepContext())).summary).toMatch(/firewall differs: close 8080/);
    await step().run(input(), stepContext());
    expect(
      fake.instances
        .get("gogojap-api")!
        .ports.map((p) => p.fromPort)
        .sort(),
    ).toEqual([22, 443, 80]);
  });

  it("limits SSH to the given CIDRs", async () => {
    const f = await fileWith((x) => {
      x.target!.lightsail!.firewall[0]!.cidrs = ["203.0.113.7/32"];
    });
    await step(f).run(input(), stepContext());
    const ssh = fake.instances.get("gogojap-api")!.ports.find((p) => p.fromPort === 22)!;
    expect(ssh.cidrs).toEqual(["203.0.113.7/32"]);
    expect(ssh.ipv6Cidrs).toEqual([]);
  });

  it("stops when the name is taken by an instance of another bundle, and says so in plan and run", async () => {
    fake.seedInstance({ name: "gogojap-api", bundleId: "small_3_0" });
    const plan = await step().plan(input(), stepContext());
    expect(plan.summary).toMatch(
      /^cannot proceed: A Lightsail instance named gogojap-api already exists and its bundle is small_3_0 \(2 vCPU, 2 GB RAM/,
    );
    const err = await step()
      .run(input(), stepContext())
      .catch((e: unknown) => e);
    expect(isCutoverError(err, ErrorCode.ResourceConflict)).toBe(true);
    expect((err as Error).message).toMatch(/small_3_0.*not medium_3_0/);
    expect(fake.operations()).not.toContain("CreateInstances");
    expect(fake.operations()).not.toContain("PutInstancePublicPorts");
  });

  it("never picks an IPv6-only bundle, though cheaper, and refuses one pinned in the file", async () => {
    const plan = await step().plan(input(), stepContext({ run: { dryRun: true } }));
    expect(plan.changes[1]!.detail).toContain("medium_3_0 (");
    expect(plan.changes[1]!.detail).not.toContain("ipv6");
    const pinned = await fileWith((f) => {
      f.target!.lightsail!.bundle.id = "medium_ipv6_3_0";
    });
    const err = await step(pinned)
      .plan(input(), stepContext({ run: { dryRun: true } }))
      .catch((e: unknown) => e);
    expect(isCutoverError(err, ErrorCode.ConfigInvalid)).toBe(true);
    expect((err as Error).message).toContain("IPv6-only bundle");
    expect((err as Error).message).toContain("use `medium_3_0` instead");
    expect(fake.instances.size).toBe(0);
  });

  it("refuses an ed25519 key file in the plan and the run (Lightsail imports ssh-rsa only), creating nothing", async () => {
    const ed = await clientKey(data.dir, "id_ed25519");
    const s = createLightsailInstanceStep(
      depsFor(file, data.dir, { ...env, LIGHTSAIL_SSH_KEY_PATH: ed.path }),
    );
    for (const attempt of [
      () => s.plan(s.parse({ pollMs: 20 }), stepContext({ run: { dryRun: true } })),
      () => s.run(s.parse({ pollMs: 20 }), stepContext()),
    ]) {
      const err = await attempt().catch((e: unknown) => e);
      expect(isCutoverError(err, ErrorCode.ConfigInvalid)).toBe(true);
      expect((err as Error).message).toBe(
        `The SSH key at ${ed.path} is ssh-ed25519, and Lightsail imports ssh-rsa public keys only.`,
      );
      expect((err as { hint?: string }).hint).toContain("ssh-keygen -t rsa -b 4096");
    }
    expect(fake.operations().filter((o) => !o.startsWith("Get"))).toEqual([]);
    // and the RSA key of the other tests imports
    await step().run(input(), stepContext());
    expect(fake.keyPairs.get("gogojap-key")?.publicKey).toMatch(/^ssh-rsa /);
  });

  it("says what to do when a new account may not use the plan size, and creates nothing", async () => {
    await fake.stop();
    fake = new FakeLightsail({ pendingMs: 60, maxPlanPrice: 12 });
    await fake.start();
    const e2 = { ...env, AWS_ENDPOINT_URL_LIGHTSAIL: fake.url };
    const s = createLightsailInstanceStep(depsFor(file, data.dir, e2));
    const err = await s.run(s.parse({ pollMs: 20 }), stepContext()).catch((e: unknown) => e);
    expect(isCutoverError(err, ErrorCode.ConfigInvalid)).toBe(true);
    expect((err as Error).message).toContain("this account may not yet use that plan size");
    expect((err as { hint?: string }).hint).toContain("Ask AWS Support");
    expect(fake.instances.size).toBe(0);
  });

  it("waits on Lightsail's asynchronous operations before reading their effect", async () => {
    await fake.stop();
    // static IP and firewall operations answer `Started` and take effect 300 ms later
    fake = new FakeLightsail({ pendingMs: 60, operationMs: 300 });
    await fake.start();
    const s = createLightsailInstanceStep(
      depsFor(file, data.dir, { ...env, AWS_ENDPOINT_URL_LIGHTSAIL: fake.url }),
    );
    const out = await s.run(s.parse({ pollMs: 20 }), stepContext());
    const ip = fake.staticIps.get("gogojap-ip")!;
    expect(ip.attachedTo).toBe("gogojap-api");
    expect(out.figures).toMatchObject({ staticIp: ip.ipAddress, ports: "22,80,443" });
    expect(fake.operations()).toContain("GetOperation");
    await expect(s.verify!(s.parse({}), stepContext())).resolves.toMatchObject({ ok: true });
  }, 20_000);

  it("names a new account's or region's setup (HTTP 428) as passing by itself, so the runner retries", async () => {
    fake.setupInProgress("region");
    const err = await step()
      .plan(input(), stepContext({ run: { dryRun: true } }))
      .catch((e: unknown) => e);
    expect(isCutoverError(err, ErrorCode.StepFailed)).toBe(true);
    expect(NOT_RETRYABLE.has((err as { code: ErrorCode }).code)).toBe(false);
    expect((err as Error).message).toMatch(
      /Lightsail is still setting up region ap-southeast-1 \(RegionSetupInProgress, HTTP 428\)/,
    );
    fake.setupDone();
    await expect(step().plan(input(), stepContext({ run: { dryRun: true } }))).resolves.toBeDefined();
  });

  it("names the missing IAM action when the credentials may not create instances", async () => {
    fake.deny("CreateInstances");
    const err = await step()
      .run(input(), stepContext())
      .catch((e: unknown) => e);
    expect(isCutoverError(err, ErrorCode.AwsPermissionDenied)).toBe(true);
    expect((err as Error).message).toMatch(/AWS refused lightsail:CreateInstances on instance gogojap-api/);
  });

  it("gives up waiting after the bounded wait and says what it waited for", async () => {
    fake.pendingMs = 60_000;
    const err = await step()
      .run(input({ waitSeconds: 1, pollMs: 100 }), stepContext())
      .catch((e: unknown) => e);
    expect(isCutoverError(err, ErrorCode.TimedOut)).toBe(true);
    expect((err as Error).message).toMatch(
      /Gave up waiting for instance gogojap-api to be running after 1 s \(last state: pending\)/,
    );
    // a rerun after the instance came up continues without creating a second one
    fake.pendingMs = 0;
    await step().run(input(), stepContext());
    expect(fake.operations().filter((o) => o === "CreateInstances")).toHaveLength(1);
  });

  it("lets Lightsail create the key pair when there is no key file, saving the private key 0600", async () => {
    const envNoFile = { ...env, LIGHTSAIL_SSH_KEY_PATH: join(data.dir, "new-key.pem") };
    const s = createLightsailInstanceStep(depsFor(file, data.dir, envNoFile));
    const out = await s.run(s.parse({ pollMs: 20 }), stepContext());
    expect(out.summary).toMatch(/created key pair gogojap-key/);
    expect(await readFile(join(data.dir, "new-key.pem"), "utf8")).toMatch(/PRIVATE KEY/);
    expect((await stat(join(data.dir, "new-key.pem"))).mode & 0o777).toBe(0o600);
  });

  it("undo deletes only what the step created", async () => {
    const ctx = stepContext();
    await step().run(input(), ctx);
    await step().undo!(input(), ctx);
    expect(fake.instances.has("gogojap-api")).toBe(false);
    expect(fake.staticIps.has("gogojap-ip")).toBe(false);

    fake.seedInstance({ name: "gogojap-api", bundleId: "medium_3_0", keyPairName: "gogojap-key" });
    const adopt = stepContext();
    await step().run(input(), adopt);
    await step().undo!(input(), adopt);
    // not created here: it stays, with the firewall as it was found
    expect(fake.instances.get("gogojap-api")!.ports.map((p) => p.fromPort)).toEqual([22, 80]);
  });
});
