import { SUBCOMMANDS, type SubcommandName } from "../commands/parse.js";
import type { MigrationFile } from "../config/schema.js";
import { context, esc, header, type Reply, section } from "./blocks.js";

const EXAMPLES: Record<SubcommandName, string> = {
  help: "/migrate help run",
  plan: "/migrate plan data",
  status: "/migrate status",
  run: "/migrate run db-preflight --dry-run",
  undo: "/migrate undo infra --dry-run",
  cancel: "/migrate cancel 3f2a9c1e",
  audit: "/migrate audit 50",
  cutover: "/migrate cutover",
  verify: "/migrate verify database",
  cost: "/migrate cost",
  kpi: "/migrate kpi",
  decommission: "/migrate decommission",
  digest: "/migrate digest",
};

/** The help reply. It reveals nothing about the migration, so anyone may see it anywhere. */
export function helpView(topic?: string): Reply {
  if (topic && Object.hasOwn(SUBCOMMANDS, topic)) {
    const name = topic as SubcommandName;
    return {
      // `<step|phase>` unescaped would be read as a link, in the notification as in the block
      text: `/migrate ${esc(SUBCOMMANDS[name])}`,
      blocks: [section(`*/migrate ${esc(SUBCOMMANDS[name])}*\nExample: \`${EXAMPLES[name]}\``)],
    };
  }
  const lines = (Object.keys(SUBCOMMANDS) as SubcommandName[]).map(
    (k) => `• \`/migrate ${esc(SUBCOMMANDS[k])}\``,
  );
  return {
    text: "Cutover: /migrate commands",
    blocks: [
      header("Cutover — moving production, phase by phase"),
      section(lines.join("\n")),
      section("• `/rollback` — emergency: put DNS and the front end back as they were before the cutover"),
      context(
        "Every step can be previewed with `--dry-run`. Commands other than help work in the migration channel, for the people the migration file names.",
      ),
    ],
  };
}

export function unknownCommandView(input: string, suggestion?: string): Reply {
  const guess = suggestion ? ` Did you mean \`/migrate ${suggestion}\`?` : "";
  const text = `I don't know \`${input}\`.${guess}`;
  const help = helpView();
  return {
    // the fallback text is parsed too (a typed <!channel> would notify everyone): escaped
    text: `${esc(text)} Type /migrate help for every command.`,
    blocks: [section(esc(text).replace(/&lt;|&gt;/g, "")), ...help.blocks.slice(1)],
  };
}

export function invalidUsageView(subcommand: SubcommandName, message: string): Reply {
  return {
    text: message,
    blocks: [
      section(
        `${message}\nUsage: \`/migrate ${esc(SUBCOMMANDS[subcommand])}\`\nExample: \`${EXAMPLES[subcommand]}\``,
      ),
    ],
  };
}

export function noticeView(text: string): Reply {
  return { text, blocks: [section(text)] };
}

export function migrationTitle(file: MigrationFile): string {
  return `${file.project} · ${file.environment}`;
}
