import { expect } from "vitest";
import { CutoverError } from "../../src/errors.js";

/** The rejection of `promise`, which must reject with a CutoverError (the test fails otherwise). */
export async function cutoverErrorOf(promise: Promise<unknown>): Promise<CutoverError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CutoverError);
  return err as CutoverError;
}
