import type { DescribeDBInstancesCommandOutput } from "@aws-sdk/client-rds";
import { type AwsClientOptions, awsCaller, awsErrorName, explainAwsError, sdkConfig } from "./aws-access.js";
import { lazyAwsClient } from "./lazy-sdk.js";

/** An RDS instance as Cutover needs to see it. */
export interface RdsInstanceInfo {
  identifier: string;
  /** creating, available, modifying, backing-up, deleting, … */
  status: string;
  engine: string;
  engineVersion: string;
  instanceClass: string;
  storageType: string;
  allocatedStorageGb: number;
  maxAllocatedStorageGb?: number;
  multiAz: boolean;
  backupRetentionDays: number;
  publiclyAccessible: boolean;
  storageEncrypted: boolean;
  masterUsername: string;
  dbName?: string;
  deletionProtection: boolean;
  endpoint?: { address: string; port: number };
  securityGroupIds: string[];
  parameterGroups: Array<{ name: string; status: string }>;
  /** set when RDS keeps the master password in Secrets Manager */
  masterUserSecretArn?: string;
  tags: Record<string, string>;
}

export interface NewRdsInstance {
  identifier: string;
  engine: string;
  engineVersion: string;
  instanceClass: string;
  storageType: string;
  allocatedStorageGb: number;
  maxAllocatedStorageGb?: number;
  multiAz: boolean;
  backupRetentionDays: number;
  publiclyAccessible: boolean;
  storageEncrypted: boolean;
  kmsKeyId?: string;
  masterUsername: string;
  /** the password Cutover sets; absent with `manageMasterPassword` */
  masterPassword?: string;
  /** RDS generates the password and keeps it in Secrets Manager */
  manageMasterPassword?: boolean;
  dbName: string;
  port: number;
  securityGroupIds: string[];
  parameterGroupName?: string;
  deletionProtection: boolean;
  tags: Record<string, string>;
}

/** What may be changed on an existing instance (a subset of ModifyDBInstance). */
export interface RdsChanges {
  instanceClass?: string;
  storageType?: string;
  allocatedStorageGb?: number;
  maxAllocatedStorageGb?: number;
  multiAz?: boolean;
  backupRetentionDays?: number;
  publiclyAccessible?: boolean;
  deletionProtection?: boolean;
  securityGroupIds?: string[];
  parameterGroupName?: string;
  masterPassword?: string;
}

/**
 * The RDS calls the database provisioning step makes. "Not found" is `undefined`; any other
 * failure is a CutoverError naming the IAM action when it is a permission failure.
 *
 * @example const db = await rds.describeInstance("app-db"); db?.endpoint?.address
 */
export interface RdsApi {
  describeInstance(identifier: string): Promise<RdsInstanceInfo | undefined>;
  createInstance(spec: NewRdsInstance): Promise<void>;
  modifyInstance(identifier: string, changes: RdsChanges): Promise<void>;
  /** deletes the instance, keeping a final snapshot when `finalSnapshotId` is given */
  deleteInstance(identifier: string, opts: { finalSnapshotId?: string }): Promise<void>;
  getParameterGroup(name: string): Promise<{ name: string; family: string } | undefined>;
  createParameterGroup(
    name: string,
    family: string,
    description: string,
    tags: Record<string, string>,
  ): Promise<void>;
  /** the value of one parameter in a group, or undefined when it is unset */
  getParameter(group: string, parameter: string): Promise<string | undefined>;
  setParameters(group: string, values: Record<string, string>): Promise<void>;
  deleteParameterGroup(name: string): Promise<void>;
}

/** The adapter over `@aws-sdk/client-rds`; built by the step factory, never a module singleton. */
export function createRds(opts: AwsClientOptions): RdsApi {
  const client = lazyAwsClient(
    () => import("@aws-sdk/client-rds"),
    (sdk) => new sdk.RDSClient(sdkConfig(opts)),
  );
  const call = awsCaller("rds");
  const tagList = (tags: Record<string, string>) =>
    Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));

  return {
    async describeInstance(identifier) {
      let out: DescribeDBInstancesCommandOutput;
      try {
        out = await client.send(
          (sdk) => new sdk.DescribeDBInstancesCommand({ DBInstanceIdentifier: identifier }),
        );
      } catch (err) {
        if (/DBInstanceNotFound/.test(awsErrorName(err))) return undefined;
        throw explainAwsError(err, "rds:DescribeDBInstances", `database ${identifier}`);
      }
      const d = out.DBInstances?.[0];
      if (!d) return undefined;
      const tags: Record<string, string> = {};
      for (const t of d.TagList ?? []) if (t.Key) tags[t.Key] = t.Value ?? "";
      return {
        identifier: d.DBInstanceIdentifier ?? identifier,
        status: d.DBInstanceStatus ?? "unknown",
        engine: d.Engine ?? "",
        engineVersion: d.EngineVersion ?? "",
        instanceClass: d.DBInstanceClass ?? "",
        storageType: d.StorageType ?? "",
        allocatedStorageGb: d.AllocatedStorage ?? 0,
        ...(d.MaxAllocatedStorage ? { maxAllocatedStorageGb: d.MaxAllocatedStorage } : {}),
        multiAz: d.MultiAZ ?? false,
        backupRetentionDays: d.BackupRetentionPeriod ?? 0,
        publiclyAccessible: d.PubliclyAccessible ?? false,
        storageEncrypted: d.StorageEncrypted ?? false,
        masterUsername: d.MasterUsername ?? "",
        ...(d.DBName ? { dbName: d.DBName } : {}),
        deletionProtection: d.DeletionProtection ?? false,
        ...(d.Endpoint?.Address
          ? { endpoint: { address: d.Endpoint.Address, port: d.Endpoint.Port ?? 5432 } }
          : {}),
        securityGroupIds: (d.VpcSecurityGroups ?? [])
          .filter((g) => g.Status !== "removing")
          .map((g) => g.VpcSecurityGroupId ?? "")
          .filter(Boolean),
        parameterGroups: (d.DBParameterGroups ?? []).map((g) => ({
          name: g.DBParameterGroupName ?? "",
          status: g.ParameterApplyStatus ?? "",
        })),
        ...(d.MasterUserSecret?.SecretArn ? { masterUserSecretArn: d.MasterUserSecret.SecretArn } : {}),
        tags,
      };
    },
    async createInstance(s) {
      await call("CreateDBInstance", `database ${s.identifier}`, () =>
        client.send(
          (sdk) =>
            new sdk.CreateDBInstanceCommand({
              DBInstanceIdentifier: s.identifier,
              Engine: s.engine,
              EngineVersion: s.engineVersion,
              DBInstanceClass: s.instanceClass,
              StorageType: s.storageType,
              AllocatedStorage: s.allocatedStorageGb,
              ...(s.maxAllocatedStorageGb ? { MaxAllocatedStorage: s.maxAllocatedStorageGb } : {}),
              MultiAZ: s.multiAz,
              BackupRetentionPeriod: s.backupRetentionDays,
              PubliclyAccessible: s.publiclyAccessible,
              StorageEncrypted: s.storageEncrypted,
              ...(s.kmsKeyId ? { KmsKeyId: s.kmsKeyId } : {}),
              MasterUsername: s.masterUsername,
              ...(s.manageMasterPassword
                ? { ManageMasterUserPassword: true }
                : { MasterUserPassword: s.masterPassword }),
              DBName: s.dbName,
              Port: s.port,
              VpcSecurityGroupIds: s.securityGroupIds,
              ...(s.parameterGroupName ? { DBParameterGroupName: s.parameterGroupName } : {}),
              DeletionProtection: s.deletionProtection,
              CopyTagsToSnapshot: true,
              Tags: tagList(s.tags),
            }),
        ),
      );
    },
    async modifyInstance(identifier, c) {
      await call("ModifyDBInstance", `database ${identifier}`, () =>
        client.send(
          (sdk) =>
            new sdk.ModifyDBInstanceCommand({
              DBInstanceIdentifier: identifier,
              ApplyImmediately: true,
              ...(c.instanceClass !== undefined ? { DBInstanceClass: c.instanceClass } : {}),
              ...(c.storageType !== undefined ? { StorageType: c.storageType } : {}),
              ...(c.allocatedStorageGb !== undefined ? { AllocatedStorage: c.allocatedStorageGb } : {}),
              ...(c.maxAllocatedStorageGb !== undefined
                ? { MaxAllocatedStorage: c.maxAllocatedStorageGb }
                : {}),
              ...(c.multiAz !== undefined ? { MultiAZ: c.multiAz } : {}),
              ...(c.backupRetentionDays !== undefined
                ? { BackupRetentionPeriod: c.backupRetentionDays }
                : {}),
              ...(c.publiclyAccessible !== undefined ? { PubliclyAccessible: c.publiclyAccessible } : {}),
              ...(c.deletionProtection !== undefined ? { DeletionProtection: c.deletionProtection } : {}),
              ...(c.securityGroupIds !== undefined ? { VpcSecurityGroupIds: c.securityGroupIds } : {}),
              ...(c.parameterGroupName !== undefined ? { DBParameterGroupName: c.parameterGroupName } : {}),
              ...(c.masterPassword !== undefined ? { MasterUserPassword: c.masterPassword } : {}),
            }),
        ),
      );
    },
    async deleteInstance(identifier, o) {
      await call("DeleteDBInstance", `database ${identifier}`, () =>
        client.send(
          (sdk) =>
            new sdk.DeleteDBInstanceCommand({
              DBInstanceIdentifier: identifier,
              ...(o.finalSnapshotId
                ? { SkipFinalSnapshot: false, FinalDBSnapshotIdentifier: o.finalSnapshotId }
                : { SkipFinalSnapshot: true }),
              DeleteAutomatedBackups: false,
            }),
        ),
      );
    },
    async getParameterGroup(name) {
      try {
        const out = await client.send(
          (sdk) => new sdk.DescribeDBParameterGroupsCommand({ DBParameterGroupName: name }),
        );
        const g = out.DBParameterGroups?.[0];
        return g
          ? { name: g.DBParameterGroupName ?? name, family: g.DBParameterGroupFamily ?? "" }
          : undefined;
      } catch (err) {
        if (/DBParameterGroupNotFound/.test(awsErrorName(err))) return undefined;
        throw explainAwsError(err, "rds:DescribeDBParameterGroups", `parameter group ${name}`);
      }
    },
    async createParameterGroup(name, family, description, tags) {
      await call("CreateDBParameterGroup", `parameter group ${name}`, () =>
        client.send(
          (sdk) =>
            new sdk.CreateDBParameterGroupCommand({
              DBParameterGroupName: name,
              DBParameterGroupFamily: family,
              Description: description,
              Tags: tagList(tags),
            }),
        ),
      );
    },
    async getParameter(group, parameter) {
      let marker: string | undefined;
      do {
        const out = await call("DescribeDBParameters", `parameter group ${group}`, () =>
          client.send(
            (sdk) =>
              new sdk.DescribeDBParametersCommand({
                DBParameterGroupName: group,
                ...(marker ? { Marker: marker } : {}),
              }),
          ),
        );
        const p = out.Parameters?.find((x) => x.ParameterName === parameter);
        if (p) return p.ParameterValue;
        marker = out.Marker;
      } while (marker);
      return undefined;
    },
    async setParameters(group, values) {
      await call("ModifyDBParameterGroup", `parameter group ${group}`, () =>
        client.send(
          (sdk) =>
            new sdk.ModifyDBParameterGroupCommand({
              DBParameterGroupName: group,
              Parameters: Object.entries(values).map(([ParameterName, ParameterValue]) => ({
                ParameterName,
                ParameterValue,
                ApplyMethod: "immediate",
              })),
            }),
        ),
      );
    },
    async deleteParameterGroup(name) {
      await call("DeleteDBParameterGroup", `parameter group ${name}`, () =>
        client.send((sdk) => new sdk.DeleteDBParameterGroupCommand({ DBParameterGroupName: name })),
      );
    },
  };
}
