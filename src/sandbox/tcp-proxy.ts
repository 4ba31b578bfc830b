import { createServer, type Server, Socket } from "node:net";

/**
 * A loopback TCP proxy that misbehaves on request, for fault drills: put it between Cutover and
 * PostgreSQL, S3, Cloudflare or Slack and drop connections mid-stream, stall them, refuse new
 * ones, or move the upstream (a restarted server on a new port). Listens on 127.0.0.1 only.
 *
 * @example
 * const proxy = new TcpProxy({ host: "127.0.0.1", port: 5432 });
 * await proxy.start();            // proxy.port now forwards to 5432
 * proxy.dropAfterBytes(64_000, 2); // the next two connections die after 64 kB from upstream
 * proxy.stall(true);               // everything in flight stops moving (no error, no close)
 */
export interface ProxyTarget {
  host: string;
  port: number;
}

export interface ProxyStats {
  /** connections accepted */
  connections: number;
  /** connections the proxy cut (dropAll, dropAfterBytes, refuse) */
  dropped: number;
  /** bytes forwarded client → upstream and upstream → client */
  bytesUp: number;
  bytesDown: number;
}

interface Pair {
  client: Socket;
  upstream: Socket | undefined;
  down: number;
  dropAt: number | undefined;
}

export class TcpProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<Pair>();
  private stalled = false;
  private refusing = false;
  private pendingDrops: number[] = [];
  readonly stats: ProxyStats = { connections: 0, dropped: 0, bytesUp: 0, bytesDown: 0 };

  constructor(private target: ProxyTarget) {}

  async start(port = 0): Promise<void> {
    const server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    this.server = server;
  }

  /** The port the proxy listens on (127.0.0.1). */
  get port(): number {
    const address = this.server?.address();
    if (!address || typeof address === "string")
      throw new Error("TcpProxy is not started: call start() first");
    return address.port;
  }

  /** Where new connections go from now on (a restarted server may come back on another port). */
  retarget(target: ProxyTarget): void {
    this.target = target;
  }

  /** Cut every open connection now, both sides, with a reset. */
  dropAll(): number {
    const n = this.pairs.size;
    for (const pair of [...this.pairs]) this.cut(pair);
    return n;
  }

  /** The next `connections` new connections are cut once `bytes` have come back from upstream. */
  dropAfterBytes(bytes: number, connections = 1): void {
    for (let i = 0; i < connections; i++) this.pendingDrops.push(bytes);
  }

  /** While on, nothing moves in either direction and new connections wait; nothing is closed. */
  stall(on: boolean): void {
    this.stalled = on;
    for (const pair of this.pairs) {
      if (on) {
        pair.client.pause();
        pair.upstream?.pause();
      } else {
        if (!pair.upstream) this.connectUpstream(pair);
        pair.client.resume();
        pair.upstream?.resume();
      }
    }
  }

  /** While on, new connections are reset at once (a server that is down); open ones are cut. */
  refuse(on: boolean): void {
    this.refusing = on;
    if (on) this.dropAll();
  }

  /** Open connections right now. */
  get open(): number {
    return this.pairs.size;
  }

  async stop(): Promise<void> {
    this.dropAll();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.stats.connections++;
    client.on("error", () => undefined);
    if (this.refusing) {
      this.stats.dropped++;
      client.resetAndDestroy();
      return;
    }
    const pair: Pair = { client, upstream: undefined, down: 0, dropAt: this.pendingDrops.shift() };
    this.pairs.add(pair);
    client.on("close", () => this.forget(pair));
    if (this.stalled) client.pause();
    else this.connectUpstream(pair);
  }

  private connectUpstream(pair: Pair): void {
    const { client } = pair;
    const upstream = new Socket();
    pair.upstream = upstream;
    upstream.on("error", () => this.cut(pair));
    // the server closing is not a fault: pass the close on
    upstream.on("close", () => {
      if (this.pairs.delete(pair)) pair.client.destroy();
    });
    upstream.connect(this.target.port, this.target.host);
    client.on("data", (chunk: Buffer) => {
      this.stats.bytesUp += chunk.length;
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (pair.dropAt !== undefined && pair.down + chunk.length > pair.dropAt) {
        // forward what fits, then cut mid-stream
        const part = chunk.subarray(0, Math.max(0, pair.dropAt - pair.down));
        if (part.length) client.write(part);
        this.stats.bytesDown += part.length;
        this.cut(pair);
        return;
      }
      pair.down += chunk.length;
      this.stats.bytesDown += chunk.length;
      client.write(chunk);
    });
    client.on("end", () => upstream.end());
    upstream.on("end", () => client.end());
    if (this.stalled) {
      client.pause();
      upstream.pause();
    }
  }

  private cut(pair: Pair): void {
    if (!this.pairs.has(pair)) return;
    this.pairs.delete(pair);
    this.stats.dropped++;
    if (!pair.client.destroyed) pair.client.resetAndDestroy();
    if (pair.upstream && !pair.upstream.destroyed) pair.upstream.resetAndDestroy();
  }

  private forget(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    if (pair.upstream && !pair.upstream.destroyed) pair.upstream.destroy();
  }
}
