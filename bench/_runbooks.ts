/**
 * The migration file the bot benchmarks (bench/ack.ts, bench/footprint.ts) start the bot with:
 * their access rules and the probe phase (500 numbered rows written to PROBE_DATABASE_URL).
 */

export const BENCH_OPERATOR = "U0OPERATOR";
export const BENCH_CHANNEL = "C0MIGRATE";

/** The probe phase, as an item of `runbook.phases`. */
export const PROBE_PHASE = `    - id: probe
      title: Probe the target
      steps:
        - id: write-rows
          title: Write numbered rows
          uses: db.write-probe
          with: { urlEnv: PROBE_DATABASE_URL, table: probe_rows, rows: 500, batch: 100, pauseMs: 0 }
`;

/**
 * A migration file for `project`/`environment`: {@link BENCH_OPERATOR} (and `operators`) may run
 * it in {@link BENCH_CHANNEL}, no daily digest, the probe phase then `phases` (further items).
 */
export function benchMigrationFile(o: {
  project: string;
  environment: string;
  /** further operators (user or user-group ids) */
  operators?: string[];
  /** an `engine:` section, as YAML */
  engine?: string;
  phases?: string;
}): string {
  return `version: 1
project: ${o.project}
environment: ${o.environment}
slack:
  channel: ${BENCH_CHANNEL}
access:
  operators: [${[BENCH_OPERATOR, ...(o.operators ?? [])].join(", ")}]
  approvers: [U0APPROVER]
  channels: [${BENCH_CHANNEL}]
  localOperator: bench-terminal
${o.engine ?? ""}digest: { enabled: false }
runbook:
  phases:
${PROBE_PHASE}${o.phases ?? ""}`;
}
