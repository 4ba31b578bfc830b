import type { MigrationFile } from "../config/schema.js";
import type { Db } from "../store/client.js";
import { newestExecution } from "../store/runs.js";
import type { Stabilisation } from "./types.js";

const DAY_MS = 86_400_000;

/**
 * When the DNS cutover last finished for real: the newest succeeded, non-dry-run execution of a
 * runbook step of type `dns.cutover` in the file's environment. Undefined before the cutover.
 */
export async function cutoverFinishedAt(db: Db, file: MigrationFile): Promise<Date | undefined> {
  const stepIds = file.runbook.phases.flatMap((p) =>
    p.steps.filter((s) => s.uses === "dns.cutover").map((s) => s.id),
  );
  if (stepIds.length === 0) return undefined;
  const row = await newestExecution(db, file.environment, stepIds, { statuses: ["succeeded"] });
  return row?.finishedAt ?? undefined;
}

/** The window's state at `now` for a cutover at `cutoverAt` (pure). */
export function stabilisationAt(cutoverAt: Date, days: number, now: Date): Stabilisation {
  const elapsed = Math.max(0, now.getTime() - cutoverAt.getTime());
  const endsAt = new Date(cutoverAt.getTime() + days * DAY_MS);
  return {
    cutoverAt,
    day: Math.floor(elapsed / DAY_MS) + 1,
    days,
    endsAt,
    over: now.getTime() >= endsAt.getTime(),
  };
}

/** The stabilisation window read from the run store; null before the cutover. */
export async function readStabilisation(
  db: Db,
  file: MigrationFile,
  now: Date,
  days = file.digest.stabilisationDays,
): Promise<Stabilisation | null> {
  const at = await cutoverFinishedAt(db, file);
  return at ? stabilisationAt(at, days, now) : null;
}
