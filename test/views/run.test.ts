import { describe, expect, it } from "vitest";
import { type RunView, runMessageView } from "../../src/views/run.js";

const now = new Date("2026-11-19T01:00:00Z");
const step = (over: Partial<RunView["steps"][number]>): RunView["steps"][number] => ({
  step: "db-restore",
  status: "succeeded",
  attempts: 1,
  progress: null,
  plan: null,
  result: {
    summary:
      "restored 37 entries of dump-20261201 (7 tables) into postgres@127.0.0.1:5432/shop_target in 2.5 s",
    verify: { summary: "7 tables on the target, read with the key /home/cutover/.ssh/id_ed25519" },
  },
  error: null,
  startedAt: now,
  finishedAt: now,
  ...over,
});
const run = (steps: RunView["steps"], over: Partial<RunView> = {}): RunView => ({
  id: "3f2a9c1e-0000-4000-8000-000000000000",
  target: "data",
  kind: "phase",
  status: "failed",
  dryRun: false,
  requestedBy: "U0OPERATOR",
  error: "db-verify: 2 tables differ\nfirst: orders (12 rows missing)\nsecond: …",
  createdAt: now,
  startedAt: now,
  finishedAt: now,
  steps,
  ...over,
});

describe("the run's message in the channel", () => {
  const steps = [
    step({}),
    step({
      step: "db-verify",
      status: "failed",
      result: null,
      error: "2 tables differ\norders: 12 rows missing on the target\nline_items: 40 rows missing",
    }),
  ];

  it("is one line per step: results, host paths and connection strings stay in the thread", () => {
    const json = JSON.stringify(runMessageView(run(steps), now));
    expect(json).not.toContain("postgres@127.0.0.1");
    expect(json).not.toContain(".ssh");
    expect(json).not.toContain("12 rows missing");
    // what failed, in its first line, and who asked, as a mention
    expect(json).toContain("↳ 2 tables differ");
    expect(json).toContain("requested by <@U0OPERATOR>");
  });

  it("shows each step's result under it in a terminal, which has no thread", () => {
    const json = JSON.stringify(
      runMessageView(run(steps, { requestedBy: "test-terminal" }), now, { results: true }),
    );
    expect(json).toContain("restored 37 entries");
    expect(json).toContain("requested by test-terminal");
  });
});

describe("a phase's dry run in the channel", () => {
  it("shows each step's summary and its first three changes, counting the rest", () => {
    const planned = (i: number) =>
      step({
        step: `step-${i}`,
        result: null,
        plan: {
          summary: `would set up the host\nwith a script of 120 lines`,
          changes: Array.from({ length: 12 }, (_, c) => ({
            action: "create",
            target: `/etc/nginx/site-${c}`,
            // a set-up script is a change's detail: its first line only in the channel
            detail: "#!/usr/bin/env bash\nset -Eeuo pipefail\napt-get install -y nginx",
          })),
        },
      });
    const view = runMessageView(
      run(
        Array.from({ length: 6 }, (_, i) => planned(i)),
        { dryRun: true, status: "succeeded" },
      ),
      now,
    );
    const text = JSON.stringify(view.blocks);
    expect(text.match(/… and 9 more/g)).toHaveLength(6);
    expect(text).not.toContain("script of 120 lines");
    expect(text).not.toContain("site-3");
    expect(text).toContain("#!/usr/bin/env bash");
    expect(text).not.toContain("pipefail");
    const lines = (view.blocks[1] as { text: { text: string } }).text.text.split("\n");
    expect(lines.length).toBeLessThanOrEqual(6 * 6);
  });
});

describe("what the whole channel reads", () => {
  it("names databases and files as a person would, not by connection string or host path", () => {
    const view = runMessageView(
      run(
        [
          step({
            status: "failed",
            result: null,
            error:
              "The SSH key file named by SSH_KEY_PATH (/home/cutover/.ssh/id_ed25519) cannot be read: ENOENT.\nstack…",
          }),
          step({
            step: "db-dump",
            status: "succeeded",
            result: null,
            plan: {
              summary:
                "would dump 7 tables (12 MB) from postgres@ep-cool-1.neon.tech:5432/shop with pg_dump 15",
              changes: [{ action: "create", target: "/tmp/cutover-x/bot/dumps/production/dump-1" }],
            },
          }),
        ],
        { error: "connect to postgresql://app:s3cret@ep-cool-1.neon.tech:5432/shop?sslmode=require failed" },
      ),
      now,
    );
    const json = JSON.stringify(view);
    for (const leak of [
      "/home/cutover",
      ".ssh",
      "s3cret",
      "app@",
      "postgres@",
      "postgresql://",
      "/tmp/cutover",
    ])
      expect(json).not.toContain(leak);
    expect(json).toContain("…/id_ed25519");
    expect(json).toContain("the database `shop` on `ep-cool-1.neon.tech`");
    expect(json).toContain("…/dump-1");
  });
});
