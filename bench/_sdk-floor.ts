/**
 * The scale bench's floor, in a process of its own: the CPU per object of the product's own
 * object-store adapter (src/cloud/object-store.ts over @aws-sdk/client-s3) making just the requests
 * a copy and a check make, 16 at once, against the light S3 stand-in (bench/_s3-stand-in.mjs):
 * HEAD, GET, and GET then PUT, with the client settings storage.sync uses by default (`checksums:
 * md5`: no CRC32 computed, the source's MD5 ETag sent as Content-MD5). What the sync costs above
 * these is the engine's own.
 * argv[2]: JSON {objects}. Prints one JSON line.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { setMaxListeners } from "node:events";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createObjectStore } from "../src/cloud/object-store.js";
import { freePort } from "../src/sandbox/s3-servers.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const job = JSON.parse(process.argv[2] ?? "{}") as { objects?: number };
const n = job.objects ?? 3000;
const port = await freePort();
const server: ChildProcess = spawn(
  process.execPath,
  [
    path.join(here, "_s3-stand-in.mjs"),
    JSON.stringify({
      port,
      buckets: [
        { name: "src", count: n },
        { name: "dst", region: "ap-southeast-1", count: 0 },
      ],
    }),
  ],
  { stdio: ["pipe", "pipe", "inherit"] },
);
await new Promise((resolve) => server.stdout?.once("data", resolve));
const store = (side: "source" | "target", bucket: string) =>
  createObjectStore({
    side,
    provider: "S3",
    bucket,
    region: "ap-southeast-1",
    endpoint: `http://127.0.0.1:${port}`,
    credentials: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "bench" },
    credentialSource: "the bench",
    maxSockets: 40,
    // storage.sync's default (`checksums: md5`): S3 checks the Content-MD5 instead
    writeChecksums: false,
  });
const source = store("source", "src");
const target = store("target", "dst");
const keys = Array.from({ length: n }, (_, i) => `${String(i).padStart(8, "0")}.bin`);

/** CPU ms per object of `fn` over every key, 16 at once */
async function perObject(fn: (key: string, signal: AbortSignal) => Promise<unknown>): Promise<number> {
  let next = 0;
  const signal = new AbortController().signal;
  // the 16 requests in flight each listen on it, as a step's copies do on the step's signal
  setMaxListeners(64, signal);
  const c0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < keys.length) await fn(keys[next++]!, signal);
    }),
  );
  const c = process.cpuUsage(c0);
  return Math.round(((c.user + c.system) / 1000 / n) * 1000) / 1000;
}

await perObject((k, signal) => source.head(k, { signal })); // warm: the SDK loads, sockets open
const head = await perObject((k, signal) => source.head(k, { signal }));
const get = await perObject(async (k, signal) => {
  const { body } = await source.get(k, { signal });
  for await (const _ of body);
});
const getPut = await perObject(async (k, signal) => {
  const { head: h, body } = await source.get(k, { signal });
  const contentMd5 = Buffer.from(h.etag, "hex").toString("base64");
  await target.put(k, body, h.size, { metadata: h.metadata }, { signal, contentMd5 });
});
source.destroy();
target.destroy();
server.stdin?.end();
process.stdout.write(
  `${JSON.stringify({
    objects: n,
    headMs: head,
    getMs: get,
    getPutMs: getPut,
    /** the requests of a `compare: full` first copy: GET and PUT, then a HEAD on each side */
    copyFullFloorMs: Math.round((getPut + 2 * head) * 1000) / 1000,
  })}\n`,
);
