import type { StepDefinition, StepDeps } from "../../define-step.js";
import { createS3BucketStep } from "./bucket.js";
import { createCdnCheckStep } from "./cdn-check.js";
import { createStorageSyncStep } from "./sync.js";
import { createStorageVerifyStep } from "./verify.js";

export { distributionDomainOf } from "./bucket.js";

/**
 * The object-storage phase of the runbook: `s3.bucket` (the bucket and its CloudFront
 * distribution), `storage.sync` (R2 → S3), `storage.verify` (every object proven identical) and
 * `cdn.check` (cache hit ratio through the distribution).
 */
export function createStorageSteps(deps: StepDeps): StepDefinition<unknown>[] {
  return [
    createS3BucketStep(deps),
    createStorageSyncStep(deps),
    createStorageVerifyStep(deps),
    createCdnCheckStep(deps),
  ];
}
