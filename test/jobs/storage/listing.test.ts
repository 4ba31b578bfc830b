import { describe, expect, it } from "vitest";
import type { ListPage, ObjectStore, ObjectSummary } from "../../../src/cloud/object-store.js";
import {
  compareKeyStrings,
  type ListedObject,
  looksIdentical,
  mergeListings,
  sortedListing,
} from "../../../src/jobs/steps/storage/listing.js";

/** A store that lists the given keys in the given order, `pageSize` per page. */
function fakeStore(
  keys: string[],
  opts: { etag?: (k: string) => string; pageSize?: number } = {},
): ObjectStore & { pages: number } {
  const objects: ObjectSummary[] = keys.map((key) => ({
    key,
    size: key.length,
    etag: opts.etag?.(key) ?? "e",
    lastModified: 0,
  }));
  const store = {
    side: "source" as const,
    label: "fake",
    bucket: "fake",
    pages: 0,
    async listPage({ token, maxKeys }: { token?: string; maxKeys?: number }): Promise<ListPage> {
      store.pages++;
      const from = token ? Number(token) : 0;
      const n = Math.min(maxKeys ?? 1000, opts.pageSize ?? 1000);
      const page: ListPage = { objects: objects.slice(from, from + n) };
      if (from + n < objects.length) page.nextToken = String(from + n);
      return page;
    },
  };
  return store as unknown as ObjectStore & { pages: number };
}

async function collect(it: AsyncIterable<ListedObject>): Promise<string[]> {
  const out: string[] = [];
  for await (const o of it) out.push(o.key);
  return out;
}

describe("listing order", () => {
  it("compares keys as S3 does (UTF-8 bytes), not as JavaScript strings", () => {
    // U+FF01 (！) is three UTF-8 bytes EF BC 81; U+1F600 (😀) is F0 9F 98 80, so S3 lists ！ first,
    // while JavaScript's UTF-16 comparison puts the surrogate pair D83D… before FF01.
    expect("😀" < "！").toBe(true);
    expect(compareKeyStrings("！", "😀")).toBeLessThan(0);
    expect(["a/b", "a", "a.txt", "a-", "a b"].sort(compareKeyStrings)).toEqual([
      "a",
      "a b",
      "a-",
      "a.txt",
      "a/b",
    ]);
  });

  it("repairs a server's local disorder (s3rver walks folders first) within the window", async () => {
    const served = ["a/b", "a b.txt", "a-", "a", "a.txt", "b", "中文/x", "日本語", "！", "😀"];
    const sorted = [...served].sort(compareKeyStrings);
    const stragglers: string[] = [];
    const keys = await collect(
      sortedListing(fakeStore(served, { pageSize: 3 }), {
        prefix: "",
        window: 8,
        onStraggler: (o) => stragglers.push(o.key),
      }),
    );
    expect(keys).toEqual(sorted);
    expect(stragglers).toEqual([]);
  });

  it("hands keys that come later than the window allows to the caller as stragglers, and drops duplicates", async () => {
    const served = ["b", "c", "d", "a", "d", "e"];
    const stragglers: string[] = [];
    const keys = await collect(
      sortedListing(fakeStore(served), { prefix: "", window: 0, onStraggler: (o) => stragglers.push(o.key) }),
    );
    expect(keys).toEqual(["b", "c", "d", "e"]);
    expect(stragglers).toEqual(["a"]);
  });

  it("merges two listings page by page into both / source-only / target-only", async () => {
    const source = fakeStore(["a", "b", "c", "e"], { pageSize: 2 });
    const target = fakeStore(["b", "d", "e", "f"], { pageSize: 1 });
    const items: string[] = [];
    for await (const i of mergeListings(source, target, { prefix: "", window: 2 })) {
      items.push(`${i.kind}:${"source" in i ? i.source.key : i.target.key}`);
    }
    expect(items).toEqual([
      "source-only:a",
      "both:b",
      "source-only:c",
      "target-only:d",
      "both:e",
      "target-only:f",
    ]);
    expect(source.pages).toBe(2);
    expect(target.pages).toBe(4);
  });
});

describe("looksIdentical", () => {
  const o = (etag: string, size = 10, lastModified = 1_000_000): ObjectSummary => ({
    key: "k",
    size,
    etag,
    lastModified,
  });
  const md5a = "0123456789abcdef0123456789abcdef";
  const md5b = "fedcba9876543210fedcba9876543210";

  it("compares plain MD5 ETags where both sides have one", () => {
    expect(looksIdentical(o(md5a), o(md5a))).toBe(true);
    expect(looksIdentical(o(md5a), o(md5b, 10, 9_000_000))).toBe(false);
    expect(looksIdentical(o(md5a), o(md5a, 11))).toBe(false);
  });

  it("accepts a pair remembered from a copy where the source ETag was not an MD5", () => {
    expect(looksIdentical(o(md5a), o(md5b), () => [md5a, md5b])).toBe(true);
    expect(looksIdentical(o(md5a), o(md5b), () => [md5a, "something else"])).toBe(false);
  });

  it("falls back to the copy being newer than the source when ETags are not comparable (multipart)", () => {
    expect(looksIdentical(o(md5a, 10, 5_000), o(`${md5b}-3`, 10, 5_400))).toBe(true); // same second
    expect(looksIdentical(o(md5a, 10, 5_000), o(`${md5b}-3`, 10, 9_000))).toBe(true);
    expect(looksIdentical(o(md5a, 10, 9_000), o(`${md5b}-3`, 10, 5_000))).toBe(false);
  });
});
