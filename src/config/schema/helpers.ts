/**
 * Checks and messages the schema and the loader share: secret detection, safe quoting, time zones,
 * addresses.
 */
import { isIP } from "node:net";

const SECRET_VALUE_PATTERNS: ReadonlyArray<readonly [RegExp, string]> = [
  [/^[a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:[^/\s@]+@/i, "a URL with a password in it"],
  [/^xox[abposre]-/, "a Slack token"],
  [/^xapp-/, "a Slack app-level token"],
  [/^sk-ant-/, "an Anthropic API key"],
  [/^sk-[A-Za-z0-9_-]{20,}$/, "an API key"],
  [/^(AKIA|ASIA)[A-Z0-9]{16}$/, "an AWS access key id"],
  [/^(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_)/, "a GitHub token"],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "a private key"],
  [/^eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*$/, "a JSON Web Token"],
];

/** What kind of secret a literal value looks like ("a Slack token"), or undefined. */
export function secretValueKind(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  for (const [re, kind] of SECRET_VALUE_PATTERNS) if (re.test(value.trim())) return kind;
  return undefined;
}

const SECRET_KEY_RE =
  /(password|passwd|passphrase|pwd|secret|secretkey|secretaccesskey|token|apikey|accesskey|accesskeyid|privatekey|clientsecret|credential|credentials|authorization|cookie|connectionstring|dsn)$/;

/**
 * Whether a key names a secret that must not be written into the file (`password`,
 * `secretAccessKey`, `apiToken`, `ANTHROPIC_API_KEY`, …). Keys ending in `Env` name a variable
 * instead, so they are fine.
 */
export function isSecretKeyName(key: string): boolean {
  const k = key.toLowerCase().replace(/[^a-z0-9]/g, "");
  if (k.endsWith("env")) return false;
  return SECRET_KEY_RE.test(k);
}

/** A short, safe rendering of a value for a message: `value` or "this value" when it may be secret or long. */
export function show(value: unknown): string {
  if (typeof value === "number" || typeof value === "boolean") return `\`${String(value)}\``;
  if (typeof value === "string") {
    if (value.length === 0) return "an empty value";
    if (value.length > 60 || secretValueKind(value) || /[\n\r]/.test(value)) return "this value";
    return `\`${value}\``;
  }
  if (value === null) return "an empty value (null)";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return "this value";
}

export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export function timeZoneNames(): string[] {
  try {
    return [...Intl.supportedValuesOf("timeZone"), "UTC"];
  } catch {
    return ["UTC"];
  }
}

export function isCidr(value: string): boolean {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(value);
  if (!m) return false;
  const version = isIP(m[1]!);
  const bits = Number(m[2]);
  return (version === 4 && bits <= 32) || (version === 6 && bits <= 128);
}

const HOSTNAME_RE = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/;

export function isHostname(value: string): boolean {
  return HOSTNAME_RE.test(value);
}

/** A check message built from what is wrong (given the value) and how to fix it. */
export const msg = (what: (shown: string) => string, fix: string) => ({
  error: (iss: { input?: unknown }) => `${what(show(iss.input))} — ${fix}`,
});

/** The items whose key an earlier item already has, each with its index and the earlier one's. */
export function repeats<T>(
  items: readonly T[],
  key: (item: T) => string,
): Array<{ item: T; index: number; first: number }> {
  const seen = new Map<string, number>();
  const out: Array<{ item: T; index: number; first: number }> = [];
  items.forEach((item, index) => {
    const k = key(item);
    const first = seen.get(k);
    if (first !== undefined) out.push({ item, index, first });
    else seen.set(k, index);
  });
  return out;
}
