import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { LightsailApi } from "../../../cloud/lightsail.js";
import { fileHostKeyStore, type RemoteShell, tailLines } from "../../../cloud/ssh.js";
import { type HostConfig, type MigrationFile, requireSection } from "../../../config/schema.js";
import { CancelledError, CutoverError, ErrorCode, isCutoverError, notSet } from "../../../errors.js";
import type { StepDeps } from "../../index.js";
import { readProvisioned, recordProvisioned } from "../../provisioned.js";
import type { Progress, StepContext } from "../../types.js";

/**
 * Polls until `check` says done, reporting what it waits for; bounded by `timeoutMs`.
 * The timeout error names the thing waited for and its last state.
 */
export async function waitFor(opts: {
  /** "instance app-server to be running" */
  what: string;
  timeoutMs: number;
  intervalMs: number;
  ctx: Pick<StepContext, "signal" | "progress">;
  check: () => Promise<{ done: boolean; state: string }>;
}): Promise<void> {
  const started = Date.now();
  let last = "unknown";
  for (;;) {
    opts.ctx.signal.throwIfAborted();
    const r = await opts.check();
    last = r.state;
    if (r.done) return;
    const elapsed = Math.round((Date.now() - started) / 1000);
    if (Date.now() - started >= opts.timeoutMs) {
      throw new CutoverError(
        ErrorCode.TimedOut,
        `Gave up waiting for ${opts.what} after ${elapsed} s (last state: ${last}).`,
        {
          hint: "Check it in the AWS console; run the step again to keep waiting (nothing is created twice).",
        },
      );
    }
    opts.ctx.progress({
      done: elapsed,
      total: Math.round(opts.timeoutMs / 1000),
      unit: "s",
      message: `waiting for ${opts.what} (now ${last})`,
    } satisfies Progress);
    await sleep(opts.intervalMs, undefined, { signal: opts.ctx.signal });
  }
}

/** The Lightsail port for `file`'s region (target.lightsail.region). */
export function lightsailFor(deps: StepDeps, file: MigrationFile = deps.file): LightsailApi {
  return deps.ports.lightsail(requireSection(file, "target.lightsail").region);
}

/**
 * The app host's address: `override`, else the static IP recorded by lightsail.instance, else
 * asked from Lightsail by the static IP's name (and recorded).
 */
export async function hostAddress(deps: StepDeps, override?: string): Promise<string> {
  if (override) return override;
  return lightsailStaticIp(deps);
}

/** The Lightsail static IP: as recorded by lightsail.instance, else asked from Lightsail by name. */
export async function lightsailStaticIp(deps: StepDeps, lightsail?: LightsailApi): Promise<string> {
  const recorded = (await readProvisioned(deps.dataDir, deps.file.environment))["target.lightsail.staticIp"];
  if (recorded) return recorded;
  const cfg = requireSection(deps.file, "target.lightsail");
  const ip = await (lightsail ?? lightsailFor(deps)).getStaticIp(cfg.staticIpName);
  if (!ip) {
    throw new CutoverError(
      ErrorCode.BadArgument,
      `The static IP ${cfg.staticIpName} does not exist yet: run the lightsail.instance step first.`,
    );
  }
  await recordProvisioned(deps.dataDir, deps.file.environment, { "target.lightsail.staticIp": ip.ipAddress });
  return ip.ipAddress;
}

/** Reads the SSH private key named by target.host.sshKeyPathEnv. */
export async function readSshKey(deps: StepDeps, host: HostConfig): Promise<{ key: string; label: string }> {
  const path = deps.env[host.sshKeyPathEnv];
  if (!path) {
    throw notSet(host.sshKeyPathEnv, {
      hint: `Set ${host.sshKeyPathEnv} to the path of the private key of the instance's key pair.`,
    });
  }
  try {
    return { key: await readFile(path, "utf8"), label: `from ${host.sshKeyPathEnv} (${path})` };
  } catch (err) {
    throw new CutoverError(
      ErrorCode.BadArgument,
      `The SSH key file named by ${host.sshKeyPathEnv} (${path}) cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}.`,
      { cause: err },
    );
  }
}

/** Options every SSH step takes in its `with:` block. */
export interface SshWith {
  /** connect here instead of the static IP (a private address, a bastion's forward) */
  address?: string | undefined;
  connectTimeoutSeconds: number;
}

/** Opens the host-key-checked shell to the app host. */
export async function openHostShell(
  deps: StepDeps,
  w: SshWith,
  ctx: Pick<StepContext, "signal">,
): Promise<RemoteShell> {
  const host = requireSection(deps.file, "target.host");
  const address = await hostAddress(deps, w.address);
  const { key, label } = await readSshKey(deps, host);
  return deps.ports.ssh.connect({
    host: address,
    port: host.sshPort,
    username: host.sshUser,
    privateKey: key,
    keyLabel: label,
    ...(host.hostKeyFingerprint ? { pinnedFingerprint: host.hostKeyFingerprint } : {}),
    knownHosts: fileHostKeyStore(join(deps.dataDir, "known_hosts.json")),
    connectTimeoutMs: w.connectTimeoutSeconds * 1000,
    signal: ctx.signal,
  });
}

/**
 * Opens the shell like {@link openHostShell}, waiting first for the SSH port: a Lightsail
 * instance is `running` well before its sshd answers (the first boot's cloud-init), and a
 * connection refused or unanswered then is not a failure yet. Retries with a growing pause
 * (1 s doubling to 10 s) for at most `waitSeconds`, telling each retry to `ctx.progress` (what
 * it waits for, why, and until when); a refused key or a changed host key stops at once.
 */
export async function openHostShellWhenReady(
  deps: StepDeps,
  w: SshWith & { sshReadySeconds: number },
  ctx: Pick<StepContext, "signal" | "progress">,
): Promise<RemoteShell> {
  const deadline = Date.now() + w.sshReadySeconds * 1000;
  let pauseMs = 1_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await openHostShell(deps, w, ctx);
    } catch (err) {
      if (!isCutoverError(err, ErrorCode.Unreachable)) throw err;
      const left = deadline - Date.now();
      if (left <= 0) {
        if (w.sshReadySeconds === 0) throw err;
        throw new CutoverError(
          ErrorCode.Unreachable,
          `SSH on the app host did not come up within ${w.sshReadySeconds} s (${attempt} tries; last: ${err.message})`,
          {
            cause: err,
            details: { ...err.details, attempts: attempt, waitedSeconds: w.sshReadySeconds },
            ...(err.hint ? { hint: err.hint } : {}),
          },
        );
      }
      const wait = Math.min(pauseMs, left);
      ctx.progress({
        done: attempt,
        unit: "tries",
        message: `waiting for SSH on the app host to answer (${err.message.replace(/\.$/, "")}); try ${attempt + 1} in ${Math.ceil(wait / 1000)} s, giving up at ${new Date(deadline).toISOString().slice(11, 19)} UTC`,
      });
      await abortableSleep(wait, ctx.signal);
      pauseMs = Math.min(10_000, pauseMs * 2);
    }
  }
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new CancelledError());
    const onAbort = () => {
      clearTimeout(timer);
      reject(new CancelledError());
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** `sudo -n ` unless the SSH user is root. */
export function sudoFor(host: HostConfig): string {
  return host.sshUser === "root" ? "" : "sudo -n ";
}

/** Replaces every secret value in text with `[redacted]` (values shorter than 4 characters are left). */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join("[redacted]");
  return out;
}

/**
 * Streams a remote command's output to the run: each complete line goes to the step's log, the
 * latest one (trimmed) to its progress line; `::cutover:: section X` markers become "section k of
 * n", and as each section ends its last lines go into the run's thread (trimmed, one message
 * per section). Secrets are redacted before anything leaves.
 */
export class OutputRelay {
  private partial = "";
  private section = "";
  private lastLine = "";
  private readonly lines: string[] = [];
  /** lines of the section running now, for its thread excerpt */
  private sectionLines: string[] = [];
  private sectionCount = 0;

  /** lines of each section shown in the thread */
  static readonly EXCERPT_LINES = 8;

  constructor(
    private readonly ctx: Pick<StepContext, "log" | "progress" | "report">,
    private readonly opts: { sections?: readonly string[]; secrets?: readonly string[]; label: string },
  ) {}

  /** feed for ExecOptions.onOutput */
  readonly onOutput = (text: string): void => {
    const all = this.partial + text;
    const parts = all.split(/\r?\n/);
    this.partial = parts.pop() ?? "";
    for (const raw of parts) this.line(raw);
  };

  private line(raw: string): void {
    const line = redact(raw, this.opts.secrets ?? []).replace(/\s+$/, "");
    if (!line) return;
    if (!line.startsWith("::cutover::")) {
      this.lines.push(line);
      if (this.lines.length > 200) this.lines.shift();
      this.sectionLines.push(line);
      this.sectionCount++;
      if (this.sectionLines.length > OutputRelay.EXCERPT_LINES) this.sectionLines.shift();
    }
    this.ctx.log.info({ host: this.opts.label, line: line.slice(0, 500) }, "remote output");
    const m = /^::cutover:: section (\S+)/.exec(line);
    if (m) {
      this.flushSection();
      this.section = m[1]!;
    } else if (!line.startsWith("::cutover::")) this.lastLine = line.slice(0, 150);
    const sections = this.opts.sections ?? [];
    const index = sections.indexOf(this.section);
    this.ctx.progress({
      done: index >= 0 ? index + 1 : 0,
      ...(sections.length > 0 ? { total: sections.length, unit: "sections" } : {}),
      message: `${this.opts.label}${this.section ? ` · ${this.section}` : ""}${this.lastLine ? ` · ${this.lastLine}` : ""}`,
    });
  }

  /** Posts what is left of the last section's output to the thread; call when the command ends. */
  finish(): void {
    const rest = redact(this.partial, this.opts.secrets ?? []).trim();
    if (rest) {
      this.sectionLines.push(rest.slice(0, 300));
      this.sectionCount++;
    }
    this.partial = "";
    this.flushSection();
  }

  private flushSection(): void {
    if (!this.ctx.report || this.sectionLines.length === 0) {
      this.sectionLines = [];
      this.sectionCount = 0;
      return;
    }
    const shown = this.sectionLines.map((l) => (l.length > 200 ? `${l.slice(0, 199)}…` : l));
    const skipped = this.sectionCount - shown.length;
    const title = `${this.opts.label}${this.section ? ` · ${this.section}` : ""}`;
    this.ctx.report({
      text: `${title} (${this.sectionCount} line${this.sectionCount === 1 ? "" : "s"}${skipped > 0 ? `, last ${shown.length}` : ""}):\n\`\`\`\n${shown.join("\n").replace(/```/g, "ˋˋˋ")}\n\`\`\``,
    });
    this.sectionLines = [];
    this.sectionCount = 0;
  }

  /** The section running when output stopped. */
  get currentSection(): string {
    return this.section;
  }

  /** The last `n` lines seen (redacted). */
  tail(n: number): string {
    return tailLines([...this.lines, redact(this.partial, this.opts.secrets ?? [])].join("\n"), n);
  }
}

/**
 * The error for a script that exited non-zero: the failing command (from the script's ERR
 * trap), its section, and the last lines of output.
 */
export function scriptFailure(
  what: string,
  result: { code: number | null; stdout: string; stderr: string },
  relay: OutputRelay,
  secrets: readonly string[],
): CutoverError {
  const all = redact(`${result.stdout}\n${result.stderr}`, secrets);
  const trap = /::cutover:: failed line=(\d+) exit=(\d+) command=(.*)$/m.exec(all);
  const command = trap ? trap[3]!.trim() : undefined;
  const tail = relay.tail(15);
  const section = relay.currentSection;
  return new CutoverError(
    ErrorCode.RemoteCommandFailed,
    `${what} failed${section ? ` in section ${section}` : ""}${command ? `: \`${command}\` exited ${trap![2]}` : ` with exit code ${result.code ?? "none (killed)"}`}.\nLast lines:\n${tail || "(no output)"}`,
    { details: { section, command, code: result.code } },
  );
}
