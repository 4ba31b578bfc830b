import { WebClient } from "@slack/web-api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderCostChart } from "../../src/charts/cost-chart.js";
import { pngSize } from "../../src/charts/png.js";
import { uploadPng, uploadPngs } from "../../src/cloud/slack-files.js";
import { FakeSlack } from "../../src/sandbox/FakeSlack.js";

const TOKEN = "xoxb-test-files";
let fake: FakeSlack;
let client: WebClient;
let png: Buffer;

beforeAll(async () => {
  fake = new FakeSlack({ expectedToken: TOKEN });
  await fake.start();
  client = new WebClient(TOKEN, { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 } });
  const chart = await renderCostChart({
    month: "2026-11",
    currency: "USD",
    daily: [
      { date: "2026-11-01", amount: 2.5 },
      { date: "2026-11-02", amount: 3.1 },
    ],
    monthlyTarget: 85,
    budget: 100,
  });
  png = chart.png;
});
afterAll(async () => {
  await fake.stop();
});

describe("uploading PNGs with Slack's external upload flow", () => {
  it("uses getUploadURLExternal, the upload URL and completeUploadExternal, and the channel gets the image", async () => {
    const id = await uploadPng(
      client,
      { channel: "C0DIGEST", initialComment: "Daily cost" },
      { filename: "cost.png", title: "Daily cost", png, altText: "daily cost chart" },
    );
    expect(id).toMatch(/^F/);
    const methods = fake.calls().map((c) => c.method);
    expect(methods).toEqual(["files.getUploadURLExternal", "file_upload", "files.completeUploadExternal"]);
    expect(methods).not.toContain("files.upload");
    const file = fake.files().find((f) => f.id === id)!;
    expect(file.uploaded).toBe(true);
    expect(file.name).toBe("cost.png");
    expect(file.channel).toBe("C0DIGEST");
    expect(file.bytes.equals(png)).toBe(true);
    expect(file.length).toBe(png.length);
    const size = pngSize(file.bytes)!;
    expect(size.width).toBeGreaterThan(600);
    expect(size.height).toBeGreaterThan(300);
    const msg = fake.messages("C0DIGEST").at(-1)!;
    expect(msg.text).toBe("Daily cost");
    expect(msg.files?.map((f) => f.name)).toEqual(["cost.png"]);
  });

  it("shares two images in ONE message carrying the given blocks", async () => {
    const before = fake.messages("C0TWO").length;
    const { fileIds } = await uploadPngs(
      client,
      { channel: "C0TWO", blocks: [{ type: "section", text: { type: "mrkdwn", text: "*Digest*" } }] },
      [
        { filename: "a.png", title: "A", png },
        { filename: "b.png", title: "B", png },
      ],
    );
    expect(fileIds).toHaveLength(2);
    const msgs = fake.messages("C0TWO");
    expect(msgs.length - before).toBe(1);
    expect(msgs.at(-1)!.files?.map((f) => f.name)).toEqual(["a.png", "b.png"]);
    expect(JSON.stringify(msgs.at(-1)!.blocks)).toContain("*Digest*");
  });

  it("refuses bytes that are not a PNG before calling Slack", async () => {
    const n = fake.calls().length;
    await expect(
      uploadPng(client, { channel: "C0X" }, { filename: "x.png", title: "x", png: Buffer.from("not a png") }),
    ).rejects.toThrow(/not a PNG/);
    expect(fake.calls().length).toBe(n);
  });

  it("surfaces Slack's refusal (missing files:write scope)", async () => {
    fake.failNext("files.getUploadURLExternal", "missing_scope");
    await expect(
      uploadPng(client, { channel: "C0X" }, { filename: "x.png", title: "x", png }),
    ).rejects.toThrow(/missing_scope/);
  });
});
