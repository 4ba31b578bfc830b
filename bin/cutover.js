#!/usr/bin/env node
// `npx cutover …`: the terminal front end, the compiled JavaScript in dist/ (built by `npm ci`,
// or `npm run build` after a change to src/).
import { existsSync } from "node:fs";

const entry = new URL("../dist/cli.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write("cutover: dist/cli.js is missing: run `npm run build` (or `npm ci`) first.\n");
  process.exit(2);
}
const { cli } = await import(entry.href);
process.exit(await cli(process.argv.slice(2), process.env, process.stdout));
