// `npm run build`, also run by `npm ci` / `npm install` (postinstall, after `prisma generate`),
// before the tests (test/global-setup.ts) and before every benchmark (bench/run.ts): compiles
// every file under src/ (the generated Prisma client in src/generated included) to dist/, one
// .js per .ts, so `npm start` and `npx cutover` run plain JavaScript on node.
// esbuild only strips the types (tsconfig's isolatedModules and verbatimModuleSyntax make that
// safe): about a second, where `tsc` takes 30–50 s on two busy cores. The type check is
// `npm run typecheck`, part of `npm test`. An install without the dev packages
// (`npm ci --omit=dev` in a tree built already) keeps the dist/ it has.
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/**
 * Builds into a folder of its own, then swaps it in: a file removed from src/ does not live on
 * in dist/, and a process starting meanwhile never sees a half-written dist/.
 * @returns the number of files compiled
 */
export async function build() {
  const esbuild = await import("esbuild");
  const src = path.join(ROOT, "src");
  const dist = path.join(ROOT, "dist");
  const entryPoints = readdirSync(src, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts") && !e.name.endsWith(".d.ts"))
    .map((e) => path.join(e.parentPath, e.name));
  const fresh = `${dist}.new-${process.pid}`;
  const old = `${dist}.old-${process.pid}`;
  try {
    await esbuild.build({
      entryPoints,
      outbase: src,
      outdir: fresh,
      format: "esm",
      platform: "node",
      target: "node22",
      bundle: false,
      logLevel: "warning",
    });
    await unpackQueryCompiler(fresh);
    if (existsSync(dist)) renameSync(dist, old);
    renameSync(fresh, dist);
  } finally {
    rmSync(fresh, { recursive: true, force: true });
    rmSync(old, { recursive: true, force: true });
  }
  return entryPoints.length;
}

// The generated Prisma client loads its query compiler from a module that holds it as base64
// text (2.3 MB), whose source and string then stay in the heap for the life of the process. The
// build writes the WebAssembly itself next to the compiled client and has the client read it from
// there: the same bytes, about 5 MB less idle RSS (bench/footprint.ts).
const BASE64_WASM_IMPORT =
  /const \{ wasm \} = await import\("(@prisma\/client\/runtime\/query_compiler_[\w.-]+\.wasm-base64\.mjs)"\);\s*return await decodeBase64AsWasm\(wasm\);/;
const QUERY_COMPILER_FILE = "query_compiler.wasm";

/** @param {string} dist the folder being built */
async function unpackQueryCompiler(dist) {
  const file = path.join(dist, "generated", "prisma", "internal", "class.js");
  if (!existsSync(file)) return; // not generated yet: `npm run generate` comes first
  const code = readFileSync(file, "utf8");
  const match = BASE64_WASM_IMPORT.exec(code);
  if (!match) {
    process.stderr.write(
      `cutover build: the generated Prisma client no longer loads its query compiler as base64 (${file}); left as generated.\n`,
    );
    return;
  }
  const { wasm } = await import(match[1]);
  writeFileSync(path.join(path.dirname(file), QUERY_COMPILER_FILE), Buffer.from(wasm, "base64"));
  const load = `const { readFile } = await import("node:fs/promises");
    return new WebAssembly.Module(await readFile(new URL("./${QUERY_COMPILER_FILE}", import.meta.url)));`;
  writeFileSync(file, code.replace(match[0], load));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = performance.now();
  let files;
  try {
    files = await build();
  } catch (err) {
    if (err?.code !== "ERR_MODULE_NOT_FOUND") throw err;
    if (existsSync(path.join(ROOT, "dist", "app.js"))) {
      process.stderr.write(
        "cutover build: esbuild is not installed (--omit=dev?): keeping the dist/ already built.\n",
      );
      process.exit(0);
    }
    process.stderr.write(
      "cutover build: esbuild is not installed and there is no dist/ yet.\nRun `npm ci` without --omit=dev (it builds dist/), or build on another machine and copy dist/ here.\n",
    );
    process.exit(1);
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  process.stderr.write(`cutover build: ${files} files compiled to dist/ in ${seconds} s\n`);
}
