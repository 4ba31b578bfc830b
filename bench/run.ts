import { readdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "../scripts/build.mjs";

/**
 * `npm run bench -- <name> [args…]`: runs `bench/<name>.ts`'s `main(args)`. A benchmark prints
 * one JSON object on stdout and its progress on stderr. dist/ is compiled first: a benchmark
 * that starts the bot or `npx cutover` runs the compiled JavaScript of this tree, as users do.
 */

const here = path.dirname(fileURLToPath(import.meta.url));

async function available(): Promise<string[]> {
  return (await readdir(here))
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts") && f !== "run.ts" && !f.startsWith("_"))
    .map((f) => f.slice(0, -".ts".length))
    .sort();
}

const [name, ...rest] = process.argv.slice(2);
const names = await available();
if (!name || !names.includes(name)) {
  process.stderr.write(
    `${name ? `No benchmark named "${name}".` : "Name a benchmark."} Usage: npm run bench -- <name> [args]\nBenchmarks: ${names.join(", ") || "(none)"}\n`,
  );
  process.exit(2);
}
await build();
const mod = (await import(pathToFileURL(path.join(here, `${name}.ts`)).href)) as {
  main?: (args: string[]) => Promise<void>;
};
if (typeof mod.main !== "function") {
  process.stderr.write(`bench/${name}.ts does not export main(args: string[])\n`);
  process.exit(2);
}
try {
  await mod.main(rest);
} catch (err) {
  process.stderr.write(
    `bench ${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exitCode = 1;
}
// A benchmark should close everything it opened; if something lingers, say what and end anyway
// (the timer is unref'd, so it never keeps a clean process alive).
setTimeout(() => {
  process.stderr.write(
    `bench ${name}: still open after 5 s: ${process.getActiveResourcesInfo().join(", ")}\n`,
  );
  process.exit(process.exitCode ?? 0);
}, 5_000).unref();
