import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPorts } from "../src/ports.js";
import { createTestDatabase, queryOnce, type TestDatabase } from "./helpers/db.js";
import { exampleFile } from "./jobs/host/fixtures.js";

describe("createPorts", () => {
  it("builds each client once per set of options, and again when the options change", async () => {
    const file = await exampleFile();
    const env: NodeJS.ProcessEnv = { AWS_ENDPOINT_URL: "http://127.0.0.1:5000" };
    const ports = createPorts({ env }, file);
    expect(ports.rds()).toBe(ports.rds());
    expect(ports.costExplorer()).toBe(ports.costExplorer());
    expect(ports.secrets()).toBe(ports.secrets(file.target?.aws.region));
    expect(ports.lightsail()).toBe(ports.lightsail(file.target?.lightsail?.region));
    expect(ports.lightsail("us-east-1")).not.toBe(ports.lightsail());
    expect(ports.lightsail("us-east-1").region).toBe("us-east-1");
    const before = ports.cdn();
    // a test (or an operator's shell) that points the service elsewhere gets a client that goes there
    env.AWS_ENDPOINT_URL_CLOUDFRONT = "http://127.0.0.1:5001";
    expect(ports.cdn()).not.toBe(before);
    ports.close();
  });

  it("names the missing source keys when a step opens the source bucket", async () => {
    const file = await exampleFile();
    const ports = createPorts({ env: {} }, file);
    expect(() => ports.s3.source()).toThrow(/R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY are not set/);
  });
});

describe("the state database's one pool", () => {
  let state: TestDatabase;
  beforeAll(async () => {
    state = await createTestDatabase("ports_pool");
  });
  afterAll(() => state.drop());

  it("carries Prisma and the job queue: no other connection reaches the database", async () => {
    const file = await exampleFile();
    const ports = createPorts({ env: {}, state: { url: state.url, log: pino({ level: "silent" }) } }, file);
    const s = ports.state;
    if (!s) throw new Error("no state ports");
    try {
      expect(s.pool.totalCount).toBe(0);
      await s.db.auditEvent.count();
      expect(s.pool.totalCount).toBeGreaterThan(0);
      await s.boss.start();
      await s.boss.createQueue("ports-test");
      expect(await s.boss.send("ports-test", { n: 1 })).toBeTruthy();
      const [job] = await s.boss.fetch("ports-test");
      expect(job?.data).toEqual({ n: 1 });
      const [open] = await queryOnce<{ n: number }>(
        state.url,
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        [state.name],
      );
      // every session on the database is one of the pool's (the asking session is not counted)
      expect(open?.n).toBeGreaterThan(0);
      expect(open?.n).toBeLessThanOrEqual(s.pool.totalCount);
    } finally {
      await s.boss.stop({ graceful: false, timeout: 5_000 });
      await s.close();
    }
    expect(s.pool.ended).toBe(true);
  });
});
