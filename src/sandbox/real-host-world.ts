import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { promisify } from "node:util";
import pg from "pg";
import pino from "pino";
import type { MigrationFile } from "../config/schema.js";
import type { StepDeps } from "../jobs/catalogue.js";
import { recordProvisioned } from "../jobs/provisioned.js";
import { createPorts } from "../ports.js";
import { HostBox } from "./host-box.js";
import { packSampleApp } from "./sample-app.js";
import { generateEd25519 } from "./ssh-keys.js";

const run = promisify(execFile);

/** The site's name on the box; the local CA's certificate is for it. */
export const SITE = "api.gogojap.test";
const MOTO_PORT_IN_BOX = 5000;
const PG_PORT_IN_BOX = 5432;

/** A local CA and a certificate for {@link SITE} it signed (what certbot would get from Let's Encrypt). */
export async function localCa(dir: string): Promise<{ ca: string; fullchain: string; key: string }> {
  const o = (...a: string[]) => run("openssl", a, { cwd: dir });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await o(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=Cutover test CA",
  );
  await o("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", `/CN=${SITE}`);
  await writeFile(
    join(dir, "server.ext"),
    `subjectAltName=DNS:${SITE}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n`,
  );
  await o(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "2",
    "-extfile",
    "server.ext",
  );
  const [ca, cert, key] = await Promise.all(
    ["ca.pem", "server.pem", "server.key"].map((f) => readFile(join(dir, f), "utf8")),
  );
  return { ca: ca!, fullchain: `${cert}${ca}`, key: key! };
}

export interface RealHostWorldOptions {
  /** the shipped example file, parsed: its host, app and verification sections are pointed at the box */
  base: MigrationFile;
  /** an empty target database on this machine's loopback (the app's tables are made here) */
  databaseUrl: string;
  /** an S3 endpoint on this machine's loopback (moto) and a bucket there, credentials test/test */
  s3: { endpoint: string; bucket: string };
  log?: (line: string) => void;
}

export interface RealHostWorld {
  box: HostBox;
  dataDir: string;
  env: NodeJS.ProcessEnv;
  tls: { ca: string; fullchain: string; key: string };
  /** the migration file for release `ref` of the sample app (served to the box as an archive) */
  fileFor(ref: string): Promise<MigrationFile>;
  deps(file: MigrationFile): StepDeps;
  /** puts the certificate and key where target.host.nginx.tls (cloudflare-origin) expects them */
  placeCertificate(project: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * A box, the target database with three products (reached from the box at the veth's host end),
 * the bucket (likewise), a local CA's certificate, and the example file pointed at all of them:
 * the plan's host, app and verification list, on Debian 12.
 */
export async function startRealHostWorld(opts: RealHostWorldOptions): Promise<RealHostWorld> {
  const scratch = await mkdtemp(join(tmpdir(), "cutover-realhost-"));
  const pair = generateEd25519();
  const keyPath = join(scratch, "id_ed25519");
  await writeFile(keyPath, pair.private, { mode: 0o600 });
  const client = new pg.Client({ connectionString: opts.databaseUrl });
  await client.connect();
  try {
    await client.query("CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL)");
    await client.query("INSERT INTO products VALUES (1, 'matcha'), (2, 'sencha'), (3, 'hojicha')");
  } finally {
    await client.end();
  }
  const db = new URL(opts.databaseUrl);
  const box = await HostBox.start({
    authorizedKey: pair.public,
    forwards: [
      { port: PG_PORT_IN_BOX, to: { host: db.hostname, port: Number(db.port || 5432) } },
      { port: MOTO_PORT_IN_BOX, to: { host: "127.0.0.1", port: Number(new URL(opts.s3.endpoint).port) } },
    ],
    ...(opts.log ? { log: opts.log } : {}),
  });
  try {
    const tlsDir = join(scratch, "tls");
    await mkdir(tlsDir);
    const tls = await localCa(tlsDir);
    const dataDir = join(scratch, "data");
    await mkdir(dataDir);
    // where Cutover finds the host: the static IP lightsail.instance would have recorded
    await recordProvisioned(dataDir, opts.base.environment, { "target.lightsail.staticIp": box.address });
    const env: NodeJS.ProcessEnv = { LIGHTSAIL_SSH_KEY_PATH: keyPath };
    const inBox = new URL(opts.databaseUrl);
    inBox.hostname = box.hostAddress;
    inBox.port = String(PG_PORT_IN_BOX);
    const archives = new Map<string, string>();

    const fileFor = async (ref: string): Promise<MigrationFile> => {
      let url = archives.get(ref);
      if (!url) {
        url = box.publish(`sample-app-${ref}.tar.gz`, await packSampleApp(ref));
        archives.set(ref, url);
      }
      return pointAtBox(opts.base, {
        ref,
        archiveUrl: url,
        databaseUrl: inBox.toString(),
        box,
        bucket: opts.s3.bucket,
      });
    };

    return {
      box,
      dataDir,
      env,
      tls,
      fileFor,
      deps: (file) => ({
        file,
        dataDir,
        env,
        ports: createPorts({ env }, file),
        log: pino({ level: "silent" }),
      }),
      async placeCertificate(project) {
        const dir = `/etc/ssl/cutover/${project}`;
        const b64 = (s: string) => Buffer.from(s).toString("base64");
        const r = await box.exec(
          `mkdir -p ${dir} && echo ${b64(tls.fullchain)} | base64 -d > ${dir}/fullchain.pem && echo ${b64(tls.key)} | base64 -d > ${dir}/privkey.pem && chmod 600 ${dir}/privkey.pem`,
        );
        if (r.code !== 0) throw new Error(`placing the certificate failed: ${r.stderr}`);
      },
      async close() {
        await box.stop();
        await rm(scratch, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await box.stop();
    await rm(scratch, { recursive: true, force: true });
    throw err;
  }
}

/** The example file with its host, app and verification sections pointed at the box. */
function pointAtBox(
  base: MigrationFile,
  o: { ref: string; archiveUrl: string; databaseUrl: string; box: HostBox; bucket: string },
): MigrationFile {
  const f = structuredClone(base);
  const host = f.target!.host!;
  host.sshUser = "admin";
  host.pythonPackages = "os";
  host.packages = [
    "postgresql-client",
    "python3-fastapi",
    "python3-multipart",
    "python3-celery",
    // /usr/bin/celery (the programs' {venv}/bin/celery) is in Debian's `celery` package
    "celery",
    "python3-redis",
    "python3-psycopg2",
    "python3-boto3",
    "python3-dotenv",
  ];
  host.release = {
    archiveUrl: o.archiveUrl,
    ref: o.ref,
    workdir: "backend",
    // no package index reachable: the requirements are the OS's packages the venv sees
    // (--no-deps: Debian pins its own set, e.g. fastapi 0.92 with starlette 0.26, which pip's
    // resolver would refuse; the requirements themselves must all be there)
    installCommand: "{venv}/bin/pip install --no-index --no-deps -q -r requirements.txt",
    keep: 3,
  };
  host.nginx.serverNames = [SITE];
  // the operator places the certificate (here: the local CA's) where nginx reads it; in
  // production letsencrypt-dns has certbot put Let's Encrypt's there through Cloudflare's DNS
  host.nginx.tls = { mode: "cloudflare-origin" };
  host.appEnv.vars = {
    ENVIRONMENT: "production",
    DATABASE_URL: o.databaseUrl,
    REDIS_URL: "redis://127.0.0.1:6379/0",
    CELERY_BROKER_URL: "redis://127.0.0.1:6379/1",
    AWS_REGION: "us-east-1",
    S3_BUCKET: o.bucket,
    S3_ENDPOINT_URL: `http://${o.box.hostAddress}:${MOTO_PORT_IN_BOX}`,
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
  };
  const asApp = "cd {current} && sudo -n -u gogojap -H {venv}/bin/python -m app.checks";
  f.verification.functional = [
    {
      id: "health",
      title: "API 健康检查 (/health)",
      kind: "http",
      method: "GET",
      path: "/health",
      expectStatus: 200,
      expectBodyContains: `"release":"${o.ref}"`,
      timeoutMs: 10_000,
    },
    {
      id: "products",
      title: "数据库查询 — 商品列表 (product list)",
      kind: "http",
      method: "GET",
      path: "/api/v1/products",
      expectStatus: 200,
      minItems: 3,
      jsonPath: "items",
      timeoutMs: 10_000,
    },
    {
      id: "upload-download",
      title: "文件上传/下载 (upload and download)",
      kind: "upload",
      path: "/api/v1/files",
      fileField: "file",
      sizeKb: 256,
    },
    {
      id: "celery-task",
      title: "Celery 任务 (a task runs)",
      kind: "command",
      command: `${asApp} task`,
      expectExitCode: 0,
      expectOutputContains: "task ran: 2+3=5",
      timeoutSeconds: 60,
    },
    {
      id: "celery-beat",
      title: "定时任务 (the beat schedule fires)",
      kind: "command",
      command: `${asApp} beat 20`,
      expectExitCode: 0,
      expectOutputContains: "beat fired",
      timeoutSeconds: 60,
    },
  ] as MigrationFile["verification"]["functional"];
  f.verification.reliability.autoRestart = { enabled: true, service: "gogojap", withinSeconds: 30 };
  return f;
}

/** GET over TLS from the box's Nginx as the site, trusting only the local CA; the certificate's issuer too. */
export function siteGet(
  w: Pick<RealHostWorld, "box" | "tls">,
  path: string,
): Promise<{ status: number; body: string; issuer: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: w.box.address,
        port: 443,
        path,
        servername: SITE,
        headers: { host: SITE },
        ca: w.tls.ca,
        timeout: 5_000,
      },
      (res) => {
        // read while the socket is still the response's (it goes back to the agent at the end)
        const issuer = String((res.socket as TLSSocket).getPeerCertificate().issuer?.CN ?? "");
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), issuer }),
        );
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end();
  });
}
