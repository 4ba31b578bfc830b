import type pg from "pg";

/**
 * Large objects (`lo_create`, `lo_import`) live outside every table, so the row comparison never
 * sees them. pg_dump copies them with their OIDs, so they are compared OID by OID: size and an
 * MD5 of the content, read with `lo_get` (the owner's right, which the copy's user has on both
 * sides), in pages of OIDs so neither side's listing is held whole.
 */

/** One large-object difference: the OID and what differs. */
export interface LargeObjectDifference {
  what: "large object";
  object: string;
  source: string;
  target: string;
}

interface Entry {
  oid: number;
  size: number;
  md5: string;
}

const PAGE = 500;
/** large objects bigger than this are hashed piece by piece, so one read never holds it all */
const PIECE = 16 * 1024 * 1024;

async function page(client: pg.Client, after: number): Promise<Entry[]> {
  // lo_open in read mode works in the read-only session; lo_lseek64 to the end is the size
  const res = await client.query<{ oid: string; size: string; md5: string }>(
    `SELECT s.oid::int8::text AS oid, s.size::text AS size,
       md5(coalesce((SELECT string_agg(md5(lo_get(s.oid, p * ${PIECE}::int8, ${PIECE})), '' ORDER BY p)
         FROM generate_series(0::int8, (s.size - 1) / ${PIECE}) p), '')) AS md5
     FROM (SELECT m.oid, lo_lseek64(lo_open(m.oid, 262144), 0, 2) AS size FROM pg_largeobject_metadata m
       WHERE m.oid::int8 > $1 ORDER BY m.oid LIMIT ${PAGE}) s ORDER BY s.oid`,
    [after],
  );
  return res.rows.map((r) => ({ oid: Number(r.oid), size: Number(r.size), md5: r.md5 }));
}

/**
 * Compares every large object on both sides. A side whose large objects cannot be read (no
 * right to them) is a difference that says so: not comparing is not "identical".
 */
export async function compareLargeObjects(
  source: pg.Client,
  target: pg.Client,
  max = 50,
): Promise<{ count: number; targetCount: number; differences: LargeObjectDifference[] }> {
  const differences: LargeObjectDifference[] = [];
  const push = (d: Omit<LargeObjectDifference, "what">) => {
    if (differences.length < max) differences.push({ what: "large object", ...d });
  };
  let count = 0;
  let targetCount = 0;
  let afterA = -1;
  let afterB = -1;
  let a: Entry[] = [];
  let b: Entry[] = [];
  let doneA = false;
  let doneB = false;
  const refill = async () => {
    if (a.length === 0 && !doneA) {
      a = await page(source, afterA);
      if (a.length < PAGE) doneA = true;
      if (a.length) afterA = a[a.length - 1]!.oid;
    }
    if (b.length === 0 && !doneB) {
      b = await page(target, afterB);
      if (b.length < PAGE) doneB = true;
      if (b.length) afterB = b[b.length - 1]!.oid;
    }
  };
  const fmt = (e: Entry) => `${e.size} bytes, md5 ${e.md5.slice(0, 12)}`;
  try {
    for (;;) {
      await refill();
      const x = a[0];
      const y = b[0];
      if (!x && !y) break;
      if (x && (!y || x.oid < y.oid)) {
        count++;
        push({ object: `OID ${x.oid}`, source: fmt(x), target: "missing" });
        a.shift();
      } else if (y && (!x || y.oid < x.oid)) {
        targetCount++;
        push({ object: `OID ${y.oid}`, source: "missing", target: fmt(y) });
        b.shift();
      } else if (x && y) {
        count++;
        targetCount++;
        if (x.size !== y.size || x.md5 !== y.md5)
          push({
            object: `OID ${x.oid}`,
            source: fmt(x),
            target:
              x.size !== y.size ? fmt(y) : `${y.size} bytes, content differs (md5 ${y.md5.slice(0, 12)})`,
          });
        a.shift();
        b.shift();
      }
    }
  } catch (err) {
    const e = err as { code?: string; message?: string };
    if (e.code !== "42501") throw err;
    push({
      object: "all large objects",
      source: "could not be compared",
      target: `${e.message ?? "permission denied"}: the verifying user needs read access to them`,
    });
  }
  return { count, targetCount, differences };
}
