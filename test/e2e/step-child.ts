/**
 * Runs one host step (`host.setup` or `app.deploy`) in its own process, so a test can SIGKILL it
 * at a moment of its choosing, as a crash of Cutover would. Argument: a JSON file with the file,
 * data folder, environment, step input and where checkpoints are kept (written on every set, as
 * the state database would keep them). Progress goes to stdout, one `::progress:: …` line each.
 */
import { readFileSync, writeFileSync } from "node:fs";
import pino from "pino";
import type { MigrationFile } from "../../src/config/schema.js";
import { createAppDeployStep } from "../../src/jobs/steps/host/app-deploy.js";
import { createHostSetupStep } from "../../src/jobs/steps/host/setup.js";
import { createPorts } from "../../src/ports.js";
import { makeStepContext } from "../helpers/step-context.js";

export interface ChildJob {
  step: "host.setup" | "app.deploy";
  file: MigrationFile;
  dataDir: string;
  env: Record<string, string>;
  input: Record<string, unknown>;
  checkpointsPath: string;
}

const job = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as ChildJob;
const saved = (() => {
  try {
    return new Map(Object.entries(JSON.parse(readFileSync(job.checkpointsPath, "utf8")) as object));
  } catch {
    return new Map<string, unknown>();
  }
})();
const ctx = makeStepContext({ checkpoints: saved });
const set = ctx.checkpoint.set.bind(ctx.checkpoint);
ctx.checkpoint.set = async (key, value) => {
  await set(key, value);
  writeFileSync(job.checkpointsPath, JSON.stringify(Object.fromEntries(saved)));
};
ctx.progress = (p) => process.stdout.write(`::progress:: ${p.message ?? ""}\n`);
const deps = {
  file: job.file,
  dataDir: job.dataDir,
  env: job.env,
  ports: createPorts({ env: job.env }, job.file),
  log: pino({ level: "silent" }),
};
const run = () => {
  if (job.step === "host.setup") {
    const step = createHostSetupStep(deps);
    return step.run(step.parse(job.input), ctx);
  }
  const step = createAppDeployStep(deps);
  return step.run(step.parse(job.input), ctx);
};
run()
  .then((r) => {
    process.stdout.write(`::done:: ${r?.summary ?? ""}\n`);
    process.exit(0);
  })
  .catch((err: unknown) => {
    process.stdout.write(`::failed:: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
