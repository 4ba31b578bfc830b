import { appendFileSync } from "node:fs";

/**
 * The security tests' figures (requests refused out of sent, leaks found). Each test prints a
 * line and, when `CUTOVER_SECURITY_FIGURES` names a file (bench/chaos.ts sets it), appends one
 * JSON line there, so RELIABILITY.md is regenerated from what the tests measured.
 */
export function reportFigure(name: string, figure: Record<string, unknown>): void {
  const line = JSON.stringify({ name, ...figure });
  process.stdout.write(`SECURITY ${line}\n`);
  const file = process.env.CUTOVER_SECURITY_FIGURES;
  if (file) appendFileSync(file, `${line}\n`);
}
