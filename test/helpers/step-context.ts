import { Writable } from "node:stream";
import type { Logger } from "pino";
import type { StepDeps } from "../../src/jobs/catalogue.js";
import type {
  CheckpointStore,
  Progress,
  RunInfo,
  StepContext,
  StepReport,
} from "../../src/jobs/define-step.js";
import { createLogger } from "../../src/log.js";
import { memoryPorts } from "./memory-ports.js";

/** A StepContext for calling a step directly, with what it reported kept for assertions. */
export interface TestStepContext extends StepContext {
  controller: AbortController;
  /** every progress report, in order */
  reports: Progress[];
  /** the checkpoint values (shared across contexts made with the same `checkpoints`) */
  checkpoints: Map<string, unknown>;
  /** the log lines, JSON text */
  logs: string[];
  /** what the step posted into the run's thread (reports, output excerpts) */
  posted: StepReport[];
}

/**
 * Builds a context: a pino logger into memory, an AbortController, an in-memory checkpoint store
 * (pass the same Map to a second context to act as the next attempt after a crash) and a
 * progress recorder.
 */
export function makeStepContext(
  opts: {
    run?: Partial<RunInfo>;
    attempt?: number;
    checkpoints?: Map<string, unknown>;
    secrets?: string[];
    log?: Logger;
  } = {},
): TestStepContext {
  const logs: string[] = [];
  const log =
    opts.log ??
    createLogger({
      secrets: opts.secrets ?? [],
      level: "debug",
      destination: new Writable({
        write(chunk, _enc, cb) {
          logs.push(chunk.toString());
          cb();
        },
      }),
    });
  const checkpoints = opts.checkpoints ?? new Map<string, unknown>();
  const checkpoint: CheckpointStore = {
    async get<T>(key: string) {
      // a copy, as a database round trip would give
      return checkpoints.has(key) ? (structuredClone(checkpoints.get(key)) as T) : undefined;
    },
    async set(key, value) {
      checkpoints.set(key, structuredClone(value));
    },
  };
  const controller = new AbortController();
  const reports: Progress[] = [];
  const posted: StepReport[] = [];
  return {
    log,
    run: {
      id: opts.run?.id ?? "00000000-test-run",
      env: opts.run?.env ?? "test",
      requestedBy: opts.run?.requestedBy ?? "U0TEST",
      dryRun: opts.run?.dryRun ?? false,
      options: opts.run?.options ?? {},
    },
    signal: controller.signal,
    attempt: opts.attempt ?? 1,
    progress: (p) => reports.push(p),
    report: (r) => posted.push(r),
    checkpoint,
    controller,
    reports,
    checkpoints,
    logs,
    posted,
  };
}

/**
 * The deps a step factory takes, for calling a step directly: `file` and whatever the test hands
 * in; the rest is an empty environment, in-memory ports that fail loudly when a step reaches for
 * one the test did not give (test/helpers/memory-ports.ts), a data directory nothing may write to
 * and a silent log.
 *
 * @example const step = createCostReportStep(makeStepDeps({ file, db, ports: memoryPorts({ costExplorer }) }));
 */
export function makeStepDeps(deps: Partial<StepDeps> & Pick<StepDeps, "file">): StepDeps {
  return {
    env: {},
    ports: memoryPorts(),
    dataDir: "/nonexistent/cutover-test",
    log: createLogger({
      secrets: [],
      level: "silent",
      destination: new Writable({ write: (_c, _e, cb) => cb() }),
    }),
    ...deps,
  };
}
