import type { ObjectStore } from "../../cloud/object-store.js";
import { describeError } from "../../errors.js";
import type { StepDeps } from "../define-step.js";
import { openSource, openTarget } from "../steps/storage/buckets.js";

/** What the way back did for the uploads made on the new stack. */
export interface ObjectsBackReport {
  /** objects on the target modified since the switch */
  examined: number;
  copied: number;
  /** already on the old bucket with the same size and ETag */
  present: number;
  failed: Array<{ key: string; error: string }>;
  ms: number;
}

/** Seconds of slack before the switch: the bucket servers' clocks are not ours. */
const CLOCK_SLACK_MS = 120_000;

/**
 * Copies back to the old bucket every object written to the new one since the switch: the
 * uploads customers made on AWS, which a rollback must not leave behind. Reads the target's
 * listing once (objects are listed with their modification time); an object already on the old
 * bucket with the same size and ETag is left alone. Every failure is reported by key; the rest
 * still run.
 */
export async function copyUploadsBack(
  deps: StepDeps,
  since: Date,
  signal: AbortSignal,
  stores?: { source: ObjectStore; target: ObjectStore },
): Promise<ObjectsBackReport> {
  const started = performance.now();
  const source = stores?.source ?? openSource(deps);
  const target = stores?.target ?? (await openTarget(deps));
  const report: ObjectsBackReport = { examined: 0, copied: 0, present: 0, failed: [], ms: 0 };
  const after = since.getTime() - CLOCK_SLACK_MS;
  try {
    let token: string | undefined;
    do {
      const page = await target.listPage({ ...(token ? { token } : {}), maxKeys: 1000, signal });
      token = page.nextToken;
      for (const o of page.objects) {
        if (o.lastModified < after) continue;
        report.examined++;
        try {
          const there = await source.head(o.key, { signal });
          if (there && there.size === o.size && there.etag === o.etag) {
            report.present++;
            continue;
          }
          const { head, body } = await target.get(o.key, { signal });
          const {
            key: _k,
            size: _s,
            etag: _e,
            lastModified: _l,
            checksumCRC32: _c,
            checksumType: _t,
            ...meta
          } = head;
          await source.put(o.key, body, head.size, meta, { signal });
          report.copied++;
        } catch (err) {
          report.failed.push({ key: o.key, error: describeError(err) });
        }
      }
    } while (token);
  } finally {
    if (!stores) {
      source.destroy();
      target.destroy();
    }
  }
  report.ms = Math.round(performance.now() - started);
  return report;
}
