import type { Endpoint } from "../../../cloud/postgres.js";
import { requireSection } from "../../../config/schema.js";
import { notSet } from "../../../errors.js";
import type { StepDeps } from "../../define-step.js";
import { rdsConnectionUrl } from "../../provisioned.js";

/** Where the two databases are: the source from the file's variable, the target from its variable or the provisioned RDS instance. */

/** The source database (read-only use), from `source.database.urlEnv`. */
export function sourceEndpoint(deps: StepDeps): Endpoint {
  const db = requireSection(deps.file, "source.database");
  const url = deps.env[db.urlEnv];
  if (!url) {
    throw notSet(db.urlEnv, {
      hint: `Set ${db.urlEnv} to the source database's URL (postgres://user:password@host/db?sslmode=require), then run it again.`,
    });
  }
  return { side: "source", from: db.urlEnv, url };
}

/** The target database: `target.rds.urlEnv` when set, else the provisioned RDS endpoint and master user. */
export async function targetEndpoint(deps: StepDeps): Promise<Endpoint> {
  const rds = requireSection(deps.file, "target.rds");
  if (rds.urlEnv) {
    const url = deps.env[rds.urlEnv];
    if (!url) {
      throw notSet(rds.urlEnv, {
        hint: `Set ${rds.urlEnv} to the target database's URL (target.rds.urlEnv), then run it again.`,
      });
    }
    return { side: "target", from: rds.urlEnv, url };
  }
  const url = await rdsConnectionUrl({
    env: deps.env,
    dataDir: deps.dataDir,
    file: deps.file,
    ports: deps.ports,
  });
  return { side: "target", from: `the RDS instance ${rds.identifier}`, url };
}
