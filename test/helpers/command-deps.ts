import { vi } from "vitest";
import { AccessControl } from "../../src/commands/access.js";
import type { CommandDeps } from "../../src/commands/context.js";
import { parseMigrationFile } from "../../src/config/load.js";
import type { Db } from "../../src/store/client.js";

export const OPERATOR = "U0OPERATOR";
export const APPROVER = "U0APPROVER";
export const CHANNEL = "C0MIGRATE";

const FILE = `version: 1
project: shop
environment: production
slack: { channel: ${CHANNEL} }
access: { operators: [${OPERATOR}], approvers: [${APPROVER}], channels: [${CHANNEL}] }
runbook:
  phases:
    - id: check
      title: Check
      steps:
        - { id: probe, uses: db.write-probe }
`;

/**
 * A state database that cannot be reached: every query fails as the driver fails when the
 * server refuses the connection, except audit rows when `keepAudit` asks to keep them in memory. `touched` lists what a handler tried, so a test can also show
 * that an answer needed no database at all.
 */
export function unreachableDb(opts: { keepAudit?: boolean } = {}): {
  db: Db;
  touched: string[];
  audited: unknown[];
} {
  const touched: string[] = [];
  const audited: unknown[] = [];
  const refuse = (what: string, args: unknown[]) => {
    touched.push(what);
    // with `keepAudit`, the audit trail alone is written, in memory
    if (what === "auditEvent.create" && opts.keepAudit) {
      audited.push((args[0] as { data: unknown }).data);
      return Promise.resolve({});
    }
    return Promise.reject(
      Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }),
    );
  };
  const model = (name: string) =>
    new Proxy(
      {},
      {
        get:
          (_, method) =>
          (...args: unknown[]) =>
            refuse(`${name}.${String(method)}`, args),
      },
    );
  const db = new Proxy(
    {},
    {
      get: (_, prop) =>
        typeof prop === "string" && prop.startsWith("$") ? () => refuse(prop, []) : model(String(prop)),
    },
  );
  return { db: db as Db, touched, audited };
}

/** A logger whose calls are recorded (pino's shape, as far as handlers use it). */
export function recordingLog() {
  const log = {
    debug: vi.fn(),
    info: vi.fn(),
    warn: vi.fn(),
    error: vi.fn(),
    child: () => log,
  };
  return log;
}

/**
 * What command handlers get, with the state database unreachable and no runner: enough for
 * everything a listener decides before it needs either (help, parsing, access, the answers to a
 * failure). A handler that goes further belongs in the world tier (test/helpers/bot.ts).
 */
export function commandDeps(overrides: Partial<CommandDeps> = {}, opts: { keepAudit?: boolean } = {}) {
  const { db, touched, audited } = unreachableDb(opts);
  const log = recordingLog();
  const file = parseMigrationFile(FILE, { checkEnv: false });
  const deps: CommandDeps = {
    db,
    runner: new Proxy({} as CommandDeps["runner"], {
      get: (_, prop) => {
        throw new Error(`the runner was not expected to be used (${String(prop)})`);
      },
    }),
    file,
    registry: new Map(),
    access: new AccessControl(file.access, async () => []),
    log: log as unknown as CommandDeps["log"],
    now: () => new Date("2026-03-02T09:00:00Z"),
    ...overrides,
  };
  return { deps, touched, audited, log };
}
