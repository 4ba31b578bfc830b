import type { AllMiddlewareArgs, SlackCommandMiddlewareArgs } from "@slack/bolt";
import pino from "pino";
import { describe, expect, it, vi } from "vitest";
import { AccessControl } from "../../src/commands/access.js";
import type { Caller, CommandDeps } from "../../src/commands/context.js";
import { dispatchMigrate } from "../../src/commands/dispatch.js";
import { migrateCommand } from "../../src/commands/migrate.js";
import { parseMigrate } from "../../src/commands/parse.js";
import { parseMigrationFile } from "../../src/config/load.js";
import { Metrics } from "../../src/metrics.js";
import type { Db } from "../../src/store/client.js";

/**
 * What a command ended as is data (`outcome`), not the reply's first character: the callers
 * (the metrics label, the terminal's exit status) branch on it. Handlers called directly, with a
 * state database that records audit events and fails any other query.
 */

const FILE = parseMigrationFile(
  `version: 1
project: t
environment: unit
slack: { channel: C0MIGRATE }
access: { operators: [U0OP], approvers: [U0AP], channels: [C0MIGRATE] }
runbook:
  phases:
    - id: one
      title: One
      steps:
        - { id: probe, uses: kpi.monitor }
`,
  { checkEnv: false },
);

function commandDeps() {
  const audited: Array<{ action: string; outcome: string }> = [];
  const unreachable = () => {
    throw new Error("connect ECONNREFUSED 127.0.0.1:5432");
  };
  const db = new Proxy(
    {},
    {
      get: (_t, model) =>
        model === "auditEvent"
          ? { create: async ({ data }: { data: { action: string; outcome: string } }) => audited.push(data) }
          : new Proxy({}, { get: () => unreachable }),
    },
  ) as unknown as Db;
  const deps = {
    db,
    runner: {} as CommandDeps["runner"],
    file: FILE,
    registry: new Map(),
    access: new AccessControl(FILE.access, async () => []),
    log: pino({ level: "silent" }),
    now: () => new Date("2026-01-05T10:00:00Z"),
  } satisfies CommandDeps;
  return { deps, audited };
}

const slack = (user: string): Caller => ({ user, via: "slack", channel: "C0MIGRATE", idempotencyKey: null });

describe("command outcomes", () => {
  it("a person who is not an operator is refused, and the refusal is audited", async () => {
    const { deps, audited } = commandDeps();
    const answer = await dispatchMigrate(parseMigrate("run one"), slack("U0STRANGER"), deps);
    expect(answer.outcome).toBe("refused");
    expect(answer.text).toContain("not an operator");
    expect(audited).toEqual([expect.objectContaining({ action: "command.run", outcome: "refused" })]);
  });

  it("wrong arguments are invalid, and a command that cannot reach its data failed", async () => {
    const { deps } = commandDeps();
    const kpi = await dispatchMigrate(parseMigrate("kpi 1d 2d"), slack("U0OP"), deps);
    expect(kpi.outcome).toBe("invalid");
    expect(kpi.text).toContain("at most one window");
    const status = await dispatchMigrate(parseMigrate("status"), slack("U0OP"), deps);
    expect(status.outcome).toBe("failed");
    expect(status.text).toMatch(/^⚠️ /);
    expect((await dispatchMigrate(parseMigrate("help"), slack("U0OP"), deps)).outcome).toBe("ok");
  });

  it("the /migrate listener counts a refusal by its outcome", async () => {
    const { deps } = commandDeps();
    const metrics = new Metrics();
    const respond = vi.fn(async () => undefined);
    const handler = migrateCommand(deps, metrics);
    await handler({
      command: { text: "run one", user_id: "U0STRANGER", channel_id: "C0MIGRATE" },
      ack: async () => undefined,
      respond,
    } as unknown as SlackCommandMiddlewareArgs & AllMiddlewareArgs);
    await vi.waitFor(() => expect(respond).toHaveBeenCalledTimes(1));
    expect(metrics.commands.render()).toContain('outcome="refused"');
    expect(metrics.commands.render()).not.toContain('outcome="answered"');
  });
});
