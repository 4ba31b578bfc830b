/**
 * Heavy SDKs load at their first use, not at start-up: an idle bot, a `npx cutover status` or a
 * runbook without EC2 never pays for `@aws-sdk/client-ec2` (about 75 MB of RSS and 0.4 s), the
 * Cloudflare SDK (about 30 MB, 0.6 s) or the chart renderer. Node caches a module once loaded,
 * so only the first call waits.
 */

/** A module loaded on the first call, once; a failed load is tried again on the next call. */
export function lazyModule<M>(load: () => Promise<M>): () => Promise<M> {
  let pending: Promise<M> | undefined;
  return () => {
    pending ??= load().catch((err: unknown) => {
      pending = undefined;
      throw err;
    });
    return pending;
  };
}

/** What an AWS SDK v3 command resolves to (its `Output`), read from its middleware's handler. */
export type CommandOutput<C> = C extends {
  resolveMiddleware(...args: never[]): (...args: never[]) => Promise<{ output: infer O }>;
}
  ? O
  : never;

/** The part of an AWS SDK v3 client the adapters use. */
export interface AwsClient {
  send(command: never): Promise<unknown>;
  destroy(): void;
}

/**
 * An AWS SDK v3 client whose package loads, and whose client is built, on the first `send`.
 * A command is made from the loaded package: `client.send((sdk) => new sdk.DescribeVpcsCommand({…}))`.
 */
export interface LazyAwsClient<M, C extends AwsClient = AwsClient> {
  /** `options` are the client's per-call options (`{ abortSignal }`) */
  send<C>(make: (sdk: M) => C, options?: { abortSignal?: AbortSignal }): Promise<CommandOutput<C>>;
  /** the client, building it (and loading its package) if it is not yet */
  client(): Promise<C>;
  destroy(): void;
}

export function lazyAwsClient<M, C extends AwsClient>(
  load: () => Promise<M>,
  build: (sdk: M) => C,
): LazyAwsClient<M, C> {
  const sdk = lazyModule(load);
  let built: C | undefined;
  const client = async () => {
    const m = await sdk();
    built ??= build(m);
    return { m, c: built };
  };
  return {
    async send(make, options) {
      const { m, c } = await client();
      // the command is the package's own, so its output is what the client resolves to
      const send = c.send.bind(c) as (command: unknown, options?: unknown) => Promise<never>;
      return options ? send(make(m), options) : send(make(m));
    },
    client: async () => (await client()).c,
    destroy() {
      built?.destroy();
      built = undefined;
    },
  };
}
