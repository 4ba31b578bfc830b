import type { GetSecretValueCommandOutput } from "@aws-sdk/client-secrets-manager";
import { CutoverError, ErrorCode } from "../errors.js";
import { type AwsClientOptions, explainAwsError, sdkConfig } from "./aws-access.js";
import { lazyAwsClient } from "./lazy-sdk.js";

/** Secrets Manager, as Cutover uses it. */
export interface SecretsApi {
  /**
   * The password RDS keeps for a database it manages the master password of
   * (`ManageMasterUserPassword`): its secret holds `{"username": …, "password": …}`. For the
   * database copy and the host's .env only; never for a message or a log.
   */
  rdsManagedPassword(secretArn: string): Promise<string>;
}

/** The adapter over `@aws-sdk/client-secrets-manager`; its client is built at the first call, once. */
export function createSecrets(opts: AwsClientOptions): SecretsApi {
  const client = lazyAwsClient(
    () => import("@aws-sdk/client-secrets-manager"),
    (sdk) => new sdk.SecretsManagerClient(sdkConfig(opts)),
  );
  return {
    async rdsManagedPassword(secretArn) {
      let out: GetSecretValueCommandOutput;
      try {
        out = await client.send((sdk) => new sdk.GetSecretValueCommand({ SecretId: secretArn }));
      } catch (err) {
        throw explainAwsError(err, "secretsmanager:GetSecretValue", `the secret ${secretArn}`);
      }
      let password: unknown;
      try {
        password = (JSON.parse(out.SecretString ?? "") as { password?: unknown }).password;
      } catch {
        password = undefined;
      }
      if (typeof password !== "string" || password === "") {
        throw new CutoverError(
          ErrorCode.BadArgument,
          `The secret ${secretArn} holds no "password" field: it is not one RDS manages.`,
          { hint: "Check target.rds.masterPasswordStore, or give the password through masterPasswordEnv." },
        );
      }
      return password;
    },
  };
}
