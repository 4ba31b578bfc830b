import { readFile } from "node:fs/promises";
import { z } from "zod";
import type { IngressRule, SecurityGroupApi } from "../../../cloud/ec2.js";
import type { RdsChanges, RdsInstanceInfo } from "../../../cloud/rds.js";
import { type RdsConfig, requireSection } from "../../../config/schema.js";
import { CutoverError, ErrorCode, notSet } from "../../../errors.js";
import type { PlannedChange, StepDefinition, StepDeps } from "../../define-step.js";
import { defineStep, stepNow } from "../../define-step.js";
import {
  checkMasterPassword,
  generatePassword,
  masterPasswordPath,
  passwordLocation,
  readProvisioned,
  recordProvisioned,
  storeGeneratedPassword,
} from "../../provisioned.js";
import { lightsailFor } from "../host/address.js";
import { MANAGED_TAG } from "../host/lightsail-instance.js";
import { waitFor } from "../host/wait.js";

const TYPE = "rds.instance";

const Input = z.strictObject({
  /** how long to wait for the database to be available (creation takes 5–15 minutes) */
  waitSeconds: z.number().int().min(1).max(7200).default(1800),
  pollMs: z.number().int().min(10).max(120_000).default(15_000),
  /** with masterPasswordStore: data-dir and no stored password for an existing database: set a new one */
  resetMasterPassword: z.boolean().default(false),
});
type Input = z.infer<typeof Input>;

export const rdsInstance = defineStep({
  type: TYPE,
  description: "create or check the RDS PostgreSQL instance and its security group",
  input: Input,
  configSections: ["target.rds"],
  // an RDS instance takes 10–40 minutes to become available, Multi-AZ longer
  timeLimit: 5_400,
  mutating: true,
  checkpoints: {
    createdSecurityGroup: z.string(),
    createdParameterGroup: z.string(),
    creatingInstance: z.boolean(),
    createdInstance: z.boolean(),
    endpoint: z.string(),
  },
});

const major = (v: string) => v.split(".")[0]!;

/** Names of what the step creates next to the instance. */
/** What each parameter Cutover sets is for, in the plan. */
const PARAMETER_WHY: Record<string, string> = {
  "rds.force_ssl": "TLS required",
  "rds.logical_replication": "logical replication: the live cutover's way back",
};

/** The parameters the instance's own parameter group must hold. */
export function wantedParameters(cfg: RdsConfig, deps: Pick<StepDeps, "file">): Record<string, string> {
  return {
    ...(cfg.requireTls ? { "rds.force_ssl": "1" } : {}),
    ...(deps.file.replication ? { "rds.logical_replication": "1" } : {}),
  };
}

export function rdsNames(cfg: RdsConfig) {
  return {
    securityGroup: `${cfg.identifier}-db`,
    parameterGroup: `${cfg.identifier}-pg${major(cfg.engineVersion)}`,
    family: `postgres${major(cfg.engineVersion)}`,
  };
}

/** Differences an in-place modification can fix, and ones it cannot. */
export function rdsDrift(
  cfg: RdsConfig,
  actual: RdsInstanceInfo,
  want: { securityGroupId?: string; parameterGroup?: string },
): { changes: RdsChanges; words: string[]; conflicts: string[] } {
  const changes: RdsChanges = {};
  const words: string[] = [];
  const conflicts: string[] = [];
  if (actual.engine !== cfg.engine) conflicts.push(`its engine is ${actual.engine}, not ${cfg.engine}`);
  const v = actual.engineVersion;
  if (
    !(
      v === cfg.engineVersion ||
      v.startsWith(`${cfg.engineVersion}.`) ||
      cfg.engineVersion.startsWith(`${v}.`)
    )
  ) {
    if (major(v) !== major(cfg.engineVersion))
      conflicts.push(`it runs PostgreSQL ${v}, not ${cfg.engineVersion}`);
  }
  if (actual.storageEncrypted !== cfg.storageEncrypted)
    conflicts.push(
      `its storage is ${actual.storageEncrypted ? "" : "not "}encrypted (cannot change in place)`,
    );
  if (actual.masterUsername !== cfg.masterUsername)
    conflicts.push(`its master user is ${actual.masterUsername}, not ${cfg.masterUsername}`);
  if (actual.allocatedStorageGb > cfg.allocatedStorageGb)
    conflicts.push(
      `it has ${actual.allocatedStorageGb} GB of storage, more than ${cfg.allocatedStorageGb} (storage cannot shrink)`,
    );
  const set = <K extends keyof RdsChanges>(key: K, value: RdsChanges[K], what: string) => {
    changes[key] = value;
    words.push(what);
  };
  if (actual.instanceClass !== cfg.instanceClass)
    set("instanceClass", cfg.instanceClass, `class ${actual.instanceClass} → ${cfg.instanceClass}`);
  if (actual.storageType !== cfg.storageType)
    set("storageType", cfg.storageType, `storage type ${actual.storageType} → ${cfg.storageType}`);
  if (actual.allocatedStorageGb < cfg.allocatedStorageGb)
    set(
      "allocatedStorageGb",
      cfg.allocatedStorageGb,
      `storage ${actual.allocatedStorageGb} → ${cfg.allocatedStorageGb} GB`,
    );
  if (cfg.maxAllocatedStorageGb !== undefined && actual.maxAllocatedStorageGb !== cfg.maxAllocatedStorageGb)
    set(
      "maxAllocatedStorageGb",
      cfg.maxAllocatedStorageGb,
      `storage autoscaling up to ${cfg.maxAllocatedStorageGb} GB`,
    );
  if (actual.multiAz !== cfg.multiAz) set("multiAz", cfg.multiAz, `multi-AZ ${cfg.multiAz ? "on" : "off"}`);
  if (actual.backupRetentionDays !== cfg.backupRetentionDays)
    set(
      "backupRetentionDays",
      cfg.backupRetentionDays,
      `backups kept ${actual.backupRetentionDays} → ${cfg.backupRetentionDays} days`,
    );
  if (actual.publiclyAccessible !== cfg.publiclyAccessible)
    set(
      "publiclyAccessible",
      cfg.publiclyAccessible,
      `publicly accessible ${cfg.publiclyAccessible ? "on" : "off"}`,
    );
  if (actual.deletionProtection !== cfg.deletionProtection)
    set(
      "deletionProtection",
      cfg.deletionProtection,
      `deletion protection ${cfg.deletionProtection ? "on" : "off"}`,
    );
  if (
    want.securityGroupId &&
    (actual.securityGroupIds.length !== 1 || actual.securityGroupIds[0] !== want.securityGroupId)
  )
    set(
      "securityGroupIds",
      [want.securityGroupId],
      `security groups [${actual.securityGroupIds.join(", ")}] → [${want.securityGroupId}]`,
    );
  if (want.parameterGroup && !actual.parameterGroups.some((g) => g.name === want.parameterGroup))
    set(
      "parameterGroupName",
      want.parameterGroup,
      `parameter group → ${want.parameterGroup} (TLS required; applies after a reboot)`,
    );
  return { changes, words, conflicts };
}

/** Rules to add and remove so the group admits exactly `cidrs` on `port`. */
export function ingressDrift(actual: IngressRule[], port: number, cidrs: string[]) {
  const have = new Set(
    actual
      .filter((r) => r.protocol === "tcp" && r.fromPort === port && r.toPort === port)
      .flatMap((r) => r.cidrs),
  );
  const add = cidrs.filter((c) => !have.has(c));
  const remove: IngressRule[] = [];
  for (const r of actual) {
    const exact = r.protocol === "tcp" && r.fromPort === port && r.toPort === port;
    const extra = exact ? r.cidrs.filter((c) => !cidrs.includes(c)) : r.cidrs;
    if (extra.length > 0) remove.push({ ...r, cidrs: extra });
  }
  return { add, remove };
}

/**
 * `rds.instance`: the PostgreSQL instance of target.rds — engine, version, class, storage,
 * backups, encryption at rest, TLS required (a parameter group with rds.force_ssl = 1), public
 * access only as the file says, and a security group admitting just the Lightsail static IP
 * (plus extraCidrs). The master password comes from, or is generated into, the place the file
 * names and is never shown. Records the endpoint for the database copy.
 */
export function createRdsInstanceStep(deps: StepDeps): StepDefinition<Input> {
  const cfgOf = () => requireSection(deps.file, "target.rds");
  const region = () => deps.file.target?.aws.region ?? "us-east-1";
  const rdsApi = () => deps.ports.rds(region());
  const sgApi = () => deps.ports.securityGroups(region());
  const lsApi = () => lightsailFor(deps);

  /** What plan, run and verify each start from: target.rds, the names, the parameters the file wants and the two APIs. */
  function context() {
    const cfg = cfgOf();
    const wanted = wantedParameters(cfg, deps);
    return {
      cfg,
      names: rdsNames(cfg),
      wanted,
      usesParameterGroup: Object.keys(wanted).length > 0,
      rds: rdsApi(),
      groups: sgApi(),
    };
  }

  /** The CIDR blocks the database admits. */
  async function wantedCidrs(cfg: RdsConfig, planning = false): Promise<string[]> {
    const cidrs: string[] = [];
    if (cfg.ingress.fromLightsailStaticIp) {
      const ls = requireSection(deps.file, "target.lightsail");
      const ip = await lsApi().getStaticIp(ls.staticIpName);
      // a dry run of the whole runbook plans this step before lightsail.instance has run
      if (!ip && planning)
        cidrs.push(`the static IP ${ls.staticIpName} (once lightsail.instance creates it)`);
      else if (!ip) {
        throw new CutoverError(
          ErrorCode.BadArgument,
          `The database admits only the Lightsail static IP ${ls.staticIpName}, which does not exist yet: run the lightsail.instance step first.`,
        );
      } else cidrs.push(`${ip.ipAddress}/32`);
    }
    for (const c of cfg.ingress.extraCidrs) if (!cidrs.includes(c)) cidrs.push(c);
    return cidrs;
  }

  async function vpcId(groups: SecurityGroupApi): Promise<string> {
    const id = await groups.defaultVpcId();
    if (!id) {
      throw new CutoverError(
        ErrorCode.StepFailed,
        `The AWS account has no default VPC in ${region()}, where Cutover puts the database.`,
        {
          hint: "Create the default VPC (VPC console → Actions → Create default VPC), then run the step again.",
        },
      );
    }
    return id;
  }

  async function storedPassword(cfg: RdsConfig): Promise<string | undefined> {
    try {
      return (await readFile(masterPasswordPath(deps.dataDir, cfg.identifier), "utf8")).trim();
    } catch {
      return undefined;
    }
  }

  const tagsOf = (cfg: RdsConfig) => ({
    ...cfg.tags,
    [MANAGED_TAG]: "true",
    "cutover:project": deps.file.project,
  });

  return rdsInstance.implement({
    async plan() {
      const { cfg, names, wanted, usesParameterGroup, rds, groups } = context();
      const changes: PlannedChange[] = [];
      const cidrs = await wantedCidrs(cfg, true);
      const vpc = await vpcId(groups);
      const sg = await groups.find(names.securityGroup, vpc);
      if (!sg) {
        changes.push({
          action: "create",
          target: `security group ${names.securityGroup}`,
          detail: `admit ${cidrs.join(", ") || "nobody"} on ${cfg.port}/tcp`,
        });
      } else {
        const { add, remove } = ingressDrift(sg.ingress, cfg.port, cidrs);
        changes.push(
          add.length + remove.length > 0
            ? {
                action: "update",
                target: `security group ${names.securityGroup}`,
                detail: [
                  ...add.map((c) => `admit ${c}`),
                  ...remove.map((r) => `revoke ${r.cidrs.join(", ")} on ${r.fromPort}`),
                ].join("; "),
              }
            : {
                action: "none",
                target: `security group ${names.securityGroup}`,
                detail: `admits only ${cidrs.join(", ")}`,
              },
        );
      }
      if (usesParameterGroup) {
        const pg = await rds.getParameterGroup(names.parameterGroup);
        const unset: string[] = [];
        for (const [k, v] of Object.entries(wanted))
          if (!pg || (await rds.getParameter(names.parameterGroup, k)) !== v) unset.push(`${k} = ${v}`);
        const all = Object.entries(wanted)
          .map(([k, v]) => `${k} = ${v}${PARAMETER_WHY[k] ? ` (${PARAMETER_WHY[k]})` : ""}`)
          .join(", ");
        changes.push(
          !pg
            ? { action: "create", target: `parameter group ${names.parameterGroup}`, detail: all }
            : unset.length
              ? {
                  action: "update",
                  target: `parameter group ${names.parameterGroup}`,
                  detail: `set ${unset.join(", ")}`,
                }
              : { action: "none", target: `parameter group ${names.parameterGroup}`, detail: all },
        );
      }
      const db = await rds.describeInstance(cfg.identifier);
      const where = passwordLocation(cfg, deps.dataDir);
      if (!db) {
        changes.push({
          action: "create",
          target: `database ${cfg.identifier}`,
          detail: `PostgreSQL ${cfg.engineVersion}, ${cfg.instanceClass}, ${cfg.allocatedStorageGb} GB ${cfg.storageType}, backups ${cfg.backupRetentionDays} days, ${cfg.multiAz ? "multi-AZ" : "single AZ"}, ${cfg.storageEncrypted ? "encrypted" : "unencrypted"}, ${cfg.publiclyAccessible ? "public" : "private"}; master password ${cfg.masterPasswordStore === "data-dir" ? "generated into" : "from"} ${where}`,
        });
      } else {
        const drift = rdsDrift(cfg, db, {
          ...(sg ? { securityGroupId: sg.groupId } : {}),
          ...(usesParameterGroup ? { parameterGroup: names.parameterGroup } : {}),
        });
        if (drift.conflicts.length > 0) {
          const conflict = `RDS instance ${cfg.identifier} already exists and ${drift.conflicts.join("; ")}.`;
          changes.push({
            action: "check",
            target: `database ${cfg.identifier}`,
            detail: `conflict: ${conflict}`,
          });
          return { summary: `cannot proceed: ${conflict}`, changes };
        }
        changes.push(
          drift.words.length > 0
            ? { action: "update", target: `database ${cfg.identifier}`, detail: drift.words.join("; ") }
            : {
                action: "none",
                target: `database ${cfg.identifier}`,
                detail: `${db.status}, ${db.endpoint?.address ?? "no endpoint yet"}`,
              },
        );
      }
      const work = changes.filter((c) => c.action !== "none");
      return {
        summary:
          work.length === 0
            ? `${cfg.identifier}: already as configured`
            : `would ${work.map((c) => `${c.action} ${c.target}`).join(", ")}`,
        changes,
      };
    },

    async run(input, ctx) {
      const { cfg, names, wanted, usesParameterGroup, rds, groups } = context();
      const did: string[] = [];

      // 1. The firewall: a security group admitting only the wanted addresses.
      const cidrs = await wantedCidrs(cfg);
      const vpc = await vpcId(groups);
      let sg = await groups.find(names.securityGroup, vpc);
      if (!sg) {
        const id = await groups.create(
          names.securityGroup,
          `Cutover: PostgreSQL ${cfg.identifier} from the app host only`,
          vpc,
          tagsOf(cfg),
        );
        await ctx.checkpoint.set("createdSecurityGroup", id);
        did.push(`created security group ${names.securityGroup}`);
        sg = { groupId: id, name: names.securityGroup, vpcId: vpc, ingress: [] };
      }
      const { add, remove } = ingressDrift(sg.ingress, cfg.port, cidrs);
      for (const r of remove) await groups.revoke(sg.groupId, r);
      if (add.length > 0) await groups.authorize(sg.groupId, cfg.port, add, `Cutover ${deps.file.project}`);
      if (add.length + remove.length > 0)
        did.push(
          `security group admits ${cidrs.join(", ")}${remove.length ? ` (revoked ${remove.flatMap((r) => r.cidrs).join(", ")})` : ""}`,
        );

      // 2. The instance's own parameter group: TLS required (rds.force_ssl = 1) and, for a live
      // migration, logical replication (rds.logical_replication = 1), set at creation so the reverse
      // replication of the way back needs no reboot later.
      if (usesParameterGroup) {
        if (!(await rds.getParameterGroup(names.parameterGroup))) {
          await rds.createParameterGroup(
            names.parameterGroup,
            names.family,
            `Cutover: ${cfg.identifier}${cfg.requireTls ? ", TLS required" : ""}${deps.file.replication ? ", logical replication" : ""}`,
            tagsOf(cfg),
          );
          await ctx.checkpoint.set("createdParameterGroup", names.parameterGroup);
          did.push(`created parameter group ${names.parameterGroup}`);
        }
        const unset: Record<string, string> = {};
        for (const [k, v] of Object.entries(wanted))
          if ((await rds.getParameter(names.parameterGroup, k)) !== v) unset[k] = v;
        if (Object.keys(unset).length) {
          await rds.setParameters(names.parameterGroup, unset);
          did.push(
            Object.entries(unset)
              .map(([k, v]) => `${k} = ${v}`)
              .join(", "),
          );
        }
      }

      // 3. The instance.
      let db = await rds.describeInstance(cfg.identifier);
      const secrets: string[] = [];
      if (!db) {
        let password: string | undefined;
        if (cfg.masterPasswordEnv) {
          password = deps.env[cfg.masterPasswordEnv];
          if (!password) throw notSet(cfg.masterPasswordEnv);
          checkMasterPassword(password, cfg.masterPasswordEnv);
        } else if (cfg.masterPasswordStore === "data-dir") {
          password = await storedPassword(cfg);
          if (!password) {
            password = generatePassword();
            await storeGeneratedPassword(deps.dataDir, cfg.identifier, password);
            did.push(
              `generated the master password into ${masterPasswordPath(deps.dataDir, cfg.identifier)}`,
            );
          }
        }
        if (password) secrets.push(password);
        ctx.progress({ done: 0, message: `creating database ${cfg.identifier} (${cfg.instanceClass})` });
        await ctx.checkpoint.set("creatingInstance", true);
        await rds.createInstance({
          identifier: cfg.identifier,
          engine: cfg.engine,
          engineVersion: cfg.engineVersion,
          instanceClass: cfg.instanceClass,
          storageType: cfg.storageType,
          allocatedStorageGb: cfg.allocatedStorageGb,
          ...(cfg.maxAllocatedStorageGb ? { maxAllocatedStorageGb: cfg.maxAllocatedStorageGb } : {}),
          multiAz: cfg.multiAz,
          backupRetentionDays: cfg.backupRetentionDays,
          publiclyAccessible: cfg.publiclyAccessible,
          storageEncrypted: cfg.storageEncrypted,
          ...(cfg.kmsKeyId ? { kmsKeyId: cfg.kmsKeyId } : {}),
          masterUsername: cfg.masterUsername,
          ...(password ? { masterPassword: password } : { manageMasterPassword: true }),
          dbName: cfg.dbName,
          port: cfg.port,
          securityGroupIds: [sg.groupId],
          ...(usesParameterGroup ? { parameterGroupName: names.parameterGroup } : {}),
          deletionProtection: cfg.deletionProtection,
          tags: tagsOf(cfg),
        });
        await ctx.checkpoint.set("createdInstance", true);
        did.push(`created database ${cfg.identifier}`);
      } else {
        const drift = rdsDrift(cfg, db, {
          securityGroupId: sg.groupId,
          ...(usesParameterGroup ? { parameterGroup: names.parameterGroup } : {}),
        });
        if (drift.conflicts.length > 0) {
          throw new CutoverError(
            ErrorCode.ResourceConflict,
            `RDS instance ${cfg.identifier} already exists and ${drift.conflicts.join("; ")}.`,
            {
              hint: "Cutover never replaces a database. Pick another target.rds.identifier, or make the file match the instance.",
            },
          );
        }
        const changes = { ...drift.changes };
        if (cfg.masterPasswordStore === "data-dir" && !(await storedPassword(cfg))) {
          if (!input.resetMasterPassword) {
            throw new CutoverError(
              ErrorCode.BadArgument,
              `${cfg.identifier} exists but its master password is not in ${masterPasswordPath(deps.dataDir, cfg.identifier)}.`,
              {
                hint: "Put the password in that file (mode 0600), or run the step with resetMasterPassword: true to set a new one.",
              },
            );
          }
          const fresh = generatePassword();
          await storeGeneratedPassword(deps.dataDir, cfg.identifier, fresh);
          changes.masterPassword = fresh;
          drift.words.push("reset the master password");
        }
        if (Object.keys(changes).length > 0) {
          await rds.modifyInstance(cfg.identifier, changes);
          did.push(`modified ${cfg.identifier}: ${drift.words.join("; ")}`);
        }
      }

      await waitFor({
        what: `database ${cfg.identifier} to be available`,
        timeoutMs: input.waitSeconds * 1000,
        intervalMs: input.pollMs,
        ctx,
        check: async () => {
          db = await rds.describeInstance(cfg.identifier);
          return { done: db?.status === "available" && Boolean(db.endpoint), state: db?.status ?? "missing" };
        },
      });
      const endpoint = db!.endpoint!;
      const where = passwordLocation(cfg, deps.dataDir);
      await recordProvisioned(deps.dataDir, deps.file.environment, {
        "target.rds.endpoint": endpoint.address,
        "target.rds.port": String(endpoint.port),
        "target.rds.passwordLocation": where,
        ...(db!.masterUserSecretArn ? { "target.rds.masterUserSecretArn": db!.masterUserSecretArn } : {}),
      });
      await ctx.checkpoint.set("endpoint", `${endpoint.address}:${endpoint.port}`);
      return {
        summary:
          did.length === 0
            ? `${cfg.identifier} already as configured: ${endpoint.address}:${endpoint.port}`
            : `${did.join("; ")}; endpoint ${endpoint.address}:${endpoint.port}`,
        figures: {
          identifier: cfg.identifier,
          endpoint: endpoint.address,
          port: endpoint.port,
          securityGroupId: sg.groupId,
          admits: cidrs.join(","),
          passwordLocation: where,
          changed: did.length > 0,
        },
      };
    },

    async verify() {
      const { cfg, names, usesParameterGroup, rds, groups } = context();
      const problems: string[] = [];
      const db = await rds.describeInstance(cfg.identifier);
      const vpc = await vpcId(groups);
      const sg = await groups.find(names.securityGroup, vpc);
      const cidrs = await wantedCidrs(cfg);
      if (!db) problems.push(`database ${cfg.identifier} does not exist`);
      else {
        if (db.status !== "available") problems.push(`database is ${db.status}`);
        const drift = rdsDrift(cfg, db, {
          ...(sg ? { securityGroupId: sg.groupId } : {}),
          ...(usesParameterGroup ? { parameterGroup: names.parameterGroup } : {}),
        });
        problems.push(...drift.conflicts, ...drift.words.map((w) => `differs: ${w}`));
      }
      if (!sg) problems.push(`security group ${names.securityGroup} does not exist`);
      else {
        const { add, remove } = ingressDrift(sg.ingress, cfg.port, cidrs);
        if (add.length) problems.push(`security group does not admit ${add.join(", ")}`);
        if (remove.length)
          problems.push(`security group also admits ${remove.flatMap((r) => r.cidrs).join(", ")}`);
      }
      if (
        cfg.requireTls &&
        (await rds.getParameter(names.parameterGroup, "rds.force_ssl").catch(() => undefined)) !== "1"
      )
        problems.push("rds.force_ssl is not 1: clients could connect without TLS");
      if (
        deps.file.replication &&
        (await rds.getParameter(names.parameterGroup, "rds.logical_replication").catch(() => undefined)) !==
          "1"
      )
        problems.push(
          "rds.logical_replication is not 1: the reverse replication of the way back cannot start",
        );
      const recorded = (await readProvisioned(deps.dataDir, deps.file.environment))["target.rds.endpoint"];
      if (db?.endpoint && recorded !== db.endpoint.address)
        problems.push("the recorded endpoint differs from RDS's");
      return {
        ok: problems.length === 0,
        summary:
          problems.length === 0
            ? `${cfg.identifier} available at ${db?.endpoint?.address}:${db?.endpoint?.port}, ${cfg.instanceClass}, ${cfg.storageEncrypted ? "encrypted, " : ""}${cfg.requireTls ? "TLS required, " : ""}admits only ${cidrs.join(", ")}`
            : problems.join("; "),
        figures: { endpoint: db?.endpoint?.address ?? "", status: db?.status ?? "missing" },
      };
    },

    async undo(_input, ctx) {
      const cfg = cfgOf();
      const rds = rdsApi();
      const groups = sgApi();
      const createdInstance = await ctx.checkpoint.get("createdInstance");
      const createdSg = await ctx.checkpoint.get("createdSecurityGroup");
      const createdPg = await ctx.checkpoint.get("createdParameterGroup");
      const db = await rds.describeInstance(cfg.identifier);
      if (createdInstance && db) {
        if (db.tags[MANAGED_TAG] !== "true") {
          throw new CutoverError(
            ErrorCode.ResourceConflict,
            `Not deleting ${cfg.identifier}: it does not carry the ${MANAGED_TAG} tag, so Cutover did not create it.`,
          );
        }
        if (db.deletionProtection) await rds.modifyInstance(cfg.identifier, { deletionProtection: false });
        const snapshot = `${cfg.identifier}-cutover-undo-${stepNow(deps)().getTime()}`;
        await rds.deleteInstance(cfg.identifier, { finalSnapshotId: snapshot });
        ctx.log.info(
          { database: cfg.identifier, snapshot },
          "deleted the database this step created, keeping a final snapshot",
        );
        await waitFor({
          what: `database ${cfg.identifier} to be deleted`,
          timeoutMs: 1_800_000,
          intervalMs: 15_000,
          ctx,
          check: async () => {
            const now = await rds.describeInstance(cfg.identifier);
            return { done: !now, state: now?.status ?? "deleted" };
          },
        });
      }
      if (createdPg) await rds.deleteParameterGroup(createdPg);
      if (createdSg) await groups.delete(createdSg);
    },
  });
}
