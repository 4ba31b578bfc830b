/**
 * V8 settings for Cutover's processes (`npm start`, `npx cutover`), imported first by their entry
 * points (src/app.ts, src/cli.ts) so they hold before anything else loads. They are set here, in
 * the product, rather than as command-line flags, so every way of starting Cutover has them, and
 * the benchmarks measure them as shipped (bench/footprint.ts).
 *
 * - The young generation stays at its starting size. V8 doubles it each time a scavenge finds many
 *   survivors, up to 32 MB a semi-space on a machine with this much memory, and keeps the pages once
 *   grown. Starting up makes many survivors, so an idle bot held some 25 MB of empty young
 *   generation: 149 MB RSS, against 125 MB with this setting.
 * - The old generation grows by half again after a full collection, not by V8's up to 4× when
 *   collections are quick. A 5,000-object `npx cutover verify storage` peaked at 315 MB with V8's
 *   defaults, 200 MB with the first setting alone and 182 MB with both (25 %: 168 MB but slower;
 *   `--optimize-for-size`: 157 MB, twice as slow).
 * The cost is more frequent, smaller collections; the ack and storage benchmarks run with them.
 */
import v8 from "node:v8";
import vm from "node:vm";

v8.setFlagsFromString("--semi-space-growth-factor=1");
v8.setFlagsFromString("--heap-growing-percent=50");

/**
 * Gives back what starting up used and no longer needs. Starting the bot (the embedded server,
 * the migrations check, pg-boss, Bolt, the first Prisma query) fills the young generation and
 * leaves old-generation garbage that V8 keeps, with its pages, until allocation resumes, and a
 * bot mostly waits for Slack. One compacting collection of the kind V8 runs under memory
 * pressure ("last resort": it also shrinks the young generation and releases free pages) takes
 * the idle bot from about 123 MB RSS to about 109 MB (bench/footprint.ts); it pauses the process
 * for some tens of milliseconds, once. V8 offers it to JavaScript only through `gc()`, exposed
 * here for a new context alone and not to the bot's own global scope.
 */
export function releaseStartupMemory(): void {
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as ((opts: object) => void) | undefined;
  v8.setFlagsFromString("--no-expose-gc");
  gc?.({ type: "major", execution: "sync", flavor: "last-resort" });
}
