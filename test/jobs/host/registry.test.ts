import { describe, expect, it } from "vitest";
import { createStepRegistry, STEP_CATALOGUE } from "../../../src/jobs/catalogue.js";
import { createHostSteps } from "../../../src/jobs/steps/host/index.js";
import { depsFor, exampleFile } from "./fixtures.js";

describe("the host steps in the registry", () => {
  it("registers lightsail.instance, rds.instance, host.setup and app.deploy, each with plan/run/verify/undo", async () => {
    const deps = depsFor(await exampleFile(), "/tmp/cutover-registry", {});
    const steps = createHostSteps(deps);
    expect(steps.map((s) => s.type)).toEqual([
      "lightsail.instance",
      "rds.instance",
      "host.setup",
      "app.deploy",
    ]);
    for (const s of steps) {
      expect(STEP_CATALOGUE[s.type], s.type).toBeDefined();
      expect([typeof s.plan, typeof s.run, typeof s.verify, typeof s.undo]).toEqual([
        "function",
        "function",
        "function",
        "function",
      ]);
      expect(s.mutating).toBe(true);
    }
    const registry = createStepRegistry(deps);
    for (const s of steps) expect(registry.get(s.type)?.type).toBe(s.type);
  });

  it("rejects a misspelt option, naming the step type", async () => {
    const [lightsail] = createHostSteps(depsFor(await exampleFile(), "/tmp/x", {}));
    expect(() => lightsail!.parse({ waitSecond: 5 })).toThrow(
      /^lightsail.instance: with: Unrecognized key: "waitSecond"/,
    );
  });
});
