import { readFile, stat } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import {
  connectionProblem,
  describeUrl,
  fingerprintUrl,
  libpqEnvironment,
  majorOf,
  parseTocList,
  scrub,
} from "../../src/cloud/postgres.js";

const URL_WITH_SECRET =
  "postgresql://app%40prod:p%3Ass%40w0rd!@ep-cool-1.aws.neon.tech:5433/shop%20db?sslmode=require&options=endpoint%3Dep-cool-1";

describe("connection URLs never reach a command line, a message or a log", () => {
  it("describes a URL without its password", () => {
    expect(describeUrl(URL_WITH_SECRET)).toBe("app@prod@ep-cool-1.aws.neon.tech:5433/shop db");
    expect(fingerprintUrl(URL_WITH_SECRET)).toBe("ep-cool-1.aws.neon.tech:5433/shop db");
    expect(describeUrl(URL_WITH_SECRET)).not.toContain("w0rd");
  });

  it("turns a URL into libpq variables and a 0600 passfile, not PGPASSWORD", async () => {
    const { env, cleanup } = await libpqEnvironment(URL_WITH_SECRET, {
      appName: "cutover-test",
      connectTimeoutSeconds: 3,
    });
    try {
      expect(env).toMatchObject({
        PGHOST: "ep-cool-1.aws.neon.tech",
        PGPORT: "5433",
        PGUSER: "app@prod",
        PGDATABASE: "shop db",
        PGSSLMODE: "require",
        PGOPTIONS: "endpoint=ep-cool-1",
        PGAPPNAME: "cutover-test",
        PGCONNECT_TIMEOUT: "3",
      });
      expect(env.PGPASSWORD).toBeUndefined();
      expect(JSON.stringify(env)).not.toContain("w0rd");
      const file = env.PGPASSFILE!;
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      // libpq's passfile escapes : and \
      expect(await readFile(file, "utf8")).toBe("*:*:*:*:p\\:ss@w0rd!\n");
    } finally {
      await cleanup();
    }
    await expect(stat(env.PGPASSFILE!)).rejects.toThrow();
  });

  it("scrubs a password out of any text", () => {
    expect(scrub(`failed: ${URL_WITH_SECRET}`)).not.toContain("w0rd");
    expect(scrub("the password p:ss@w0rd! leaked", URL_WITH_SECRET)).toBe("the password [secret] leaked");
  });

  it("explains connection failures by side, in words", () => {
    const ep = { side: "target", from: "TARGET_DATABASE_URL", url: URL_WITH_SECRET };
    expect(connectionProblem({ code: "28P01" }, ep, 10)).toMatch(
      /^the target database \(app@prod@ep-cool-1.* refused the password/,
    );
    expect(connectionProblem({ code: "ECONNREFUSED" }, ep, 10)).toContain("connection refused");
    expect(connectionProblem({ code: "ENOTFOUND" }, ep, 10)).toContain("does not resolve");
    expect(connectionProblem({ message: "timeout expired" }, ep, 7)).toContain("no answer within 7 s");
    expect(connectionProblem({ code: "3D000", message: 'database "x" does not exist' }, ep, 10)).toContain(
      "does not exist",
    );
  });

  it("reads server and client versions", () => {
    expect(majorOf("15.20 (Debian 15.20-0+deb12u1)")).toBe(15);
    expect(majorOf("17.2")).toBe(17);
    expect(majorOf("9.6.24")).toBe(9.6);
  });
});

describe("pg_restore --list", () => {
  it("parses entries whose names hold spaces, CJK and kinds of two words", () => {
    const items = parseTocList(`;
; Archive created at 2026-01-01
;
7; 2615 34780 SCHEMA - 販売 Sales postgres
3450; 0 34781 TABLE DATA My Schema 表 one postgres
3302; 2606 34787 CONSTRAINT My Schema 表 one 表 one_pkey postgres
3303; 1259 34788 INDEX My Schema 表 one_名前_idx postgres
3306; 0 0 INDEX ATTACH public p1_k_idx postgres
3452; 0 34797 MATERIALIZED VIEW DATA public mv postgres
3310; 2606 34900 FK CONSTRAINT inventory employees employees_warehouse_fkey postgres
`);
    expect(items.map((i) => [i.dumpId, i.catalog, i.oid, i.desc])).toEqual([
      [7, 2615, 34780, "SCHEMA"],
      [3450, 0, 34781, "TABLE DATA"],
      [3302, 2606, 34787, "CONSTRAINT"],
      [3303, 1259, 34788, "INDEX"],
      [3306, 0, 0, "INDEX ATTACH"],
      [3452, 0, 34797, "MATERIALIZED VIEW DATA"],
      [3310, 2606, 34900, "FK CONSTRAINT"],
    ]);
    expect(items[1]!.line).toBe("3450; 0 34781 TABLE DATA My Schema 表 one postgres");
  });
});
