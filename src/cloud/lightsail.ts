import { CutoverError, ErrorCode } from "../errors.js";
import { type AwsClientOptions, awsCaller, awsErrorName, explainAwsError, sdkConfig } from "./aws-access.js";
import { lazyAwsClient } from "./lazy-sdk.js";

/** An instance as Cutover needs to see it. */
export interface LightsailInstance {
  name: string;
  /** pending, running, stopping, stopped, … */
  state: string;
  bundleId: string;
  blueprintId: string;
  availabilityZone: string;
  publicIp?: string;
  isStaticIp: boolean;
  keyPairName?: string;
  tags: Record<string, string>;
}

export interface LightsailBundle {
  bundleId: string;
  cpuCount: number;
  ramSizeInGb: number;
  diskSizeInGb: number;
  transferPerMonthInGb: number;
  price: number;
  isActive: boolean;
  platforms: string[];
  /** public IPv4 addresses the bundle includes: 0 for an IPv6-only bundle (`*_ipv6_3_0`), else 1 */
  publicIpv4AddressCount: number;
}

export interface LightsailBlueprint {
  blueprintId: string;
  name: string;
  isActive: boolean;
}

export interface LightsailStaticIp {
  name: string;
  ipAddress: string;
  attachedTo?: string;
}

/** One open port range; `cidrs` empty with `ipv6Cidrs` empty means closed to everyone. */
export interface LightsailPortRule {
  fromPort: number;
  toPort: number;
  protocol: string;
  cidrs: string[];
  ipv6Cidrs: string[];
}

export interface NewInstance {
  name: string;
  availabilityZone: string;
  blueprintId: string;
  bundleId: string;
  keyPairName: string;
  tags: Record<string, string>;
}

/**
 * The Lightsail calls the provisioning step makes: a small port over the SDK client so the step
 * reads as the plan and a test can see every call. "Not found" is `undefined`, never an error;
 * any other failure is a CutoverError (a permission failure names the IAM action).
 *
 * @example const ip = await lightsail.getStaticIp("app-ip");
 */
export interface LightsailApi {
  readonly region: string;
  getInstance(name: string): Promise<LightsailInstance | undefined>;
  createInstance(spec: NewInstance): Promise<void>;
  deleteInstance(name: string): Promise<void>;
  listBundles(): Promise<LightsailBundle[]>;
  listBlueprints(): Promise<LightsailBlueprint[]>;
  getKeyPair(name: string): Promise<{ name: string; fingerprint?: string } | undefined>;
  /** imports an OpenSSH public key ("ssh-ed25519 AAAA… comment") */
  importKeyPair(name: string, publicKey: string): Promise<void>;
  /** creates a key pair in Lightsail and returns its private key (PEM); Lightsail never shows it again */
  createKeyPair(name: string): Promise<{ privateKey: string }>;
  getStaticIp(name: string): Promise<LightsailStaticIp | undefined>;
  allocateStaticIp(name: string): Promise<void>;
  attachStaticIp(staticIpName: string, instanceName: string): Promise<void>;
  detachStaticIp(staticIpName: string): Promise<void>;
  releaseStaticIp(name: string): Promise<void>;
  getPortStates(instanceName: string): Promise<LightsailPortRule[]>;
  /** replaces every public port rule of the instance with these */
  putPublicPorts(instanceName: string, rules: LightsailPortRule[]): Promise<void>;
}

const NOT_FOUND = new Set(["NotFoundException", "DoesNotExist"]);

/**
 * Lightsail's answers that need words of their own:
 * - AccountSetupInProgressException / RegionSetupInProgressException (HTTP 428): "the account is
 *   still in the setup in progress state" / an opt-in Region being set up (the SDK's model). It
 *   passes by itself in minutes, so the error is retryable and says so.
 * - InvalidInputException "your account can not create an instance using this Lightsail plan
 *   size": new accounts are held to small plans although GetBundles lists every one.
 */
function lightsailSpecific(
  err: unknown,
  action: string,
  resource: string,
  region: string,
): CutoverError | undefined {
  const name = awsErrorName(err);
  const message = err instanceof Error ? err.message : String(err);
  if (name === "AccountSetupInProgressException" || name === "RegionSetupInProgressException") {
    const what = name === "AccountSetupInProgressException" ? "this new account" : `region ${region}`;
    return new CutoverError(
      ErrorCode.StepFailed,
      `Lightsail is still setting up ${what} (${name.replace(/Exception$/, "")}, HTTP 428) and refused lightsail:${action} on ${resource}; this passes by itself within minutes.`,
      {
        cause: err,
        details: { action, resource, awsError: name },
        hint: "Cutover retries the step with back-off. If it still says so after 15 minutes, open the Lightsail console once for this region, then run the step again.",
      },
    );
  }
  if (
    name === "InvalidInputException" &&
    /can ?not create an instance using this Lightsail plan size/i.test(message)
  ) {
    return new CutoverError(
      ErrorCode.ConfigInvalid,
      `Lightsail refused to create ${resource}: this account may not yet use that plan size (new accounts are held to smaller plans, though every plan is listed).`,
      {
        cause: err,
        details: { action, resource, awsError: name },
        hint: "Ask AWS Support to allow larger Lightsail plans on the account (a support case, Service limit increase → Lightsail), or pin a smaller bundle in `target.lightsail.bundle.id` and lower the size numbers; then run the step again. Nothing was created.",
      },
    );
  }
  return undefined;
}

/**
 * The adapter over `@aws-sdk/client-lightsail`. Built by the step factory from `deps.env`
 * (see {@link awsOptionsFromEnv}); nothing here is a module singleton.
 */
/** How long to wait for Lightsail's asynchronous operations. */
export interface OperationWait {
  /** default 120 s */
  timeoutMs?: number;
  /** default 1 s */
  pollMs?: number;
}

type LightsailOperation = {
  id?: string | undefined;
  status?: string | undefined;
  isTerminal?: boolean | undefined;
  errorCode?: string | undefined;
  errorDetails?: string | undefined;
};

export function createLightsail(opts: AwsClientOptions, wait: OperationWait = {}): LightsailApi {
  const client = lazyAwsClient(
    () => import("@aws-sdk/client-lightsail"),
    (sdk) => new sdk.LightsailClient(sdkConfig(opts)),
  );
  const plainCall = awsCaller("lightsail");
  const call = <T>(action: string, resource: string, fn: () => Promise<T>): Promise<T> =>
    plainCall(action, resource, async () => {
      try {
        return await fn();
      } catch (err) {
        throw lightsailSpecific(err, action, resource, opts.region) ?? err;
      }
    });
  const orUndefined = async <T>(action: string, resource: string, fn: () => Promise<T>) => {
    try {
      return await fn();
    } catch (err) {
      if (NOT_FOUND.has(awsErrorName(err))) return undefined;
      throw (
        lightsailSpecific(err, action, resource, opts.region) ??
        explainAwsError(err, `lightsail:${action}`, resource)
      );
    }
  };

  /**
   * Waits until Lightsail's operations have finished: its mutating calls return at once with an
   * Operation (`Started`) whose effect shows only when it has `Succeeded`, so reading the static
   * IP straight after AllocateStaticIp can find nothing. Polls GetOperation, bounded.
   */
  const settle = async (action: string, resource: string, ops: LightsailOperation[] | undefined) => {
    const timeoutMs = wait.timeoutMs ?? 120_000;
    const deadline = Date.now() + timeoutMs;
    for (const first of ops ?? []) {
      let op = first;
      while (
        !op.isTerminal &&
        op.status !== "Succeeded" &&
        op.status !== "Completed" &&
        op.status !== "Failed"
      ) {
        if (!op.id) break;
        if (Date.now() > deadline) {
          throw new CutoverError(
            ErrorCode.TimedOut,
            `Lightsail's ${action} on ${resource} was still ${op.status ?? "running"} after ${Math.round(timeoutMs / 1000)} s.`,
            {
              details: { action, resource, operationId: op.id },
              hint: "It may still finish: check the Lightsail console, then run the step again.",
            },
          );
        }
        await new Promise((r) => setTimeout(r, wait.pollMs ?? 1_000));
        const id = op.id;
        op = (
          await call("GetOperation", `operation ${id}`, () =>
            client.send((sdk) => new sdk.GetOperationCommand({ operationId: id })),
          )
        ).operation ?? { ...op, status: "Succeeded" };
      }
      if (op.status === "Failed") {
        throw new CutoverError(
          ErrorCode.StepFailed,
          `Lightsail's ${action} on ${resource} failed${op.errorCode ? ` (${op.errorCode})` : ""}${op.errorDetails ? `: ${op.errorDetails}` : ""}.`,
          { details: { action, resource, operationId: op.id } },
        );
      }
    }
  };

  return {
    region: opts.region,
    async getInstance(name) {
      const out = await orUndefined("GetInstance", `instance ${name}`, () =>
        client.send((sdk) => new sdk.GetInstanceCommand({ instanceName: name })),
      );
      const i = out?.instance;
      if (!i) return undefined;
      const tags: Record<string, string> = {};
      for (const t of i.tags ?? []) if (t.key) tags[t.key] = t.value ?? "";
      return {
        name: i.name ?? name,
        state: i.state?.name ?? "unknown",
        bundleId: i.bundleId ?? "",
        blueprintId: i.blueprintId ?? "",
        availabilityZone: i.location?.availabilityZone ?? "",
        ...(i.publicIpAddress ? { publicIp: i.publicIpAddress } : {}),
        isStaticIp: i.isStaticIp ?? false,
        ...(i.sshKeyName ? { keyPairName: i.sshKeyName } : {}),
        tags,
      };
    },
    async createInstance(spec) {
      await call("CreateInstances", `instance ${spec.name}`, () =>
        client.send(
          (sdk) =>
            new sdk.CreateInstancesCommand({
              instanceNames: [spec.name],
              availabilityZone: spec.availabilityZone,
              blueprintId: spec.blueprintId,
              bundleId: spec.bundleId,
              keyPairName: spec.keyPairName,
              tags: Object.entries(spec.tags).map(([key, value]) => ({ key, value })),
            }),
        ),
      );
    },
    async deleteInstance(name) {
      await call("DeleteInstance", `instance ${name}`, () =>
        client.send((sdk) => new sdk.DeleteInstanceCommand({ instanceName: name })),
      );
    },
    async listBundles() {
      const bundles: LightsailBundle[] = [];
      let pageToken: string | undefined;
      do {
        const out = await call("GetBundles", "bundles", () =>
          client.send(
            (sdk) =>
              new sdk.GetBundlesCommand({ includeInactive: false, ...(pageToken ? { pageToken } : {}) }),
          ),
        );
        for (const b of out.bundles ?? []) {
          if (!b.bundleId) continue;
          bundles.push({
            bundleId: b.bundleId,
            cpuCount: b.cpuCount ?? 0,
            ramSizeInGb: b.ramSizeInGb ?? 0,
            diskSizeInGb: b.diskSizeInGb ?? 0,
            transferPerMonthInGb: b.transferPerMonthInGb ?? 0,
            price: b.price ?? 0,
            isActive: b.isActive ?? true,
            platforms: b.supportedPlatforms ?? [],
            // Absent in older answers, which had only dual-stack bundles; the id is the backstop.
            publicIpv4AddressCount: b.publicIpv4AddressCount ?? (/_ipv6_/.test(b.bundleId) ? 0 : 1),
          });
        }
        pageToken = out.nextPageToken;
      } while (pageToken);
      return bundles;
    },
    async listBlueprints() {
      const out: LightsailBlueprint[] = [];
      let pageToken: string | undefined;
      do {
        const page = await call("GetBlueprints", "blueprints", () =>
          client.send((sdk) => new sdk.GetBlueprintsCommand({ ...(pageToken ? { pageToken } : {}) })),
        );
        for (const b of page.blueprints ?? []) {
          if (b.blueprintId)
            out.push({
              blueprintId: b.blueprintId,
              name: b.name ?? b.blueprintId,
              isActive: b.isActive ?? true,
            });
        }
        pageToken = page.nextPageToken;
      } while (pageToken);
      return out;
    },
    async getKeyPair(name) {
      const out = await orUndefined("GetKeyPair", `key pair ${name}`, () =>
        client.send((sdk) => new sdk.GetKeyPairCommand({ keyPairName: name })),
      );
      if (!out?.keyPair) return undefined;
      return {
        name: out.keyPair.name ?? name,
        ...(out.keyPair.fingerprint ? { fingerprint: out.keyPair.fingerprint } : {}),
      };
    },
    async importKeyPair(name, publicKey) {
      await call("ImportKeyPair", `key pair ${name}`, () =>
        client.send((sdk) => new sdk.ImportKeyPairCommand({ keyPairName: name, publicKeyBase64: publicKey })),
      );
    },
    async createKeyPair(name) {
      const out = await call("CreateKeyPair", `key pair ${name}`, () =>
        client.send((sdk) => new sdk.CreateKeyPairCommand({ keyPairName: name })),
      );
      return { privateKey: out.privateKeyBase64 ?? "" };
    },
    async getStaticIp(name) {
      const out = await orUndefined("GetStaticIp", `static IP ${name}`, () =>
        client.send((sdk) => new sdk.GetStaticIpCommand({ staticIpName: name })),
      );
      const ip = out?.staticIp;
      if (!ip?.ipAddress) return undefined;
      return {
        name: ip.name ?? name,
        ipAddress: ip.ipAddress,
        ...(ip.isAttached && ip.attachedTo ? { attachedTo: ip.attachedTo } : {}),
      };
    },
    async allocateStaticIp(name) {
      const out = await call("AllocateStaticIp", `static IP ${name}`, () =>
        client.send((sdk) => new sdk.AllocateStaticIpCommand({ staticIpName: name })),
      );
      await settle("AllocateStaticIp", `static IP ${name}`, out.operations);
    },
    async attachStaticIp(staticIpName, instanceName) {
      const out = await call("AttachStaticIp", `static IP ${staticIpName}`, () =>
        client.send((sdk) => new sdk.AttachStaticIpCommand({ staticIpName, instanceName })),
      );
      await settle("AttachStaticIp", `static IP ${staticIpName}`, out.operations);
    },
    async detachStaticIp(staticIpName) {
      const out = await call("DetachStaticIp", `static IP ${staticIpName}`, () =>
        client.send((sdk) => new sdk.DetachStaticIpCommand({ staticIpName })),
      );
      await settle("DetachStaticIp", `static IP ${staticIpName}`, out.operations);
    },
    async releaseStaticIp(name) {
      const out = await call("ReleaseStaticIp", `static IP ${name}`, () =>
        client.send((sdk) => new sdk.ReleaseStaticIpCommand({ staticIpName: name })),
      );
      await settle("ReleaseStaticIp", `static IP ${name}`, out.operations);
    },
    async getPortStates(instanceName) {
      const out = await call("GetInstancePortStates", `instance ${instanceName}`, () =>
        client.send((sdk) => new sdk.GetInstancePortStatesCommand({ instanceName })),
      );
      return (out.portStates ?? [])
        .filter((p) => p.state !== "closed")
        .map((p) => ({
          fromPort: p.fromPort ?? 0,
          toPort: p.toPort ?? p.fromPort ?? 0,
          protocol: p.protocol ?? "tcp",
          cidrs: p.cidrs ?? [],
          ipv6Cidrs: p.ipv6Cidrs ?? [],
        }));
    },
    async putPublicPorts(instanceName, rules) {
      const out = await call("PutInstancePublicPorts", `instance ${instanceName}`, () =>
        client.send(
          (sdk) =>
            new sdk.PutInstancePublicPortsCommand({
              instanceName,
              portInfos: rules.map((r) => ({
                fromPort: r.fromPort,
                toPort: r.toPort,
                protocol: r.protocol as "tcp",
                cidrs: r.cidrs,
                ipv6Cidrs: r.ipv6Cidrs,
              })),
            }),
        ),
      );
      await settle(
        "PutInstancePublicPorts",
        `instance ${instanceName}`,
        out.operation ? [out.operation] : [],
      );
    },
  };
}
