import type { LightsailApi } from "../../../cloud/lightsail.js";
import { type MigrationFile, requireSection } from "../../../config/schema.js";
import { CutoverError, ErrorCode } from "../../../errors.js";
import type { StepDeps } from "../../define-step.js";
import { readProvisioned, recordProvisioned } from "../../provisioned.js";

/** Where the app host is: the Lightsail port of the file's region, and the host's static IP. */

/** The Lightsail port for `file`'s region (target.lightsail.region). */
export function lightsailFor(deps: StepDeps, file: MigrationFile = deps.file): LightsailApi {
  return deps.ports.lightsail(requireSection(file, "target.lightsail").region);
}

/**
 * The app host's address: `override`, else the static IP recorded by lightsail.instance, else
 * asked from Lightsail by the static IP's name (and recorded).
 */
export async function hostAddress(deps: StepDeps, override?: string): Promise<string> {
  if (override) return override;
  return lightsailStaticIp(deps);
}

/** The Lightsail static IP: as recorded by lightsail.instance, else asked from Lightsail by name. */
export async function lightsailStaticIp(deps: StepDeps, lightsail?: LightsailApi): Promise<string> {
  const recorded = (await readProvisioned(deps.dataDir, deps.file.environment))["target.lightsail.staticIp"];
  if (recorded) return recorded;
  const cfg = requireSection(deps.file, "target.lightsail");
  const ip = await (lightsail ?? lightsailFor(deps)).getStaticIp(cfg.staticIpName);
  if (!ip) {
    throw new CutoverError(
      ErrorCode.BadArgument,
      `The static IP ${cfg.staticIpName} does not exist yet: run the lightsail.instance step first.`,
    );
  }
  await recordProvisioned(deps.dataDir, deps.file.environment, { "target.lightsail.staticIp": ip.ipAddress });
  return ip.ipAddress;
}
