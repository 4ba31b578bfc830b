import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectShell, fileHostKeyStore } from "../../src/cloud/ssh.js";
import { HostBox, hostBoxUnsupported } from "../../src/sandbox/host-box.js";
import { generateEd25519 } from "../../src/sandbox/ssh-keys.js";
import { waitUntil } from "../helpers/wait.js";
import { tempDir } from "../jobs/host/fixtures.js";

const run = promisify(execFile);
const why = await hostBoxUnsupported();
if (why) console.warn(`\n*** REAL-HOST TIER SKIPPED: ${why} ***\n`);

const veth = async (id: string) =>
  run("ip", ["link", "show", `cvh-${id}`]).then(
    () => true,
    () => false,
  );
const boxProcesses = async (id: string) =>
  (await run("ps", ["-eo", "args"])).stdout.split("\n").filter((l) => l.includes(`/cutover-hostbox/${id}/`))
    .length;

function serve(host: string, answer: string): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer((c) => c.end(answer));
    s.listen(0, host, () => resolve(s));
  });
}
const portOf = (s: Server) => (s.address() as { port: number }).port;

describe.skipIf(why !== undefined)("the host box: a Debian 12 root in its own namespaces", () => {
  let box: HostBox;
  let scratch: { dir: string; remove: () => Promise<void> };
  let upstream: Server;
  let everywhere: Server;
  const pair = generateEd25519();

  beforeAll(async () => {
    scratch = await tempDir("cutover-box-");
    upstream = await serve("127.0.0.1", "from the forwarded service\n");
    // a service on all of this machine's addresses, the veth's host end included
    everywhere = await serve("0.0.0.0", "should not be reachable\n");
    box = await HostBox.start({
      authorizedKey: pair.public,
      forwards: [{ port: 7000, to: { host: "127.0.0.1", port: portOf(upstream) } }],
    });
  });
  afterAll(async () => {
    await box?.stop();
    await new Promise((r) => upstream?.close(r));
    await new Promise((r) => everywhere?.close(r));
    await scratch?.remove();
  });

  it("boots Debian 12 at its own address; sshd takes the key it was given, for a sudo user like a cloud image's", async () => {
    expect(box.address).toMatch(/^10\.213\.\d+\.\d+$/);
    expect(await box.osRelease()).toBe("Debian GNU/Linux 12 (bookworm)");
    const shell = await connectShell({
      host: box.address,
      port: 22,
      username: "admin",
      privateKey: pair.private,
      keyLabel: "the box's key",
      knownHosts: fileHostKeyStore(join(scratch.dir, "known_hosts.json")),
      connectTimeoutMs: 10_000,
    });
    try {
      const r = await shell.exec("id -un; hostname; sudo -n id -u");
      expect(r.stdout.split("\n").slice(0, 3)).toEqual(["admin", "cutover-box", "0"]);
    } finally {
      await shell.close();
    }
    const other = generateEd25519();
    await expect(
      connectShell({
        host: box.address,
        port: 22,
        username: "admin",
        privateKey: other.private,
        keyLabel: "another key",
        knownHosts: fileHostKeyStore(join(scratch.dir, "known_hosts.json")),
        connectTimeoutMs: 10_000,
      }),
    ).rejects.toThrow(/refused the SSH key/);
  });

  it("reaches only what it was given on this machine: the forwards and the apt proxy's mirror", async () => {
    const tcp = (port: number) =>
      box.exec(
        `timeout 3 bash -c 'exec 3<>/dev/tcp/${box.hostAddress}/${port}; cat <&3' && echo reached || echo refused`,
      );
    expect((await tcp(7000)).stdout).toBe("from the forwarded service\nreached\n");
    // listening on 0.0.0.0 is not enough: the box's own filter lets out only what it was given
    expect((await tcp(portOf(everywhere))).stdout).toBe("refused\n");
    const out = await box.exec("timeout 3 bash -c '</dev/tcp/1.1.1.1/80' && echo reached || echo refused");
    expect(out.stdout).toBe("refused\n");
    const proxy = await box.exec(
      `curl -s -o /dev/null -w '%{http_code}' -x http://${box.hostAddress}:3142 http://example.com/`,
    );
    expect(proxy.stdout).toBe("403");
    const mirror = await box.exec("apt-get update -qq 2>&1 | grep -v unsandboxed; echo exit=$?");
    expect(mirror.stdout).toContain("exit=");
    expect(mirror.stdout).not.toMatch(/^(E|Err):/m);
  });

  it("leaves no process, veth or writable layer once stopped", async () => {
    const b = await HostBox.start({ authorizedKey: pair.public });
    expect(await veth(b.id)).toBe(true);
    expect(await boxProcesses(b.id)).toBeGreaterThan(0);
    await b.stop();
    expect(await veth(b.id)).toBe(false);
    expect(await boxProcesses(b.id)).toBe(0);
    expect(existsSync(`/var/tmp/cutover-hostbox/${b.id}`)).toBe(false);
  });

  it("ends by itself when the process that started it is SIGKILLed (a crashed test)", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "box-owner.ts")], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const started = await new Promise<{ id: string; address: string }>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (b: Buffer) => {
        out += b.toString();
        const line = out.split("\n").find((l) => l.startsWith("{"));
        if (line) resolve(JSON.parse(line) as { id: string; address: string });
      });
      child.once("exit", (code) => reject(new Error(`the owner ended first (exit ${code})`)));
    });
    expect(await veth(started.id)).toBe(true);
    child.kill("SIGKILL");
    await waitUntil(
      "the box of a killed owner to end",
      async () => !(await veth(started.id)) && (await boxProcesses(started.id)) === 0,
      { timeoutMs: 15_000, intervalMs: 200 },
    );
    // its writable layer goes at the next start
    const next = await HostBox.start({ authorizedKey: pair.public });
    await next.stop();
    expect(existsSync(`/var/tmp/cutover-hostbox/${started.id}`)).toBe(false);
  });
});
