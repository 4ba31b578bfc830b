/**
 * V8 settings for Cutover's processes (`npm start`, `npx cutover`), imported first by their entry
 * points (src/app.ts, src/cli.ts) so they hold before anything else loads.
 *
 * V8 doubles the young generation each time a scavenge finds many survivors, up to 32 MB per
 * semi-space on a machine with this much memory, and keeps the pages once grown. Starting up
 * (modules, the migration file, the state database's first queries) makes many survivors, so an
 * idle bot held some 25 MB of empty young generation (bench/footprint.ts: 149 MB RSS against 125 MB
 * with this line). Keeping it at its starting size costs more frequent, smaller scavenges; the
 * figures in the footprint and ack benchmarks are with it, as shipped. It is set here, in the
 * product, rather than as a command-line flag, so every way of starting Cutover has it.
 */
import v8 from "node:v8";

v8.setFlagsFromString("--semi-space-growth-factor=1");
