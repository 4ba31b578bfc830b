/** How the verification rows write their ids and figures. */

/** `/api/v1/products` → `api-v1-products`; `/` → `root` */
export function slug(p: string): string {
  return (
    p
      .replace(/[?#].*$/, "")
      .replace(/^\/+|\/+$/g, "")
      .replace(/[^A-Za-z0-9]+/g, "-")
      .toLowerCase() || "root"
  );
}

/** 12.3 → "12 ms", 0.42 → "0.4 ms" */
export function ms(n: number): string {
  return n < 10 ? `${Math.round(n * 10) / 10} ms` : `${Math.round(n)} ms`;
}

export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Megabytes (10^6 bytes) per second. */
export function mbps(bytes: number, millis: number): number {
  return millis <= 0 ? 0 : round(bytes / 1e6 / (millis / 1000), 2);
}
