import { describe, expect, it } from "vitest";
import { confirmRunAction, dismissAction } from "../../src/commands/confirm-run.js";
import { Metrics } from "../../src/metrics.js";
import { ACTION } from "../../src/views/ids.js";
import { buildActionArguments } from "../helpers/bolt-args.js";
import { CHANNEL, commandDeps, OPERATOR } from "../helpers/command-deps.js";

describe("the confirmation buttons of a destructive run, called directly", () => {
  it("Cancel removes the question", async () => {
    const { args, ack, respond } = buildActionArguments({ actionId: ACTION.dismiss });
    await dismissAction()(args);
    expect(ack).toHaveBeenCalledTimes(1);
    expect(respond).toHaveBeenCalledWith({ delete_original: true });
  });

  it("a button from an older message (a value it cannot read) asks for the command again and runs nothing", async () => {
    const { deps, touched } = commandDeps();
    const metrics = new Metrics();
    for (const value of [
      undefined,
      "not json",
      JSON.stringify({ target: "", replace: true, delete: false }),
    ]) {
      const { args, ack, respond } = buildActionArguments({
        actionId: ACTION.confirmRun,
        ...(value === undefined ? {} : { value }),
      });
      await confirmRunAction(deps, metrics)(args);
      expect(ack).toHaveBeenCalledTimes(1);
      expect(respond).toHaveBeenCalledWith({
        response_type: "ephemeral",
        replace_original: true,
        text: "That button is from an older message; type the command again.",
      });
    }
    expect(touched).toEqual([]);
    expect(metrics.render()).toContain('cutover_slack_actions_total{action="confirm_run"} 3');
  });

  it("answers a refused click even when the audit trail cannot take the refusal, and logs the audit failure", async () => {
    // the state database refuses every query, the audit row included
    const { deps, touched, log } = commandDeps();
    const value = JSON.stringify({ target: "data", replace: true, delete: false });
    const { args, ack, respond } = buildActionArguments({
      actionId: ACTION.confirmRun,
      value,
      user: "U0STRANGER",
      channel: CHANNEL,
    });
    await confirmRunAction(deps, new Metrics())(args);
    expect(ack).toHaveBeenCalledTimes(1);
    expect(touched).toEqual(["auditEvent.create"]);
    expect(respond).toHaveBeenCalledTimes(1);
    expect(respond).toHaveBeenCalledWith({
      response_type: "ephemeral",
      replace_original: false,
      text: expect.stringMatching(
        /^⛔ You are not an operator of this migration, so `run` is not yours to use/,
      ),
    });
    expect(log.error).toHaveBeenCalledWith(
      expect.objectContaining({ user: "U0STRANGER", target: "data" }),
      "could not audit a refusal",
    );
  });

  it("answers an operator's click when the confirmation cannot be audited, and runs nothing", async () => {
    const { deps, touched, log } = commandDeps();
    const { args, respond } = buildActionArguments({
      actionId: ACTION.confirmRun,
      value: JSON.stringify({ target: "data", replace: true, delete: false }),
      user: OPERATOR,
      channel: CHANNEL,
    });
    // the runner is never reached: commandDeps' runner throws if it is
    await confirmRunAction(deps, new Metrics())(args);
    expect(touched).toEqual(["auditEvent.create"]);
    expect(respond).toHaveBeenCalledTimes(1);
    expect(respond).toHaveBeenCalledWith({
      response_type: "ephemeral",
      replace_original: false,
      text: expect.stringMatching(/^⚠️ A connection was lost \(ECONNREFUSED\): .*Try again/),
    });
    expect(log.error).toHaveBeenCalledWith(
      expect.objectContaining({ user: OPERATOR, target: "data" }),
      "confirming a run failed",
    );
  });
});
