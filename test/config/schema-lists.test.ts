import { describe, expect, it } from "vitest";
import { DnsSchema, VerificationSchema } from "../../src/config/schema.js";

const problems = (r: {
  success: boolean;
  error?: { issues: Array<{ path: PropertyKey[]; message: string }> };
}) => (r.success ? [] : r.error!.issues.map((i) => [i.path.join("."), i.message]));

describe("lists that must not repeat themselves", () => {
  it("names the second of two equal DNS records and the first it repeats", () => {
    const r = DnsSchema.safeParse({
      zone: "example.com",
      zoneId: "0123456789abcdef0123456789abcdef",
      records: [
        { name: "api.example.com", type: "A", to: "192.0.2.1" },
        { name: "cdn.example.com", type: "A", to: "192.0.2.2" },
        { name: "api.example.com", type: "A", to: "192.0.2.3" },
        { name: "api.example.org", type: "A", to: "192.0.2.4" },
      ],
    });
    expect(problems(r)).toEqual([
      [
        "records.3.name",
        "`api.example.org` is not in zone `example.com` — use a name ending in .example.com",
      ],
      ["records.2.name", "A api.example.com is listed twice (also records[0]) — keep one"],
    ]);
  });

  it("names a functional check whose id an earlier one has", () => {
    const r = VerificationSchema.safeParse({
      functional: [
        { id: "orders", kind: "http", path: "/orders" },
        { id: "orders", kind: "http", path: "/orders/1" },
      ],
    });
    expect(problems(r)).toEqual([
      ["functional.1.id", "`orders` is already used by functional[0] — give each check its own id"],
    ]);
  });
});
