// Loaded with `node --expose-gc --import` into a process the scale bench runs (the CLI, as users
// run it): every 2 s a full collection, then the heap still in use (the live heap) and the RSS;
// the peaks are written as JSON to CUTOVER_BENCH_HEAP_FILE when the process exits.
import { writeFileSync } from "node:fs";

const file = process.env.CUTOVER_BENCH_HEAP_FILE;
const peak = { liveHeap: 0, rss: 0, samples: 0 };
const sample = () => {
  globalThis.gc?.();
  const m = process.memoryUsage();
  peak.liveHeap = Math.max(peak.liveHeap, m.heapUsed);
  peak.rss = Math.max(peak.rss, m.rss);
  peak.samples++;
};
if (file) {
  setInterval(sample, 2_000).unref();
  process.on("exit", () => writeFileSync(file, JSON.stringify(peak)));
}
