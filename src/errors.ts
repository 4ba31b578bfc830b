import { networkCode } from "./util/network.js";

/**
 * Typed errors. Every error a person can meet carries a code; {@link describeError} is the
 * one place that turns a code into a sentence saying what to do.
 */
export enum ErrorCode {
  ConfigInvalid = "config_invalid",
  SettingsMissing = "settings_missing",
  NotAuthorised = "not_authorised",
  ChannelNotAllowed = "channel_not_allowed",
  UnknownCommand = "unknown_command",
  UnknownStep = "unknown_step",
  StepNotAvailable = "step_not_available",
  LockHeld = "lock_held",
  RunNotFound = "run_not_found",
  RunFinished = "run_finished",
  Cancelled = "cancelled",
  StepFailed = "step_failed",
  /** a verification found differences: a result, reported once, never retried */
  VerificationDiffered = "verification_differed",
  BadArgument = "bad_argument",
  Unreachable = "unreachable",
  /** Cloudflare refused the API token (invalid, expired, or lacking a permission) */
  CloudflareAuthFailed = "cloudflare_auth_failed",
  /** a Cloudflare API call failed: the message names the zone, record or project and Cloudflare's error */
  CloudflareFailed = "cloudflare_failed",
  /** a zone, DNS record, Pages project or deployment Cutover needs does not exist */
  CloudflareNotFound = "cloudflare_not_found",
  /** more than one DNS record has the name and type Cutover is asked to switch */
  DnsRecordAmbiguous = "dns_record_ambiguous",
  /** a service's rate limit: it asks to wait longer than Cutover waits (the message says until when) */
  RateLimited = "rate_limited",
  /** a Cloudflare Pages deployment ended in failure or was cancelled */
  DeployFailed = "deploy_failed",
  /** a bounded wait ran out */
  TimedOut = "timed_out",
  /** AWS refused an action for lack of permission: the message names the action (lightsail:CreateInstances) */
  AwsPermissionDenied = "aws_permission_denied",
  /** a cloud resource with the configured name exists but differs in a way Cutover cannot change in place */
  ResourceConflict = "resource_conflict",
  /** the SSH host presented a key other than the pinned or recorded one */
  HostKeyChanged = "host_key_changed",
  /** the SSH host refused the configured key */
  SshAuthRefused = "ssh_auth_refused",
  /** a command on a remote host exited non-zero: the message names it and shows its last lines */
  RemoteCommandFailed = "remote_command_failed",
  /** a database refused or did not answer a connection: the message names the side (source, target) and why */
  DbConnectFailed = "db_connect_failed",
  /** pg_dump / pg_restore are missing, or too old for the source server */
  ToolMissing = "tool_missing",
  /** a preflight check failed: the message is the checklist */
  PreflightFailed = "preflight_failed",
  /** the target database holds objects and `--replace` was not given */
  TargetNotEmpty = "target_not_empty",
  /** the target database is the source (under another spelling of its URL): Cutover never writes to it */
  TargetIsSource = "target_is_source",
  /** pg_dump failed, or the dump folder cannot be written */
  DumpFailed = "dump_failed",
  /** a dump folder is missing, partial or unreadable */
  DumpInvalid = "dump_invalid",
  /** pg_restore failed: the message shows its errors */
  RestoreFailed = "restore_failed",
  /** an object store (source R2 or target S3) refused the credentials or the access: the message names the side */
  StorageAccessRefused = "storage_access_refused",
  /** a bucket Cutover reads or writes does not exist: the message names the side and the bucket */
  BucketMissing = "bucket_missing",
  /** a bucket lives in another region than the migration file says */
  RegionMismatch = "region_mismatch",
  /** a cutover's approval is missing, expired, used, or for a different change */
  ApprovalInvalid = "approval_invalid",
  /** the cutover cannot be requested yet (TTL countdown, window, pre-checks) */
  CutoverNotReady = "cutover_not_ready",
}

/** Codes a retry cannot fix: the runner fails the step at once instead of backing off. */
export const NOT_RETRYABLE: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.ConfigInvalid,
  // a variable the file names but the environment lacks: the running process's environment
  // does not change between attempts
  ErrorCode.SettingsMissing,
  ErrorCode.NotAuthorised,
  ErrorCode.BadArgument,
  ErrorCode.StepNotAvailable,
  ErrorCode.ApprovalInvalid,
  ErrorCode.CutoverNotReady,
  ErrorCode.TargetNotEmpty,
  ErrorCode.TargetIsSource,
  ErrorCode.HostKeyChanged,
  ErrorCode.AwsPermissionDenied,
  ErrorCode.CloudflareAuthFailed,
  ErrorCode.ToolMissing,
  ErrorCode.PreflightFailed,
  ErrorCode.VerificationDiffered,
]);

/** An error with a code and the facts needed to explain it. Never put a secret in `details`. */
export class CutoverError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;
  /** what the person should do next, when the code alone does not say it */
  readonly hint: string | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { details?: Record<string, unknown>; hint?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "CutoverError";
    this.code = code;
    this.details = opts.details ?? {};
    this.hint = opts.hint;
  }
}

/**
 * The one error for a variable the migration file names that is not set in Cutover's environment
 * (code SettingsMissing, never retried). `where` names the file's field that names it.
 *
 * @example throw notSet(db.urlEnv, { hint: `Set ${db.urlEnv} to the source database's URL.` });
 */
export function notSet(variable: string, opts: { where?: string; hint?: string } = {}): CutoverError {
  return new CutoverError(
    ErrorCode.SettingsMissing,
    `${variable} is not set${opts.where ? ` (${opts.where})` : ""}.`,
    opts.hint === undefined ? {} : { hint: opts.hint },
  );
}

/** Thrown when a run is cancelled through its AbortSignal. */
export class CancelledError extends CutoverError {
  constructor(by?: string) {
    super(ErrorCode.Cancelled, by ? `cancelled by ${by}` : "cancelled");
    this.name = "CancelledError";
  }
}

const HINTS: Partial<Record<ErrorCode, string>> = {
  [ErrorCode.NotAuthorised]: "Ask an owner of the migration file to add you under `access.operators`.",
  [ErrorCode.ChannelNotAllowed]:
    "Use one of the channels listed under `access.channels` in the migration file.",
  [ErrorCode.UnknownCommand]: "Type `/migrate help` to see every command.",
  [ErrorCode.UnknownStep]: "Type `/migrate plan` to see the phases and steps of this migration.",
  [ErrorCode.LockHeld]: "Wait for that run to finish, or cancel it with `/migrate cancel <run>`.",
  [ErrorCode.RunNotFound]: "Type `/migrate status` to see recent runs and their ids.",
};

/** One sentence (or a few) a person can act on, for any error. Unknown errors are not echoed verbatim. */
export function describeError(err: unknown): string {
  if (err instanceof CutoverError) {
    const hint = err.hint ?? HINTS[err.code];
    return hint ? `${err.message}\n${hint}` : err.message;
  }
  const lost = connectionLost(err);
  if (lost) {
    return `A connection was lost (${lost}): the network dropped it or the server restarted. Try again; if it repeats, check that the service is reachable from Cutover's host.`;
  }
  return "Something went wrong inside Cutover; the details are in its log. Try again, and if it repeats, run `/migrate status`.";
}

/** The code or the driver's words when an error is a lost or refused connection (no other text is echoed). */
function connectionLost(err: unknown): string | undefined {
  const code = networkCode(err);
  if (code) return code;
  const message = err instanceof Error ? err.message : "";
  if (/^Connection terminated( unexpectedly| due to connection timeout)?$/.test(message)) return message;
  return undefined;
}

export function isCutoverError(err: unknown, code?: ErrorCode): err is CutoverError {
  return err instanceof CutoverError && (code === undefined || err.code === code);
}
