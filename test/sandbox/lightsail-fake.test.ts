import {
  CreateInstancesCommand,
  GetInstanceCommand,
  LightsailClient,
  NotFoundException,
} from "@aws-sdk/client-lightsail";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLightsail, type LightsailApi } from "../../src/cloud/lightsail.js";
import { ErrorCode, isCutoverError } from "../../src/errors.js";
import { FakeLightsail } from "../../src/sandbox/FakeLightsail.js";
import { generateRsa } from "../../src/sandbox/ssh-keys.js";

const credentials = { accessKeyId: "AKIDFAKE", secretAccessKey: "fake-secret" };

describe("FakeLightsail through the real @aws-sdk/client-lightsail", () => {
  let fake: FakeLightsail;
  let api: LightsailApi;
  let client: LightsailClient;

  beforeAll(async () => {
    // long enough that create + get fit inside it on a loaded machine
    fake = new FakeLightsail({ pendingMs: 2_000 });
    await fake.start();
    api = createLightsail({ region: "ap-southeast-1", endpoint: fake.url, credentials, maxAttempts: 1 });
    client = new LightsailClient({
      region: "ap-southeast-1",
      endpoint: fake.url,
      credentials,
      maxAttempts: 1,
    });
  });
  afterAll(async () => {
    client.destroy();
    await fake.stop();
  });

  it("speaks JSON 1.1: the SDK sends X-Amz-Target and reads typed errors", async () => {
    const err = await client.send(new GetInstanceCommand({ instanceName: "nope" })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundException);
    expect((err as Error).message).toMatch(/does not exist: nope/);
    expect(fake.calls.at(-1)).toEqual({ op: "GetInstance", input: { instanceName: "nope" } });
  });

  it("creates an instance that is pending, then running, with Lightsail's default ports", async () => {
    await api.importKeyPair("k1", generateRsa(2048).public);
    await api.createInstance({
      name: "web-1",
      availabilityZone: "ap-southeast-1a",
      blueprintId: "ubuntu_22_04",
      bundleId: "medium_3_0",
      keyPairName: "k1",
      tags: { project: "p" },
    });
    const first = await api.getInstance("web-1");
    expect(first).toMatchObject({
      state: "pending",
      bundleId: "medium_3_0",
      keyPairName: "k1",
      tags: { project: "p" },
    });
    await expect
      .poll(async () => (await api.getInstance("web-1"))?.state, { timeout: 10_000 })
      .toBe("running");
    expect((await api.getPortStates("web-1")).map((p) => p.fromPort)).toEqual([22, 80]);
  });

  it("allocates and attaches a static IP, which becomes the instance's public address", async () => {
    await api.allocateStaticIp("ip-1");
    const ip = await api.getStaticIp("ip-1");
    expect(ip?.attachedTo).toBeUndefined();
    await api.attachStaticIp("ip-1", "web-1");
    const inst = await api.getInstance("web-1");
    expect(inst).toMatchObject({ isStaticIp: true, publicIp: ip!.ipAddress });
    expect((await api.getStaticIp("ip-1"))?.attachedTo).toBe("web-1");
    expect(await api.getStaticIp("missing")).toBeUndefined();
  });

  it("replaces the public ports", async () => {
    await api.putPublicPorts("web-1", [
      { fromPort: 443, toPort: 443, protocol: "tcp", cidrs: ["0.0.0.0/0"], ipv6Cidrs: [] },
      { fromPort: 22, toPort: 22, protocol: "tcp", cidrs: ["203.0.113.7/32"], ipv6Cidrs: [] },
    ]);
    expect(await api.getPortStates("web-1")).toEqual([
      { fromPort: 443, toPort: 443, protocol: "tcp", cidrs: ["0.0.0.0/0"], ipv6Cidrs: [] },
      { fromPort: 22, toPort: 22, protocol: "tcp", cidrs: ["203.0.113.7/32"], ipv6Cidrs: [] },
    ]);
  });

  it("refuses a name already in use", async () => {
    const err = await client
      .send(
        new CreateInstancesCommand({
          instanceNames: ["web-1"],
          availabilityZone: "ap-southeast-1a",
          blueprintId: "ubuntu_22_04",
          bundleId: "small_3_0",
        }),
      )
      .catch((e: unknown) => e as Error);
    expect((err as Error).name).toBe("InvalidInputException");
    expect((err as Error).message).toMatch(/already in use: web-1/);
  });

  it("answers an injected permission failure as AWS does, and the adapter names the IAM action", async () => {
    fake.deny("AllocateStaticIp");
    try {
      const err = await api.allocateStaticIp("ip-2").catch((e: unknown) => e);
      expect(isCutoverError(err, ErrorCode.AwsPermissionDenied)).toBe(true);
      expect((err as Error).message).toMatch(/lightsail:AllocateStaticIp/);
      expect((err as { hint?: string }).hint).toMatch(/Add "lightsail:AllocateStaticIp" to the IAM policy/);
    } finally {
      fake.allow();
    }
  });

  it("releases a static IP and deletes an instance", async () => {
    await api.deleteInstance("web-1");
    expect(await api.getInstance("web-1")).toBeUndefined();
    expect((await api.getStaticIp("ip-1"))?.attachedTo).toBeUndefined();
    await api.releaseStaticIp("ip-1");
    expect(await api.getStaticIp("ip-1")).toBeUndefined();
  });

  it("lists the 3.0 Linux bundles and the blueprints", async () => {
    const bundles = await api.listBundles();
    expect(bundles.find((b) => b.bundleId === "medium_3_0")).toMatchObject({
      cpuCount: 2,
      ramSizeInGb: 4,
      diskSizeInGb: 80,
    });
    expect((await api.listBlueprints()).map((b) => b.blueprintId)).toContain("ubuntu_22_04");
    // GetBundles lists the IPv6-only twins too: same specs, cheaper, no public IPv4 address
    const dual = bundles.find((b) => b.bundleId === "medium_3_0")!;
    const v6 = bundles.find((b) => b.bundleId === "medium_ipv6_3_0")!;
    expect(v6).toMatchObject({ cpuCount: 2, ramSizeInGb: 4, diskSizeInGb: 80, publicIpv4AddressCount: 0 });
    expect(dual.publicIpv4AddressCount).toBe(1);
    expect(dual.price - v6.price).toBe(4);
  });

  it("refuses what Lightsail refuses: a non-RSA key to import, a name off its pattern, any call during setup (428)", async () => {
    const ed = await api
      .importKeyPair(
        "k2",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBc7oBWw2pBxZXNvRtRqFrFkq6bSRXmBFp4ZOkAPbWBx test",
      )
      .catch((e: unknown) => e);
    expect((ed as Error).message).toMatch(/InvalidInputException: .*ssh-rsa keys only, not ssh-ed25519/);
    for (const bad of ["api.example", "a", "web-"]) {
      const err = await api.allocateStaticIp(bad).catch((e: unknown) => e);
      expect((err as Error).message).toContain(
        "Member must satisfy regular expression pattern: \\w[\\w\\-]*\\w",
      );
    }
    fake.setupInProgress("account");
    const setup = await client
      .send(new GetInstanceCommand({ instanceName: "web-1" }))
      .catch((e: unknown) => e);
    expect(setup).toMatchObject({
      name: "AccountSetupInProgressException",
      $metadata: { httpStatusCode: 428 },
    });
    fake.setupDone();
  });

  it("creates a key pair and hands back its private key once", async () => {
    const { privateKey } = await api.createKeyPair("made-here");
    expect(privateKey).toMatch(/-----BEGIN RSA PRIVATE KEY-----/);
    expect(await api.getKeyPair("made-here")).toMatchObject({ name: "made-here" });
  });
});
