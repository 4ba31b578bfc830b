import { boxRoot, ensureBoxRoot, hostBoxUnsupported } from "./host-box.js";

/**
 * `npm run hostbox -- prepare`: says whether the real-host tier can run here and, when it can,
 * builds the box root once (or finds it cached). CI runs it before the end-to-end tier and prints
 * its answer in a banner, so a skipped tier is never silent. Exit 0 either way; 1 when the build fails.
 */
async function main(args: string[]): Promise<number> {
  const what = args[0] ?? "prepare";
  if (what !== "prepare" && what !== "check") {
    console.error("usage: npm run hostbox -- prepare|check");
    return 2;
  }
  const why = await hostBoxUnsupported();
  if (why) {
    console.log(`REAL-HOST TIER SKIPPED: ${why}`);
    return 0;
  }
  if (what === "check") {
    console.log(`the real-host tier can run here (root ${boxRoot().path})`);
    return 0;
  }
  const t0 = performance.now();
  const r = await ensureBoxRoot({}, (line) => console.log(line));
  const seconds = Math.round((performance.now() - t0) / 100) / 10;
  console.log(
    JSON.stringify({ root: r.path, built: r.built, seconds, note: r.built ? "built (cold)" : "cached" }),
  );
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  },
);
