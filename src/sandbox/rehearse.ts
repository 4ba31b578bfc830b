/**
 * `npm run rehearse [-- --size MB --fail STEP --quiet --keep]`: the whole runbook end to end on
 * this machine, against the local world, through the real bot's Slack endpoint. Exit status 0
 * only when everything verified; 1 when something did not; 2 for a bad command line.
 */
import { parseArgs, USAGE, UsageError } from "../rehearsal/args.js";

let args: ReturnType<typeof parseArgs>;
try {
  args = parseArgs(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`${err.message}\n\n${USAGE}\n`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

if (args.realHost) {
  const { rehearseRealHost } = await import("../rehearsal/real-host.js");
  process.exit(await rehearseRealHost({ out: process.stdout, env: process.env, quiet: args.quiet }));
}

// loaded only now: a bad command line is answered without loading the bot and the world
const { startRehearsal } = await import("../rehearsal/rehearse.js");
const rehearsal = startRehearsal(args, { out: process.stdout, env: process.env });
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130); // a second Ctrl-C: leave now
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping the bot and the local world…\n`);
    void rehearsal.abort(`interrupted (${signal})`).then(() => {
      // the report is written by the run itself once its steps notice; do not wait long for that
      setTimeout(() => process.exit(130), 5_000).unref();
    });
  });
}
const code = await rehearsal.done;
process.exit(interrupted ? 130 : code);
