import { describe, expect, it } from "vitest";
import { mrkdwnToText, renderBlocksAsText, renderViewAsText } from "../../src/views/text.js";

const mrkdwn = (text: string) => ({ type: "mrkdwn", text });
const plain = (text: string) => ({ type: "plain_text", text, emoji: true });
const button = (text: string, action_id: string, style?: string) => ({
  type: "button",
  text: plain(text),
  action_id,
  ...(style ? { style } : {}),
});

describe("mrkdwnToText", () => {
  it("keeps emphasis and turns links, mentions and entities into what Slack shows", () => {
    expect(
      mrkdwnToText(
        "*Done* _now_: <https://x.example/run/1|run 1> by <@U0ALICE> in <#C0OPS|ops> <!here> " +
          "<!subteam^S0APPROVERS|@approvers> <https://x.example> a &lt;b&gt; &amp; c :white_check_mark: :unknown_thing:",
      ),
    ).toBe(
      "*Done* _now_: run 1 (https://x.example/run/1) by @U0ALICE in #ops @here @approvers https://x.example a <b> & c ✅ :unknown_thing:",
    );
  });
});

describe("renderBlocksAsText", () => {
  it("renders a run's progress message as a person would read it", () => {
    const blocks = [
      { type: "header", text: plain("Cutover · gogojap production") },
      { type: "section", text: mrkdwn(":hourglass_flowing_sand: *Run `db-copy`* — running · 3 min 4 s") },
      {
        type: "section",
        fields: [
          mrkdwn("*Phase*\n2 of 5: database"),
          mrkdwn("*Requested by*\n<@U0ALICE>"),
          mrkdwn("*Started*\n<!date^1700000000^{time}|10:13>"),
          mrkdwn("*Target*\n<https://console.aws.amazon.com/rds|RDS gogojap-prod>"),
        ],
      },
      { type: "divider" },
      {
        type: "section",
        text: mrkdwn(
          [
            ":white_check_mark: `preflight` succeeded · 12 s",
            ":hourglass_flowing_sand: `pg_dump` running",
            "      `██████░░░░` 6/10 tables — copying orders &amp; items",
            ":white_circle: `pg_restore` pending",
          ].join("\n"),
        ),
      },
      { type: "context", elements: [mrkdwn("run `a1b2c3` · <!here> details in the thread")] },
      { type: "actions", elements: [button("Cancel", "cancel_run", "danger")] },
    ];

    expect(renderBlocksAsText(blocks, "ignored when there are blocks")).toBe(
      [
        "CUTOVER · GOGOJAP PRODUCTION",
        "════════════════════════════",
        "⏳ *Run `db-copy`* — running · 3 min 4 s",
        "*Phase*             *Requested by*",
        "2 of 5: database    @U0ALICE",
        "*Started*           *Target*",
        "10:13               RDS gogojap-prod (https://console.aws.amazon.com/rds)",
        "────────────────────────────────────────",
        "✅ `preflight` succeeded · 12 s",
        "⏳ `pg_dump` running",
        "      `██████░░░░` 6/10 tables — copying orders & items",
        "⚪ `pg_restore` pending",
        "run `a1b2c3` · @here details in the thread",
        "[ Cancel ]",
      ].join("\n"),
    );
  });

  it("renders an approval request with its checks and both buttons", () => {
    const blocks = [
      {
        type: "section",
        text: mrkdwn(
          ":rotating_light: *DNS cutover needs a second person*\n<@U0ALICE> asks to point `api.gogojap.com` at CloudFront.",
        ),
      },
      {
        type: "section",
        fields: [mrkdwn("*From*\n`zeabur.app` (CNAME)"), mrkdwn("*To*\n`d111.cloudfront.net`")],
      },
      {
        type: "rich_text",
        elements: [
          { type: "rich_text_section", elements: [{ type: "text", text: "Checks passed:" }] },
          {
            type: "rich_text_list",
            style: "bullet",
            elements: [
              { type: "rich_text_section", elements: [{ type: "text", text: "health 200 on the new host" }] },
              {
                type: "rich_text_section",
                elements: [
                  { type: "text", text: "row counts match (" },
                  { type: "text", text: "14", style: { bold: true } },
                  { type: "text", text: " tables)" },
                ],
              },
            ],
          },
        ],
      },
      {
        type: "context",
        elements: [
          { type: "image", image_url: "https://x.example/aws.png", alt_text: "aws" },
          mrkdwn("Expires in 30 min · <https://runbook.example/dns|runbook>"),
        ],
      },
      {
        type: "actions",
        block_id: "approval",
        elements: [
          button("Approve", "approve_cutover", "primary"),
          button("Reject", "reject_cutover", "danger"),
        ],
      },
    ];

    expect(renderBlocksAsText(blocks)).toBe(
      [
        "🚨 *DNS cutover needs a second person*",
        "@U0ALICE asks to point `api.gogojap.com` at CloudFront.",
        "*From*                  *To*",
        "`zeabur.app` (CNAME)    `d111.cloudfront.net`",
        "Checks passed:",
        "• health 200 on the new host",
        "• row counts match (*14* tables)",
        "[aws]  Expires in 30 min · runbook (https://runbook.example/dns)",
        "[ Approve ] [ Reject ]",
      ].join("\n"),
    );
  });

  it("falls back to the message text when there are no blocks", () => {
    expect(renderBlocksAsText(undefined, "Run <https://x.example/r/1|r1> failed")).toBe(
      "Run r1 (https://x.example/r/1) failed",
    );
    expect(renderBlocksAsText([])).toBe("");
  });

  it("shows images, accessories, ordered lists and unknown blocks instead of dropping them", () => {
    const blocks = [
      { type: "image", image_url: "https://x.example/c.png", alt_text: "cost by day" },
      { type: "section", text: mrkdwn("Cost report"), accessory: button("Open", "open_cost") },
      {
        type: "rich_text",
        elements: [
          {
            type: "rich_text_list",
            style: "ordered",
            elements: [
              { type: "rich_text_section", elements: [{ type: "text", text: "dump" }] },
              {
                type: "rich_text_section",
                elements: [{ type: "link", url: "https://x.example/r", text: "restore" }],
              },
            ],
          },
          { type: "rich_text_preformatted", elements: [{ type: "text", text: "pg_restore -j 4" }] },
        ],
      },
      { type: "some_future_block" },
    ];
    expect(renderBlocksAsText(blocks)).toBe(
      [
        "[image: cost by day]",
        "Cost report",
        "[ Open ]",
        "1. dump",
        "2. restore (https://x.example/r)",
        "    pg_restore -j 4",
        "[some_future_block]",
      ].join("\n"),
    );
  });
});

describe("renderViewAsText", () => {
  it("renders a modal: title, inputs as blanks to fill, then its buttons", () => {
    const view = {
      type: "modal",
      callback_id: "cutover_confirm",
      title: plain("Confirm cutover"),
      submit: plain("Flip DNS"),
      close: plain("Back"),
      blocks: [
        { type: "section", text: mrkdwn("You are about to move *api.gogojap.com*.") },
        { type: "input", block_id: "reason", label: plain("Reason"), element: { type: "plain_text_input" } },
        {
          type: "input",
          optional: true,
          label: plain("Ticket"),
          hint: plain("Change ticket"),
          element: { type: "plain_text_input", initial_value: "OPS-12" },
        },
        {
          type: "input",
          label: plain("Approver"),
          element: { type: "users_select", placeholder: plain("Pick someone") },
        },
      ],
    };
    expect(renderViewAsText(view)).toBe(
      [
        "Confirm cutover",
        "━━━━━━━━━━━━━━━",
        "You are about to move *api.gogojap.com*.",
        "Reason: ____",
        "Ticket (optional): OPS-12",
        "  Change ticket",
        "Approver: ____",
        "",
        "[ Back ] [ Flip DNS ]",
      ].join("\n"),
    );
  });

  it("shows only the close button when a modal has nothing to submit", () => {
    expect(renderViewAsText({ type: "modal", title: plain("Help"), blocks: [{ type: "divider" }] })).toBe(
      ["Help", "━━━━", "────────────────────────────────────────", "", "[ Cancel ]"].join("\n"),
    );
  });
});
