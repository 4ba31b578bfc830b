import { type AwsClientOptions, awsCaller, sdkConfig } from "./aws-access.js";
import { lazyAwsClient } from "./lazy-sdk.js";

/** One inbound TCP rule: a port range and the IPv4 blocks allowed on it. */
export interface IngressRule {
  fromPort: number;
  toPort: number;
  protocol: string;
  cidrs: string[];
}

export interface SecurityGroup {
  groupId: string;
  name: string;
  vpcId: string;
  ingress: IngressRule[];
}

/**
 * The EC2 security-group calls the database step makes (RDS's firewall is a VPC security group).
 *
 * @example const sg = await groups.find("app-db", vpcId); sg?.ingress
 */
export interface SecurityGroupApi {
  /** the account's default VPC in the region, or undefined when it has none */
  defaultVpcId(): Promise<string | undefined>;
  find(name: string, vpcId: string): Promise<SecurityGroup | undefined>;
  create(name: string, description: string, vpcId: string, tags: Record<string, string>): Promise<string>;
  authorize(groupId: string, port: number, cidrs: string[], description: string): Promise<void>;
  revoke(groupId: string, rule: IngressRule): Promise<void>;
  delete(groupId: string): Promise<void>;
}

/** The adapter over `@aws-sdk/client-ec2`. */
export function createSecurityGroups(opts: AwsClientOptions): SecurityGroupApi {
  const client = lazyAwsClient(
    () => import("@aws-sdk/client-ec2"),
    (sdk) => new sdk.EC2Client(sdkConfig(opts)),
  );
  const call = awsCaller("ec2");
  return {
    async defaultVpcId() {
      const out = await call("DescribeVpcs", "the default VPC", () =>
        client.send(
          (sdk) => new sdk.DescribeVpcsCommand({ Filters: [{ Name: "is-default", Values: ["true"] }] }),
        ),
      );
      return out.Vpcs?.[0]?.VpcId;
    },
    async find(name, vpcId) {
      const out = await call("DescribeSecurityGroups", `security group ${name}`, () =>
        client.send(
          (sdk) =>
            new sdk.DescribeSecurityGroupsCommand({
              Filters: [
                { Name: "group-name", Values: [name] },
                { Name: "vpc-id", Values: [vpcId] },
              ],
            }),
        ),
      );
      const g = out.SecurityGroups?.[0];
      if (!g?.GroupId) return undefined;
      return {
        groupId: g.GroupId,
        name: g.GroupName ?? name,
        vpcId: g.VpcId ?? vpcId,
        ingress: (g.IpPermissions ?? []).map((p) => ({
          fromPort: p.FromPort ?? 0,
          toPort: p.ToPort ?? p.FromPort ?? 0,
          protocol: p.IpProtocol ?? "tcp",
          cidrs: (p.IpRanges ?? []).map((r) => r.CidrIp ?? "").filter(Boolean),
        })),
      };
    },
    async create(name, description, vpcId, tags) {
      const out = await call("CreateSecurityGroup", `security group ${name}`, () =>
        client.send(
          (sdk) =>
            new sdk.CreateSecurityGroupCommand({
              GroupName: name,
              Description: description,
              VpcId: vpcId,
              TagSpecifications: [
                {
                  ResourceType: "security-group",
                  Tags: Object.entries({ Name: name, ...tags }).map(([Key, Value]) => ({ Key, Value })),
                },
              ],
            }),
        ),
      );
      return out.GroupId ?? "";
    },
    async authorize(groupId, port, cidrs, description) {
      if (cidrs.length === 0) return;
      await call("AuthorizeSecurityGroupIngress", `security group ${groupId}`, () =>
        client.send(
          (sdk) =>
            new sdk.AuthorizeSecurityGroupIngressCommand({
              GroupId: groupId,
              IpPermissions: [
                {
                  IpProtocol: "tcp",
                  FromPort: port,
                  ToPort: port,
                  IpRanges: cidrs.map((CidrIp) => ({ CidrIp, Description: description })),
                },
              ],
            }),
        ),
      );
    },
    async revoke(groupId, rule) {
      if (rule.cidrs.length === 0) return;
      await call("RevokeSecurityGroupIngress", `security group ${groupId}`, () =>
        client.send(
          (sdk) =>
            new sdk.RevokeSecurityGroupIngressCommand({
              GroupId: groupId,
              IpPermissions: [
                {
                  IpProtocol: rule.protocol,
                  FromPort: rule.fromPort,
                  ToPort: rule.toPort,
                  IpRanges: rule.cidrs.map((CidrIp) => ({ CidrIp })),
                },
              ],
            }),
        ),
      );
    },
    async delete(groupId) {
      await call("DeleteSecurityGroup", `security group ${groupId}`, () =>
        client.send((sdk) => new sdk.DeleteSecurityGroupCommand({ GroupId: groupId })),
      );
    },
  };
}
