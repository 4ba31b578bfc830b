import type {
  AllMiddlewareArgs,
  BlockButtonAction,
  SlackActionMiddlewareArgs,
  SlackCommandMiddlewareArgs,
} from "@slack/bolt";
import { vi } from "vitest";

/*
 * Arguments for calling a Bolt listener directly, as the Bolt starter's tests do
 * (`buildArguments` in slack-samples/bolt-ts-starter-template): the handler gets the payload
 * fields it reads and recording `ack`, `respond`, `say` and `logger`; nothing else is faked.
 * One routing test per listener kind still pushes signed requests through the real App
 * (test/commands/routing.test.ts), which catches what this cannot: wrong ids, missing acks.
 */

/** What a listener was given, to assert on afterwards. */
export interface Recorded {
  ack: ReturnType<typeof vi.fn>;
  respond: ReturnType<typeof vi.fn>;
  say: ReturnType<typeof vi.fn>;
  logger: {
    debug: ReturnType<typeof vi.fn>;
    info: ReturnType<typeof vi.fn>;
    warn: ReturnType<typeof vi.fn>;
    error: ReturnType<typeof vi.fn>;
  };
}

function recorders(overrides: Partial<Pick<Recorded, "ack" | "respond">>): Recorded {
  return {
    ack: overrides.ack ?? vi.fn(async () => undefined),
    respond: overrides.respond ?? vi.fn(async () => undefined),
    say: vi.fn(async () => ({ ok: true })),
    logger: { debug: vi.fn(), info: vi.fn(), warn: vi.fn(), error: vi.fn() },
  };
}

/** The payload's fields with the recording functions every listener kind gets. */
function withRecorders(rec: Recorded, fields: Record<string, unknown>): Record<string, unknown> {
  return {
    ...fields,
    ack: rec.ack,
    respond: rec.respond,
    say: rec.say,
    logger: rec.logger,
    next: vi.fn(async () => undefined),
    context: {},
  };
}

/**
 * A slash command's arguments: `/migrate <text>` from `user` in `channel`.
 *
 * @example const { args, ack } = buildCommandArguments({ text: "help" }); await handler(args);
 */
export function buildCommandArguments(
  opts: {
    command?: string;
    text?: string;
    user?: string;
    channel?: string;
    triggerId?: string;
  } & Partial<Pick<Recorded, "ack" | "respond">> = {},
): Recorded & { args: SlackCommandMiddlewareArgs & AllMiddlewareArgs } {
  const rec = recorders(opts);
  const command = {
    command: opts.command ?? "/migrate",
    text: opts.text ?? "",
    user_id: opts.user ?? "U0OPERATOR",
    user_name: "operator",
    channel_id: opts.channel ?? "C0MIGRATE",
    channel_name: "migrate",
    team_id: "T0TEAM",
    team_domain: "shop",
    trigger_id: opts.triggerId ?? "1337.42.abcdef",
    response_url: "https://hooks.slack.invalid/commands/T0TEAM/1/abc",
    api_app_id: "A0CUTOVER",
    token: "unused",
  };
  const args = withRecorders(rec, { command, body: command, payload: command });
  return { ...rec, args: args as unknown as SlackCommandMiddlewareArgs & AllMiddlewareArgs };
}

/**
 * A button click's arguments: `actionId` with `value`, clicked by `user` in `channel`.
 *
 * @example const { args, respond } = buildActionArguments({ actionId: "dismiss" }); await handler(args);
 */
export function buildActionArguments(
  opts: {
    actionId: string;
    value?: string;
    user?: string;
    channel?: string;
    triggerId?: string;
  } & Partial<Pick<Recorded, "ack" | "respond">>,
): Recorded & { args: SlackActionMiddlewareArgs<BlockButtonAction> & AllMiddlewareArgs } {
  const rec = recorders(opts);
  const action = {
    type: "button",
    action_id: opts.actionId,
    block_id: "b0",
    text: { type: "plain_text", text: "…" },
    action_ts: "1700000000.000100",
    ...(opts.value === undefined ? {} : { value: opts.value }),
  };
  const body = {
    type: "block_actions",
    user: { id: opts.user ?? "U0OPERATOR", name: "operator", team_id: "T0TEAM" },
    channel: { id: opts.channel ?? "C0MIGRATE", name: "migrate" },
    team: { id: "T0TEAM", domain: "shop" },
    trigger_id: opts.triggerId ?? "1337.42.fedcba",
    response_url: "https://hooks.slack.invalid/actions/T0TEAM/1/abc",
    api_app_id: "A0CUTOVER",
    token: "unused",
    container: { type: "message", message_ts: "1700000000.000100", channel_id: opts.channel ?? "C0MIGRATE" },
    actions: [action],
  };
  const args = withRecorders(rec, { action, body, payload: action });
  return {
    ...rec,
    args: args as unknown as SlackActionMiddlewareArgs<BlockButtonAction> & AllMiddlewareArgs,
  };
}
