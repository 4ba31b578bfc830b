import { describe, expect, it } from "vitest";
import { migrateCommand } from "../../src/commands/migrate.js";
import { Metrics } from "../../src/metrics.js";
import { buildCommandArguments } from "../helpers/bolt-args.js";
import { commandDeps } from "../helpers/command-deps.js";

/*
 * `/migrate` called directly with built arguments: what is answered in the ack, what after it,
 * and what a person reads when the state database is down. The same command through the real
 * receiver, signed, is in routing.test.ts.
 */

describe("/migrate, called directly", () => {
  it("answers help inside the ack, without touching the state database", async () => {
    const { deps, touched } = commandDeps();
    const metrics = new Metrics();
    const { args, ack, respond } = buildCommandArguments({ text: "help" });
    await migrateCommand(deps, metrics)(args);
    expect(ack).toHaveBeenCalledTimes(1);
    const reply = ack.mock.calls[0]![0] as { response_type: string; text: string; blocks: unknown[] };
    expect(reply.response_type).toBe("ephemeral");
    expect(reply.text).toMatch(/\/migrate/);
    expect(reply.blocks.length).toBeGreaterThan(0);
    expect(respond).not.toHaveBeenCalled();
    expect(touched).toEqual([]);
    expect(metrics.render()).toContain('cutover_slack_commands_total{command="help",outcome="answered"} 1');
  });

  it("names the command a typo was probably meant to be, in the ack", async () => {
    const { deps, touched } = commandDeps();
    const { args, ack, respond } = buildCommandArguments({ text: "stauts" });
    await migrateCommand(deps, new Metrics())(args);
    const reply = ack.mock.calls[0]![0] as { text: string };
    expect(reply.text).toContain("stauts");
    expect(JSON.stringify(ack.mock.calls[0]![0])).toContain("status");
    expect(respond).not.toHaveBeenCalled();
    expect(touched).toEqual([]);
  });

  it("acks at once, then tells the person the state database cannot be reached", async () => {
    const { deps, touched, log } = commandDeps();
    const metrics = new Metrics();
    const { args, ack, respond } = buildCommandArguments({ text: "status" });
    await migrateCommand(deps, metrics)(args);
    // the ack carries nothing: the answer needs the database, so it goes to the response URL
    expect(ack).toHaveBeenCalledTimes(1);
    expect(ack.mock.calls[0]).toEqual([]);
    expect(touched).toEqual(["$executeRaw"]);
    expect(respond).toHaveBeenCalledTimes(1);
    const reply = respond.mock.calls[0]![0] as { response_type: string; text: string };
    expect(reply.response_type).toBe("ephemeral");
    expect(reply.text).toMatch(/^⚠️ A connection was lost \(ECONNREFUSED\)/);
    expect(log.error).toHaveBeenCalledWith(
      expect.objectContaining({ command: "status" }),
      "command failed before it could answer",
    );
    expect(metrics.render()).toContain('cutover_slack_commands_total{command="status",outcome="answered"} 1');
  });
});
