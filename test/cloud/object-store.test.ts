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
