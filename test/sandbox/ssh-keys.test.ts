import ssh2 from "ssh2";
import { describe, expect, it } from "vitest";
import { generateEd25519 } from "../../src/sandbox/ssh-keys.js";

describe("generateEd25519", () => {
  it("only hands out pairs ssh2 can read back (its own generator fails about 1 in 256)", () => {
    let unreadable = 0;
    for (let i = 0; i < 1_000; i++) {
      const pair = generateEd25519();
      if (
        ssh2.utils.parseKey(pair.private) instanceof Error ||
        ssh2.utils.parseKey(pair.public) instanceof Error
      )
        unreadable++;
    }
    expect(unreadable).toBe(0);
  });
});
