import type { StepDefinition, StepDeps } from "../../define-step.js";
import { createRdsInstanceStep } from "../db/rds-instance.js";
import { createAppDeployStep } from "./app-deploy.js";
import { createLightsailInstanceStep } from "./lightsail-instance.js";
import { createHostSetupStep } from "./setup.js";

/**
 * The provisioning and app-host steps: `lightsail.instance`, `rds.instance`, `host.setup` and
 * `app.deploy`. Adapters are built from `deps.env` when a step runs, so a file without the
 * sections these steps need still loads.
 */
export function createHostSteps(deps: StepDeps): StepDefinition<unknown>[] {
  return [
    createLightsailInstanceStep(deps),
    createRdsInstanceStep(deps),
    createHostSetupStep(deps),
    createAppDeployStep(deps),
  ];
}

export {
  rdsConnectionUrl,
  readProvisioned,
  readRdsMasterPassword,
  recordProvisioned,
} from "../../provisioned.js";
