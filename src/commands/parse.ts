import { closest } from "../text/suggest.js";
import { esc } from "../views/blocks.js";

/** Everything `/migrate` understands, with a one-line usage each (help and did-you-mean use it). */
export const SUBCOMMANDS = {
  help: "help [command] — what each command does",
  plan: "plan [phase|step] — the dry run: what would change, read from live state",
  status: "status — phases and steps: state, who, when, how long",
  run: "run <step|phase> [--dry-run] [--replace] [--delete] — run a step or a whole phase",
  undo: "undo <phase|step> [--dry-run] — tear down what Cutover created there, newest step first",
  cancel: "cancel <run> — stop a run (its steps resume from their checkpoints if run again)",
  audit: "audit [n] — the last n audit events (default 20)",
  cutover: "cutover — ask a second person to approve the DNS switch",
  decommission:
    "decommission — ask a second person to approve retiring the old services (after stabilisation)",
  verify: "verify [database|storage|cdn|functional|performance|reliability|all] — prove the target matches",
  cost: "cost — cost to date, the forecast and the budget",
  kpi: "kpi — availability, latency and error rate against the targets",
  digest: "digest — post the daily digest (progress, KPIs, cost, charts) to its channel now",
} as const;

export type SubcommandName = keyof typeof SUBCOMMANDS;

export type Command =
  | { name: "help"; topic?: string }
  | { name: "plan"; target?: string }
  | { name: "status" }
  | { name: "run"; target: string; dryRun: boolean; flags: Record<string, string | true> }
  | { name: "undo"; target: string; dryRun: boolean; flags: Record<string, string | true> }
  | { name: "cancel"; runId: string }
  | { name: "audit"; limit: number }
  | { name: "digest" }
  | {
      name: "cutover" | "verify" | "cost" | "kpi" | "decommission";
      args: string[];
      flags: Record<string, string | true>;
    }
  | { name: "unknown"; input: string; suggestion?: string }
  | { name: "invalid"; subcommand: SubcommandName; message: string };

const FLAGS_WITH_VALUES = new Set(["reason"]);
const KNOWN_FLAGS: Record<string, readonly string[]> = {
  run: ["dry-run", "replace", "delete", "confirm"],
  undo: ["dry-run", "confirm"],
  cutover: ["reason"],
  decommission: [],
  verify: [],
  cost: [],
  kpi: [],
  digest: [],
};

/** Undoes Slack's escaping of &, < and > in command text. */
function unescapeSlack(text: string): string {
  return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

/** Splits on whitespace, keeping "quoted strings" (straight or curly quotes) together. */
export function tokenize(text: string): string[] {
  const tokens: string[] = [];
  const re = /"([^"]*)"|“([^”]*)”|'([^']*)'|(\S+)/g;
  for (const m of unescapeSlack(text).matchAll(re)) tokens.push(m[1] ?? m[2] ?? m[3] ?? m[4] ?? "");
  return tokens;
}

function splitFlags(
  sub: string,
  tokens: string[],
): { args: string[]; flags: Record<string, string | true>; bad?: string } {
  const args: string[] = [];
  const flags: Record<string, string | true> = {};
  const known = KNOWN_FLAGS[sub] ?? [];
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    // Slack and phones turn "--" into an em or en dash; accept those too.
    const m = /^(?:--|—|–)([a-z][a-z-]*)(?:=(.*))?$/.exec(token);
    if (!m) {
      args.push(token);
      continue;
    }
    const name = m[1]!;
    if (!known.includes(name)) {
      const guess = closest(name, known);
      return {
        args,
        flags,
        bad: known.length
          ? `\`--${esc(name)}\` is not an option of \`${sub}\`${guess ? ` — did you mean \`--${guess}\`?` : ""}. Options: ${known.map((k) => `--${k}`).join(", ")}.`
          : `\`${sub}\` takes no options.`,
      };
    }
    if (FLAGS_WITH_VALUES.has(name)) {
      const value = m[2] ?? tokens[++i];
      if (value === undefined || value === "")
        return { args, flags, bad: `\`--${esc(name)}\` needs a value, e.g. \`--${name} "why"\`.` };
      flags[name] = value;
    } else {
      flags[name] = true;
    }
  }
  return { args, flags };
}

/** Parses what follows `/migrate`. Never throws: anything it cannot use becomes `unknown` or `invalid`. */
export function parseMigrate(text: string): Command {
  const tokens = tokenize(text.trim());
  const first = tokens[0]?.toLowerCase();
  if (first === undefined || first === "help" || first === "-h" || first === "--help" || first === "?") {
    const topic = tokens[1]?.toLowerCase();
    return topic ? { name: "help", topic } : { name: "help" };
  }
  if (!Object.hasOwn(SUBCOMMANDS, first)) {
    const suggestion = closest(first, Object.keys(SUBCOMMANDS));
    return suggestion ? { name: "unknown", input: first, suggestion } : { name: "unknown", input: first };
  }
  const sub = first as SubcommandName;
  const { args, flags, bad } = splitFlags(sub, tokens.slice(1));
  const invalid = (message: string): Command => ({ name: "invalid", subcommand: sub, message });
  if (bad) return invalid(bad);
  switch (sub) {
    case "help":
      return { name: "help" };
    case "status":
      return args.length ? invalid("`status` takes nothing after it.") : { name: "status" };
    case "plan":
      if (args.length > 1) return invalid("`plan` takes at most one phase or step.");
      return args[0] ? { name: "plan", target: args[0] } : { name: "plan" };
    case "run":
      if (args.length !== 1)
        return invalid("`run` needs exactly one step or phase, e.g. `/migrate run data --dry-run`.");
      return { name: "run", target: args[0]!, dryRun: flags["dry-run"] === true, flags };
    case "undo":
      if (args.length !== 1)
        return invalid("`undo` needs exactly one phase or step, e.g. `/migrate undo infra --dry-run`.");
      return { name: "undo", target: args[0]!, dryRun: flags["dry-run"] === true, flags };
    case "cancel":
      if (args.length !== 1)
        return invalid(
          "`cancel` needs the run id shown in `/migrate status`, e.g. `/migrate cancel 3f2a9c1e`.",
        );
      return { name: "cancel", runId: args[0]! };
    case "audit": {
      if (args.length > 1) return invalid("`audit` takes at most a number, e.g. `/migrate audit 50`.");
      if (args[0] === undefined) return { name: "audit", limit: 20 };
      const n = Number(args[0]);
      if (!Number.isInteger(n) || n < 1 || n > 200)
        return invalid("`audit` takes a whole number from 1 to 200.");
      return { name: "audit", limit: n };
    }
    case "digest":
      return args.length
        ? invalid("`digest` takes nothing after it: it posts today's digest to the file's digest channel.")
        : { name: "digest" };
    case "decommission":
      return args.length
        ? invalid(
            "`decommission` takes nothing after it: its options are the step's `with:` in the migration file.",
          )
        : { name: "decommission", args, flags };
    default:
      return { name: sub, args, flags };
  }
}
