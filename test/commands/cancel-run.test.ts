import { describe, expect, it } from "vitest";
import { cancelRunAction } from "../../src/commands/cancel-run.js";
import { Metrics } from "../../src/metrics.js";
import { ACTION } from "../../src/views/ids.js";
import { buildActionArguments } from "../helpers/bolt-args.js";
import { APPROVER, commandDeps } from "../helpers/command-deps.js";

describe("the Cancel button on a run's message, called directly", () => {
  it("follows `/migrate cancel`'s rules: an approver may not cancel, and is told so even when the refusal cannot be audited", async () => {
    const { deps, touched, log } = commandDeps();
    const { args, ack, respond } = buildActionArguments({
      actionId: ACTION.cancelRun,
      value: "3f2a9c1e-0000-4000-8000-000000000000",
      user: APPROVER,
    });
    await cancelRunAction(deps, new Metrics())(args);
    expect(ack).toHaveBeenCalledTimes(1);
    expect(respond).toHaveBeenCalledTimes(1);
    const reply = respond.mock.calls[0]![0] as {
      response_type: string;
      replace_original: boolean;
      text: string;
    };
    expect(reply).toMatchObject({ response_type: "ephemeral", replace_original: false });
    expect(reply.text).toBe(
      "⛔ You are not an operator of this migration, so `cancel` is not yours to use.\nAsk an owner of the migration file to add you under `access.operators`.",
    );
    expect(touched).toEqual(["auditEvent.create"]);
    expect(log.error).toHaveBeenCalledWith(expect.anything(), "could not audit a refusal");
  });

  it("refuses a click from a channel that does not take migration commands", async () => {
    const { deps } = commandDeps();
    const { args, respond } = buildActionArguments({
      actionId: ACTION.cancelRun,
      value: "3f2a9c1e",
      channel: "C0RANDOM",
    });
    await cancelRunAction(deps, new Metrics())(args);
    expect((respond.mock.calls[0]![0] as { text: string }).text).toMatch(
      /^⛔ This channel does not take migration commands\.\nUse one of the channels listed under `access.channels`/,
    );
  });
});
