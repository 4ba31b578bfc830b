import { type DbAddress, liveIdentity, resolveDbAddress, sameDatabase } from "../../../cloud/db-identity.js";
import { connect, describeUrl, type Endpoint } from "../../../cloud/postgres.js";
import { CutoverError, ErrorCode } from "../../../errors.js";
import type { StepDeps } from "../../define-step.js";
import type { DumpManifest } from "./dump-files.js";
import { sourceEndpoint } from "./endpoints.js";

/**
 * Which database is which: the refusal of a target that is the source (under any spelling of its
 * URL, or seen from inside), and of a dump taken from another database.
 */

/**
 * Refuses, before anything runs, a target that is the source: the same server and database under
 * any spelling of its URL (another host name for the same address, other parameters, another
 * user), or, when both answer, the same database seen from inside. Cutover never writes to the
 * source. Resolves with the source's address for the caller's other checks.
 */
export async function refuseSourceAsTarget(
  deps: StepDeps,
  target: Endpoint,
  opts: { timeoutSeconds?: number } = {},
): Promise<DbAddress> {
  const source = sourceEndpoint(deps);
  const { same, first: from } = await compareDatabases(source, target, opts);
  if (same) {
    throw new CutoverError(
      ErrorCode.TargetIsSource,
      `The target database (${target.from}: ${describeUrl(target.url)}) is the source database (${source.from}: ${describeUrl(source.url)}). Cutover never writes to the source, so nothing was done.`,
      { hint: `Point ${target.from} at the new database (the RDS instance), not at the source.` },
    );
  }
  return from;
}

/**
 * Whether two URLs reach one database under any spelling: by address first, then, when both
 * answer, from inside (a proxy or an alias this machine cannot resolve). Also gives the first
 * URL's address for the caller's other checks.
 */
export async function compareDatabases(
  a: Endpoint,
  b: Endpoint,
  opts: { timeoutSeconds?: number } = {},
): Promise<{ same: boolean; first: DbAddress }> {
  const [first, second] = await Promise.all([resolveDbAddress(a.url), resolveDbAddress(b.url)]);
  if (sameDatabase(first, second)) return { same: true, first };
  const [x, y] = await Promise.all([liveIdentityOf(a, opts), liveIdentityOf(b, opts)]);
  return { same: x !== null && x === y, first };
}

async function liveIdentityOf(ep: Endpoint, opts: { timeoutSeconds?: number }): Promise<string | null> {
  try {
    const client = await connect(ep, { timeoutSeconds: opts.timeoutSeconds ?? 10, readOnly: true });
    try {
      return await liveIdentity(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch {
    return null; // unreachable: the address comparison stands alone
  }
}

/**
 * Refuses a dump not taken from the configured source: one with no record of where it came
 * from, or whose source is neither at the configured source's address nor (seen from inside) the
 * configured source's database.
 */
export async function refuseForeignDump(
  deps: StepDeps,
  manifest: DumpManifest,
  opts: { timeoutSeconds?: number } = {},
): Promise<void> {
  const source = sourceEndpoint(deps);
  const taken = manifest.sourceIdentity;
  const retake = `Take a dump of the configured source (${source.from}) with the db.dump step, then restore that.`;
  if (!taken) {
    throw new CutoverError(
      ErrorCode.DumpInvalid,
      `The dump ${manifest.name} does not record which database it was taken from, so it is not restored.`,
      { hint: retake },
    );
  }
  const now = await resolveDbAddress(source.url);
  if (sameDatabase(taken.address, now)) return;
  const live = await liveIdentityOf(source, opts);
  if (live !== null && taken.live !== null && live === taken.live) return;
  throw new CutoverError(
    ErrorCode.DumpInvalid,
    `The dump ${manifest.name} was taken from ${manifest.source.where}, not from the configured source (${source.from}: ${describeUrl(source.url)}), so it is not restored.`,
    { hint: retake },
  );
}
