import { z } from "zod";
import { costSummary } from "../../../cloud/cost-explorer.js";
import { CutoverError, ErrorCode } from "../../../errors.js";
import { costUnavailableText, money } from "../../../views/cost.js";
import type { StepDefinition } from "../../define-step.js";
import { defineStep, type StepDeps, stateStore, stepNow } from "../../define-step.js";

const Input = z.strictObject({
  /** ask Cost Explorer again even when today's figures are cached */
  refresh: z.boolean().default(false),
});
type Input = z.infer<typeof Input>;

export const costReport = defineStep({
  type: "cost.report",
  description: "report cost to date, the forecast and the savings available",
  input: Input,
  configSections: ["cost"],
  timeLimit: 600,
  mutating: false,
});

/**
 * `cost.report`: cost to date, the forecast and the savings available, as the step's figures.
 * Reads only. Cost unavailable (no permission, no data yet) fails the step with the reason and
 * the IAM permission to add.
 */
export function createCostReportStep(deps: StepDeps): StepDefinition<Input> {
  const db = stateStore(deps, costReport.type);
  const now = stepNow(deps);
  const report = async (input: Input) => {
    const s = await costSummary(
      { db, file: deps.file, costExplorer: deps.ports.costExplorer(), log: deps.log },
      now(),
      {
        refresh: input.refresh,
      },
    );
    if (!s.available)
      // a missing permission is not fixed by retrying
      throw new CutoverError(
        s.permission ? ErrorCode.AwsPermissionDenied : ErrorCode.StepFailed,
        costUnavailableText(s),
        {
          details: s.permission ? { permission: s.permission } : {},
        },
      );
    return s;
  };
  return costReport.implement({
    async plan() {
      return {
        summary:
          "would read cost month to date, the forecast and the RDS reservation recommendation from AWS Cost Explorer (cached for the day)",
        changes: [{ action: "check", target: "AWS Cost Explorer" }],
      };
    },
    async run(input, ctx) {
      const s = await report(input);
      const c = s.currency;
      if (s.status === "over-budget")
        ctx.alert?.({
          text: `🚨 Cost: the month is heading for ${money(s.projected.amount, c)}, above the budget alert of ${money(s.budgetAlert, c)} (${money(s.monthToDate, c)} so far).`,
          rollback: false,
        });
      const savings =
        s.reservation.available && s.reservation.recommendation
          ? `; an RDS reservation would save ${money(s.reservation.recommendation.monthlySavings, c)}/month`
          : "";
      return {
        summary: `${money(s.monthToDate, c)} month to date, ${s.projected.basis} ${money(s.projected.amount, c)} for the month against ${money(s.monthlyTarget, c)} (budget alert ${money(s.budgetAlert, c)}): ${s.status}${savings} (${s.freshness})`,
        figures: {
          monthToDate: s.monthToDate,
          projected: s.projected.amount,
          target: s.monthlyTarget,
          budgetAlert: s.budgetAlert,
          status: s.status,
          ...(s.reservation.available && s.reservation.recommendation
            ? { rdsReservationMonthlySavings: s.reservation.recommendation.monthlySavings }
            : {}),
          // the plan's optimisations priced on this month's spend, e.g. `saving.s3-lifecycle.max`
          ...Object.fromEntries(
            s.optimisations.flatMap((o) => [
              [`saving.${o.id}.min`, o.saving.min],
              [`saving.${o.id}.max`, o.saving.max],
            ]),
          ),
        },
      };
    },
    async verify() {
      // from today's cache: no second request
      const s = await report({ refresh: false });
      return {
        ok: true,
        summary: `cost read ${s.freshness}; projected ${money(s.projected.amount, s.currency)} is ${s.status === "over-budget" ? "above" : "within"} the budget alert of ${money(s.budgetAlert, s.currency)}`,
      };
    },
  });
}
