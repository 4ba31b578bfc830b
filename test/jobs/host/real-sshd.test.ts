import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { userInfo } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectShell, fileHostKeyStore, type RemoteShell } from "../../../src/cloud/ssh.js";
import { ErrorCode, isCutoverError } from "../../../src/errors.js";
import { FILE_ONLY_SECTIONS, renderSetupScript, shq } from "../../../src/jobs/host-script.js";
import { recordProvisioned } from "../../../src/jobs/provisioned.js";
import { createHostSetupStep } from "../../../src/jobs/steps/host/setup.js";
import { clientKey, depsFor, exampleFile, fileWith, stepContext, tempDir } from "./fixtures.js";

const run = promisify(execFile);
const SSHD = "/usr/sbin/sshd";
const HAVE_SSHD = existsSync(SSHD);
if (!HAVE_SSHD)
  console.warn(
    "real-sshd tests skipped: /usr/sbin/sshd is missing — install openssh-server (CI's .ci/run does)",
  );

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function waitForPort(port: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect(port, "127.0.0.1");
      sock.once("connect", () => {
        sock.destroy();
        resolve(true);
      });
      sock.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`sshd did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Debian's OpenSSH server on 127.0.0.1 with its own config, host key and authorised key, all in
 * a temporary folder. It only ever runs commands the tests send: nothing is installed.
 */
class TestSshd {
  proc: ChildProcess | undefined;
  constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  async newHostKey(): Promise<string> {
    const key = join(this.dir, "host_ed25519");
    await rm(key, { force: true });
    await rm(`${key}.pub`, { force: true });
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
    const { stdout } = await run("ssh-keygen", ["-l", "-f", `${key}.pub`]);
    return stdout.split(" ")[1]!;
  }

  async start(authorizedKey: string): Promise<void> {
    await writeFile(join(this.dir, "authorized_keys"), `${authorizedKey}\n`, { mode: 0o600 });
    const config = [
      `Port ${this.port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${join(this.dir, "host_ed25519")}`,
      `AuthorizedKeysFile ${join(this.dir, "authorized_keys")}`,
      `PidFile ${join(this.dir, "sshd.pid")}`,
      "StrictModes no",
      "UsePAM no",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PubkeyAuthentication yes",
      "PermitRootLogin prohibit-password",
      "Subsystem sftp internal-sftp",
      "LogLevel ERROR",
      "",
    ].join("\n");
    await writeFile(join(this.dir, "sshd_config"), config);
    await mkdir("/run/sshd", { recursive: true });
    this.proc = spawn(SSHD, ["-D", "-e", "-f", join(this.dir, "sshd_config")], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    await waitForPort(this.port, 10_000);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once("exit", () => resolve());
      p.kill("SIGTERM");
    });
  }
}

describe.skipIf(!HAVE_SSHD)("against Debian's sshd on 127.0.0.1 (real SFTP, real exec)", () => {
  let scratch: { dir: string; remove: () => Promise<void> };
  let sshd: TestSshd;
  let key: { path: string; publicKey: string };
  let fingerprint: string;
  let shell: RemoteShell;
  const user = userInfo().username;

  const open = async (opts: { privateKey?: string; pinned?: string; timeoutMs?: number } = {}) =>
    connectShell({
      host: "127.0.0.1",
      port: sshd.port,
      username: user,
      privateKey: opts.privateKey ?? (await readFile(key.path, "utf8")),
      keyLabel: "the test key",
      knownHosts: fileHostKeyStore(join(scratch.dir, "known_hosts.json")),
      ...(opts.pinned ? { pinnedFingerprint: opts.pinned } : {}),
      connectTimeoutMs: opts.timeoutMs ?? 5_000,
    });

  beforeAll(async () => {
    scratch = await tempDir("cutover-sshd-");
    sshd = new TestSshd(scratch.dir, await freePort());
    fingerprint = await sshd.newHostKey();
    key = await clientKey(scratch.dir);
    await sshd.start(key.publicKey);
    shell = await open();
  });
  afterAll(async () => {
    await shell?.close();
    await sshd?.stop();
    await scratch?.remove();
  });

  it("records the host key on first contact, as ssh-keygen prints it", async () => {
    expect(shell.hostKeyFingerprint).toBe(fingerprint);
    const known = JSON.parse(await readFile(join(scratch.dir, "known_hosts.json"), "utf8"));
    expect(known).toEqual({ [`127.0.0.1:${sshd.port}`]: fingerprint });
  });

  it("uploads the rendered set-up script over SFTP and runs its file-only sections twice in a scratch root", async () => {
    const file = await exampleFile();
    const script = renderSetupScript(file);
    const path = join(scratch.dir, "upload", "setup.sh");
    await mkdir(join(scratch.dir, "upload"), { recursive: true });
    await shell.upload(path, script, 0o700);
    expect(await readFile(path, "utf8")).toBe(script);
    expect((await stat(path)).mode & 0o777).toBe(0o700);

    expect((await shell.exec(`bash -n ${shq(path)}`)).code).toBe(0);
    const root = join(scratch.dir, "root");
    const command = `CUTOVER_ROOT=${shq(root)} CUTOVER_SECTIONS=${shq(FILE_ONLY_SECTIONS.join(" "))} bash ${shq(path)}`;
    const streamed: string[] = [];
    const first = await shell.exec(command, { onOutput: (t) => streamed.push(t) });
    expect(first.code).toBe(0);
    expect(streamed.join("")).toContain("::cutover:: section supervisor");
    expect(first.stdout).toMatch(/updated \/etc\/supervisor\/conf.d\/gogojap-celery-beat.conf/);
    const second = await shell.exec(command);
    expect(second.code).toBe(0);
    expect(second.stdout).not.toContain("updated");
    expect(second.stdout).toMatch(/::cutover:: done changed=$/m);
    expect(await readFile(join(root, "opt/gogojap/shared/gunicorn.conf.py"), "utf8")).toContain(
      "workers = 5",
    );
  });

  it("writes a secret file 0600 and replaces it atomically on the next upload", async () => {
    const path = join(scratch.dir, "app.env");
    await shell.upload(path, "SECRET_KEY=one\n", 0o600);
    await shell.upload(path, "SECRET_KEY=two\n", 0o600);
    expect(await readFile(path, "utf8")).toBe("SECRET_KEY=two\n");
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const listed = await shell.exec(`ls -a ${shq(scratch.dir)}`);
    expect(listed.stdout).not.toMatch(/cutover-[0-9a-f]{8}/);
  });

  it("reports exit codes and stderr, and stops a command on timeout or abort", async () => {
    const failed = await shell.exec("echo out; echo err >&2; exit 7");
    expect(failed).toMatchObject({ code: 7, stdout: "out\n", stderr: "err\n" });
    const timedOut = await shell.exec("sleep 10", { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(isCutoverError(timedOut, ErrorCode.TimedOut)).toBe(true);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("cancelled by U1")), 200);
    const started = Date.now();
    await expect(shell.exec("sleep 10", { signal: controller.signal })).rejects.toThrow("cancelled by U1");
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it("host.setup's dry run reads the real host (and only reads)", async () => {
    const data = await tempDir();
    try {
      const file = await fileWith((f) => {
        f.target!.host!.sshPort = sshd.port;
        f.target!.host!.sshUser = user;
        f.target!.host!.hostKeyFingerprint = fingerprint;
      });
      await recordProvisioned(data.dir, "production", { "target.lightsail.staticIp": "127.0.0.1" });
      const step = createHostSetupStep(depsFor(file, data.dir, { LIGHTSAIL_SSH_KEY_PATH: key.path }));
      const plan = await step.plan(step.parse({}), stepContext({ run: { dryRun: true } }));
      expect(plan.changes[0]).toEqual({
        action: "check",
        target: `host 127.0.0.1:${sshd.port}`,
        detail: `host key ${fingerprint}`,
      });
      expect(plan.summary).toMatch(/^would run the set-up script/);
    } finally {
      await data.remove();
    }
  });

  it("refuses a key the server does not authorise", async () => {
    const other = await clientKey(scratch.dir, "not_authorised");
    const err = await open({ privateKey: await readFile(other.path, "utf8") }).catch((e: unknown) => e);
    expect(isCutoverError(err, ErrorCode.SshAuthRefused)).toBe(true);
    expect((err as Error).message).toBe(
      `127.0.0.1:${sshd.port} refused the SSH key the test key for user ${user}.`,
    );
  });

  it("stops with a clear warning when the server comes back with another host key", async () => {
    await shell.close();
    await sshd.stop();
    const newFingerprint = await sshd.newHostKey();
    await sshd.start(key.publicKey);
    const err = await open().catch((e: unknown) => e);
    expect(isCutoverError(err, ErrorCode.HostKeyChanged)).toBe(true);
    expect((err as Error).message).toContain(
      `⚠️ The SSH host key of 127.0.0.1:${sshd.port} has changed: expected ${fingerprint} (recorded when Cutover first connected), the host presented ${newFingerprint}.`,
    );
    // pinning the new key (after checking it) lets Cutover in again
    shell = await open({ pinned: newFingerprint });
    expect(shell.hostKeyFingerprint).toBe(newFingerprint);
  });
});
