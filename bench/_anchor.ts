import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { App, LogLevel } from "@slack/bolt";

/**
 * The ack bench's anchor, in a process of its own as the bot is: a bare Bolt App with the same
 * HTTPReceiver whose /migrate handler only acks. Prints `{"port": N}` once it listens.
 */
const app = new App({
  token: process.env.SLACK_BOT_TOKEN ?? "",
  signingSecret: process.env.SLACK_SIGNING_SECRET ?? "",
  clientOptions: process.env.SLACK_API_URL ? { slackApiUrl: process.env.SLACK_API_URL } : {},
  logLevel: LogLevel.ERROR,
  processBeforeResponse: false,
});
app.command("/migrate", async ({ ack }) => {
  await ack();
});
const server = (await app.start(0)) as Server;
process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
process.once("SIGTERM", () => {
  app.stop().finally(() => process.exit(0));
});
