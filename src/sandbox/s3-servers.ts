import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";

/**
 * The two S3 implementations rehearsals and tests run against, each in its own process so its
 * CPU and memory can be measured apart from Cutover's: s3rver (npm, stands in for R2) and moto
 * (Python, stands in for AWS: S3, CloudFront, IAM).
 */

/** s3rver accepts only these keys. */
export const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;

export interface S3Server {
  /** http://127.0.0.1:port */
  endpoint: string;
  port: number;
  pid: number;
  /** stops the process (and removes s3rver's data folder when it made one) */
  stop(): Promise<void>;
}

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timeout = sleep(5_000).then(() => "timeout");
  if ((await Promise.race([exited.then(() => "exited"), timeout])) === "timeout") {
    child.kill("SIGKILL");
    await exited;
  }
}

async function waitForHttp(
  url: string,
  child: ChildProcess,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  for (;;) {
    if (exited) throw new Error(`${what} exited before it answered`);
    try {
      await fetch(url, { signal: AbortSignal.timeout(1_000) });
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${what} did not answer at ${url} within ${timeoutMs} ms`);
      await sleep(100);
    }
  }
}

/**
 * Starts s3rver on a free port, storing objects under `directory` (a new temporary folder when
 * absent). Its keys are {@link S3RVER_CREDENTIALS}. s3rver keeps each key as a file path, so a key
 * segment between slashes is limited to 255 bytes on Linux; s3rver checks only the access key id
 * of a V4 signature, not the secret.
 */
export async function startS3rver(opts: { directory?: string; port?: number } = {}): Promise<S3Server> {
  const directory = opts.directory ?? (await mkdtemp(path.join(tmpdir(), "cutover-s3rver-")));
  const port = opts.port ?? (await freePort());
  const entry = createRequire(import.meta.url).resolve("s3rver");
  // A failed write (a key segment longer than the file system allows) must not take the server down.
  const script = `
    process.on("uncaughtException", (err) => console.error("s3rver:", err && err.message));
    // Ends with the process that started it, however that one ends (stdin closes).
    process.stdin.on("end", () => process.exit(0)).resume();
    const S3rver = require(${JSON.stringify(entry)});
    new S3rver({ port: ${port}, address: "127.0.0.1", directory: ${JSON.stringify(directory)}, silent: true })
      .run()
      .then(() => console.log("ready"), (err) => { console.error(err); process.exit(1); });
  `;
  // s3rver's continuation tokens use DES, which OpenSSL 3 keeps in its legacy provider: without
  // it every listing past the first 1000 keys fails with an InternalError.
  const child = spawn(process.execPath, ["--openssl-legacy-provider", "-e", script], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  child.stdout?.resume();
  child.stderr?.resume();
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(endpoint, child, "s3rver");
  } catch (err) {
    await stopChild(child);
    throw err;
  }
  return {
    endpoint,
    port,
    pid: child.pid ?? 0,
    async stop() {
      await stopChild(child);
      if (!opts.directory) await rm(directory, { recursive: true, force: true });
    },
  };
}

/**
 * Starts `python3 -m moto.server` on a free port. `env` goes to the server: for example
 * `INITIAL_NO_AUTH_ACTION_COUNT` turns its signature and IAM checks on after that many requests.
 */
export async function startMoto(
  opts: { port?: number; env?: Record<string, string> } = {},
): Promise<S3Server> {
  const port = opts.port ?? (await freePort());
  // moto.server through the repository's launcher (it accepts CloudFront origin groups as AWS
  // does), ending when our end of stdin closes, so a test or benchmark that dies leaves no server
  const launcher = fileURLToPath(new URL("../../scripts/moto-server.py", import.meta.url));
  const child = spawn("python3", [launcher, "-H", "127.0.0.1", "-p", String(port)], {
    stdio: ["pipe", "ignore", "pipe"],
    env: { ...process.env, ...opts.env, CUTOVER_MOTO_STDIN_EXIT: "1" },
  });
  child.stderr?.resume();
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${endpoint}/moto-api/`, child, "moto");
  } catch (err) {
    await stopChild(child);
    throw err;
  }
  return { endpoint, port, pid: child.pid ?? 0, stop: () => stopChild(child) };
}

/** Empties a moto server (all services, all accounts). Only for a server of your own. */
export async function resetMoto(endpoint: string): Promise<void> {
  const res = await fetch(`${endpoint}/moto-api/reset`, { method: "POST" });
  if (!res.ok) throw new Error(`moto reset answered ${res.status}`);
}

/**
 * Creates an IAM user with full rights and returns its keys, on a moto started with
 * `INITIAL_NO_AUTH_ACTION_COUNT=3`: these three calls are the unauthenticated ones.
 */
export async function createMotoUser(
  endpoint: string,
  userName = "cutover",
): Promise<{ accessKeyId: string; secretAccessKey: string }> {
  const call = async (params: Record<string, string>) => {
    const res = await fetch(endpoint, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        // moto routes by the credential scope's service; the signature is not checked yet
        authorization:
          "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00",
      },
      body: new URLSearchParams({ ...params, Version: "2010-05-08" }).toString(),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`moto IAM ${params.Action} answered ${res.status}: ${text.slice(0, 200)}`);
    return text;
  };
  await call({ Action: "CreateUser", UserName: userName });
  await call({
    Action: "PutUserPolicy",
    UserName: userName,
    PolicyName: "all",
    PolicyDocument: JSON.stringify({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }],
    }),
  });
  const xml = await call({ Action: "CreateAccessKey", UserName: userName });
  const id = /<AccessKeyId>([^<]+)<\/AccessKeyId>/.exec(xml)?.[1];
  const secret = /<SecretAccessKey>([^<]+)<\/SecretAccessKey>/.exec(xml)?.[1];
  if (!id || !secret) throw new Error("moto did not return an access key");
  return { accessKeyId: id, secretAccessKey: secret };
}

/** Creates a bucket on a stand-in (path-style addressing, as both servers need). */
export async function createBucket(
  endpoint: string,
  bucket: string,
  region: string,
  credentials: { accessKeyId: string; secretAccessKey: string },
): Promise<void> {
  const client = new S3Client({ endpoint, region, forcePathStyle: true, credentials });
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
}
