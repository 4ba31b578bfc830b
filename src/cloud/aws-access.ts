import { CutoverError, ErrorCode } from "../errors.js";

/** Where and as whom an AWS client talks; everything optional falls back to the SDK's chain. */
export interface AwsClientOptions {
  region: string;
  /** a stand-in's address (moto, the Lightsail fake); unset means AWS itself */
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  maxAttempts?: number;
}

/**
 * Client options for one AWS service, read explicitly from an environment (never from
 * process.env behind the caller's back), so tests and rehearsals can point a step at a fake:
 * `AWS_ENDPOINT_URL_<SERVICE>` wins over `AWS_ENDPOINT_URL`, and static keys are used when both
 * `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are set (otherwise the SDK's usual chain).
 *
 * @example awsOptionsFromEnv(deps.env, "LIGHTSAIL", "ap-southeast-1")
 */
export function awsOptionsFromEnv(env: NodeJS.ProcessEnv, service: string, region: string): AwsClientOptions {
  const endpoint = env[`AWS_ENDPOINT_URL_${service.toUpperCase()}`] || env.AWS_ENDPOINT_URL || undefined;
  const opts: AwsClientOptions = { region };
  if (endpoint) opts.endpoint = endpoint;
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    opts.credentials = {
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
    };
  }
  const attempts = Number(env.AWS_MAX_ATTEMPTS);
  if (Number.isInteger(attempts) && attempts > 0) opts.maxAttempts = attempts;
  return opts;
}

/** The SDK client configuration for `opts` (every AWS client here is built from this). */
export function sdkConfig(opts: AwsClientOptions) {
  return {
    region: opts.region,
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
    ...(opts.maxAttempts ? { maxAttempts: opts.maxAttempts } : {}),
  };
}

/**
 * A call wrapper for one service: an SDK error becomes a CutoverError naming the IAM action
 * (`<service>:<action>`) and the resource, with what to do.
 *
 * @example const call = awsCaller("ec2"); await call("CreateSecurityGroup", `group ${name}`, () => client.send(…));
 */
export function awsCaller(service: string) {
  return async <T>(action: string, resource: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw explainAwsError(err, `${service}:${action}`, resource);
    }
  };
}

const DENIED = new Set([
  "AccessDenied",
  "AccessDeniedException",
  "UnauthorizedOperation",
  "UnauthorizedAccess",
  "AuthorizationError",
  "NotAuthorized",
]);

interface AwsLikeError {
  name?: string;
  message?: string;
  Code?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

/** Whether an SDK error says the caller lacks permission. */
export function isAccessDenied(err: unknown): boolean {
  const e = err as AwsLikeError | undefined;
  if (!e || typeof e !== "object") return false;
  return DENIED.has(e.name ?? "") || DENIED.has(e.Code ?? "") || DENIED.has(e.code ?? "");
}

/** The error's AWS name (NotFoundException, DBInstanceNotFound, …). */
export function awsErrorName(err: unknown): string {
  const e = err as AwsLikeError | undefined;
  return e?.name ?? e?.Code ?? "";
}

/**
 * Turns an SDK error into a CutoverError a person can act on. A permission failure names the
 * IAM action (`lightsail:CreateInstances`) so the policy can be fixed; other errors keep AWS's
 * message (which never holds a secret of ours).
 */
export function explainAwsError(err: unknown, action: string, resource: string): CutoverError {
  if (err instanceof CutoverError) return err;
  const e = err as AwsLikeError;
  const awsMessage = (e?.message ?? String(err)).slice(0, 300);
  if (isAccessDenied(err)) {
    return new CutoverError(
      ErrorCode.AwsPermissionDenied,
      `AWS refused ${action} on ${resource}: the credentials Cutover uses are not allowed to call ${action}.`,
      {
        cause: err,
        details: { action, resource },
        hint: `Add "${action}" to the IAM policy of the user or role Cutover runs as, then run the step again. (AWS said: ${awsMessage})`,
      },
    );
  }
  const status = e?.$metadata?.httpStatusCode;
  if (
    e?.name === "TimeoutError" ||
    (err as { code?: string })?.code === "ECONNREFUSED" ||
    status === undefined
  ) {
    if (!e?.name || e.name === "TimeoutError" || e.name === "Error") {
      return new CutoverError(
        ErrorCode.Unreachable,
        `Could not reach AWS for ${action} on ${resource}: ${awsMessage}`,
        { cause: err, details: { action, resource } },
      );
    }
  }
  return new CutoverError(
    ErrorCode.StepFailed,
    `${action} on ${resource} failed: ${e?.name ? `${e.name}: ` : ""}${awsMessage}`,
    { cause: err, details: { action, resource, awsError: e?.name } },
  );
}
