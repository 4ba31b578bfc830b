import { availableParallelism } from "node:os";
import path from "node:path";
import { z } from "zod";
import type { StepDeps } from "../../define-step.js";

/**
 * The options every database step (db.preflight, db.dump, db.restore, db.verify) accepts, and
 * what they take from the runbook's db.dump step: its parallel jobs and where dumps live.
 */

/** Options every database step accepts in its `with:` block. */
export const CommonOptions = z.object({
  /** parallel jobs for pg_dump / pg_restore / the comparison; default: the machine's cores */
  jobs: z.number().int().min(1).max(64).optional(),
  /** folder holding pg_dump and pg_restore; default PATH, or a newer /usr/lib/postgresql/<major>/bin */
  binDir: z.string().min(1).optional(),
  /** where dumps live; default CUTOVER_DATA_DIR/dumps/<environment> (relative paths are under the data dir) */
  dumpDir: z.string().min(1).optional(),
  /** how long a connection attempt may take before the side counts as unreachable */
  connectTimeoutSeconds: z.number().int().min(1).max(120).default(10),
});
export type CommonOptions = z.infer<typeof CommonOptions>;

/** The `with:` block of the runbook's db.dump step, so the other steps find its folder and jobs. */
function dumpStepWith(deps: StepDeps): Record<string, unknown> {
  for (const phase of deps.file.runbook.phases)
    for (const step of phase.steps) if (step.uses === "db.dump") return step.with ?? {};
  return {};
}

export function jobsFor(deps: StepDeps, input: { jobs?: number | undefined }): number {
  const fromDump = dumpStepWith(deps).jobs;
  return input.jobs ?? (typeof fromDump === "number" ? fromDump : availableParallelism());
}

/** The folder dumps of this environment live in. */
export function dumpRoot(deps: StepDeps, input: { dumpDir?: string | undefined }): string {
  const fromDump = dumpStepWith(deps).dumpDir;
  const configured = input.dumpDir ?? (typeof fromDump === "string" ? fromDump : undefined);
  if (configured) return path.resolve(deps.dataDir, configured);
  // "." and ".." would name the dumps folder itself or the data folder: dots lead no name
  const name = deps.file.environment.replace(/[^A-Za-z0-9_.-]/g, "_").replace(/^\./, "_");
  return path.join(deps.dataDir, "dumps", name);
}
