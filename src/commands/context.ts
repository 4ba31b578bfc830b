import type { Logger } from "pino";
import type { MigrationFile } from "../config/schema.js";
import type { Runner } from "../jobs/Runner.js";
import type { StepRegistry } from "../jobs/types.js";
import type { Db } from "../store/client.js";
import type { AccessControl } from "./access.js";

/** Who asked, from where. The terminal front end acts as the file's local operator. */
export interface Caller {
  user: string;
  via: "slack" | "terminal";
  channel: string | null;
  /** a Slack retry of the same request carries the same key, so it does not act twice */
  idempotencyKey: string | null;
}

/** What command handlers need; built once by the deps factory. */
export interface CommandDeps {
  db: Db;
  runner: Runner;
  file: MigrationFile;
  registry: StepRegistry;
  access: AccessControl;
  log: Logger;
  now: () => Date;
}
