import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import { connect, createServer, type Server } from "node:net";
import { basename, dirname, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * The app host in a box: a real Debian 12 root (debootstrap, built once and cached) running in
 * its own PID, mount, UTS, IPC and network namespaces, with sshd, reached over a veth pair whose
 * two ends exist only on this machine (a private /30 in 10.213.0.0/16). Cutover's real SSH
 * adapter connects to it with a key the box is given at start; `host.setup` and `app.deploy` run
 * on it for real. From the box, only what the box opens on the host side is reachable: an HTTP
 * proxy to the Debian mirror (for apt), TCP forwards to named loopback services (PostgreSQL,
 * moto) and a file server for release archives, all bound to the host end of the veth.
 *
 * The box is PID 1 of its own PID namespace (scripts/hostbox.sh `init`): when it ends, the
 * kernel ends every process in it and drops its mounts and network (the veth goes with it). It
 * ends on {@link HostBox.stop}, or by itself within a second of its owner process going away
 * (a crashed or killed test), so nothing is left running; a later start removes a dead box's
 * writable layer.
 *
 * @example
 * const box = await HostBox.start({ authorizedKey: pub, forwards: [{ port: 5432, to: { host: "127.0.0.1", port: 5432 } }] });
 * // ssh admin@box.address; PostgreSQL is box.hostAddress:5432 from inside
 * await box.stop();
 */

export const HOSTBOX_SCRIPT = join(import.meta.dirname, "../../scripts/hostbox.sh");
const SUITE = "bookworm";
/** The packages the set-up installs on the box (downloaded into the root's apt cache at build time). */
export const BOX_PREFETCH = [
  "nginx",
  "supervisor",
  "curl",
  "git",
  "ca-certificates",
  "redis-server",
  "redis-tools",
  "python3.11",
  "python3.11-venv",
  "python3.11-dev",
  "gunicorn",
  "python3-uvicorn",
  "python3-fastapi",
  "python3-multipart",
  "python3-celery",
  "celery",
  "python3-redis",
  "python3-psycopg2",
  "python3-boto3",
  "python3-dotenv",
  "postgresql-client",
];

/** Where cached roots live: one folder per hash of the build's inputs. */
export const DEFAULT_CACHE_DIR = process.env.CUTOVER_HOSTBOX_CACHE ?? "/var/cache/cutover";
const RUN_DIR = "/var/tmp/cutover-hostbox";

/** The Debian mirror this machine's apt uses (the box is built from it and its apt reaches it). */
export function aptMirror(): string {
  for (const f of ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"]) {
    if (!existsSync(f)) continue;
    const text = readFileSync(f, "utf8");
    const m =
      /^URIs:\s*(http\S+\/debian)\s*$/m.exec(text) ??
      /^deb\s+(?:\[[^\]]*\]\s+)?(http\S+\/debian)\s/m.exec(text);
    if (m) return m[1]!;
  }
  return "http://deb.debian.org/debian";
}

export interface BoxRootSpec {
  cacheDir?: string;
  mirror?: string;
  packages?: readonly string[];
}

/** The build's inputs and the cached root they name. */
export function boxRoot(spec: BoxRootSpec = {}): {
  path: string;
  hash: string;
  mirror: string;
  packages: string[];
} {
  const mirror = spec.mirror ?? aptMirror();
  const packages = [...(spec.packages ?? BOX_PREFETCH)];
  const script = readFileSync(HOSTBOX_SCRIPT, "utf8");
  const buildFn = /^build\(\) \{[\s\S]*?^\}$/m.exec(script)?.[0] ?? script;
  const hash = createHash("sha256")
    .update(JSON.stringify({ suite: SUITE, mirror, packages, buildFn }))
    .digest("hex")
    .slice(0, 16);
  return { path: join(spec.cacheDir ?? DEFAULT_CACHE_DIR, `hostbox-${hash}`), hash, mirror, packages };
}

/**
 * Why a box cannot run here, or undefined when it can: root, unshare, debootstrap (or a cached
 * root), overlayfs, and a network namespace with a veth pair actually made and removed.
 */
export async function hostBoxUnsupported(spec: BoxRootSpec = {}): Promise<string | undefined> {
  if (process.platform !== "linux") return `the box needs Linux namespaces; this is ${process.platform}`;
  if (process.getuid?.() !== 0)
    return "the box needs root (namespaces, mounts, a veth pair); run the tests as root";
  for (const tool of ["/usr/bin/unshare", "/usr/bin/nsenter"]) {
    if (!existsSync(tool)) return `${tool} is missing (util-linux)`;
  }
  if (!(await which("ip"))) return "`ip` is missing: install iproute2";
  if (!existsSync(join(boxRoot(spec).path, ".cutover-complete")) && !existsSync("/usr/sbin/debootstrap")) {
    return "debootstrap is missing and no box root is cached: apt-get install debootstrap";
  }
  if (!readFileSync("/proc/filesystems", "utf8").includes("overlay")) return "the kernel has no overlayfs";
  try {
    await run("unshare", [
      "--net",
      "--mount",
      "--pid",
      "--fork",
      "ip",
      "link",
      "add",
      "cvprobe0",
      "type",
      "veth",
      "peer",
      "name",
      "cvprobe1",
    ]);
  } catch (err) {
    return `cannot make a network namespace with a veth pair here: ${firstLine(err)}`;
  }
  return undefined;
}

async function which(cmd: string): Promise<boolean> {
  try {
    await run("sh", ["-c", `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

function firstLine(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  return (e.stderr?.trim() || e.message || String(err)).split("\n")[0]!;
}

/** Builds the root once (debootstrap + the set-up's packages downloaded); reuses it while its inputs hold. */
export async function ensureBoxRoot(
  spec: BoxRootSpec = {},
  log: (line: string) => void = () => undefined,
): Promise<{ path: string; built: boolean; ms: number }> {
  const root = boxRoot(spec);
  const t0 = performance.now();
  if (existsSync(join(root.path, ".cutover-complete"))) return { path: root.path, built: false, ms: 0 };
  log(`building the box root ${root.path} from ${root.mirror} (debootstrap ${SUITE}, minbase)`);
  await new Promise<void>((resolve, reject) => {
    const p = spawn("bash", [HOSTBOX_SCRIPT, "build", root.path, root.mirror, ...root.packages], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let tail = "";
    const keep = (b: Buffer) => {
      tail = (tail + b.toString()).slice(-4000);
    };
    p.stdout.on("data", keep);
    p.stderr.on("data", keep);
    p.on("error", reject);
    p.on("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`building the box root failed (exit ${code}):\n${tail}`)),
    );
  });
  // roots built from other inputs are not used again: keep one (about 400 MB each)
  const cacheDir = dirname(root.path);
  for (const name of await readdir(cacheDir).catch(() => [] as string[])) {
    if (/^hostbox-[0-9a-f]{16}(\.lock|\.partial)?$/.test(name) && !name.startsWith(basename(root.path))) {
      await rm(join(cacheDir, name), { recursive: true, force: true });
    }
  }
  return { path: root.path, built: true, ms: performance.now() - t0 };
}

/** A loopback service the box may reach at the host end of the veth on `port`. */
export interface BoxForward {
  port: number;
  to: { host: string; port: number };
}

export interface HostBoxOptions extends BoxRootSpec {
  /** the public key (OpenSSH line) put in ~admin/.ssh/authorized_keys and ~root/.ssh/authorized_keys */
  authorizedKey: string;
  forwards?: readonly BoxForward[];
  /** hosts apt in the box may fetch from through the proxy; default: the mirror's host */
  aptHosts?: readonly string[];
  log?: (line: string) => void;
}

const APT_PROXY_PORT = 3142;
const FILES_PORT = 8088;

/** A running box. */
export class HostBox {
  /** the box's address (sshd on 22, nginx on 80/443) */
  readonly address: string;
  /** the host end of the veth: the box reaches forwards, the apt proxy and files here */
  readonly hostAddress: string;
  /** a short id naming the veth (cvh-<id>) and the writable layer */
  readonly id: string;
  private proc: ChildProcess | undefined;
  private initPid = 0;
  private servers: Server[] = [];
  private readonly files = new Map<string, Buffer>();
  private readonly dir: string;
  /** what the box's init printed (its last lines, for a failure message) */
  private output = "";

  private constructor(
    private readonly opts: HostBoxOptions,
    private readonly root: string,
    slot: number,
  ) {
    this.id = `${process.pid.toString(36)}${slot.toString(36)}`.slice(-8);
    const a = Math.floor(slot / 64);
    const b = (slot % 64) * 4;
    this.hostAddress = `10.213.${a}.${b + 1}`;
    this.address = `10.213.${a}.${b + 2}`;
    this.dir = join(RUN_DIR, this.id);
  }

  /** Builds (or reuses) the root, then starts a box from it with a fresh writable layer. */
  static async start(opts: HostBoxOptions): Promise<HostBox> {
    const why = await hostBoxUnsupported(opts);
    if (why) throw new Error(`the host box cannot run here: ${why}`);
    const { path } = await ensureBoxRoot(opts, opts.log);
    await removeDeadBoxes();
    const used = (await run("ip", ["-o", "-4", "addr"])).stdout;
    let slot = (process.pid * 7) % 16_000;
    while (used.includes(`10.213.${Math.floor(slot / 64)}.${(slot % 64) * 4 + 1}/`))
      slot = (slot + 1) % 16_000;
    const box = new HostBox(opts, path, slot);
    await mkdir(box.dir, { recursive: true });
    await writeFile(join(box.dir, "owner"), `${process.pid} ${ownStartTime()}\n`);
    await box.seedKeys();
    try {
      await box.boot();
      await box.startServers();
    } catch (err) {
      await box.stop();
      throw err;
    }
    return box;
  }

  private get upper(): string {
    return join(this.dir, "upper");
  }

  /** ~/.ssh/authorized_keys for admin and root, written into the writable layer before boot. */
  private async seedKeys(): Promise<void> {
    const home = { admin: "home/admin", root: "root" };
    for (const [user, h] of Object.entries(home)) {
      const ssh = join(this.upper, h, ".ssh");
      // the folders above keep the lower layer's modes (an upper folder's mode wins in overlayfs)
      await mkdir(join(this.upper, h), { recursive: true, mode: 0o755 });
      if (user === "root") await run("chmod", ["0700", join(this.upper, h)]);
      await mkdir(ssh, { mode: 0o700 });
      await writeFile(join(ssh, "authorized_keys"), `${this.opts.authorizedKey.trim()}\n`, { mode: 0o600 });
      if (user === "admin") {
        const ids = readFileSync(join(this.root, "etc/passwd"), "utf8").match(/^admin:x:(\d+):(\d+):/m);
        if (ids) {
          const [uid, gid] = [Number(ids[1]), Number(ids[2])];
          await run("chown", ["-R", `${uid}:${gid}`, join(this.upper, h)]);
        }
      }
    }
  }

  /** Starts the box's init in new namespaces, hands it the veth's inner end, waits for sshd. */
  private async boot(): Promise<void> {
    const outer = `cvh-${this.id}`;
    const inner = `cvb-${this.id}`;
    this.output = "";
    const proc = spawn(
      "unshare",
      [
        "--pid",
        "--net",
        "--mount",
        "--uts",
        "--ipc",
        "--fork",
        "--kill-child",
        "bash",
        HOSTBOX_SCRIPT,
        "init",
        this.root,
        this.upper,
        join(this.dir, "work"),
        join(this.dir, "merged"),
        inner,
        this.address,
        this.hostAddress,
        String(process.pid),
        ownStartTime(),
        [APT_PROXY_PORT, FILES_PORT, ...(this.opts.forwards ?? []).map((f) => f.port)].join(", "),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.proc = proc;
    const onData = (b: Buffer) => {
      this.output = (this.output + b.toString()).slice(-8000);
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", onData);
    const child = await this.until("the box's init to start", 5_000, async () => {
      if (proc.exitCode !== null)
        throw new Error(`the box's init ended (exit ${proc.exitCode}):\n${this.output}`);
      const kids = await readFile(`/proc/${proc.pid}/task/${proc.pid}/children`, "utf8").catch(() => "");
      return Number(kids.trim().split(/\s+/)[0]) || undefined;
    });
    this.initPid = child;
    await run("ip", ["link", "add", outer, "type", "veth", "peer", "name", inner, "netns", String(child)]);
    await run("ip", ["addr", "add", `${this.hostAddress}/30`, "dev", outer]);
    await run("ip", ["link", "set", outer, "up"]);
    await this.until("the box to boot", 120_000, async () => {
      if (proc.exitCode !== null)
        throw new Error(`the box's init ended (exit ${proc.exitCode}):\n${this.output}`);
      return this.output.includes("::box:: up") ? true : undefined;
    });
    await this.until(`sshd on ${this.address}:22`, 20_000, () => portOpen(this.address, 22));
  }

  private async until<T>(what: string, ms: number, probe: () => Promise<T | undefined | false>): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}; the box said:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The host side: forwards to loopback services, the apt proxy, the release files. */
  private async startServers(): Promise<void> {
    for (const f of this.opts.forwards ?? []) {
      this.servers.push(
        await listen(
          createServer((client) => {
            const upstream = connect(f.to.port, f.to.host);
            client.pipe(upstream).pipe(client);
            const end = () => {
              client.destroy();
              upstream.destroy();
            };
            client.on("error", end);
            upstream.on("error", end);
            client.on("close", end);
            upstream.on("close", end);
          }),
          this.hostAddress,
          f.port,
        ),
      );
    }
    const mirrorHost = new URL(boxRoot(this.opts).mirror).host;
    const allowed = new Set(this.opts.aptHosts ?? [mirrorHost]);
    this.servers.push(await listen(aptProxy(allowed), this.hostAddress, APT_PROXY_PORT));
    this.servers.push(
      await listen(
        http.createServer((req, res) => {
          const body = this.files.get(req.url ?? "");
          res.writeHead(body ? 200 : 404, { "content-type": "application/octet-stream" });
          res.end(body);
        }),
        this.hostAddress,
        FILES_PORT,
      ),
    );
  }

  /** Serves `data` to the box at the returned URL (e.g. a release archive). */
  publish(name: string, data: Buffer): string {
    const path = `/${encodeURIComponent(name)}`;
    this.files.set(path, data);
    return `http://${this.hostAddress}:${FILES_PORT}${path}`;
  }

  /** Runs a command inside the box as root (through its namespaces, not SSH). */
  async exec(command: string, timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const r = await run(
        "nsenter",
        [
          "-t",
          String(this.initPid),
          "-m",
          "-u",
          "-i",
          "-n",
          "-p",
          "chroot",
          join(this.dir, "merged"),
          "/bin/sh",
          "-c",
          command,
        ],
        { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      );
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return {
        code: typeof e.code === "number" ? e.code : 1,
        stdout: e.stdout ?? "",
        stderr: e.stderr ?? String(err),
      };
    }
  }

  /** Which OS the box runs, from its /etc/os-release (e.g. "Debian GNU/Linux 12 (bookworm)"). */
  async osRelease(): Promise<string> {
    const r = await this.exec('. /etc/os-release && echo "$PRETTY_NAME"');
    return r.stdout.trim();
  }

  /**
   * A power cut and a boot: every process of the box is killed at once (its PID namespace ends),
   * then the box starts again on the same writable layer and its boot starts the services
   * enabled in runlevel 2, then sshd. Resolves once sshd answers again.
   */
  async reboot(): Promise<{ downMs: number }> {
    const t0 = performance.now();
    await this.halt();
    await this.boot();
    return { downMs: performance.now() - t0 };
  }

  private async halt(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((r) => p.once("exit", () => r()));
    // SIGKILL to PID 1 of the box's namespace ends every process in it; the mounts and the
    // network namespace (and with it the veth pair) go when the last one is gone.
    if (this.initPid) process.kill(this.initPid, "SIGKILL");
    else p.kill("SIGKILL");
    await gone;
    await this.until("the box's network to go", 10_000, async () => {
      const r = await run("ip", ["link", "show", `cvh-${this.id}`]).then(
        () => false,
        () => true,
      );
      return r || undefined;
    });
  }

  /** Stops the box and its host-side servers and removes its writable layer. */
  async stop(): Promise<void> {
    await this.halt().catch(() => undefined);
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
    this.servers = [];
    await rm(this.dir, { recursive: true, force: true });
  }

  /** The last lines the box's init printed. */
  get log(): string {
    return this.output;
  }
}

/** An HTTP forward proxy for apt: GET/HEAD to the allowed hosts only; CONNECT refused. */
function aptProxy(allowed: ReadonlySet<string>): http.Server {
  const server = http.createServer((req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? "");
    } catch {
      res.writeHead(400).end("absolute URL expected\n");
      return;
    }
    if (url.protocol !== "http:" || !allowed.has(url.host) || !["GET", "HEAD"].includes(req.method ?? "")) {
      res.writeHead(403).end(`the box may only fetch from ${[...allowed].join(", ")}\n`);
      return;
    }
    const headers: http.OutgoingHttpHeaders = { ...req.headers, host: url.host };
    delete headers["proxy-connection"];
    const up = http.request(url, { method: req.method, headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on("error", (err) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(`${err.message}\n`);
    });
    up.end();
  });
  server.on("connect", (_req, socket) => {
    socket.end("HTTP/1.1 403 Forbidden\r\n\r\n");
  });
  return server;
}

function listen(server: Server, host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, host);
    s.setTimeout(1_000);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("timeout", () => {
      s.destroy();
      resolve(false);
    });
    s.once("error", () => resolve(false));
  });
}

/** This process's start time in clock ticks (/proc/self/stat field 22): a pid plus it names one process. */
function ownStartTime(): string {
  const stat = readFileSync("/proc/self/stat", "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
}

/** Removes the writable layers of boxes whose owner process is gone (a test that was killed). */
async function removeDeadBoxes(): Promise<void> {
  const names = await readdir(RUN_DIR).catch(() => [] as string[]);
  for (const name of names) {
    const owner = await readFile(join(RUN_DIR, name, "owner"), "utf8").catch(() => "");
    const [pid, start] = owner.trim().split(" ");
    const stat = pid ? await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "") : "";
    const alive = stat !== "" && stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] === start;
    if (!alive) await rm(join(RUN_DIR, name), { recursive: true, force: true });
  }
}
