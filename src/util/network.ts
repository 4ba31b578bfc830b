/**
 * Node's and undici's codes for a connection that was refused, dropped, timed out or never
 * found its host: the network's fault, not the request's, so worth another try.
 */
export const NETWORK_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
]);

/** The error's network code ("ECONNRESET"), or undefined when it is not a network failure. */
export function networkCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === "string" && NETWORK_CODES.has(code) ? code : undefined;
}
