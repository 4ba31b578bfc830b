import { describe, expect, it } from "vitest";
import { rollbackButtonAction } from "../../src/commands/rollback.js";
import { Metrics } from "../../src/metrics.js";
import { ACTION } from "../../src/views/ids.js";
import { buildActionArguments } from "../helpers/bolt-args.js";
import { APPROVER, commandDeps, OPERATOR } from "../helpers/command-deps.js";

/*
 * The "Roll back" button called directly: who may open the rollback, and what the others are
 * told. Opening the modal and the rollback itself are in rollback.test.ts, through the real App.
 */

describe("the Roll back button, called directly", () => {
  it("tells someone who is not an operator that only an operator can roll back, and audits the refusal", async () => {
    const { deps, audited } = commandDeps({}, { keepAudit: true });
    const { args, ack, respond } = buildActionArguments({ actionId: ACTION.rollbackNow, user: APPROVER });
    await rollbackButtonAction(deps, new Metrics())(args);
    expect(ack).toHaveBeenCalledTimes(1);
    expect(respond).toHaveBeenCalledWith({
      response_type: "ephemeral",
      replace_original: false,
      text: "⛔ Only an operator of this migration can roll back (see `access.operators` in the migration file).",
    });
    expect(audited).toEqual([
      expect.objectContaining({
        actor: APPROVER,
        action: "rollback.open",
        outcome: "refused",
        details: { reason: "not an operator" },
      }),
    ]);
  });

  it("refuses a click from a channel that does not take migration commands", async () => {
    const { deps, audited } = commandDeps({}, { keepAudit: true });
    const { args, respond } = buildActionArguments({
      actionId: ACTION.rollbackNow,
      user: OPERATOR,
      channel: "C0RANDOM",
    });
    await rollbackButtonAction(deps, new Metrics())(args);
    expect(respond).toHaveBeenCalledWith(
      expect.objectContaining({
        text: "⛔ This channel does not take migration commands: use /rollback in the migration channel.",
      }),
    );
    expect(audited).toEqual([
      expect.objectContaining({
        outcome: "refused",
        details: { reason: "channel not allowed", channel: "C0RANDOM" },
      }),
    ]);
  });

  it("says there is nothing to roll back when the migration switches no DNS, and writes nothing", async () => {
    const { deps, touched } = commandDeps({}, { keepAudit: true });
    const { args, respond } = buildActionArguments({ actionId: ACTION.rollbackNow, user: OPERATOR });
    await rollbackButtonAction(deps, new Metrics())(args);
    expect(respond).toHaveBeenCalledWith(
      expect.objectContaining({ text: "This migration switches no DNS, so there is nothing to roll back." }),
    );
    expect(touched).toEqual([]);
  });
});
