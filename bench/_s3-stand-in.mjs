// A light S3 stand-in for the scale bench, in a process of its own: the S3 REST protocol as the
// AWS SDK and rclone speak it (path-style ListObjectsV2, HeadBucket, HeadObject, GetObject,
// PutObject with Content-MD5 checked and aws-chunked bodies decoded, CopyObject, DeleteObjects),
// objects held in memory, HTTP/1.1 keep-alive. moto answers every request with
// `Connection: close` (werkzeug's dev server) and spends 5–8 ms of Python per request; on two
// cores that, not the client, sets the pace. This one costs a fraction of that, so the
// client's own CPU and its speed-up across workers can be seen. Signatures are not checked.
//
// argv[2]: JSON {"port": N, "buckets": [{"name", "region", "count", "skipEvery"}], "latencyMs": L};
// object i is `<i, 8 digits>.bin`, 100–400 bytes (as bench/_moto_filled.py makes them). Prints
// "ready <n>". `latencyMs` (0 by default): every request, whatever its kind, is answered that many
// ms after it arrived, on a timer that spends no CPU: R2 and S3 answer in tens of ms, and a client
// that keeps requests in flight is then bound by the round trip, not by the cores, as in production.
import { createHash } from "node:crypto";
import http from "node:http";

const spec = JSON.parse(process.argv[2] ?? "{}");
const started = new Date("2026-01-01T00:00:00Z");

/** @type {Map<string, {region: string, objects: Map<string, any>, keys: string[]}>} */
const buckets = new Map();
const md5 = (b) => createHash("md5").update(b).digest("hex");
let total = 0;
for (const b of spec.buckets) {
  const objects = new Map();
  const keys = [];
  for (let i = 0; i < b.count; i++) {
    if (b.skipEvery && i % b.skipEvery === 0) continue;
    const key = `${String(i).padStart(8, "0")}.bin`;
    const body = Buffer.alloc(100 + ((i * 7919) % 301), `object ${i} `);
    objects.set(key, {
      body,
      etag: md5(body),
      type: "application/octet-stream",
      meta: {},
      modified: started,
    });
    keys.push(key);
  }
  buckets.set(b.name, { region: b.region ?? "us-east-1", objects, keys });
  total += keys.length;
}

const xmlEscape = (s) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]);

function insertKey(keys, key) {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid] < key) lo = mid + 1;
    else hi = mid;
  }
  if (keys[lo] !== key) keys.splice(lo, 0, key);
}

function firstAfter(keys, after) {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid] <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function error(res, status, code, message) {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error>`;
  res.writeHead(status, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function objectHeaders(o) {
  const h = {
    etag: `"${o.etag}"`,
    "content-length": o.body.length,
    "content-type": o.type,
    "last-modified": o.modified.toUTCString(),
    "accept-ranges": "bytes",
  };
  for (const [k, v] of Object.entries(o.meta)) h[`x-amz-meta-${k}`] = v;
  for (const k of ["cache-control", "content-disposition", "content-encoding", "content-language", "expires"])
    if (o[k] !== undefined) h[k] = o[k];
  if (o.crc32) h["x-amz-checksum-crc32"] = o.crc32;
  return h;
}

/** aws-chunked: `<hex size>[;chunk-signature=…]\r\n<bytes>\r\n` … `0\r\n<trailers>\r\n\r\n` */
function decodeChunked(buf) {
  const parts = [];
  const trailers = {};
  let i = 0;
  for (;;) {
    const eol = buf.indexOf("\r\n", i);
    const size = Number.parseInt(buf.subarray(i, eol).toString("latin1").split(";")[0], 16);
    i = eol + 2;
    if (size === 0) {
      for (const line of buf.subarray(i).toString("latin1").split("\r\n")) {
        const c = line.indexOf(":");
        if (c > 0) trailers[line.slice(0, c).toLowerCase()] = line.slice(c + 1).trim();
      }
      return { body: Buffer.concat(parts), trailers };
    }
    parts.push(buf.subarray(i, i + size));
    i += size + 2;
  }
}

function put(req, res, bucket, key, body) {
  const h = req.headers;
  let trailers = {};
  if (/aws-chunked/.test(h["content-encoding"] ?? "") || h["x-amz-decoded-content-length"] !== undefined)
    ({ body, trailers } = decodeChunked(body));
  const etag = md5(body);
  if (h["content-md5"] && Buffer.from(h["content-md5"], "base64").toString("hex") !== etag)
    return error(res, 400, "BadDigest", "The Content-MD5 you specified did not match what we received.");
  const meta = {};
  for (const [k, v] of Object.entries(h)) if (k.startsWith("x-amz-meta-")) meta[k.slice(11)] = v;
  const o = { body, etag, type: h["content-type"] ?? "binary/octet-stream", meta, modified: new Date() };
  for (const k of ["cache-control", "content-disposition", "content-language", "expires"])
    if (h[k] !== undefined) o[k] = h[k];
  const enc = (h["content-encoding"] ?? "").replace(/(^|,)\s*aws-chunked\s*/, "").replace(/^,/, "");
  if (enc) o["content-encoding"] = enc;
  const crc = h["x-amz-checksum-crc32"] ?? trailers["x-amz-checksum-crc32"];
  if (crc) o.crc32 = crc;
  bucket.objects.set(key, o);
  insertKey(bucket.keys, key);
  res.writeHead(200, {
    etag: `"${etag}"`,
    ...(crc ? { "x-amz-checksum-crc32": crc } : {}),
    "content-length": 0,
  });
  res.end();
}

function list(res, name, bucket, q) {
  const prefix = q.get("prefix") ?? "";
  const max = Math.min(1000, Number(q.get("max-keys") ?? 1000));
  const token = q.get("continuation-token");
  const after = token ? Buffer.from(token, "base64url").toString() : (q.get("start-after") ?? "");
  const keys = bucket.keys;
  let i = after ? firstAfter(keys, after) : 0;
  if (prefix && (i >= keys.length || keys[i] < prefix)) i = Math.max(i, firstAfter(keys, prefix) - 1, 0);
  const out = [];
  let last;
  for (; i < keys.length && out.length < max; i++) {
    const k = keys[i];
    if (prefix && !k.startsWith(prefix)) {
      if (k > prefix) break;
      continue;
    }
    const o = bucket.objects.get(k);
    out.push(
      `<Contents><Key>${xmlEscape(k)}</Key><LastModified>${o.modified.toISOString()}</LastModified><ETag>&quot;${o.etag}&quot;</ETag><Size>${o.body.length}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
    );
    last = k;
  }
  const more = i < keys.length && (!prefix || keys[i].startsWith(prefix));
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${xmlEscape(name)}</Name><Prefix>${xmlEscape(prefix)}</Prefix><KeyCount>${out.length}</KeyCount><MaxKeys>${max}</MaxKeys><IsTruncated>${more}</IsTruncated>${more ? `<NextContinuationToken>${Buffer.from(last).toString("base64url")}</NextContinuationToken>` : ""}${out.join("")}</ListBucketResult>`;
  res.writeHead(200, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function deleteMany(res, bucket, body) {
  for (const m of body.toString().matchAll(/<Key>([^<]*)<\/Key>/g)) {
    const key = m[1].replace(
      /&lt;|&gt;|&quot;|&apos;|&amp;/g,
      (e) => ({ "&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'", "&amp;": "&" })[e],
    );
    if (bucket.objects.delete(key)) bucket.keys.splice(firstAfter(bucket.keys, key) - 1, 1);
  }
  const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>`;
  res.writeHead(200, { "content-type": "application/xml", "content-length": Buffer.byteLength(xml) });
  res.end(xml);
}

/** answers one request whose body has arrived whole */
function answer(req, res, chunks) {
  const url = new URL(req.url ?? "/", "http://stand-in");
  const [, name = "", ...rest] = url.pathname.split("/");
  const key = decodeURIComponent(rest.join("/"));
  const bucket = buckets.get(decodeURIComponent(name));
  if (!bucket) return error(res, 404, "NoSuchBucket", `The specified bucket does not exist: ${name}`);
  const q = url.searchParams;
  if (!key) {
    if (req.method === "HEAD") {
      res.writeHead(200, { "x-amz-bucket-region": bucket.region, "content-length": 0 });
      return res.end();
    }
    if (req.method === "GET" && q.has("location")) {
      const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${bucket.region === "us-east-1" ? "" : bucket.region}</LocationConstraint>`;
      res.writeHead(200, { "content-type": "application/xml", "content-length": Buffer.byteLength(xml) });
      return res.end(xml);
    }
    if (req.method === "GET") return list(res, name, bucket, q);
    if (req.method === "POST" && q.has("delete")) return deleteMany(res, bucket, Buffer.concat(chunks));
    return error(res, 501, "NotImplemented", `${req.method} on a bucket is not in this stand-in`);
  }
  if (req.method === "PUT") {
    const from = req.headers["x-amz-copy-source"];
    if (from) {
      const [srcName, ...srcKey] = decodeURIComponent(String(from).replace(/^\//, "")).split("/");
      const src = buckets.get(srcName)?.objects.get(srcKey.join("/").split("?")[0]);
      if (!src) return error(res, 404, "NoSuchKey", "The specified key does not exist.");
      bucket.objects.set(key, { ...src, modified: new Date() });
      insertKey(bucket.keys, key);
      const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<CopyObjectResult><ETag>&quot;${src.etag}&quot;</ETag><LastModified>${new Date().toISOString()}</LastModified></CopyObjectResult>`;
      res.writeHead(200, { "content-type": "application/xml", "content-length": Buffer.byteLength(xml) });
      return res.end(xml);
    }
    return put(req, res, bucket, key, Buffer.concat(chunks));
  }
  const o = bucket.objects.get(key);
  if (req.method === "HEAD" || req.method === "GET") {
    if (!o) {
      if (req.method === "HEAD") {
        res.writeHead(404, { "content-length": 0 });
        return res.end();
      }
      return error(res, 404, "NoSuchKey", "The specified key does not exist.");
    }
    res.writeHead(200, objectHeaders(o));
    return res.end(req.method === "GET" ? o.body : undefined);
  }
  if (req.method === "DELETE") {
    if (bucket.objects.delete(key)) bucket.keys.splice(firstAfter(bucket.keys, key) - 1, 1);
    res.writeHead(204);
    return res.end();
  }
  return error(res, 501, "NotImplemented", `${req.method} is not in this stand-in`);
}

const latencyMs = Number(spec.latencyMs ?? 0);
if (!Number.isFinite(latencyMs) || latencyMs < 0)
  throw new Error(`latencyMs: ${spec.latencyMs} is not 0 or more`);
const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  // the round trip: the whole request is handled after it, so a PUT's object appears when its answer leaves
  req.on("end", () =>
    latencyMs > 0 ? setTimeout(answer, latencyMs, req, res, chunks) : answer(req, res, chunks),
  );
});
server.listen(spec.port, "127.0.0.1", () => process.stdout.write(`ready ${total}\n`));
// stopped by closing stdin, as the moto helper is
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
