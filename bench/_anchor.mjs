// The anchor of the ack and footprint benches, in a process of its own as the bot is: a bare Bolt
// App with the same HTTPReceiver whose /migrate handler only acks, plain JavaScript on the same
// node as the compiled bot. Prints `{"port": N}` once it listens; SIGTERM stops it.
import bolt from "@slack/bolt";

const { App, LogLevel } = bolt;
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
const server = await app.start(Number(process.env.PORT ?? 0));
process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
process.once("SIGTERM", () => {
  app.stop().finally(() => process.exit(0));
});
