import { createHash, generateKeyPairSync, randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { CallRecord, FakeHttpServer, FaultPlan } from "./fake-harness.js";

/**
 * A stand-in for Amazon Lightsail speaking its real wire protocol (AWS JSON 1.1:
 * `POST /` with `X-Amz-Target: Lightsail_20161128.<Operation>`, errors as `x-amzn-errortype`
 * plus `{ "__type", "message" }`), so the real `@aws-sdk/client-lightsail` client is pointed at it
 * by endpoint alone. Used by the tests and by `npm run rehearse`.
 *
 * It keeps instances, static IPs, key pairs and port rules in memory; an instance is `pending`
 * for `pendingMs` after creation, then `running`. Like Lightsail it lists the IPv6-only bundles
 * beside the dual-stack ones, imports ssh-rsa keys only, checks names against `\w[\w\-]*\w`,
 * can hold a new account to small plans (`maxPlanPrice`), answers 428 while an account or
 * region is set up, and runs static IP and firewall changes as asynchronous operations
 * (`operationMs`). Permission failures are injectable per
 * operation ({@link FakeLightsail.deny}) and answer the way AWS does (AccessDeniedException naming
 * the action).
 *
 * @example
 * const fake = new FakeLightsail({ pendingMs: 200 });
 * await fake.start();
 * const api = createLightsail({ region: "ap-southeast-1", endpoint: fake.url, credentials });
 */
export interface FakeLightsailOptions {
  region?: string;
  accountId?: string;
  /** how long a new instance stays pending */
  pendingMs?: number;
  /** addresses handed out to static IPs, in order (defaults from 198.51.100.0/24, a documentation range) */
  staticIpPool?: string[];
  /** addresses handed out as an instance's dynamic public IP (defaults from 203.0.113.0/24) */
  publicIpPool?: string[];
  /**
   * A new account's plan size cap: CreateInstances refuses a bundle dearer than this a month with
   * InvalidInputException "Sorry, your account can not create an instance using this Lightsail
   * plan size…", while GetBundles still lists it. Default: no cap.
   */
  maxPlanPrice?: number;
  /**
   * How long the asynchronous operations take: AllocateStaticIp, AttachStaticIp, DetachStaticIp
   * and PutInstancePublicPorts answer an operation with status `Started` ("Lightsail
   * operations are asynchronous": the answer is an Operation to poll with GetOperation), and
   * their effect shows only when it has `Succeeded`. Default 0: done at once.
   */
  operationMs?: number;
}

/**
 * The Lightsail resource name pattern, `\w[\w\-]*\w` (ResourceName in the Lightsail API
 * reference); a name that breaks it is refused with InvalidInputException.
 */
const RESOURCE_NAME = /^\w[\w-]*\w$/;

export interface FakePortRule {
  fromPort: number;
  toPort: number;
  protocol: string;
  cidrs: string[];
  ipv6Cidrs: string[];
}

export interface FakeInstance {
  name: string;
  bundleId: string;
  blueprintId: string;
  availabilityZone: string;
  keyPairName: string;
  tags: Record<string, string>;
  createdAt: number;
  privateIp: string;
  dynamicIp: string;
  staticIpName?: string;
  ports: FakePortRule[];
  /** `stopped` etc. when a test sets it; otherwise pending → running by time */
  forcedState?: string;
}

export interface FakeBundle {
  bundleId: string;
  name: string;
  cpuCount: number;
  ramSizeInGb: number;
  diskSizeInGb: number;
  transferPerMonthInGb: number;
  price: number;
  /**
   * "The public ipv4 address count included in the bundle, the value is either 0 or 1"
   * (`Bundle.publicIpv4AddressCount` in @aws-sdk/client-lightsail's model). 0 for the IPv6-only
   * bundles (`*_ipv6_3_0`), which GetBundles lists beside the dual-stack ones.
   */
  publicIpv4AddressCount: number;
}

const DUAL_STACK: ReadonlyArray<Omit<FakeBundle, "publicIpv4AddressCount">> = [
  {
    bundleId: "nano_3_0",
    name: "Nano",
    cpuCount: 2,
    ramSizeInGb: 0.5,
    diskSizeInGb: 20,
    transferPerMonthInGb: 1024,
    price: 5,
  },
  {
    bundleId: "micro_3_0",
    name: "Micro",
    cpuCount: 2,
    ramSizeInGb: 1,
    diskSizeInGb: 40,
    transferPerMonthInGb: 2048,
    price: 7,
  },
  {
    bundleId: "small_3_0",
    name: "Small",
    cpuCount: 2,
    ramSizeInGb: 2,
    diskSizeInGb: 60,
    transferPerMonthInGb: 3072,
    price: 12,
  },
  {
    bundleId: "medium_3_0",
    name: "Medium",
    cpuCount: 2,
    ramSizeInGb: 4,
    diskSizeInGb: 80,
    transferPerMonthInGb: 4096,
    price: 24,
  },
  {
    bundleId: "large_3_0",
    name: "Large",
    cpuCount: 2,
    ramSizeInGb: 8,
    diskSizeInGb: 160,
    transferPerMonthInGb: 5120,
    price: 44,
  },
  {
    bundleId: "xlarge_3_0",
    name: "XLarge",
    cpuCount: 4,
    ramSizeInGb: 16,
    diskSizeInGb: 320,
    transferPerMonthInGb: 6144,
    price: 84,
  },
  {
    bundleId: "2xlarge_3_0",
    name: "2XLarge",
    cpuCount: 8,
    ramSizeInGb: 32,
    diskSizeInGb: 640,
    transferPerMonthInGb: 7168,
    price: 164,
  },
];

/** What an IPv6-only bundle costs a month less than its dual-stack twin (AWS's price list: $1.50 to $4). */
const IPV6_DISCOUNT: Record<string, number> = {
  nano: 1.5,
  micro: 2,
  small: 2,
  medium: 4,
  large: 4,
  xlarge: 4,
  "2xlarge": 4,
};

/**
 * Linux bundles of Lightsail's 3.0 generation (the numbers AWS lists): each dual-stack bundle and
 * its IPv6-only twin, same specs and cheaper, which has no public IPv4 address at all.
 */
export const FAKE_BUNDLES: readonly FakeBundle[] = DUAL_STACK.flatMap((b) => {
  const size = b.bundleId.replace(/_3_0$/, "");
  return [
    { ...b, publicIpv4AddressCount: 1 },
    {
      ...b,
      bundleId: `${size}_ipv6_3_0`,
      name: `${b.name} IPv6`,
      price: b.price - (IPV6_DISCOUNT[size] ?? 1.5),
      publicIpv4AddressCount: 0,
    },
  ];
});

const BLUEPRINTS = [
  { blueprintId: "ubuntu_22_04", name: "Ubuntu", version: "22.04 LTS", group: "ubuntu_22" },
  { blueprintId: "ubuntu_24_04", name: "Ubuntu", version: "24.04 LTS", group: "ubuntu_24" },
  { blueprintId: "debian_12", name: "Debian", version: "12.8", group: "debian_12" },
  {
    blueprintId: "amazon_linux_2023",
    name: "Amazon Linux 2023",
    version: "2023.6",
    group: "amazon_linux_2023",
  },
];

class ApiError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
    readonly code?: string,
  ) {
    super(message);
  }
}

type Handler = (input: Record<string, unknown>) => unknown;

export class FakeLightsail {
  readonly region: string;
  readonly accountId: string;
  pendingMs: number;
  readonly instances = new Map<string, FakeInstance>();
  readonly staticIps = new Map<
    string,
    { name: string; ipAddress: string; attachedTo?: string; createdAt: number }
  >();
  readonly keyPairs = new Map<
    string,
    { name: string; fingerprint: string; publicKey: string; createdAt: number }
  >();
  private readonly record = new CallRecord<{ op: string; input: Record<string, unknown> }>("FakeLightsail");
  /** operations refused with AccessDeniedException, tagged by operation */
  private readonly denied = new FaultPlan<string, "AccessDenied">();
  private readonly maxPlanPrice: number | undefined;
  operationMs: number;
  /** every operation handed out: GetOperation reads it */
  private readonly ops = new Map<string, ReturnType<FakeLightsail["operation"]> & { doneAt: number }>();
  /** while set, every call answers 428 with this (a new account's or opt-in region's setup) */
  private setup: "AccountSetupInProgressException" | "RegionSetupInProgressException" | undefined;
  private readonly staticPool: string[];
  private readonly publicPool: string[];
  private nextStatic = 0;
  private nextPublic = 0;
  private readonly server = new FakeHttpServer(
    "FakeLightsail",
    (req, res) => this.handle(req, res),
    (res, err) => {
      res.writeHead(500, { "content-type": "application/x-amz-json-1.1" });
      res.end(JSON.stringify({ __type: "ServiceException", message: String(err) }));
    },
  );
  private readonly handlers: Record<string, Handler>;

  constructor(opts: FakeLightsailOptions = {}) {
    this.region = opts.region ?? "ap-southeast-1";
    this.accountId = opts.accountId ?? "123456789012";
    this.pendingMs = opts.pendingMs ?? 0;
    this.maxPlanPrice = opts.maxPlanPrice;
    this.operationMs = opts.operationMs ?? 0;
    this.staticPool = opts.staticIpPool ?? Array.from({ length: 200 }, (_, i) => `198.51.100.${i + 10}`);
    this.publicPool = opts.publicIpPool ?? Array.from({ length: 200 }, (_, i) => `203.0.113.${i + 10}`);
    this.handlers = {
      GetInstance: (i) => ({ instance: this.instanceView(this.mustInstance(str(i, "instanceName"))) }),
      GetInstances: () => ({ instances: [...this.instances.values()].map((x) => this.instanceView(x)) }),
      CreateInstances: (i) => this.createInstances(i),
      DeleteInstance: (i) => this.deleteInstance(str(i, "instanceName")),
      GetBundles: () => ({
        bundles: FAKE_BUNDLES.map((b) => ({
          ...b,
          instanceType: b.bundleId.split("_")[0],
          isActive: true,
          power: 0,
          supportedPlatforms: ["LINUX_UNIX"],
        })),
      }),
      GetBlueprints: () => ({
        blueprints: BLUEPRINTS.map((b) => ({ ...b, type: "os", isActive: true, platform: "LINUX_UNIX" })),
      }),
      GetKeyPair: (i) => ({ keyPair: this.keyPairView(this.mustKeyPair(str(i, "keyPairName"))) }),
      GetKeyPairs: () => ({ keyPairs: [...this.keyPairs.values()].map((k) => this.keyPairView(k)) }),
      ImportKeyPair: (i) => this.importKeyPair(str(i, "keyPairName"), str(i, "publicKeyBase64")),
      CreateKeyPair: (i) => this.createKeyPair(str(i, "keyPairName")),
      DeleteKeyPair: (i) => {
        const name = str(i, "keyPairName");
        this.mustKeyPair(name);
        this.keyPairs.delete(name);
        return { operation: this.operation(name, "KeyPair", "DeleteKeyPair") };
      },
      AllocateStaticIp: (i) => this.allocateStaticIp(str(i, "staticIpName")),
      AttachStaticIp: (i) => this.attachStaticIp(str(i, "staticIpName"), str(i, "instanceName")),
      DetachStaticIp: (i) => this.detachStaticIp(str(i, "staticIpName")),
      ReleaseStaticIp: (i) => this.releaseStaticIp(str(i, "staticIpName")),
      GetStaticIp: (i) => ({ staticIp: this.staticIpView(this.mustStaticIp(str(i, "staticIpName"))) }),
      GetStaticIps: () => ({ staticIps: [...this.staticIps.values()].map((s) => this.staticIpView(s)) }),
      GetInstancePortStates: (i) => ({
        portStates: this.mustInstance(str(i, "instanceName")).ports.map((p) => ({
          ...p,
          state: "open",
          cidrListAliases: [],
        })),
      }),
      PutInstancePublicPorts: (i) => this.putPorts(str(i, "instanceName"), i.portInfos),
      GetOperation: (i) => {
        const id = str(i, "operationId");
        const op = this.ops.get(id);
        if (!op)
          throw new ApiError("NotFoundException", `The Operation does not exist: ${id}`, 400, "DoesNotExist");
        const { doneAt, ...rest } = op;
        const done = Date.now() >= doneAt;
        return { operation: { ...rest, status: done ? "Succeeded" : "Started", isTerminal: done } };
      },
    };
  }

  /** every request received, in order: the operation and its input */
  get calls(): Array<{ op: string; input: Record<string, unknown> }> {
    return this.record.all;
  }

  /** The base URL to give the SDK as `endpoint`. */
  get url(): string {
    return this.server.origin;
  }

  async start(port = 0): Promise<string> {
    await this.server.start(port);
    return this.url;
  }

  async stop(): Promise<void> {
    await this.server.stop();
  }

  /** From now on, `op` (e.g. "CreateInstances") answers AccessDeniedException. */
  deny(op: string): void {
    if (!this.denied.has(op)) this.denied.add((o) => o === op, "AccessDenied", { times: Infinity, tag: op });
  }

  /**
   * Until {@link setupDone}, every call answers HTTP 428 AccountSetupInProgressException ("the
   * account is still in the setup in progress state") or RegionSetupInProgressException (an
   * opt-in Region being set up), as on a brand-new account or region.
   */
  setupInProgress(kind: "account" | "region"): void {
    this.setup = kind === "account" ? "AccountSetupInProgressException" : "RegionSetupInProgressException";
  }

  setupDone(): void {
    this.setup = undefined;
  }

  allow(op?: string): void {
    this.denied.clear(op);
  }

  /** Puts an instance in place as if someone had created it outside Cutover. */
  seedInstance(spec: Partial<FakeInstance> & { name: string; bundleId: string }): FakeInstance {
    const inst: FakeInstance = {
      blueprintId: "ubuntu_22_04",
      availabilityZone: `${this.region}a`,
      keyPairName: "LightsailDefaultKeyPair",
      tags: {},
      createdAt: Date.now() - 3_600_000,
      privateIp: `172.26.0.${this.instances.size + 10}`,
      dynamicIp: this.takePublicIp(),
      ports: defaultPorts(),
      ...spec,
    };
    this.instances.set(inst.name, inst);
    return inst;
  }

  /** The operations called so far, by name, in order. */
  operations(): string[] {
    return this.calls.map((c) => c.op);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, {
        "content-type": "application/x-amz-json-1.1",
        "x-amzn-requestid": randomUUID(),
        ...headers,
      });
      res.end(JSON.stringify(body));
    };
    const target = String(req.headers["x-amz-target"] ?? "");
    const m = /^Lightsail_20161128\.(\w+)$/.exec(target);
    if (req.method !== "POST" || !m) {
      send(
        400,
        { __type: "UnknownOperationException", message: `unknown target ${target}` },
        {
          "x-amzn-errortype": "UnknownOperationException",
        },
      );
      return;
    }
    const op = m[1]!;
    let input: Record<string, unknown>;
    try {
      const text = Buffer.concat(chunks).toString("utf8");
      input = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      send(
        400,
        { __type: "SerializationException", message: "body is not JSON" },
        {
          "x-amzn-errortype": "SerializationException",
        },
      );
      return;
    }
    this.record.push({ op, input });
    try {
      if (!req.headers.authorization?.startsWith("AWS4-HMAC-SHA256")) {
        throw new ApiError("UnauthenticatedException", "Request is missing Authentication Token", 403);
      }
      if (this.setup) {
        throw new ApiError(
          this.setup,
          this.setup === "AccountSetupInProgressException"
            ? "Your account is still being set up. Try again in a few minutes."
            : `The Region ${this.region} is still being set up. Try again in a few minutes.`,
          428,
        );
      }
      if (this.denied.take(op)) {
        throw new ApiError(
          "AccessDeniedException",
          `User: arn:aws:iam::${this.accountId}:user/cutover is not authorized to perform: lightsail:${op} on resource: arn:aws:lightsail:${this.region}:${this.accountId}:*`,
          400,
          "AccessDenied",
        );
      }
      const handler = this.handlers[op];
      if (!handler) throw new ApiError("InvalidInputException", `The fake does not implement ${op}`);
      send(200, handler(input) ?? {});
    } catch (err) {
      if (err instanceof ApiError) {
        send(
          err.status,
          { __type: err.type, message: err.message, ...(err.code ? { code: err.code } : {}) },
          { "x-amzn-errortype": err.type },
        );
        return;
      }
      throw err;
    }
  }

  private takePublicIp(): string {
    return this.publicPool[this.nextPublic++ % this.publicPool.length]!;
  }

  private stateOf(i: FakeInstance): { code: number; name: string } {
    if (i.forcedState) return { code: i.forcedState === "stopped" ? 80 : 64, name: i.forcedState };
    return Date.now() - i.createdAt >= this.pendingMs
      ? { code: 16, name: "running" }
      : { code: 0, name: "pending" };
  }

  private instanceView(i: FakeInstance) {
    const bundle = FAKE_BUNDLES.find((b) => b.bundleId === i.bundleId);
    const staticIp = i.staticIpName ? this.staticIps.get(i.staticIpName) : undefined;
    return {
      name: i.name,
      arn: `arn:aws:lightsail:${this.region}:${this.accountId}:Instance/${createHash("sha1").update(i.name).digest("hex")}`,
      supportCode: `${this.accountId}/i-${createHash("sha1").update(i.name).digest("hex").slice(0, 17)}`,
      createdAt: i.createdAt / 1000,
      location: { availabilityZone: i.availabilityZone, regionName: this.region },
      resourceType: "Instance",
      tags: Object.entries(i.tags).map(([key, value]) => ({ key, value })),
      blueprintId: i.blueprintId,
      blueprintName: BLUEPRINTS.find((b) => b.blueprintId === i.blueprintId)?.name ?? i.blueprintId,
      bundleId: i.bundleId,
      isStaticIp: Boolean(staticIp),
      privateIpAddress: i.privateIp,
      // an IPv6-only bundle's instance has no public IPv4 address
      ...(bundle?.publicIpv4AddressCount === 0
        ? {
            ipAddressType: "ipv6",
            ipv6Addresses: [`2406:da18:abc:${(this.instances.size + 16).toString(16)}::1`],
          }
        : {
            publicIpAddress: staticIp?.ipAddress ?? i.dynamicIp,
            ipAddressType: "dualstack",
            ipv6Addresses: [],
          }),
      hardware: {
        cpuCount: bundle?.cpuCount ?? 1,
        ramSizeInGb: bundle?.ramSizeInGb ?? 1,
        disks: [{ sizeInGb: bundle?.diskSizeInGb ?? 20, isSystemDisk: true, path: "/dev/xvda" }],
      },
      networking: {
        monthlyTransfer: { gbPerMonthAllocated: bundle?.transferPerMonthInGb ?? 0 },
        ports: i.ports.map((p) => ({
          ...p,
          accessType: "Public",
          accessDirection: "inbound",
          accessFrom: "Custom",
        })),
      },
      state: this.stateOf(i),
      username: i.blueprintId.startsWith("ubuntu") ? "ubuntu" : "admin",
      sshKeyName: i.keyPairName,
    };
  }

  private mustInstance(name: string): FakeInstance {
    const i = this.instances.get(name);
    if (!i)
      throw new ApiError("NotFoundException", `The Instance does not exist: ${name}`, 400, "DoesNotExist");
    return i;
  }

  private mustKeyPair(name: string) {
    const k = this.keyPairs.get(name);
    if (!k)
      throw new ApiError("NotFoundException", `The KeyPair does not exist: ${name}`, 400, "DoesNotExist");
    return k;
  }

  private mustStaticIp(name: string) {
    const s = this.staticIps.get(name);
    if (!s)
      throw new ApiError("NotFoundException", `The StaticIp does not exist: ${name}`, 400, "DoesNotExist");
    return s;
  }

  private operation(resourceName: string, resourceType: string, operationType: string) {
    return {
      id: randomUUID(),
      resourceName,
      resourceType,
      createdAt: Date.now() / 1000,
      location: { availabilityZone: "all", regionName: this.region },
      isTerminal: true,
      operationType,
      status: "Succeeded",
    };
  }

  /**
   * Answers an asynchronous operation: its effect is applied when it has run its `operationMs`
   * (checked before the effect's preconditions, which are checked at once, as Lightsail does).
   */
  private async_(resourceName: string, resourceType: string, operationType: string, effect: () => void) {
    const op = this.operation(resourceName, resourceType, operationType);
    const doneAt = Date.now() + this.operationMs;
    this.ops.set(op.id, { ...op, doneAt });
    if (this.operationMs <= 0) {
      effect();
      return op;
    }
    setTimeout(effect, this.operationMs).unref();
    return { ...op, status: "Started", isTerminal: false };
  }

  private createInstances(input: Record<string, unknown>) {
    const names = (input.instanceNames as string[] | undefined) ?? [];
    const bundleId = str(input, "bundleId");
    const blueprintId = str(input, "blueprintId");
    const az = str(input, "availabilityZone");
    const keyPairName = (input.keyPairName as string | undefined) ?? "LightsailDefaultKeyPair";
    if (names.length === 0) throw new ApiError("InvalidInputException", "instanceNames is required");
    for (const n of names) checkName(n, "instanceNames");
    const taken = names.filter((n) => this.instances.has(n));
    if (taken.length > 0)
      throw new ApiError("InvalidInputException", `Some names are already in use: ${taken.join(", ")}`);
    const bundle = FAKE_BUNDLES.find((b) => b.bundleId === bundleId);
    if (!bundle) throw new ApiError("InvalidInputException", `The bundle ID is invalid: ${bundleId}`);
    if (this.maxPlanPrice !== undefined && bundle.price > this.maxPlanPrice)
      throw new ApiError(
        "InvalidInputException",
        "Sorry, your account can not create an instance using this Lightsail plan size. Please try a smaller plan or contact Customer Support if you need to use a larger plan.",
      );
    if (!BLUEPRINTS.some((b) => b.blueprintId === blueprintId))
      throw new ApiError("InvalidInputException", `The blueprint ID is invalid: ${blueprintId}`);
    if (!az.startsWith(this.region))
      throw new ApiError("InvalidInputException", `The availability zone is not in ${this.region}: ${az}`);
    if (keyPairName !== "LightsailDefaultKeyPair") this.mustKeyPair(keyPairName);
    const tags: Record<string, string> = {};
    for (const t of (input.tags as Array<{ key: string; value?: string }> | undefined) ?? [])
      tags[t.key] = t.value ?? "";
    for (const name of names) {
      this.instances.set(name, {
        name,
        bundleId,
        blueprintId,
        availabilityZone: az,
        keyPairName,
        tags,
        createdAt: Date.now(),
        privateIp: `172.26.0.${this.instances.size + 10}`,
        dynamicIp: this.takePublicIp(),
        ports: defaultPorts(),
      });
    }
    return {
      operations: names.map((n) => ({
        ...this.operation(n, "Instance", "CreateInstance"),
        status: "Started",
        isTerminal: false,
      })),
    };
  }

  private deleteInstance(name: string) {
    const inst = this.mustInstance(name);
    if (inst.staticIpName) {
      const ip = this.staticIps.get(inst.staticIpName);
      if (ip) delete ip.attachedTo;
    }
    this.instances.delete(name);
    return { operations: [this.operation(name, "Instance", "DeleteInstance")] };
  }

  private keyPairView(k: { name: string; fingerprint: string; createdAt: number }) {
    return {
      name: k.name,
      arn: `arn:aws:lightsail:${this.region}:${this.accountId}:KeyPair/${k.name}`,
      createdAt: k.createdAt / 1000,
      location: { availabilityZone: "all", regionName: this.region },
      resourceType: "KeyPair",
      fingerprint: k.fingerprint,
    };
  }

  private importKeyPair(name: string, publicKey: string) {
    checkName(name, "keyPairName");
    // ImportKeyPair's publicKeyBase64 is "A base64-encoded public key of the ssh-rsa type"
    // (@aws-sdk/client-lightsail's model, and the Lightsail API reference): other types are
    // refused. The wording of the refusal is the fake's own.
    const type = /^(\S+)\s/.exec(publicKey.trim())?.[1];
    if (type && type !== "ssh-rsa")
      throw new ApiError(
        "InvalidInputException",
        `The public key is not valid: Lightsail imports ssh-rsa keys only, not ${type}`,
      );
    if (this.keyPairs.has(name))
      throw new ApiError("InvalidInputException", `The key pair name is already in use: ${name}`);
    const blob = /^\S+\s+(\S+)/.exec(publicKey.trim())?.[1];
    if (!blob) throw new ApiError("InvalidInputException", "publicKeyBase64 is not an OpenSSH public key");
    this.keyPairs.set(name, { name, publicKey, fingerprint: md5Fingerprint(blob), createdAt: Date.now() });
    return { operation: this.operation(name, "KeyPair", "ImportKeyPair") };
  }

  private createKeyPair(name: string) {
    checkName(name, "keyPairName");
    if (this.keyPairs.has(name))
      throw new ApiError("InvalidInputException", `The key pair name is already in use: ${name}`);
    const { privateKey, publicKey } = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs1", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "der" },
    });
    const fingerprint = md5Fingerprint(publicKey.toString("base64"));
    this.keyPairs.set(name, { name, publicKey: "", fingerprint, createdAt: Date.now() });
    return {
      keyPair: this.keyPairView(this.keyPairs.get(name)!),
      privateKeyBase64: privateKey,
      publicKeyBase64: "",
      operation: this.operation(name, "KeyPair", "CreateKeyPair"),
    };
  }

  private staticIpView(s: { name: string; ipAddress: string; attachedTo?: string; createdAt: number }) {
    return {
      name: s.name,
      arn: `arn:aws:lightsail:${this.region}:${this.accountId}:StaticIp/${s.name}`,
      createdAt: s.createdAt / 1000,
      location: { availabilityZone: "all", regionName: this.region },
      resourceType: "StaticIp",
      ipAddress: s.ipAddress,
      ...(s.attachedTo ? { attachedTo: s.attachedTo } : {}),
      isAttached: Boolean(s.attachedTo),
    };
  }

  private allocateStaticIp(name: string) {
    checkName(name, "staticIpName");
    if (this.staticIps.has(name))
      throw new ApiError("InvalidInputException", `The static IP name is already in use: ${name}`);
    const ipAddress = this.staticPool[this.nextStatic++ % this.staticPool.length]!;
    return {
      operations: [
        this.async_(name, "StaticIp", "AllocateStaticIp", () =>
          this.staticIps.set(name, { name, ipAddress, createdAt: Date.now() }),
        ),
      ],
    };
  }

  private attachStaticIp(name: string, instanceName: string) {
    const ip = this.mustStaticIp(name);
    const inst = this.mustInstance(instanceName);
    if (ip.attachedTo && ip.attachedTo !== instanceName)
      throw new ApiError("InvalidInputException", `The static IP is already attached to ${ip.attachedTo}`);
    if (this.stateOf(inst).name === "pending")
      throw new ApiError("InvalidInputException", `The instance ${instanceName} is not ready yet (pending)`);
    // A static IP is a public IPv4 address: an IPv6-only instance cannot take one. (The
    // refusal is documented; this wording is the fake's own, not AWS's.)
    if (FAKE_BUNDLES.find((b) => b.bundleId === inst.bundleId)?.publicIpv4AddressCount === 0)
      throw new ApiError(
        "InvalidInputException",
        `The instance ${instanceName} uses an IPv6-only bundle (${inst.bundleId}): a static IP cannot be attached to it`,
      );
    return {
      operations: [
        this.async_(name, "StaticIp", "AttachStaticIp", () => {
          if (inst.staticIpName && inst.staticIpName !== name) {
            const old = this.staticIps.get(inst.staticIpName);
            if (old) delete old.attachedTo;
          }
          ip.attachedTo = instanceName;
          inst.staticIpName = name;
        }),
      ],
    };
  }

  private detachStaticIp(name: string) {
    const ip = this.mustStaticIp(name);
    if (ip.attachedTo) {
      const inst = this.instances.get(ip.attachedTo);
      if (inst) {
        delete inst.staticIpName;
        inst.dynamicIp = this.takePublicIp();
      }
      delete ip.attachedTo;
    }
    return { operations: [this.operation(name, "StaticIp", "DetachStaticIp")] };
  }

  private releaseStaticIp(name: string) {
    this.detachStaticIp(name);
    this.staticIps.delete(name);
    return { operations: [this.operation(name, "StaticIp", "ReleaseStaticIp")] };
  }

  private putPorts(instanceName: string, raw: unknown) {
    const inst = this.mustInstance(instanceName);
    if (!Array.isArray(raw)) throw new ApiError("InvalidInputException", "portInfos is required");
    const ports = raw.map((p: Record<string, unknown>) => {
      const fromPort = Number(p.fromPort);
      const toPort = Number(p.toPort ?? p.fromPort);
      if (!Number.isInteger(fromPort) || fromPort < 0 || fromPort > 65535 || toPort < fromPort)
        throw new ApiError(
          "InvalidInputException",
          `The port range is invalid: ${String(p.fromPort)}-${String(p.toPort)}`,
        );
      return {
        fromPort,
        toPort,
        protocol: String(p.protocol ?? "tcp"),
        cidrs: (p.cidrs as string[] | undefined) ?? ["0.0.0.0/0"],
        ipv6Cidrs: (p.ipv6Cidrs as string[] | undefined) ?? ["::/0"],
      };
    });
    return {
      operation: this.async_(instanceName, "Instance", "PutInstancePublicPorts", () => {
        inst.ports = ports;
      }),
    };
  }
}

/** AWS's usual wording for a pattern violation; Lightsail's exact error type for it is assumed. */
function checkName(name: string, field: string): void {
  if (!RESOURCE_NAME.test(name))
    throw new ApiError(
      "InvalidInputException",
      `1 validation error detected: Value '${name}' at '${field}' failed to satisfy constraint: Member must satisfy regular expression pattern: \\w[\\w\\-]*\\w`,
    );
}

function str(input: Record<string, unknown>, key: string): string {
  const v = input[key];
  if (typeof v !== "string" || v === "") throw new ApiError("InvalidInputException", `${key} is required`);
  return v;
}

/** Lightsail's new instances accept SSH and HTTP from anywhere. */
function defaultPorts(): FakePortRule[] {
  return [
    { fromPort: 22, toPort: 22, protocol: "tcp", cidrs: ["0.0.0.0/0"], ipv6Cidrs: ["::/0"] },
    { fromPort: 80, toPort: 80, protocol: "tcp", cidrs: ["0.0.0.0/0"], ipv6Cidrs: ["::/0"] },
  ];
}

function md5Fingerprint(base64: string): string {
  const hex = createHash("md5").update(Buffer.from(base64, "base64")).digest("hex");
  return hex.match(/../g)!.join(":");
}
