import { createHash, createHmac, createSecretKey, type Hash, type Hmac, type KeyObject } from "node:crypto";
import http from "node:http";
import https from "node:https";
import { Readable } from "node:stream";
import type {
  GetObjectCommandOutput,
  HeadObjectCommandOutput,
  S3Client,
  StorageClass,
} from "@aws-sdk/client-s3";
import { CutoverError, ErrorCode } from "../errors.js";
import { NETWORK_CODES } from "../util/network.js";
import { type CommandOutput, type LazyAwsClient, lazyAwsClient, lazyModule } from "./lazy-sdk.js";

/** Which end of the move a store is: the source is only ever read. */
export type StoreSide = "source" | "target";

/** One entry of a bucket listing. */
export interface ObjectSummary {
  key: string;
  size: number;
  /** without quotes */
  etag: string;
  /** milliseconds since the epoch */
  lastModified: number;
}

/** The headers an object keeps when it is copied. */
export interface ObjectMeta {
  contentType?: string;
  cacheControl?: string;
  contentDisposition?: string;
  contentEncoding?: string;
  contentLanguage?: string;
  expires?: Date;
  /** user metadata (x-amz-meta-*), keys lower-case */
  metadata: Record<string, string>;
}

export interface ObjectHead extends ObjectSummary, ObjectMeta {
  /** the stored CRC32 (base64) when the object was written with one and it was asked for */
  checksumCRC32?: string;
  /** FULL_OBJECT or COMPOSITE (multipart) for the checksum above */
  checksumType?: string;
}

export interface ListPage {
  objects: ObjectSummary[];
  /** pass back as `token` for the next page; absent on the last page */
  nextToken?: string;
}

/**
 * The object-storage port: one bucket behind the S3 API. R2, S3 and the stand-ins (s3rver, moto)
 * differ only in the endpoint and credentials it is built with. Every error it throws is a
 * CutoverError naming the side ("source R2", "target S3") and what to do, never a secret.
 *
 * @example const page = await store.listPage({ prefix: "media/", maxKeys: 1000 });
 */
export interface ObjectStore {
  readonly side: StoreSide;
  /** "source R2 bucket `media` at abc.r2.cloudflarestorage.com": for messages */
  readonly label: string;
  readonly bucket: string;
  /** one page of keys under `prefix`, in the server's order (S3: UTF-8 binary order) */
  listPage(opts: {
    prefix?: string;
    startAfter?: string;
    token?: string;
    maxKeys?: number;
    signal?: AbortSignal;
  }): Promise<ListPage>;
  /** undefined when the key does not exist */
  head(key: string, opts?: { signal?: AbortSignal; checksums?: boolean }): Promise<ObjectHead | undefined>;
  /** the object's headers and its body as a stream (read it to the end or destroy it) */
  get(key: string, opts?: { signal?: AbortSignal }): Promise<{ head: ObjectHead; body: Readable }>;
  /** one PutObject, the body streamed; `size` must be exact */
  put(
    key: string,
    body: Readable | Buffer,
    size: number,
    meta: ObjectMeta,
    opts?: { signal?: AbortSignal; storageClass?: string; contentMd5?: string },
  ): Promise<{ etag: string }>;
  /** a multipart upload (lib-storage): memory is about (queueSize + 1) × partSize */
  upload(
    key: string,
    body: Readable,
    meta: ObjectMeta,
    opts: {
      signal?: AbortSignal;
      partSize: number;
      queueSize: number;
      storageClass?: string;
      onBytes?: (loaded: number) => void;
    },
  ): Promise<{ etag: string }>;
  /** deletes up to 1000 keys in one request; returns the keys that could not be deleted */
  deleteMany(keys: string[], opts?: { signal?: AbortSignal }): Promise<{ failed: string[] }>;
  /** the bucket's region as the server reports it (undefined where it reports none); throws BucketMissing */
  bucketRegion(opts?: { signal?: AbortSignal }): Promise<string | undefined>;
  /** requests sent so far (every attempt), by operation */
  requestCounts(): Record<string, number>;
  /** closes the connection pool */
  destroy(): void;
}

/** How to reach one bucket. Secrets are passed in, never read here. */
export interface ObjectStoreOptions {
  side: StoreSide;
  /** "R2", "S3": the provider word used in messages */
  provider: string;
  bucket: string;
  region: string;
  /** unset: AWS itself */
  endpoint?: string;
  /** unset: the SDK's credential chain */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** where the credentials came from, for messages ("R2_ACCESS_KEY_ID / R2_SECRET_ACCESS_KEY") */
  credentialSource: string;
  forcePathStyle?: boolean;
  /** SDK attempts per request (GETs, lists, heads; a streamed PUT is retried by the caller) */
  maxAttempts?: number;
  /** the connection pool's size; set it at least to the copy concurrency */
  maxSockets?: number;
  /** send a CRC32 with every write so the server checks what it stored (default on) */
  writeChecksums?: boolean;
  /** socket idle timeout */
  requestTimeoutMs?: number;
}

const REFUSED_CREDENTIALS = new Set([
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "InvalidToken",
  "ExpiredToken",
  "TokenRefreshRequired",
  "InvalidClientTokenId",
  "UnrecognizedClientException",
  "CredentialsProviderError",
]);
const DENIED = new Set(["AccessDenied", "AllAccessDisabled", "Forbidden"]);

interface SdkError {
  name?: string;
  message?: string;
  Code?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
  $response?: { headers?: Record<string, string> };
}

function hostOf(endpoint: string | undefined, fallback: string): string {
  if (!endpoint) return fallback;
  try {
    return new URL(endpoint).host;
  } catch {
    return "the configured endpoint";
  }
}

/** Whether an error is worth another try: throttling, a 5xx, a dropped or timed-out connection. */
export function isRetryableStoreError(err: unknown): boolean {
  if (err instanceof CutoverError) return err.details.retryable === true;
  const e = err as SdkError | undefined;
  if (!e || typeof e !== "object") return false;
  if (e.name === "AbortError") return false;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  if (e.$retryable) return true;
  const name = e.name ?? "";
  if (/throttl|slowdown|timeout|RequestTimeTooSkewed|InternalError|ServiceUnavailable/i.test(name))
    return true;
  const code = e.code ?? "";
  if (NETWORK_CODES.has(code)) return true;
  return /socket hang up|ECONNRESET|premature close|aborted/i.test(e.message ?? "");
}

/**
 * Turns an SDK error from one side into a CutoverError a person can act on. SDK errors carry the
 * access key id and the string that was signed, so neither they nor their message is kept as the
 * cause: only the error's name, status and the facts named here.
 */
export function explainStoreError(
  err: unknown,
  store: { label: string; side: StoreSide; credentialSource: string; provider: string },
  operation: string,
  key?: string,
): Error {
  if (err instanceof CutoverError) return err;
  const e = err as SdkError;
  if (e?.name === "AbortError") return err as Error;
  const status = e?.$metadata?.httpStatusCode;
  const name = e?.name ?? e?.Code ?? "Error";
  const code = e?.code ?? "";
  const what = key === undefined ? operation : `${operation} of \`${key}\``;
  const details = { side: store.side, operation, awsError: name, status, retryable: false as boolean };
  if (REFUSED_CREDENTIALS.has(name)) {
    return new CutoverError(
      ErrorCode.StorageAccessRefused,
      `The ${store.label} rejected the credentials (${name}) on ${what}.`,
      {
        details,
        hint: `Check ${store.credentialSource}: the key id and the secret must be a pair that is valid for this ${store.provider} account, then run the step again.`,
      },
    );
  }
  if (DENIED.has(name) || status === 403) {
    return new CutoverError(
      ErrorCode.StorageAccessRefused,
      `The ${store.label} refused ${what} (${name === "Unknown" ? "HTTP 403" : name}).`,
      {
        details,
        hint:
          store.side === "source"
            ? `Check ${store.credentialSource}: they must be valid and allowed to list and read the bucket (an R2 API token with Object Read).`
            : `Check ${store.credentialSource}: they must be valid and allowed s3:ListBucket, s3:GetObject, s3:PutObject${operation === "DeleteObjects" ? ", s3:DeleteObject" : ""} on the bucket.`,
      },
    );
  }
  if (
    name === "NoSuchBucket" ||
    (status === 404 && (operation === "HeadBucket" || operation === "ListObjectsV2"))
  ) {
    return new CutoverError(ErrorCode.BucketMissing, `The ${store.label} does not exist.`, {
      details,
      hint:
        store.side === "source"
          ? "Check source.storage.bucket and source.storage.endpoint in the migration file."
          : "Create it first with the provisioning step (`s3.bucket`), or check target.s3.bucket in the migration file.",
    });
  }
  if (
    name === "PermanentRedirect" ||
    name === "AuthorizationHeaderMalformed" ||
    name === "IllegalLocationConstraintException" ||
    status === 301
  ) {
    const actual = e?.$response?.headers?.["x-amz-bucket-region"];
    return new CutoverError(
      ErrorCode.RegionMismatch,
      `The ${store.label} is in another region${actual ? ` (${actual})` : ""} than the migration file says.`,
      {
        details: { ...details, actualRegion: actual },
        hint:
          store.side === "source"
            ? "Set source.storage.region to the bucket's region (R2 uses `auto`)."
            : "Set target.s3.region to the bucket's region, or pick another bucket name.",
      },
    );
  }
  if (
    NETWORK_CODES.has(code) ||
    name === "TimeoutError" ||
    (status === undefined && /connect|socket|timed? ?out/i.test(e?.message ?? ""))
  ) {
    return new CutoverError(
      ErrorCode.Unreachable,
      `Could not reach the ${store.label}${code ? ` (${code})` : name === "TimeoutError" ? " (timed out)" : ""}.`,
      {
        details: { ...details, retryable: true },
        hint:
          store.side === "source"
            ? "Check source.storage.endpoint and that this host can reach it."
            : "Check the AWS endpoint (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL when set) and this host's network.",
      },
    );
  }
  const retryable = isRetryableStoreError(err);
  // S3's own messages ("The specified key does not exist.") hold no secret; keep them short.
  const said =
    typeof e?.message === "string" && e.message !== "UnknownError" ? `: ${e.message.slice(0, 200)}` : "";
  return new CutoverError(
    ErrorCode.StepFailed,
    `The ${store.label} failed ${what} (${name}${status ? `, HTTP ${status}` : ""})${said}`,
    { details: { ...details, retryable } },
  );
}

function unquote(etag: string | undefined): string {
  return (etag ?? "").replace(/^W\//, "").replace(/"/g, "");
}

function headOf(key: string, out: HeadObjectCommandOutput | GetObjectCommandOutput): ObjectHead {
  const head: ObjectHead = {
    key,
    size: Number(out.ContentLength ?? 0),
    etag: unquote(out.ETag),
    lastModified: out.LastModified ? out.LastModified.getTime() : 0,
    metadata: Object.fromEntries(Object.entries(out.Metadata ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
  };
  if (out.ContentType !== undefined) head.contentType = out.ContentType;
  if (out.CacheControl !== undefined) head.cacheControl = out.CacheControl;
  if (out.ContentDisposition !== undefined) head.contentDisposition = out.ContentDisposition;
  if (out.ContentEncoding !== undefined) head.contentEncoding = out.ContentEncoding;
  if (out.ContentLanguage !== undefined) head.contentLanguage = out.ContentLanguage;
  if (out.Expires !== undefined) head.expires = out.Expires;
  if (out.ChecksumCRC32 !== undefined) head.checksumCRC32 = out.ChecksumCRC32;
  if (out.ChecksumType !== undefined) head.checksumType = out.ChecksumType;
  return head;
}

function metaParams(meta: ObjectMeta) {
  return {
    ContentType: meta.contentType,
    CacheControl: meta.cacheControl,
    ContentDisposition: meta.contentDisposition,
    ContentEncoding: meta.contentEncoding,
    ContentLanguage: meta.contentLanguage,
    Expires: meta.expires,
    Metadata: meta.metadata,
  };
}

/** Quiet: the SDK warns on the console for every failed streamed PUT, which the caller retries and logs. */
const QUIET = { debug() {}, info() {}, warn() {}, error() {} };

const s3Sdk = lazyModule(() => import("@aws-sdk/client-s3"));
const uploads = lazyModule(() => import("@aws-sdk/lib-storage"));

type S3Module = typeof import("@aws-sdk/client-s3");
type S3Lazy = LazyAwsClient<S3Module, S3Client>;

/**
 * Where one call's abort signal rides: on its command's input, under a key no serializer reads
 * (object spreads, which some middleware make of the input, keep symbol keys).
 */
const SIGNAL = Symbol("cutover.abortSignal");

/** the error the SDK's own HTTP handler throws for an aborted request */
function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  const err = new Error(reason && !(reason instanceof Error) ? String(reason) : "Request aborted");
  err.name = "AbortError";
  if (reason instanceof Error) err.cause = reason;
  return err;
}

/**
 * The client's middleware chain is resolved once per command class (`cacheMiddleware`) instead
 * of at every request: building it cost about a fifth of the SDK's CPU per request, a copy being
 * two requests and the full check two more. A cached chain takes no per-call options, so the abort
 * signal goes on the command's input ({@link SIGNAL}); the innermost middleware hands it to the
 * HTTP handler for that request (each retry's request as well), and the caller's promise settles
 * at the abort itself even while the SDK waits between retries.
 */
function sendWith<C extends { input: object }>(
  lazy: S3Lazy,
  make: (sdk: S3Module) => C,
  signal: AbortSignal | undefined,
): Promise<CommandOutput<C>> {
  if (!signal) return lazy.send(make);
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<CommandOutput<C>>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    lazy
      .send((sdk) => {
        const command = make(sdk);
        (command.input as Record<symbol, unknown>)[SIGNAL] = signal;
        return command;
      })
      .then(resolve, reject)
      .finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * One signer per signing scheme, kept for the client's life. The SDK builds a new one for every
 * request (a spread of the client's ~70-key configuration, which V8 keeps as a dictionary, and a
 * new SignatureV4), though each request passes its date, region and service to `sign` and the
 * signer asks the credential provider afresh every time. Kept per scheme name, region and service,
 * so a request signed for another region (S3's redirect to a bucket's own region) gets a signer of
 * its own; one that failed to build is not kept.
 */
function keepSigners(client: S3Client): void {
  const config = client.config as unknown as { signer: (scheme?: SigningScheme) => Promise<unknown> };
  const build = config.signer;
  // an SDK that resolves its signer otherwise keeps its own way
  if (typeof build !== "function") return;
  const kept = new Map<string, Promise<unknown>>();
  config.signer = (scheme) => {
    const key = `${scheme?.name}\n${scheme?.signingName}\n${scheme?.signingRegion}\n${scheme?.signingRegionSet}`;
    let signer = kept.get(key);
    if (!signer) {
      signer = build(scheme);
      kept.set(key, signer);
      signer.catch(() => kept.delete(key));
    }
    return signer;
  };
}
interface SigningScheme {
  name?: string;
  signingName?: string;
  signingRegion?: string;
  signingRegionSet?: string[];
}

/**
 * The SDK's user agent, worked out once per client rather than at every request, where its
 * middleware escaped the same pairs again and added the request's feature flags (`m/…`), which
 * only AWS's own telemetry reads. The same `user-agent` (the SDK, its version, the OS, Node.js, the
 * API) and `x-amz-user-agent` headers as the SDK's, in its format.
 */
function userAgentOnce(client: S3Client): void {
  const config = client.config as unknown as {
    defaultUserAgentProvider: () => Promise<Array<[string, string?]>>;
  };
  // an SDK without the provider keeps its own middleware
  if (typeof config.defaultUserAgentProvider !== "function") return;
  let headers: { ua: string; amz: string } | undefined;
  const work = async () => {
    const pairs = (await config.defaultUserAgentProvider()).map(userAgentPair);
    headers = { ua: pairs.join(" "), amz: pairs.filter((p) => p.startsWith("aws-sdk-")).join(" ") };
    return headers;
  };
  client.middlewareStack.remove("getUserAgentMiddleware");
  client.middlewareStack.add(
    (next) => async (args) => {
      const h = headers ?? (await work());
      const request = args.request as { headers?: Record<string, string> } | undefined;
      if (request?.headers) {
        request.headers["user-agent"] = h.ua;
        if (h.amz) request.headers["x-amz-user-agent"] = h.amz;
      }
      return next(args);
    },
    { step: "build", priority: "low", name: "cutoverUserAgent" },
  );
}

/** the SDK's escaping of one pair: `name/version`, or `prefix/name#version` where the name has a prefix */
export function userAgentPair([name, version]: [string, string?]): string {
  const token = (s: string) => s.replace(/[^!$%&'*+\-.^_`|~\w]/g, "-");
  const parts = name.split("/").map(token);
  const v = version?.replace(/[^!$%&'*+\-.^_`|~\w#]/g, "-");
  if (parts.length === 1) return v ? `${parts[0]}/${v}` : (parts[0] ?? "");
  const [prefix, ...rest] = parts;
  const uaName = prefix === "api" ? rest.join("/").toLowerCase() : rest.join("/");
  return v ? `${prefix}/${uaName}#${v}` : `${prefix}/${uaName}`;
}

/** Passes each request's abort signal ({@link SIGNAL}) to the HTTP handler that sends it. */
function handOverSignals(client: S3Client): void {
  const signals = new WeakMap<object, AbortSignal>();
  client.middlewareStack.add(
    (next) => async (args) => {
      const signal = (args.input as Record<symbol, unknown> | undefined)?.[SIGNAL] as AbortSignal | undefined;
      if (signal && args.request) signals.set(args.request, signal);
      return next(args);
    },
    // the last step before the handler: after signing, which makes the request that is sent
    { step: "deserialize", priority: "low", name: "cutoverAbortSignal" },
  );
  const handler = client.config.requestHandler as unknown as {
    handle(request: object, options?: { abortSignal?: AbortSignal }): Promise<unknown>;
  };
  const handle = handler.handle.bind(handler);
  handler.handle = (request, options = {}) => {
    const signal = signals.get(request);
    return handle(request, signal ? { ...options, abortSignal: signal } : options);
  };
}

/**
 * SHA-256 and HMAC-SHA256 for request signing, as the SDK's own (node:crypto) but with each HMAC
 * key imported once: SigV4 makes two HMACs a request, one keyed by the secret (the signing-key
 * cache's lookup) and one by the day's signing key, and importing the key again each time was
 * most of their cost. Keys are the secret, `AWS4`+secret and the derived keys (the same objects
 * while the SDK's signing-key cache holds them); a few strings are kept, and buffers weakly.
 */
const importedKeys = new Map<string, KeyObject>();
const importedBufferKeys = new WeakMap<object, KeyObject>();
function hmacKey(secret: string | ArrayBuffer | ArrayBufferView): KeyObject {
  if (typeof secret === "string") {
    let key = importedKeys.get(secret);
    if (!key) {
      if (importedKeys.size >= 32) importedKeys.clear();
      key = createSecretKey(Buffer.from(secret, "utf8"));
      importedKeys.set(secret, key);
    }
    return key;
  }
  let key = importedBufferKeys.get(secret);
  if (!key) {
    const bytes = ArrayBuffer.isView(secret)
      ? Buffer.from(secret.buffer, secret.byteOffset, secret.byteLength)
      : Buffer.from(secret);
    key = createSecretKey(Buffer.from(bytes)); // a copy: the caller's buffer may change
    importedBufferKeys.set(secret, key);
  }
  return key;
}

export class SigningSha256 {
  readonly digestLength = 32;
  private hash: Hash | Hmac;
  private finished = false;
  constructor(private readonly secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = this.start();
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    if (this.finished) throw new Error("Attempted to update an already finished hash.");
    this.hash.update(
      typeof data === "string"
        ? data
        : ArrayBuffer.isView(data)
          ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
          : new Uint8Array(data),
    );
  }
  async digest(): Promise<Uint8Array> {
    let out: Buffer;
    if (this.secret) {
      this.finished = true;
      out = this.hash.digest();
    } else out = (this.hash as Hash).copy().digest();
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }
  reset(): void {
    this.hash = this.start();
    this.finished = false;
  }
  private start(): Hash | Hmac {
    return this.secret ? createHmac("sha256", hmacKey(this.secret)) : createHash("sha256");
  }
}

function buildClient(
  opts: ObjectStoreOptions,
  maxAttempts: number,
  setUp: (client: S3Client) => void,
): S3Lazy {
  const maxSockets = opts.maxSockets ?? 64;
  return lazyAwsClient(s3Sdk, (sdk) => {
    const client = new sdk.S3Client({
      ...(maxAttempts === 1 ? { logger: QUIET } : {}),
      region: opts.region,
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
      forcePathStyle: opts.forcePathStyle ?? Boolean(opts.endpoint),
      maxAttempts,
      // see sendWith: every call goes through it, none passes per-call options
      cacheMiddleware: true,
      sha256: SigningSha256,
      requestChecksumCalculation: opts.writeChecksums === false ? "WHEN_REQUIRED" : "WHEN_SUPPORTED",
      // Checked by our own hashing where it matters (storage.verify); saves CPU on every read.
      responseChecksumValidation: "WHEN_REQUIRED",
      requestHandler: {
        httpAgent: new http.Agent({ keepAlive: true, maxSockets }),
        httpsAgent: new https.Agent({ keepAlive: true, maxSockets }),
        connectionTimeout: 10_000,
        requestTimeout: opts.requestTimeoutMs ?? 120_000,
      },
    });
    handOverSignals(client);
    // it logs each call's input and output, filtered for secrets, to a logger that drops them
    client.middlewareStack.remove("loggerMiddleware");
    keepSigners(client);
    userAgentOnce(client);
    setUp(client);
    return client;
  });
}

/**
 * Builds the port over @aws-sdk/client-s3. Two clients share nothing: one retries (lists, heads,
 * gets, multipart parts, whose bodies are buffers), the other sends streamed PUTs once, because a
 * consumed stream cannot be resent; the caller retries the whole copy instead.
 */
export function createObjectStore(opts: ObjectStoreOptions): ObjectStore {
  const where = hostOf(opts.endpoint, `S3 in ${opts.region}`);
  const label = `${opts.side} ${opts.provider} bucket \`${opts.bucket}\` at ${where}`;
  const counts: Record<string, number> = {};
  const count = (client: S3Client) => {
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const op = (context as { commandName?: string }).commandName?.replace(/Command$/, "") ?? "other";
        counts[op] = (counts[op] ?? 0) + 1;
        return next(args);
      },
      { step: "deserialize", name: "cutoverRequestCounter" },
    );
  };
  const client = buildClient(opts, opts.maxAttempts ?? 4, count);
  const once = buildClient(opts, 1, count);
  const who = { label, side: opts.side, credentialSource: opts.credentialSource, provider: opts.provider };
  const fail = (err: unknown, op: string, key?: string) => explainStoreError(err, who, op, key);
  const Bucket = opts.bucket;

  return {
    side: opts.side,
    label,
    bucket: opts.bucket,
    async listPage({ prefix, startAfter, token, maxKeys, signal }) {
      try {
        const out = await sendWith(
          client,
          (sdk) =>
            new sdk.ListObjectsV2Command({
              Bucket,
              ...(prefix ? { Prefix: prefix } : {}),
              ...(token ? { ContinuationToken: token } : startAfter ? { StartAfter: startAfter } : {}),
              MaxKeys: maxKeys ?? 1000,
            }),
          signal,
        );
        const objects: ObjectSummary[] = (out.Contents ?? []).map((c) => ({
          key: c.Key ?? "",
          size: Number(c.Size ?? 0),
          etag: unquote(c.ETag),
          lastModified: c.LastModified ? c.LastModified.getTime() : 0,
        }));
        const page: ListPage = { objects };
        if (out.IsTruncated && out.NextContinuationToken) page.nextToken = out.NextContinuationToken;
        return page;
      } catch (err) {
        throw fail(err, "ListObjectsV2");
      }
    },
    async head(key, o = {}) {
      try {
        const out = await sendWith(
          client,
          (sdk) =>
            new sdk.HeadObjectCommand({
              Bucket,
              Key: key,
              ...(o.checksums ? { ChecksumMode: "ENABLED" } : {}),
            }),
          o.signal,
        );
        return headOf(key, out);
      } catch (err) {
        const e = err as SdkError;
        if (e?.$metadata?.httpStatusCode === 404 && e.name !== "NoSuchBucket") return undefined;
        throw fail(err, "HeadObject", key);
      }
    },
    async get(key, o = {}) {
      try {
        const out = await sendWith(client, (sdk) => new sdk.GetObjectCommand({ Bucket, Key: key }), o.signal);
        const body = out.Body instanceof Readable ? out.Body : Readable.from([]);
        return { head: headOf(key, out), body };
      } catch (err) {
        throw fail(err, "GetObject", key);
      }
    },
    async put(key, body, size, meta, o = {}) {
      try {
        const out = await sendWith(
          once,
          (sdk) =>
            new sdk.PutObjectCommand({
              Bucket,
              Key: key,
              Body: body,
              ContentLength: size,
              // S3 checks the bytes it received against it (BadDigest otherwise)
              ...(o.contentMd5 ? { ContentMD5: o.contentMd5 } : {}),
              ...metaParams(meta),
              ...(o.storageClass && o.storageClass !== "STANDARD"
                ? { StorageClass: o.storageClass as StorageClass }
                : {}),
            }),
          o.signal,
        );
        return { etag: unquote(out.ETag) };
      } catch (err) {
        throw fail(err, "PutObject", key);
      }
    },
    async upload(key, body, meta, o) {
      const { Upload } = await uploads();
      const upload = new Upload({
        client: await client.client(),
        params: {
          Bucket,
          Key: key,
          Body: body,
          ...metaParams(meta),
          ...(o.storageClass && o.storageClass !== "STANDARD"
            ? { StorageClass: o.storageClass as StorageClass }
            : {}),
        },
        partSize: o.partSize,
        queueSize: o.queueSize,
        leavePartsOnError: false,
      });
      const onAbort = () => {
        upload.abort().catch(() => undefined);
      };
      o.signal?.addEventListener("abort", onAbort, { once: true });
      if (o.onBytes) {
        const report = o.onBytes;
        upload.on("httpUploadProgress", (p) => {
          if (typeof p.loaded === "number") report(p.loaded);
        });
      }
      try {
        const out = await upload.done();
        return { etag: unquote(out.ETag) };
      } catch (err) {
        if (o.signal?.aborted) throw o.signal.reason ?? err;
        throw fail(err, "multipart upload", key);
      } finally {
        o.signal?.removeEventListener("abort", onAbort);
      }
    },
    async deleteMany(keys, o = {}) {
      if (keys.length === 0) return { failed: [] };
      try {
        const out = await sendWith(
          client,
          (sdk) =>
            new sdk.DeleteObjectsCommand({
              Bucket,
              Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
            }),
          o.signal,
        );
        return { failed: (out.Errors ?? []).map((e) => e.Key ?? "") };
      } catch (err) {
        throw fail(err, "DeleteObjects");
      }
    },
    async bucketRegion(o = {}) {
      try {
        const out = await sendWith(client, (sdk) => new sdk.HeadBucketCommand({ Bucket }), o.signal);
        return out.BucketRegion;
      } catch (err) {
        throw fail(err, "HeadBucket");
      }
    },
    requestCounts: () => ({ ...counts }),
    destroy() {
      client.destroy();
      once.destroy();
    },
  };
}
