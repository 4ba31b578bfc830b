import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileHostKeyStore, type RemoteShell } from "../../../cloud/ssh.js";
import { type HostConfig, requireSection } from "../../../config/schema.js";
import {
  CancelledError,
  CutoverError,
  describeError,
  ErrorCode,
  isCutoverError,
  notSet,
} from "../../../errors.js";
import type { PlannedChange, StepContext, StepDeps } from "../../define-step.js";
import { hostAddress } from "./address.js";

/** The SSH session to the app host: its key, its options, and opening it (waiting for sshd on a new instance). */

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
 * A plan's look at the app host: opens the shell, lets `look` add to `changes` what it reads
 * there, and closes it. A host that cannot be reached (a plan made before the instance exists,
 * or sshd not up yet) is one more change saying so, not a failure of the plan.
 */
export async function lookAtHost(
  deps: StepDeps,
  w: SshWith,
  ctx: Pick<StepContext, "signal">,
  changes: PlannedChange[],
  look: (shell: RemoteShell) => Promise<void>,
): Promise<void> {
  try {
    const shell = await openHostShell(deps, w, ctx);
    try {
      await look(shell);
    } finally {
      await shell.close();
    }
  } catch (err) {
    changes.push({
      action: "check",
      target: "host",
      detail: `not reachable yet: ${describeError(err).split("\n")[0]}`,
    });
  }
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
