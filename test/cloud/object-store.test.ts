import { createHash, createHmac } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createObjectStore, type ObjectStore, SigningSha256 } from "../../src/cloud/object-store.js";

/**
 * The S3 clients resolve their middleware once per command class (`cacheMiddleware`), so a
 * call's abort signal cannot ride in per-call options: these check it still reaches the HTTP
 * request itself, which the server sees closed, and not only the caller's promise.
 */
describe("the object store's abort signal", () => {
  let server: http.Server;
  let store: ObjectStore;
  /** resolved when the next request reaches the server; its `closed` when the client drops it */
  let next: (seen: { method: string; closed: Promise<void> }) => void = () => undefined;

  beforeAll(async () => {
    // a server that takes every request and never answers, as a stalled S3 would
    server = http.createServer((req) => {
      const closed = new Promise<void>((resolve) => req.socket.once("close", () => resolve()));
      req.resume();
      next({ method: req.method ?? "", closed });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    store = createObjectStore({
      side: "target",
      provider: "S3",
      bucket: "stalled",
      region: "us-east-1",
      endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      credentials: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "test" },
      credentialSource: "the test",
      writeChecksums: false,
      maxAttempts: 1,
    });
  });
  afterAll(() => {
    store.destroy();
    server.closeAllConnections();
    server.close();
  });

  const cases: Array<[string, (signal: AbortSignal) => Promise<unknown>]> = [
    ["a GET", (signal) => store.get("a.bin", { signal })],
    ["a HEAD", (signal) => store.head("a.bin", { signal })],
    ["a listing", (signal) => store.listPage({ signal })],
    [
      "a streamed PUT whose source stalls mid-object",
      (signal) => {
        const body = new PassThrough();
        body.write("half of"); // of 14 bytes: the rest never comes
        return store.put("a.bin", body, 14, { metadata: {} }, { signal });
      },
    ],
  ];
  it.each(cases)("aborts %s on the wire, and the call fails with AbortError", async (_what, call) => {
    const arrived = new Promise<{ method: string; closed: Promise<void> }>((resolve) => {
      next = resolve;
    });
    const controller = new AbortController();
    const pending = call(controller.signal);
    const seen = await arrived;
    controller.abort(new Error("cancelled by the test"));
    await expect(pending).rejects.toMatchObject({ name: "AbortError" });
    // the socket is closed by the client: the request itself was aborted
    await seen.closed;
  });

  it("fails at once, sending nothing, when the signal is already aborted", async () => {
    const controller = new AbortController();
    controller.abort(new Error("cancelled before"));
    await expect(store.head("a.bin", { signal: controller.signal })).rejects.toMatchObject({
      name: "AbortError",
      cause: { message: "cancelled before" },
    });
  });
});

describe("the signing hash (SigningSha256)", () => {
  const bytes = (s: string) => new TextEncoder().encode(s);
  const hex = (u: Uint8Array) => Buffer.from(u).toString("hex");

  it("digests as node:crypto does, keyed by a string, bytes or none, the same key again and again", async () => {
    const derived = new Uint8Array(createHmac("sha256", "AWS4secret").update("20261207").digest());
    for (let round = 0; round < 3; round++) {
      for (const [secret, key] of [
        ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"],
        [derived, Buffer.from(derived)],
        [derived.buffer, Buffer.from(derived)],
      ] as const) {
        const h = new SigningSha256(secret);
        h.update(bytes("AKIAIOSFODNN7EXAMPLE"));
        h.update("/and a string");
        expect(hex(await h.digest())).toBe(
          createHmac("sha256", key).update("AKIAIOSFODNN7EXAMPLE/and a string").digest("hex"),
        );
        expect(() => h.update(bytes("more"))).toThrow(/finished/);
        h.reset();
        h.update(bytes("again"));
        expect(hex(await h.digest())).toBe(createHmac("sha256", key).update("again").digest("hex"));
      }
      const plain = new SigningSha256();
      plain.update(bytes("GET\n/bucket/key\n"));
      expect(hex(await plain.digest())).toBe(createHash("sha256").update("GET\n/bucket/key\n").digest("hex"));
      plain.update(bytes("more")); // an unkeyed hash goes on after a digest, as the SDK's
      expect(hex(await plain.digest())).toBe(
        createHash("sha256").update("GET\n/bucket/key\nmore").digest("hex"),
      );
    }
  });
});

/**
 * The clients keep one signer per signing scheme and work out the user agent once (both were
 * rebuilt at every request). A server that checks every request's SigV4 signature itself, from
 * the bytes it received, with the secret it holds, as S3 does: each request of a store signs
 * right, again and again, in two regions at once, and a wrong secret is refused by the same check.
 */
describe("requests as S3 checks them", () => {
  const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  let server: http.Server;
  let endpoint: string;
  const seen: Array<{ method: string; region: string; valid: boolean; ua: string; amzUa: string }> = [];

  /** RFC 3986 as SigV4 wants it */
  const enc = (s: string) =>
    encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const hmac = (key: string | Buffer, data: string) => createHmac("sha256", key).update(data).digest();
  function verify(req: http.IncomingMessage): { region: string; valid: boolean } {
    const auth = String(req.headers.authorization ?? "");
    const m =
      /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(
        auth,
      );
    if (!m) return { region: "", valid: false };
    const [, , day, region, signedHeaders, signature] = m as unknown as string[];
    const url = new URL(req.url ?? "/", "http://x");
    const query = [...url.searchParams.entries()]
      .map(([k, v]) => [enc(k), enc(v)])
      .sort(([a], [b]) => (a! < b! ? -1 : a! > b! ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`)
      .join("&");
    const headers = signedHeaders!
      .split(";")
      .map(
        (h) =>
          `${h}:${String(req.headers[h] ?? "")
            .trim()
            .replace(/\s+/g, " ")}\n`,
      )
      .join("");
    const canonical = [
      req.method,
      url.pathname,
      query,
      headers,
      signedHeaders,
      String(req.headers["x-amz-content-sha256"]),
    ].join("\n");
    const scope = `${day}/${region}/s3/aws4_request`;
    const toSign = `AWS4-HMAC-SHA256\n${req.headers["x-amz-date"]}\n${scope}\n${createHash("sha256").update(canonical).digest("hex")}`;
    const key = hmac(hmac(hmac(hmac(`AWS4${SECRET}`, day!), region!), "s3"), "aws4_request");
    return { region: region!, valid: hmac(key, toSign).toString("hex") === signature };
  }

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        const v = verify(req);
        seen.push({
          method: req.method ?? "",
          ...v,
          ua: String(req.headers["user-agent"] ?? ""),
          amzUa: String(req.headers["x-amz-user-agent"] ?? ""),
        });
        if (!v.valid) {
          res.writeHead(403, { "content-type": "application/xml" });
          res.end(
            "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message></Error>",
          );
          return;
        }
        if (req.method === "GET" && (req.url ?? "").includes("list-type=2")) {
          res.writeHead(200, { "content-type": "application/xml" });
          res.end(
            '<?xml version="1.0"?><ListBucketResult><Name>b</Name><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>',
          );
          return;
        }
        const body = req.method === "GET" ? "hello" : "";
        res.writeHead(200, {
          etag: `"${createHash("md5").update("hello").digest("hex")}"`,
          "content-length": req.method === "GET" || req.method === "HEAD" ? "5" : "0",
          "last-modified": "Mon, 07 Dec 2026 09:00:00 GMT",
        });
        res.end(req.method === "HEAD" ? undefined : body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  const storeIn = (region: string, secretAccessKey = SECRET) =>
    createObjectStore({
      side: "target",
      provider: "S3",
      bucket: "checked",
      region,
      endpoint,
      credentials: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey },
      credentialSource: "the test",
      writeChecksums: false,
      maxAttempts: 1,
    });

  it("signs every request right, again and again, in two regions at once", async () => {
    seen.length = 0;
    const stores = [storeIn("us-east-1"), storeIn("ap-southeast-1")];
    try {
      for (let round = 0; round < 3; round++)
        await Promise.all(
          stores.flatMap((s) => [
            s.head("a.bin"),
            s.get("a.bin").then(async ({ body }) => {
              for await (const _ of body);
            }),
            s.put("b.bin", Buffer.from("hello"), 5, { metadata: { k: "v" } }),
            s.listPage({ maxKeys: 10 }),
          ]),
        );
    } finally {
      for (const s of stores) s.destroy();
    }
    expect(seen).toHaveLength(24);
    expect(seen.filter((r) => !r.valid)).toEqual([]);
    expect(seen.filter((r) => r.region === "us-east-1")).toHaveLength(12);
    expect(seen.filter((r) => r.region === "ap-southeast-1")).toHaveLength(12);
    // the SDK's user agent, in its format, on every request
    for (const r of seen) {
      expect(r.ua).toMatch(
        /^aws-sdk-js\/3\.\d+\.\d+ .*\bos\/linux\S* .*\blang\/js\b.*\bmd\/nodejs#\d+\.\d+\.\d+\b.*\bapi\/s3#3\.\d+\.\d+/,
      );
      expect(r.amzUa).toMatch(/^aws-sdk-js\/3\.\d+\.\d+$/);
    }
  });

  it("is refused by the same check when the secret is wrong", async () => {
    seen.length = 0;
    const wrong = storeIn("us-east-1", "not-the-secret");
    try {
      await expect(wrong.head("a.bin")).rejects.toMatchObject({ code: "storage_access_refused" });
    } finally {
      wrong.destroy();
    }
    expect(seen).toEqual([expect.objectContaining({ method: "HEAD", valid: false })]);
  });
});
