import { describe, expect, it } from "vitest";
import { confirmRunAction, dismissAction } from "../../src/commands/confirm-run.js";
import { Metrics } from "../../src/metrics.js";
import { ACTION } from "../../src/views/ids.js";
import { buildActionArguments } from "../helpers/bolt-args.js";
import { commandDeps } from "../helpers/command-deps.js";

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
});
