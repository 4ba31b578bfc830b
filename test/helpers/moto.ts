import { resetMoto, type S3Server, startMoto } from "../../src/sandbox/s3-servers.js";

export interface MotoHandle {
  endpoint: string;
  /** true when this test file started the server itself (then reset is allowed) */
  own: boolean;
  /** empties the server; a no-op on a shared server, whose other users' data must survive */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

async function reachable(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint.replace(/\/$/, "")}/moto-api/`, {
      signal: AbortSignal.timeout(2_000),
    });
    return res.ok;
  } catch {
    return false;
  }
}

/**
 * moto for one test file: the server in `AWS_ENDPOINT_URL` when it is set and answers (CI starts
 * one), otherwise a private one on a free port. Tests on a shared server use names of their own
 * (random bucket names) instead of resetting it.
 */
export async function useMoto(
  opts: { env?: Record<string, string>; forcePrivate?: boolean } = {},
): Promise<MotoHandle> {
  const shared = process.env.AWS_ENDPOINT_URL;
  if (!opts.forcePrivate && !opts.env && shared && (await reachable(shared))) {
    return {
      endpoint: shared.replace(/\/$/, ""),
      own: false,
      reset: async () => undefined,
      stop: async () => undefined,
    };
  }
  const server: S3Server = await startMoto(opts.env ? { env: opts.env } : {});
  return {
    endpoint: server.endpoint,
    own: true,
    reset: () => resetMoto(server.endpoint),
    stop: () => server.stop(),
  };
}
