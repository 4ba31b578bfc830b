import { CutoverError, ErrorCode } from "../../../errors.js";
import type { StepDeps } from "../../define-step.js";
import { latestFigure } from "../../outputs.js";
import { readProvisioned } from "../../provisioned.js";
import { lightsailStaticIp } from "../host/address.js";

/** Where the new API and the CDN are: the app reached by name, or by the static IP before DNS points at it. */

/** How to reach the new API: a base URL, and for a host reached by IP the name it serves. */
export interface AppTarget {
  /** https://api.example.com or https://203.0.113.7 */
  baseUrl: string;
  /** sent with every request (Host for a host reached by IP) */
  headers: Record<string, string>;
  /** the TLS server name (SNI) for a host reached by IP */
  servername?: string;
  /** false for a Cloudflare origin certificate, which no public CA signs */
  rejectUnauthorized: boolean;
  /** in words, for the report: "https://203.0.113.7 as api.example.com" */
  label: string;
}

async function staticIp(deps: StepDeps): Promise<string | undefined> {
  const recorded = (await readProvisioned(deps.dataDir, deps.file.environment))["target.lightsail.staticIp"];
  if (recorded) return recorded;
  if (deps.db) {
    const figure = await latestFigure(deps.db, deps.file, "lightsail.instance", "staticIp");
    if (figure) return figure;
  }
  if (!deps.file.target?.lightsail) return undefined;
  try {
    return await lightsailStaticIp(deps);
  } catch {
    return undefined;
  }
}

/**
 * Where API checks go: `verification.baseUrl` when the file has one; otherwise the new host by its
 * static IP, asked for the site's name (Host and TLS server name) so nginx answers as it will
 * once DNS points there: this works before the switch.
 */
export async function resolveApp(deps: StepDeps): Promise<AppTarget> {
  const configured = deps.file.verification.baseUrl;
  if (configured) {
    return {
      baseUrl: configured.replace(/\/+$/, ""),
      headers: {},
      rejectUnauthorized: true,
      label: configured,
    };
  }
  const ip = await staticIp(deps);
  if (!ip) {
    throw new CutoverError(ErrorCode.BadArgument, "The new host's address is not known yet.", {
      hint: "Run the `lightsail.instance` step first, or set `verification.baseUrl` in the migration file (e.g. https://api.example.com).",
    });
  }
  const host = deps.file.target?.host;
  const name = host?.nginx.serverNames[0] ?? deps.file.dns?.records[0]?.name;
  const tls = host?.nginx.tls.mode ?? "none";
  const literal = ip.includes(":") ? `[${ip}]` : ip;
  if (!name)
    return {
      baseUrl: `http://${literal}`,
      headers: {},
      rejectUnauthorized: true,
      label: `http://${literal}`,
    };
  if (tls === "none") {
    return {
      baseUrl: `http://${literal}`,
      headers: { host: name },
      rejectUnauthorized: true,
      label: `http://${literal} as ${name}`,
    };
  }
  return {
    baseUrl: `https://${literal}`,
    headers: { host: name },
    servername: name,
    rejectUnauthorized: tls !== "cloudflare-origin",
    label: `https://${literal} as ${name}`,
  };
}

/**
 * The CDN's base URL: the step's `cdnBaseUrl`, else the CloudFront domain `s3.bucket` recorded,
 * else undefined (not provisioned yet).
 */
export async function resolveCdnBase(deps: StepDeps, override?: string): Promise<string | undefined> {
  if (override) return override.replace(/\/+$/, "");
  const recorded = (await readProvisioned(deps.dataDir, deps.file.environment))["target.cloudfront.domain"];
  if (recorded) return `https://${recorded}`;
  if (deps.db) {
    const figure = await latestFigure(deps.db, deps.file, "s3.bucket", "distributionDomain");
    if (figure) return `https://${figure}`;
  }
  return undefined;
}

/** A URL under the app's base, keeping the base's own path. */
export function appUrl(app: AppTarget, p: string): string {
  return `${app.baseUrl}${p.startsWith("/") ? p : `/${p}`}`;
}
