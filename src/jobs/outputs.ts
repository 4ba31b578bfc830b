import type { MigrationFile, ValueRefName } from "../config/schema.js";
import { CutoverError, ErrorCode } from "../errors.js";
import type { Db } from "../store/client.js";
import { latestResults } from "../store/steps.js";

/**
 * Values one step produces and another needs (the static IP the DNS record points to, the
 * CloudFront domain the front end uses). They are read from the result of the latest
 * successful, verified execution of the step type that produces them, so nothing is assumed
 * from the file that was not observed.
 */
const PRODUCERS: Record<string, { uses: string; figure: string }> = {
  "target.lightsail.staticIp": { uses: "lightsail.instance", figure: "staticIp" },
  "target.rds.endpoint": { uses: "rds.instance", figure: "endpoint" },
  "target.cloudfront.domain": { uses: "s3.bucket", figure: "distributionDomain" },
};

export type ValueSpec = string | { ref: ValueRefName };

/** The latest figure a step type recorded in an environment, or undefined. */
export async function latestFigure(
  db: Db,
  file: MigrationFile,
  uses: string,
  figure: string,
): Promise<string | undefined> {
  const stepIds = file.runbook.phases.flatMap((p) => p.steps.filter((s) => s.uses === uses).map((s) => s.id));
  if (stepIds.length === 0) return undefined;
  for (const result of await latestResults(db, file.environment, stepIds, 5)) {
    const figures = (result as { figures?: Record<string, unknown> } | null)?.figures;
    const value = figures?.[figure];
    if (typeof value === "string" && value) return value;
  }
  return undefined;
}

/** Resolves a literal or a `{ ref }` to its value, saying which step to run when it is not known yet. */
export async function resolveValue(db: Db, file: MigrationFile, spec: ValueSpec): Promise<string> {
  if (typeof spec === "string") return spec;
  const ref = spec.ref;
  if (ref === "target.s3.bucket" && file.target?.s3) return file.target.s3.bucket;
  if (ref === "source.app.url" && file.source?.app) return file.source.app.url;
  if (ref === "target.cloudfront.url") {
    const domain = await resolveValue(db, file, { ref: "target.cloudfront.domain" });
    return `https://${domain}`;
  }
  const producer = PRODUCERS[ref];
  const value = producer ? await latestFigure(db, file, producer.uses, producer.figure) : undefined;
  if (value) return value;
  throw new CutoverError(ErrorCode.BadArgument, `${ref} is not known yet.`, {
    hint: producer
      ? `Run the \`${producer.uses}\` step first (\`/migrate status\` shows which); its verified result provides it.`
      : `Cutover cannot provide ${ref} in this build; write the value in the migration file instead.`,
  });
}
