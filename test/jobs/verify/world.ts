import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import pino from "pino";
import { createObjectStore, type ObjectStore } from "../../../src/cloud/object-store.js";
import type { MigrationFile, VerificationConfig } from "../../../src/config/schema.js";
import type { StepDeps } from "../../../src/jobs/catalogue.js";
import { recordProvisioned } from "../../../src/jobs/provisioned.js";
import type { VerificationReport } from "../../../src/jobs/steps/verify/report.js";
import { createPorts } from "../../../src/ports.js";
import { FakeHost } from "../../../src/sandbox/FakeHost.js";
import { type FakeCdn, startFakeCdn } from "../../../src/sandbox/fake-cdn.js";
import { createEmptyDatabase, type TestDatabase } from "../../helpers/db.js";
import { useMoto } from "../../helpers/moto.js";
import { clientKey, exampleFile, tempDir } from "../host/fixtures.js";
import { bucketName, createBucket } from "../storage/world.js";

/** The shipped example with its verification section replaced (defaults as the loader fills them). */
export async function fileWith(
  edit: (f: MigrationFile, v: VerificationConfig) => void = () => undefined,
): Promise<MigrationFile> {
  const f = structuredClone(await exampleFile());
  f.verification.functional = [];
  edit(f, f.verification);
  return f;
}

export function depsFor(
  file: MigrationFile,
  dataDir: string,
  env: NodeJS.ProcessEnv,
  db?: StepDeps["db"],
): StepDeps {
  return {
    file,
    dataDir,
    env,
    ports: createPorts({ env }, file),
    log: pino({ level: "silent" }),
    ...(db ? { db } : {}),
  };
}

/** A data folder, and an SSH host (in-process ssh2 server) the static IP record points at. */
export interface HostWorld {
  dataDir: string;
  host: FakeHost;
  /** LIGHTSAIL_SSH_KEY_PATH for the host's authorised key */
  env: Record<string, string>;
  /** sets target.host.sshPort to the fake host's port */
  point(f: MigrationFile): void;
  stop(): Promise<void>;
}

export async function startHostWorld(): Promise<HostWorld> {
  const data = await tempDir("cutover-verify-");
  const key = await clientKey(data.dir);
  const host = new FakeHost({ authorizedKeys: [key.publicKey] });
  const port = await host.start();
  await recordProvisioned(data.dir, "production", { "target.lightsail.staticIp": "127.0.0.1" });
  return {
    dataDir: data.dir,
    host,
    env: { LIGHTSAIL_SSH_KEY_PATH: key.path },
    point(f) {
      f.target!.host!.sshPort = port;
    },
    async stop() {
      await host.stop();
      await data.remove();
    },
  };
}

/** The row of a report by id (fails the test when it is missing). */
export function row(report: VerificationReport | undefined, id: string) {
  const r = report?.rows.find((x) => x.id === id);
  if (!r) throw new Error(`no row ${id} in ${report?.rows.map((x) => x.id).join(", ")}`);
  return r;
}

/**
 * An upload endpoint like an app's: takes a multipart POST, keeps the file's bytes, answers
 * `{ url }` (or nothing useful) and serves the file back at that URL.
 */
export async function startUploadApp(opts: { answerWithUrl: boolean }): Promise<{
  url: string;
  uploads: Buffer[];
  close(): Promise<void>;
}> {
  const files = new Map<string, Buffer>();
  const uploads: Buffer[] = [];
  let n = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method === "POST" && req.url === "/api/v1/upload") {
        const raw = Buffer.concat(chunks);
        const boundary = /boundary=(\S+)/.exec(req.headers["content-type"] ?? "")?.[1] ?? "";
        const start = raw.indexOf("\r\n\r\n") + 4;
        const end = raw.lastIndexOf(Buffer.from(`\r\n--${boundary}--`));
        const file = raw.subarray(start, end);
        uploads.push(file);
        const id = `/files/${++n}.bin`;
        files.set(id, file);
        res.writeHead(201, { "content-type": "application/json" });
        res.end(JSON.stringify(opts.answerWithUrl ? { data: { file: { url: id } } } : { ok: true }));
        return;
      }
      const file = files.get(req.url ?? "");
      res.writeHead(file ? 200 : 404);
      res.end(file);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    uploads,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** moto as S3 (a bucket of its own), a CDN stand-in in front of it, and two databases on the machine's PostgreSQL. */
export interface DataWorld {
  bucket: string;
  store: ObjectStore;
  cdn: FakeCdn;
  target: TestDatabase;
  source: TestDatabase;
  /** what the steps' environment needs: AWS endpoint and keys, the databases' URLs */
  env: Record<string, string>;
  /** target.s3.bucket and target.rds.urlEnv set to this world's */
  point(f: MigrationFile): void;
  stop(): Promise<void>;
}

export async function startDataWorld(opts: { cdnMaxBytes?: number } = {}): Promise<DataWorld> {
  const [moto, target, source] = await Promise.all([
    useMoto(),
    createEmptyDatabase("verify_target"),
    createEmptyDatabase("verify_source"),
  ]);
  const bucket = bucketName("verify");
  const keys = {
    accessKeyId: "AKIAIOSFODNN7EXAMPLE",
    secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  };
  await createBucket(moto.endpoint, bucket, { region: "ap-southeast-1", credentials: keys });
  const store = createObjectStore({
    side: "target",
    provider: "S3",
    bucket,
    region: "ap-southeast-1",
    endpoint: moto.endpoint,
    credentials: keys,
    credentialSource: "test keys",
  });
  const cdn = await startFakeCdn(store, opts.cdnMaxBytes === undefined ? {} : { maxBytes: opts.cdnMaxBytes });
  return {
    bucket,
    store,
    cdn,
    target,
    source,
    env: {
      AWS_ENDPOINT_URL: moto.endpoint,
      AWS_ACCESS_KEY_ID: keys.accessKeyId,
      AWS_SECRET_ACCESS_KEY: keys.secretAccessKey,
      AWS_MAX_ATTEMPTS: "2",
      TARGET_DB_URL: target.url,
      NEON_DATABASE_URL: source.url,
    },
    point(f) {
      f.target!.s3!.bucket = bucket;
      f.target!.rds!.urlEnv = "TARGET_DB_URL";
    },
    async stop() {
      await cdn.close();
      store.destroy();
      await Promise.allSettled([target.drop(), source.drop(), moto.stop()]);
    },
  };
}

/** Runs SQL on a test database. */
export async function sql(db: TestDatabase, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/** Every key in the bucket under a prefix. */
export async function keysUnder(store: ObjectStore, prefix: string): Promise<string[]> {
  const page = await store.listPage({ prefix });
  return page.objects.map((o) => o.key);
}
