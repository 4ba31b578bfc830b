/** 1 → "1 object", 1500 → "1,500 objects". */
export const objects = (n: number) => `${count(n)} object${n === 1 ? "" : "s"}`;

/**
 * The one rule for an object only on the target, used by storage.sync and storage.verify alike
 * and stated in both outputs: it is listed and kept, and it does not fail either check.
 */
export const TARGET_ONLY_RULE =
  "kept, and not a difference for storage.sync or storage.verify; only storage.sync with --delete removes them";

export const count = (n: number) => n.toLocaleString("en-US");
