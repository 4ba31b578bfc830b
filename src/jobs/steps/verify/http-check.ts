import { z } from "zod";
import { CutoverError, ErrorCode } from "../../../errors.js";
import type { StepDefinition, StepDeps } from "../../define-step.js";
import { defineStep } from "../../define-step.js";

const Input = z.object({
  url: z.url(),
  expectStatus: z.number().int().min(100).max(599).default(200),
  maxLatencyMs: z.number().positive().default(2_000),
  timeoutMs: z.number().int().positive().max(120_000).default(10_000),
});
type Input = z.infer<typeof Input>;

export const httpCheck = defineStep({
  type: "http.check",
  description: "request a URL and check its status and latency",
  input: Input,
  configSections: [],
  timeLimit: 300,
  mutating: false,
});

async function probe(input: Input, signal: AbortSignal): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  try {
    const res = await fetch(input.url, {
      signal: AbortSignal.any([signal, AbortSignal.timeout(input.timeoutMs)]),
    });
    await res.arrayBuffer();
    return { status: res.status, ms: performance.now() - started };
  } catch (err) {
    signal.throwIfAborted();
    throw new CutoverError(ErrorCode.Unreachable, `${input.url} did not answer: ${(err as Error).message}`, {
      hint: "Check that the service is up and reachable from the bot's host.",
    });
  }
}

/** `http.check`: requests a URL and checks its status and latency. Reads only; it needs nothing from the deps. */
export function createHttpCheckStep(_deps: StepDeps): StepDefinition<Input> {
  return httpCheck.implement({
    async plan(input) {
      return { summary: `would request ${input.url}`, changes: [{ action: "check", target: input.url }] };
    },
    async run(input, ctx) {
      const { status, ms } = await probe(input, ctx.signal);
      return {
        summary: `${input.url} answered ${status} in ${ms.toFixed(0)} ms`,
        figures: { status, ms: Math.round(ms) },
      };
    },
    async verify(input, ctx) {
      const { status, ms } = await probe(input, ctx.signal);
      const ok = status === input.expectStatus && ms <= input.maxLatencyMs;
      return {
        ok,
        summary: `${status} in ${ms.toFixed(0)} ms (want ${input.expectStatus} within ${input.maxLatencyMs} ms)`,
        figures: { status, ms: Math.round(ms) },
      };
    },
  });
}
