import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/*
 * What every HTTP fake of an outside service shares (FakeSlack, FakeCloudflare, FakeLightsail):
 * a server on 127.0.0.1 that starts on a port and stops with every connection closed, the record
 * of the calls it received, and faults that fire on the calls they match. Each fake keeps only
 * what is its service's own: its routes, its error envelope, its state.
 */

/** An HTTP server on 127.0.0.1 for a fake. */
export class FakeHttpServer {
  private server: Server | undefined;
  private port = 0;

  /**
   * @param name says which fake a misuse is about ("FakeSlack is not started …")
   * @param handle answers a request; a rejection is answered by `crashed` (the fake's own shape)
   */
  constructor(
    private readonly name: string,
    private readonly handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
    private readonly crashed: (res: ServerResponse, err: unknown) => void = (res, err) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end(`${name} failed: ${err instanceof Error ? err.message : String(err)}`);
    },
  ) {}

  /** Listens on `port` (0: any free one) and resolves with the port. */
  async start(port = 0): Promise<number> {
    if (this.server) throw new Error(`${this.name} is already started`);
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => this.crashed(res, err));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this.port;
  }

  /** Closes the server and every connection still open (clients keep them alive). */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    });
  }

  /** The running server (for protocol upgrades), or undefined when stopped. */
  get http(): Server | undefined {
    return this.server;
  }

  /** `http://127.0.0.1:PORT`; throws when not started. */
  get origin(): string {
    if (!this.server) throw new Error(`${this.name} is not started: call start() first`);
    return `http://127.0.0.1:${this.port}`;
  }
}

/** The calls a fake received, oldest first, and waiting for one that has not come yet. */
export class CallRecord<C> {
  /** the record itself; read it through {@link list} to get copies */
  readonly all: C[] = [];
  private readonly waiters = new Set<(call: C) => void>();

  /**
   * @param name prefixes a timeout's message
   * @param copy what a reader gets instead of the stored call (so a test cannot change the record)
   * @param describe the calls so far, for a timeout's message
   */
  constructor(
    private readonly name: string,
    private readonly copy: (call: C) => C = (call) => structuredClone(call),
    private readonly describe: (calls: readonly C[]) => string = (calls) => `${calls.length} calls so far`,
  ) {}

  push(call: C): void {
    this.all.push(call);
    for (const wake of [...this.waiters]) wake(call);
  }

  /** Copies of the calls, only the matching ones when given. */
  list(match?: (call: C) => boolean): C[] {
    return (match ? this.all.filter(match) : this.all).map((call) => this.copy(call));
  }

  /**
   * The first call, past or future, that matches. Rejects after `timeoutMs` naming `what` and the
   * calls seen so far, so a failing test says what happened.
   */
  waitFor(match: (call: C) => boolean, what: string, timeoutMs: number): Promise<C> {
    const past = this.all.find(match);
    if (past) return Promise.resolve(this.copy(past));
    return new Promise((resolve, reject) => {
      const onCall = (call: C) => {
        if (!match(call)) return;
        clearTimeout(timer);
        this.waiters.delete(onCall);
        resolve(this.copy(call));
      };
      const timer = setTimeout(() => {
        this.waiters.delete(onCall);
        reject(
          new Error(
            `${this.name}: waited ${timeoutMs} ms for ${what}, none came. ${this.describe(this.all)}`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(onCall);
    });
  }

  /** Forgets every call (waiters keep waiting for new ones). */
  clear(): void {
    this.all.length = 0;
  }
}

interface FaultRule<K, F> {
  match: (key: K) => boolean;
  fault: F;
  /** matching calls still answered normally before this rule fires */
  after: number;
  /** how many more times it fires (Infinity: until removed) */
  times: number;
  tag: string | undefined;
}

/**
 * Faults armed against a fake's calls, checked in the order they were added: the first rule
 * that matches a call and is due fires. A rule fires once by default (`failNext`), or from the
 * `after`-th matching call on, or every time until removed (`times: Infinity`).
 */
export class FaultPlan<K, F> {
  private rules: Array<FaultRule<K, F>> = [];

  add(
    match: (key: K) => boolean,
    fault: F,
    opts: { after?: number; times?: number; tag?: string } = {},
  ): void {
    this.rules.push({ match, fault, after: opts.after ?? 0, times: opts.times ?? 1, tag: opts.tag });
  }

  /** The fault this call meets, if any; a rule that has fired its last time is dropped. */
  take(key: K): F | undefined {
    for (const rule of this.rules) {
      if (!rule.match(key)) continue;
      if (rule.after > 0) {
        rule.after--;
        continue;
      }
      rule.times--;
      if (rule.times <= 0) this.rules = this.rules.filter((r) => r !== rule);
      return rule.fault;
    }
    return undefined;
  }

  /** Whether a rule with this tag is armed. */
  has(tag: string): boolean {
    return this.rules.some((r) => r.tag === tag);
  }

  /** Disarms the rules with this tag, or every rule. */
  clear(tag?: string): void {
    this.rules = tag === undefined ? [] : this.rules.filter((r) => r.tag !== tag);
  }
}
