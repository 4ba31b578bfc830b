import { systemClock } from "../../src/clock.js";
import type {
  LightsailApi,
  LightsailInstance,
  LightsailPortRule,
  LightsailStaticIp,
  NewInstance,
} from "../../src/cloud/lightsail.js";
import type { MigrationFile } from "../../src/config/schema.js";
import type { Ports } from "../../src/ports.js";
import { FAKE_BUNDLES } from "../../src/sandbox/FakeLightsail.js";

/**
 * Ports held in memory, for the fast tier: a step runs against them with no server, no socket and
 * no SDK loaded. A port a test does not hand in fails loudly when the step reaches for it, so a
 * test shows exactly which outside services a step touches.
 *
 * @example const lightsail = new MemoryLightsail(); const deps = { ...base, ports: memoryPorts({ lightsail }) };
 */
export function memoryPorts(
  given: Partial<Omit<Ports, "lightsail">> & { lightsail?: LightsailApi } = {},
): Ports {
  const absent = (name: string) => () => {
    throw new Error(`this test gave the step no ${name} port`);
  };
  const { lightsail, ...rest } = given;
  return {
    lightsail: lightsail ? () => lightsail : absent("lightsail"),
    rds: absent("rds"),
    securityGroups: absent("securityGroups"),
    secrets: absent("secrets"),
    bucketAdmin: absent("bucketAdmin"),
    cdn: absent("cdn"),
    costExplorer: absent("costExplorer"),
    s3: { source: absent("s3.source"), target: absent("s3.target") },
    ssh: { connect: absent("ssh.connect"), publicKeyOf: absent("ssh.publicKeyOf") },
    cloudflare: undefined,
    clock: systemClock,
    state: undefined,
    close: () => undefined,
    ...rest,
  };
}

/**
 * Lightsail in memory, with the same catalogue as the HTTP fake (src/sandbox/FakeLightsail.ts): an
 * instance is `pending` for the first `pendingReads` reads after it is created, then `running`;
 * static IPs come from TEST-NET-3. Every call is recorded in `calls`.
 */
export class MemoryLightsail implements LightsailApi {
  readonly region: string;
  readonly calls: string[] = [];
  readonly instances = new Map<string, NewInstance & { reads: number }>();
  readonly keyPairs = new Map<string, { publicKey?: string }>();
  readonly staticIps = new Map<string, LightsailStaticIp>();
  readonly ports = new Map<string, LightsailPortRule[]>();
  private nextIp = 10;

  constructor(opts: { region?: string; pendingReads?: number } = {}) {
    this.region = opts.region ?? "ap-southeast-1";
    this.pendingReads = opts.pendingReads ?? 1;
  }
  private readonly pendingReads: number;

  async getInstance(name: string): Promise<LightsailInstance | undefined> {
    this.calls.push(`GetInstance ${name}`);
    const i = this.instances.get(name);
    if (!i) return undefined;
    i.reads++;
    const ip = [...this.staticIps.values()].find((s) => s.attachedTo === name);
    return {
      name,
      state: i.reads > this.pendingReads ? "running" : "pending",
      bundleId: i.bundleId,
      blueprintId: i.blueprintId,
      availabilityZone: i.availabilityZone,
      ...(ip ? { publicIp: ip.ipAddress } : {}),
      isStaticIp: Boolean(ip),
      keyPairName: i.keyPairName,
      tags: { ...i.tags },
    };
  }
  async createInstance(spec: NewInstance): Promise<void> {
    this.calls.push(`CreateInstances ${spec.name}`);
    if (this.instances.has(spec.name)) throw new Error(`instance ${spec.name} exists`);
    this.instances.set(spec.name, { ...spec, reads: 0 });
    // a new instance opens 22 and 80 to the world, as Lightsail's do
    this.ports.set(
      spec.name,
      [22, 80].map((p) => rule(p)),
    );
  }
  async deleteInstance(name: string): Promise<void> {
    this.calls.push(`DeleteInstance ${name}`);
    this.instances.delete(name);
    this.ports.delete(name);
  }
  async listBundles() {
    this.calls.push("GetBundles");
    return FAKE_BUNDLES.map((b) => ({ ...b, isActive: true, platforms: ["LINUX_UNIX"] }));
  }
  async listBlueprints() {
    this.calls.push("GetBlueprints");
    return ["ubuntu_22_04", "ubuntu_24_04", "debian_12"].map((id) => ({
      blueprintId: id,
      name: id,
      isActive: true,
    }));
  }
  async getKeyPair(name: string) {
    this.calls.push(`GetKeyPair ${name}`);
    return this.keyPairs.has(name) ? { name } : undefined;
  }
  async importKeyPair(name: string, publicKey: string): Promise<void> {
    this.calls.push(`ImportKeyPair ${name}`);
    this.keyPairs.set(name, { publicKey });
  }
  async createKeyPair(name: string): Promise<{ privateKey: string }> {
    this.calls.push(`CreateKeyPair ${name}`);
    this.keyPairs.set(name, {});
    return { privateKey: `-----BEGIN RSA PRIVATE KEY-----\nmemory-${name}\n-----END RSA PRIVATE KEY-----` };
  }
  async getStaticIp(name: string) {
    this.calls.push(`GetStaticIp ${name}`);
    const ip = this.staticIps.get(name);
    return ip ? { ...ip } : undefined;
  }
  async allocateStaticIp(name: string): Promise<void> {
    this.calls.push(`AllocateStaticIp ${name}`);
    this.staticIps.set(name, { name, ipAddress: `203.0.113.${this.nextIp++}` });
  }
  async attachStaticIp(staticIpName: string, instanceName: string): Promise<void> {
    this.calls.push(`AttachStaticIp ${staticIpName} ${instanceName}`);
    const ip = this.staticIps.get(staticIpName);
    if (!ip) throw new Error(`no static IP ${staticIpName}`);
    ip.attachedTo = instanceName;
  }
  async detachStaticIp(staticIpName: string): Promise<void> {
    this.calls.push(`DetachStaticIp ${staticIpName}`);
    const ip = this.staticIps.get(staticIpName);
    if (ip) delete ip.attachedTo;
  }
  async releaseStaticIp(name: string): Promise<void> {
    this.calls.push(`ReleaseStaticIp ${name}`);
    this.staticIps.delete(name);
  }
  async getPortStates(instanceName: string) {
    this.calls.push(`GetInstancePortStates ${instanceName}`);
    return structuredClone(this.ports.get(instanceName) ?? []);
  }
  async putPublicPorts(instanceName: string, rules: LightsailPortRule[]): Promise<void> {
    this.calls.push(`PutInstancePublicPorts ${instanceName}`);
    this.ports.set(instanceName, structuredClone(rules));
  }
}

const rule = (port: number): LightsailPortRule => ({
  fromPort: port,
  toPort: port,
  protocol: "tcp",
  cidrs: ["0.0.0.0/0"],
  ipv6Cidrs: ["::/0"],
});

/** The file's Lightsail region, for a {@link MemoryLightsail} that matches it. */
export const lightsailRegion = (file: MigrationFile) => file.target?.lightsail?.region ?? "ap-southeast-1";
