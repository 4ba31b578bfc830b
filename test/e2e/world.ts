import { type RealHostWorld, startRealHostWorld } from "../../src/sandbox/real-host-world.js";
import type { TestDatabase } from "../helpers/db.js";
import { createEmptyDatabase } from "../helpers/db.js";
import { type MotoHandle, useMoto } from "../helpers/moto.js";
import { exampleFile } from "../jobs/host/fixtures.js";
import { bucketName, createBucket } from "../jobs/storage/world.js";

export { SITE } from "../../src/sandbox/real-host-world.js";

export interface TestRealHostWorld extends RealHostWorld {
  db: TestDatabase;
  moto: MotoHandle;
}

/** The real-host world on this test file's own database (dropped after) and moto bucket. */
export async function startTestRealHostWorld(log?: (line: string) => void): Promise<TestRealHostWorld> {
  const moto = await useMoto();
  const db = await createEmptyDatabase("hostbox");
  const bucket = bucketName("hostbox");
  await createBucket(moto.endpoint, bucket, {
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  });
  const world = await startRealHostWorld({
    base: await exampleFile(),
    databaseUrl: db.url,
    s3: { endpoint: moto.endpoint, bucket },
    ...(log ? { log } : {}),
  }).catch(async (err: unknown) => {
    await db.drop();
    await moto.stop();
    throw err;
  });
  return {
    ...world,
    db,
    moto,
    async close() {
      await world.close();
      await db.drop().catch(() => undefined);
      await moto.stop();
    },
  };
}
