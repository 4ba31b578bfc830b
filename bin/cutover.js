#!/usr/bin/env node
// `npx cutover …`: the terminal front end. Loads the TypeScript sources through tsx.
import { register } from "tsx/esm/api";

register();
const { cli } = await import("../src/cli.ts");
process.exit(await cli(process.argv.slice(2), process.env, process.stdout));
