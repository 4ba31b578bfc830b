import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { z } from "zod";
import type {
  LightsailApi,
  LightsailBundle,
  LightsailInstance,
  LightsailPortRule,
} from "../../../cloud/lightsail.js";
import { type LightsailConfig, requireSection } from "../../../config/schema.js";
import { CutoverError, ErrorCode } from "../../../errors.js";
import type { PlannedChange, StepContext, StepDefinition, StepDeps } from "../../define-step.js";
import { defineStep } from "../../define-step.js";
import { recordProvisioned } from "../../provisioned.js";
import { lightsailFor } from "./address.js";
import { waitFor } from "./wait.js";

const TYPE = "lightsail.instance";

const Input = z.strictObject({
  /** how long to wait for the instance to be running */
  waitSeconds: z.number().int().min(1).max(3600).default(600),
  pollMs: z.number().int().min(10).max(60_000).default(5_000),
});
type Input = z.infer<typeof Input>;

export const lightsailInstance = defineStep({
  type: TYPE,
  description: "create or check the Lightsail instance, key pair, static IP and firewall",
  input: Input,
  configSections: ["target.lightsail"],
  timeLimit: 1_800,
  mutating: true,
  checkpoints: {
    creatingInstance: z.boolean(),
    createdInstance: z.boolean(),
    createdStaticIp: z.boolean(),
    previousPorts: z.custom<LightsailPortRule[]>(),
    staticIp: z.string(),
  },
});

/** Tags Cutover puts on what it creates; undo only deletes what carries them. */
export const MANAGED_TAG = "cutover:managed";

interface Desired {
  cfg: LightsailConfig;
  bundle: LightsailBundle;
  ports: LightsailPortRule[];
  tags: Record<string, string>;
}

const describeBundle = (b: LightsailBundle) =>
  `${b.bundleId} (${b.cpuCount} vCPU, ${b.ramSizeInGb} GB RAM, ${b.diskSizeInGb} GB disk, ${b.transferPerMonthInGb / 1024} TB transfer, $${b.price}/month)`;

/** The smallest (cheapest) active Linux bundle meeting the configured size, or the pinned one. */
export function chooseBundle(cfg: LightsailConfig, bundles: LightsailBundle[]): LightsailBundle {
  const linux = bundles.filter(
    (b) => b.isActive && (b.platforms.length === 0 || b.platforms.includes("LINUX_UNIX")),
  );
  // The static IP and the A record need a public IPv4 address; GetBundles also lists IPv6-only
  // bundles (`*_ipv6_3_0`, same specs, cheaper), which would otherwise be "the cheapest that fits".
  const ipv4 = linux.filter((b) => b.publicIpv4AddressCount > 0);
  const want = cfg.bundle;
  const fits = (b: LightsailBundle) =>
    b.cpuCount >= want.cpu &&
    b.ramSizeInGb >= want.ramGb &&
    b.diskSizeInGb >= want.diskGb &&
    b.transferPerMonthInGb >= want.transferTb * 1000;
  if (want.id) {
    const pinned = linux.find((b) => b.bundleId === want.id);
    if (pinned && pinned.publicIpv4AddressCount === 0) {
      throw new CutoverError(
        ErrorCode.ConfigInvalid,
        `target.lightsail.bundle.id: \`${want.id}\` is an IPv6-only bundle: the instance would have no public IPv4 address for the static IP and the A record — use \`${want.id.replace("_ipv6", "")}\` instead`,
      );
    }
    if (!pinned) {
      throw new CutoverError(
        ErrorCode.ConfigInvalid,
        `target.lightsail.bundle.id: \`${want.id}\` is not a Lightsail Linux bundle in ${cfg.region} — use one of ${linux.map((b) => b.bundleId).join(", ")}`,
      );
    }
    if (!fits(pinned)) {
      throw new CutoverError(
        ErrorCode.ConfigInvalid,
        `target.lightsail.bundle: ${describeBundle(pinned)} is smaller than the ${want.cpu} vCPU, ${want.ramGb} GB RAM, ${want.diskGb} GB disk the file asks for — pick a bigger bundle id or lower the numbers`,
      );
    }
    return pinned;
  }
  const best = ipv4.filter(fits).sort((a, b) => a.price - b.price || a.ramSizeInGb - b.ramSizeInGb)[0];
  if (!best) {
    throw new CutoverError(
      ErrorCode.ConfigInvalid,
      `target.lightsail.bundle: no Lightsail Linux bundle in ${cfg.region} has ${want.cpu} vCPU, ${want.ramGb} GB RAM, ${want.diskGb} GB disk and ${want.transferTb} TB transfer — lower the numbers or pin a bundle id`,
    );
  }
  return best;
}

/** The public port rules the file asks for: exactly these, nothing else open. */
export function desiredPorts(cfg: LightsailConfig): LightsailPortRule[] {
  return cfg.firewall.map((r) => {
    const cidrs = r.cidrs ?? ["0.0.0.0/0", "::/0"];
    return {
      fromPort: r.protocol === "all" ? 0 : r.port,
      toPort: r.protocol === "all" ? 65535 : (r.toPort ?? r.port),
      protocol: r.protocol,
      cidrs: cidrs.filter((c) => !c.includes(":")),
      ipv6Cidrs: cidrs.filter((c) => c.includes(":")),
    };
  });
}

const ruleKey = (r: LightsailPortRule) =>
  `${r.protocol}/${r.fromPort}-${r.toPort} ${[...r.cidrs].sort().join(",")} ${[...r.ipv6Cidrs].sort().join(",")}`;
const ruleLabel = (r: LightsailPortRule) =>
  `${r.fromPort === r.toPort ? r.fromPort : `${r.fromPort}-${r.toPort}`}/${r.protocol} from ${[...r.cidrs, ...r.ipv6Cidrs].join(", ") || "nobody"}`;

/** What differs between the open ports and the wanted ones, in words; [] when they match. */
export function portDrift(actual: LightsailPortRule[], wanted: LightsailPortRule[]): string[] {
  const a = new Set(actual.map(ruleKey));
  const w = new Set(wanted.map(ruleKey));
  return [
    ...wanted.filter((r) => !a.has(ruleKey(r))).map((r) => `open ${ruleLabel(r)}`),
    ...actual.filter((r) => !w.has(ruleKey(r))).map((r) => `close ${ruleLabel(r)}`),
  ];
}

/** Why an existing instance cannot be the configured one (bundle, blueprint, zone), or undefined. */
function conflictOf(inst: LightsailInstance, d: Desired, bundles: LightsailBundle[]): string | undefined {
  const problems: string[] = [];
  if (inst.bundleId !== d.bundle.bundleId) {
    const theirs = bundles.find((b) => b.bundleId === inst.bundleId);
    problems.push(
      `its bundle is ${theirs ? describeBundle(theirs) : inst.bundleId}, not ${describeBundle(d.bundle)}`,
    );
  }
  if (inst.blueprintId !== d.cfg.blueprintId)
    problems.push(`its blueprint is ${inst.blueprintId}, not ${d.cfg.blueprintId}`);
  if (inst.availabilityZone !== d.cfg.availabilityZone)
    problems.push(`it is in ${inst.availabilityZone}, not ${d.cfg.availabilityZone}`);
  if (problems.length === 0) return undefined;
  return `A Lightsail instance named ${inst.name} already exists and ${problems.join("; ")}.`;
}

function conflictError(message: string): CutoverError {
  return new CutoverError(ErrorCode.ResourceConflict, message, {
    hint: "Cutover never replaces an existing instance. Pick another target.lightsail.instanceName, or make the file match the instance (bundle, blueprint, zone) if it is the right one.",
  });
}

/**
 * Lightsail's ImportKeyPair takes "a base64-encoded public key of the ssh-rsa type" (the API
 * reference and @aws-sdk/client-lightsail's model): an ed25519 or ECDSA key is refused, so it is
 * refused here first, in the plan as in the run, saying how to make one it takes.
 */
export function importableKeyOrFail(publicKey: string, path: string): string {
  const type = publicKey.split(" ")[0];
  if (type === "ssh-rsa") return publicKey;
  throw new CutoverError(
    ErrorCode.ConfigInvalid,
    `The SSH key at ${path} is ${type}, and Lightsail imports ssh-rsa public keys only.`,
    {
      details: { path, keyType: type },
      hint: `Make an RSA key for the instance (\`ssh-keygen -t rsa -b 4096 -f ${path.replace(/[^/]+$/, "lightsail_rsa")}\`) and point the file's sshKeyPathEnv variable at it, or remove the variable so Lightsail creates the key pair and Cutover saves its private key.`,
    },
  );
}

/**
 * `lightsail.instance`: the instance (blueprint, bundle, zone, key pair), its static IP and its
 * firewall, from target.lightsail. Found by name; never created twice; an instance of another
 * size under the same name stops the step. Records the static IP for the steps after it.
 */
export function createLightsailInstanceStep(deps: StepDeps): StepDefinition<Input> {
  const api = () => lightsailFor(deps);
  const cfgOf = () => requireSection(deps.file, "target.lightsail");

  async function desired(ls: LightsailApi): Promise<Desired & { bundles: LightsailBundle[] }> {
    const cfg = cfgOf();
    const bundles = await ls.listBundles();
    const bundle = chooseBundle(cfg, bundles);
    return {
      cfg,
      bundle,
      bundles,
      ports: desiredPorts(cfg),
      tags: { ...cfg.tags, [MANAGED_TAG]: "true", "cutover:project": deps.file.project },
    };
  }

  /** Where the private key is, or will be written when Lightsail creates the pair. */
  function keyPath(): { path: string; fromEnv: string | undefined } {
    const host = deps.file.target?.host;
    const fromEnv = host ? deps.env[host.sshKeyPathEnv] : undefined;
    return {
      path: fromEnv || join(deps.dataDir, "keys", `${cfgOf().keyPairName}.pem`),
      fromEnv: host?.sshKeyPathEnv,
    };
  }

  async function keyFileExists(path: string): Promise<string | undefined> {
    try {
      return await readFile(path, "utf8");
    } catch {
      return undefined;
    }
  }

  async function ensureKeyPair(ls: LightsailApi, ctx: StepContext): Promise<string> {
    const cfg = cfgOf();
    if (await ls.getKeyPair(cfg.keyPairName)) return "present";
    const { path, fromEnv } = keyPath();
    const existing = await keyFileExists(path);
    if (existing) {
      await ls.importKeyPair(
        cfg.keyPairName,
        importableKeyOrFail(await deps.ports.ssh.publicKeyOf(existing, `at ${path}`), path),
      );
      ctx.log.info({ keyPair: cfg.keyPairName }, "imported the key pair's public key");
      return "imported";
    }
    const { privateKey } = await ls.createKeyPair(cfg.keyPairName);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    // "wx": an existing file is never overwritten
    await writeFile(path, privateKey.endsWith("\n") ? privateKey : `${privateKey}\n`, {
      mode: 0o600,
      flag: "wx",
    });
    ctx.log.info({ keyPair: cfg.keyPairName, path, env: fromEnv }, "created the key pair; private key saved");
    return "created";
  }

  async function planChanges(ls: LightsailApi): Promise<{ changes: PlannedChange[]; conflict?: string }> {
    const d = await desired(ls);
    const cfg = d.cfg;
    const changes: PlannedChange[] = [];
    const blueprints = await ls.listBlueprints();
    if (!blueprints.some((b) => b.blueprintId === cfg.blueprintId)) {
      throw new CutoverError(
        ErrorCode.ConfigInvalid,
        `target.lightsail.blueprintId: \`${cfg.blueprintId}\` is not a Lightsail blueprint in ${cfg.region} — use one of ${blueprints
          .filter((b) => b.isActive)
          .map((b) => b.blueprintId)
          .join(", ")}`,
      );
    }
    if (!(await ls.getKeyPair(cfg.keyPairName))) {
      const { path } = keyPath();
      const existing = await keyFileExists(path);
      // refused in the plan already: a key Lightsail cannot import must not surface mid-run
      if (existing) importableKeyOrFail(await deps.ports.ssh.publicKeyOf(existing, `at ${path}`), path);
      changes.push({
        action: "create",
        target: `key pair ${cfg.keyPairName}`,
        detail: existing
          ? `import the public key of ${path}`
          : `let Lightsail create it; the private key is saved to ${path} (mode 0600)`,
      });
    }
    const inst = await ls.getInstance(cfg.instanceName);
    if (!inst) {
      changes.push({
        action: "create",
        target: `instance ${cfg.instanceName}`,
        detail: `${cfg.blueprintId}, ${describeBundle(d.bundle)}, ${cfg.availabilityZone}`,
      });
    } else {
      const conflict = conflictOf(inst, d, d.bundles);
      if (conflict) {
        changes.push({
          action: "check",
          target: `instance ${cfg.instanceName}`,
          detail: `conflict: ${conflict}`,
        });
        return { changes, conflict };
      }
      changes.push({
        action: inst.state === "running" ? "none" : "check",
        target: `instance ${cfg.instanceName}`,
        detail: `exists (${inst.state}), ${describeBundle(d.bundle)}`,
      });
    }
    const ip = await ls.getStaticIp(cfg.staticIpName);
    if (!ip) {
      changes.push({
        action: "create",
        target: `static IP ${cfg.staticIpName}`,
        detail: `attach to ${cfg.instanceName}`,
      });
    } else if (ip.attachedTo !== cfg.instanceName) {
      if (ip.attachedTo) {
        const conflict = `The static IP ${cfg.staticIpName} (${ip.ipAddress}) is attached to another instance, ${ip.attachedTo}.`;
        changes.push({
          action: "check",
          target: `static IP ${cfg.staticIpName}`,
          detail: `conflict: ${conflict}`,
        });
        return { changes, conflict };
      }
      changes.push({
        action: "update",
        target: `static IP ${cfg.staticIpName}`,
        detail: `attach ${ip.ipAddress} to ${cfg.instanceName}`,
      });
    } else {
      changes.push({
        action: "none",
        target: `static IP ${cfg.staticIpName}`,
        detail: `${ip.ipAddress}, attached`,
      });
    }
    const drift = inst
      ? portDrift(await ls.getPortStates(cfg.instanceName), d.ports)
      : d.ports.map((r) => `open ${ruleLabel(r)}`);
    changes.push(
      drift.length > 0
        ? { action: "update", target: `firewall of ${cfg.instanceName}`, detail: drift.join("; ") }
        : {
            action: "none",
            target: `firewall of ${cfg.instanceName}`,
            detail: d.ports.map(ruleLabel).join("; "),
          },
    );
    return { changes };
  }

  return lightsailInstance.implement({
    async plan() {
      const { changes, conflict } = await planChanges(api());
      const work = changes.filter((c) => c.action !== "none");
      return {
        summary: conflict
          ? `cannot proceed: ${conflict}`
          : work.length === 0
            ? `${cfgOf().instanceName}: already as configured`
            : `would ${work.map((c) => `${c.action} ${c.target}`).join(", ")}`,
        changes,
      };
    },

    async run(input, ctx) {
      const ls = api();
      const d = await desired(ls);
      const cfg = d.cfg;
      const did: string[] = [];
      const keyPair = await ensureKeyPair(ls, ctx);
      if (keyPair !== "present") did.push(`${keyPair} key pair ${cfg.keyPairName}`);

      let inst = await ls.getInstance(cfg.instanceName);
      if (!inst) {
        ctx.progress({ done: 0, message: `creating instance ${cfg.instanceName} (${d.bundle.bundleId})` });
        await ctx.checkpoint.set("creatingInstance", true);
        await ls.createInstance({
          name: cfg.instanceName,
          availabilityZone: cfg.availabilityZone,
          blueprintId: cfg.blueprintId,
          bundleId: d.bundle.bundleId,
          keyPairName: cfg.keyPairName,
          tags: d.tags,
        });
        await ctx.checkpoint.set("createdInstance", true);
        did.push(`created instance ${cfg.instanceName} (${d.bundle.bundleId})`);
      } else {
        const conflict = conflictOf(inst, d, d.bundles);
        if (conflict) throw conflictError(conflict);
      }

      await waitFor({
        what: `instance ${cfg.instanceName} to be running`,
        timeoutMs: input.waitSeconds * 1000,
        intervalMs: input.pollMs,
        ctx,
        check: async () => {
          inst = await ls.getInstance(cfg.instanceName);
          return { done: inst?.state === "running", state: inst?.state ?? "missing" };
        },
      });

      let ip = await ls.getStaticIp(cfg.staticIpName);
      if (!ip) {
        await ls.allocateStaticIp(cfg.staticIpName);
        await ctx.checkpoint.set("createdStaticIp", true);
        ip = await ls.getStaticIp(cfg.staticIpName);
        did.push(`allocated static IP ${cfg.staticIpName}`);
      }
      if (!ip)
        throw new CutoverError(
          ErrorCode.StepFailed,
          `Lightsail did not return the static IP ${cfg.staticIpName} it allocated.`,
        );
      if (ip.attachedTo && ip.attachedTo !== cfg.instanceName) {
        throw conflictError(
          `The static IP ${cfg.staticIpName} (${ip.ipAddress}) is attached to another instance, ${ip.attachedTo}.`,
        );
      }
      if (ip.attachedTo !== cfg.instanceName) {
        await ls.attachStaticIp(cfg.staticIpName, cfg.instanceName);
        did.push(`attached ${ip.ipAddress} to ${cfg.instanceName}`);
      }

      const current = await ls.getPortStates(cfg.instanceName);
      const drift = portDrift(current, d.ports);
      if (drift.length > 0) {
        if ((await ctx.checkpoint.get("previousPorts")) === undefined)
          await ctx.checkpoint.set("previousPorts", current);
        await ls.putPublicPorts(cfg.instanceName, d.ports);
        did.push(`firewall: ${drift.join("; ")}`);
      }

      await recordProvisioned(deps.dataDir, deps.file.environment, {
        "target.lightsail.staticIp": ip.ipAddress,
        "target.lightsail.instanceName": cfg.instanceName,
      });
      await ctx.checkpoint.set("staticIp", ip.ipAddress);
      return {
        summary:
          did.length === 0
            ? `${cfg.instanceName} already as configured: ${d.bundle.bundleId}, static IP ${ip.ipAddress}, ports ${d.ports.map((r) => r.fromPort).join("/")}`
            : `${did.join("; ")}; static IP ${ip.ipAddress}`,
        figures: {
          instanceName: cfg.instanceName,
          bundleId: d.bundle.bundleId,
          staticIp: ip.ipAddress,
          ports: d.ports
            .map((r) => (r.fromPort === r.toPort ? `${r.fromPort}` : `${r.fromPort}-${r.toPort}`))
            .join(","),
          changed: did.length > 0,
        },
      };
    },

    async verify() {
      const ls = api();
      const d = await desired(ls);
      const cfg = d.cfg;
      const problems: string[] = [];
      const inst = await ls.getInstance(cfg.instanceName);
      const ip = await ls.getStaticIp(cfg.staticIpName);
      if (!inst) problems.push(`instance ${cfg.instanceName} does not exist`);
      else {
        if (inst.state !== "running") problems.push(`instance is ${inst.state}`);
        const conflict = conflictOf(inst, d, d.bundles);
        if (conflict) problems.push(conflict);
        if (inst.keyPairName && inst.keyPairName !== cfg.keyPairName)
          problems.push(`instance uses key pair ${inst.keyPairName}, not ${cfg.keyPairName}`);
        const drift = portDrift(await ls.getPortStates(cfg.instanceName), d.ports);
        if (drift.length > 0) problems.push(`firewall differs: ${drift.join("; ")}`);
      }
      if (!ip) problems.push(`static IP ${cfg.staticIpName} does not exist`);
      else if (ip.attachedTo !== cfg.instanceName)
        problems.push(`static IP ${ip.ipAddress} is not attached to ${cfg.instanceName}`);
      else if (inst && inst.publicIp !== ip.ipAddress)
        problems.push(`instance answers on ${inst.publicIp}, not ${ip.ipAddress}`);
      return {
        ok: problems.length === 0,
        summary:
          problems.length === 0
            ? `${cfg.instanceName} running, ${d.bundle.bundleId}, ${ip?.ipAddress} attached, only ${d.ports.map(ruleLabel).join("; ")} open`
            : problems.join("; "),
        figures: { staticIp: ip?.ipAddress ?? "", state: inst?.state ?? "missing" },
      };
    },

    async undo(_input, ctx) {
      const ls = api();
      const cfg = cfgOf();
      const createdInstance = await ctx.checkpoint.get("createdInstance");
      const createdIp = await ctx.checkpoint.get("createdStaticIp");
      const previousPorts = await ctx.checkpoint.get("previousPorts");
      const inst = await ls.getInstance(cfg.instanceName);
      if (createdInstance && inst) {
        if (inst.tags[MANAGED_TAG] !== "true") {
          throw new CutoverError(
            ErrorCode.ResourceConflict,
            `Not deleting ${cfg.instanceName}: it does not carry the ${MANAGED_TAG} tag, so Cutover did not create it.`,
          );
        }
        await ls.deleteInstance(cfg.instanceName);
        ctx.log.info({ instance: cfg.instanceName }, "deleted the instance this step created");
      } else if (inst && previousPorts) {
        await ls.putPublicPorts(cfg.instanceName, previousPorts);
        ctx.log.info({ instance: cfg.instanceName }, "restored the firewall rules found before");
      }
      if (createdIp && (await ls.getStaticIp(cfg.staticIpName))) {
        await ls.releaseStaticIp(cfg.staticIpName);
        ctx.log.info({ staticIp: cfg.staticIpName }, "released the static IP this step allocated");
      }
    },
  });
}
