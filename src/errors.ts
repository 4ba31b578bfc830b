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
  BadArgument = "bad_argument",
  Unreachable = "unreachable",
}

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
  return "Something went wrong inside Cutover; the details are in its log. Try again, and if it repeats, run `/migrate status`.";
}

export function isCutoverError(err: unknown, code?: ErrorCode): err is CutoverError {
  return err instanceof CutoverError && (code === undefined || err.code === code);
}
