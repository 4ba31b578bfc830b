import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { NodeSSH as NodeSshClient } from "node-ssh";
import type { ClientChannel } from "ssh2";
import { CutoverError, ErrorCode } from "../errors.js";

export interface ExecOptions {
  /** text written to the command's standard input, then closed */
  stdin?: string;
  /** called with each chunk of output as it arrives */
  onOutput?: (text: string, stream: "stdout" | "stderr") => void;
  signal?: AbortSignal;
  /** the command is stopped and the call fails after this long */
  timeoutMs?: number;
}

export interface ExecResult {
  code: number | null;
  signal: string | null;
  /** the last {@link OUTPUT_KEEP} characters of each stream */
  stdout: string;
  stderr: string;
}

/** How much of each output stream an exec keeps (the rest has streamed past already). */
export const OUTPUT_KEEP = 64 * 1024;

/**
 * A shell on a remote host: run a command with streamed output, upload a file over SFTP.
 * Every connection is host-key checked (see {@link connectShell}).
 *
 * @example const r = await shell.exec("sudo -n bash /tmp/setup.sh", { onOutput, signal });
 */
export interface RemoteShell {
  readonly host: string;
  readonly port: number;
  /** the host key's SHA256 fingerprint, as `ssh-keygen -lf` prints it */
  readonly hostKeyFingerprint: string;
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  /** writes the file through SFTP: a temporary name with `mode`, then renamed into place */
  upload(remotePath: string, content: string | Buffer, mode: number): Promise<void>;
  close(): Promise<void>;
}

/** Where host keys seen on first contact are remembered (known_hosts, Cutover's own). */
export interface HostKeyStore {
  get(hostPort: string): Promise<string | undefined>;
  set(hostPort: string, fingerprint: string): Promise<void>;
}

/** A host-key store in one JSON file (mode 0600), e.g. CUTOVER_DATA_DIR/known_hosts.json. */
export function fileHostKeyStore(path: string): HostKeyStore {
  const load = async (): Promise<Record<string, string>> => {
    try {
      return JSON.parse(await readFile(path, "utf8")) as Record<string, string>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
      throw err;
    }
  };
  return {
    async get(hostPort) {
      return (await load())[hostPort];
    },
    async set(hostPort, fingerprint) {
      const all = await load();
      all[hostPort] = fingerprint;
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
      await writeFile(tmp, `${JSON.stringify(all, null, 2)}\n`, { mode: 0o600 });
      await rename(tmp, path);
    },
  };
}

/** `SHA256:<base64 without padding>` of a host key blob, as OpenSSH prints it. */
export function sha256Fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "")}`;
}

const sameFingerprint = (a: string, b: string) => a.replace(/=+$/, "") === b.replace(/=+$/, "");

export interface ConnectOptions {
  host: string;
  port: number;
  username: string;
  /** the private key itself (PEM or OpenSSH format) */
  privateKey: string;
  /** where the key came from, for messages (a path, never the key) */
  keyLabel: string;
  passphrase?: string;
  /** the fingerprint from the migration file; wins over a recorded one */
  pinnedFingerprint?: string;
  knownHosts: HostKeyStore;
  /** TCP connect plus SSH handshake must finish within this */
  connectTimeoutMs: number;
  signal?: AbortSignal;
}

/**
 * Opens an SSH connection with the host key checked: against `pinnedFingerprint` when the
 * migration file has one, else against the key recorded on first contact (recorded now when
 * there is none). A different key stops with {@link ErrorCode.HostKeyChanged}; a refused key,
 * an unanswered or refused connection each have their own error saying what to check.
 */
export async function connectShell(opts: ConnectOptions): Promise<RemoteShell> {
  const hostPort = `${opts.host}:${opts.port}`;
  const recorded = await opts.knownHosts.get(hostPort);
  const expected = opts.pinnedFingerprint ?? recorded;
  let seen: string | undefined;
  // node-ssh and ssh2 load at the first connection, not with the bot (about 16 MB)
  const { NodeSSH } = await import("node-ssh");
  const ssh: NodeSshClient = new NodeSSH();
  const onAbort = () => ssh.dispose();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    opts.signal?.throwIfAborted();
    await ssh.connect({
      host: opts.host,
      port: opts.port,
      username: opts.username,
      privateKey: opts.privateKey,
      ...(opts.passphrase ? { passphrase: opts.passphrase } : {}),
      readyTimeout: opts.connectTimeoutMs,
      keepaliveInterval: 15_000,
      tryKeyboard: false,
      hostVerifier: (key: Buffer) => {
        seen = sha256Fingerprint(key);
        return expected === undefined || sameFingerprint(seen, expected);
      },
    });
  } catch (err) {
    ssh.dispose();
    opts.signal?.throwIfAborted();
    throw explainConnectError(err, opts, hostPort, expected, seen);
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
  }
  const fingerprint = seen ?? "";
  if (!opts.pinnedFingerprint && !recorded && fingerprint) await opts.knownHosts.set(hostPort, fingerprint);
  const connection = ssh.connection!;
  // small request/response exchanges: without this each one waits out delayed ACKs
  connection.setNoDelay(true);

  return {
    host: opts.host,
    port: opts.port,
    hostKeyFingerprint: fingerprint,
    exec(command, eo = {}) {
      return new Promise<ExecResult>((resolve, reject) => {
        let stdout = "";
        let stderr = "";
        let channel: ClientChannel | undefined;
        let timer: NodeJS.Timeout | undefined;
        let settled = false;
        const finish = (fn: () => void) => {
          if (settled) return;
          settled = true;
          if (timer) clearTimeout(timer);
          eo.signal?.removeEventListener("abort", abort);
          fn();
        };
        const stop = () => {
          try {
            channel?.signal("KILL");
          } catch {
            // the server may not support signals; closing the channel is enough
          }
          channel?.close();
        };
        const abort = () => {
          stop();
          finish(() => reject(eo.signal?.reason ?? new Error("aborted")));
        };
        if (eo.signal?.aborted) return abort();
        eo.signal?.addEventListener("abort", abort, { once: true });
        if (eo.timeoutMs) {
          timer = setTimeout(() => {
            stop();
            finish(() =>
              reject(
                new CutoverError(
                  ErrorCode.TimedOut,
                  `\`${shortCommand(command)}\` on ${hostPort} did not finish within ${Math.round(eo.timeoutMs! / 1000)} s`,
                  { details: { tail: tailLines(`${stdout}\n${stderr}`, 20) } },
                ),
              ),
            );
          }, eo.timeoutMs);
        }
        connection.exec(command, (err, ch) => {
          if (err) {
            finish(() =>
              reject(
                new CutoverError(
                  ErrorCode.Unreachable,
                  `Could not run a command on ${hostPort}: ${err.message}`,
                  { cause: err },
                ),
              ),
            );
            return;
          }
          channel = ch;
          if (settled) return stop();
          ch.on("data", (d: Buffer) => {
            const text = d.toString("utf8");
            stdout = (stdout + text).slice(-OUTPUT_KEEP);
            eo.onOutput?.(text, "stdout");
          });
          ch.stderr.on("data", (d: Buffer) => {
            const text = d.toString("utf8");
            stderr = (stderr + text).slice(-OUTPUT_KEEP);
            eo.onOutput?.(text, "stderr");
          });
          let exitCode: number | null = null;
          let exitSignal: string | null = null;
          ch.on("exit", (code: number | null, signal?: string) => {
            exitCode = code;
            exitSignal = signal ?? null;
          });
          ch.on("close", () => finish(() => resolve({ code: exitCode, signal: exitSignal, stdout, stderr })));
          if (eo.stdin !== undefined) ch.end(eo.stdin);
          else ch.end();
        });
      });
    },
    async upload(remotePath, content, mode) {
      const sftp = await ssh.requestSFTP();
      const tmp = `${remotePath}.cutover-${randomBytes(4).toString("hex")}`;
      const op = (what: string, fn: (cb: (err: Error | null | undefined) => void) => void) =>
        new Promise<void>((resolve, reject) =>
          fn((err) =>
            err
              ? reject(
                  new CutoverError(
                    ErrorCode.StepFailed,
                    `SFTP ${what} of ${remotePath} on ${hostPort} failed: ${err.message}`,
                    { cause: err },
                  ),
                )
              : resolve(),
          ),
        );
      try {
        await op("upload", (cb) => sftp.writeFile(tmp, content, { mode }, (e) => cb(e)));
        await op("chmod", (cb) => sftp.chmod(tmp, mode, (e) => cb(e)));
        try {
          await op("rename", (cb) => sftp.ext_openssh_rename(tmp, remotePath, (e) => cb(e)));
        } catch {
          // servers without posix-rename: plain SFTP rename refuses an existing target
          await op("remove", (cb) => sftp.unlink(remotePath, () => cb(null)));
          await op("rename", (cb) => sftp.rename(tmp, remotePath, (e) => cb(e)));
        }
      } catch (err) {
        await op("cleanup", (cb) => sftp.unlink(tmp, () => cb(null))).catch(() => undefined);
        throw err;
      } finally {
        sftp.end();
      }
    },
    async close() {
      ssh.dispose();
    },
  };
}

function explainConnectError(
  err: unknown,
  opts: ConnectOptions,
  hostPort: string,
  expected: string | undefined,
  seen: string | undefined,
): CutoverError {
  const e = err as { message?: string; level?: string; code?: string };
  const message = e?.message ?? String(err);
  if (expected !== undefined && seen !== undefined && !sameFingerprint(seen, expected)) {
    const source = opts.pinnedFingerprint
      ? "pinned in target.host.hostKeyFingerprint"
      : "recorded when Cutover first connected";
    return new CutoverError(
      ErrorCode.HostKeyChanged,
      `⚠️ The SSH host key of ${hostPort} has changed: expected ${expected} (${source}), the host presented ${seen}. Cutover stopped without sending anything. This is a different server, a rebuilt instance, or someone in between.`,
      {
        cause: err,
        details: { hostPort, expected, seen },
        hint: opts.pinnedFingerprint
          ? "Check the instance's key (Lightsail console → the instance → Connect, `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`); only if the change is expected, update target.host.hostKeyFingerprint."
          : `Check the instance's key (Lightsail console → Connect, \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\`); only if the change is expected, remove ${hostPort} from known_hosts.json in Cutover's data directory, or pin the new key in target.host.hostKeyFingerprint.`,
      },
    );
  }
  if (e?.level === "client-authentication" || /authentication methods failed/i.test(message)) {
    return new CutoverError(
      ErrorCode.SshAuthRefused,
      `${hostPort} refused the SSH key ${opts.keyLabel} for user ${opts.username}.`,
      {
        cause: err,
        details: { hostPort, user: opts.username },
        hint: "Check that the key is the private key of the instance's key pair (target.lightsail.keyPairName) and that target.host.sshUser is the instance's login user (ubuntu on Ubuntu).",
      },
    );
  }
  if (
    e?.level === "client-timeout" ||
    /timed out/i.test(message) ||
    e?.code === "ETIMEDOUT" ||
    /No response from server/.test(message)
  ) {
    return new CutoverError(
      ErrorCode.Unreachable,
      `${hostPort} did not answer within ${Math.round(opts.connectTimeoutMs / 1000)} s.`,
      {
        cause: err,
        details: { hostPort },
        hint: "Check that the instance is running, that its firewall opens the SSH port to this machine (target.lightsail.firewall), and that the address is right.",
      },
    );
  }
  if (
    e?.code === "ECONNREFUSED" ||
    e?.code === "EHOSTUNREACH" ||
    e?.code === "ENOTFOUND" ||
    e?.code === "ECONNRESET"
  ) {
    return new CutoverError(ErrorCode.Unreachable, `Could not connect to ${hostPort}: ${e.code}.`, {
      cause: err,
      details: { hostPort },
      hint: "Check that the instance is running and sshd listens on target.host.sshPort.",
    });
  }
  if (
    /Cannot parse privateKey|Encrypted private (OpenSSH )?key detected|Unsupported key format/i.test(message)
  ) {
    return new CutoverError(
      ErrorCode.BadArgument,
      `The SSH key ${opts.keyLabel} could not be read: ${message}`,
      {
        cause: err,
      },
    );
  }
  return new CutoverError(ErrorCode.Unreachable, `SSH to ${hostPort} failed: ${message}`, { cause: err });
}

/** The last `n` non-empty lines of some output. */
export function tailLines(text: string, n: number): string {
  return text
    .split(/\r?\n/)
    .map((l) => l.replace(/\s+$/, ""))
    .filter((l) => l.length > 0)
    .slice(-n)
    .join("\n");
}

function shortCommand(command: string): string {
  return command.length > 80 ? `${command.slice(0, 77)}…` : command;
}

/** The OpenSSH public key of a private key ("ssh-ed25519 AAAA… cutover"); `label` names the key in errors. */
export async function publicKeyOf(privateKey: string, label: string): Promise<string> {
  // ssh2 loads here, not with the bot: its native crypto holds some 16 MB an idle bot never uses.
  // It is CommonJS: under Node's ESM loader only its default export is there.
  const { default: ssh2 } = await import("ssh2");
  const parsed = ssh2.utils.parseKey(privateKey);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) {
    throw new CutoverError(
      ErrorCode.BadArgument,
      `The SSH key ${label} could not be read${key instanceof Error ? `: ${key.message}` : ""}.`,
    );
  }
  return `${key.type} ${key.getPublicSSH().toString("base64")} cutover`;
}
