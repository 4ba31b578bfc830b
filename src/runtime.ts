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

v8.setFlagsFromString("--semi-space-growth-factor=1");
v8.setFlagsFromString("--heap-growing-percent=50");
