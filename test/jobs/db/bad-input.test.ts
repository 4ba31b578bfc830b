import { execFileSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findClientTools } from "../../../src/cloud/postgres.js";
import { describeError, ErrorCode } from "../../../src/errors.js";
import { runDatabaseVerify } from "../../../src/jobs/steps/db/index.js";
import { databaseUrl, type TestDatabase } from "../../helpers/db.js";
import { cutoverErrorOf } from "../../helpers/errors.js";
import { makeStepContext } from "../../helpers/step-context.js";
import { createFixtureSource, createRdsLikeTarget, dbConfig, dbStepsFor } from "./fixture.js";

const PASSWORD = "S3cret-Pa55word-never-shown";
let source: TestDatabase;
let target: TestDatabase & { role: string };
const servers: net.Server[] = [];

/** A server that speaks just enough of the PostgreSQL protocol to ask for a password and refuse it. */
async function refusingServer(): Promise<number> {
  const server = net.createServer((socket) => {
    let buf = Buffer.alloc(0);
    let stage: "startup" | "password" = "startup";
    socket.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (stage === "startup") {
          if (buf.length < 8) return;
          const len = buf.readInt32BE(0);
          if (buf.length < len) return;
          const code = buf.readInt32BE(4);
          buf = buf.subarray(len);
          if (code === 80877103 || code === 80877104) {
            socket.write("N"); // no SSL, no GSS
            continue;
          }
          const auth = Buffer.alloc(9);
          auth.write("R", 0);
          auth.writeInt32BE(8, 1);
          auth.writeInt32BE(3, 5); // AuthenticationCleartextPassword
          socket.write(auth);
          stage = "password";
        } else {
          if (buf.length < 5) return;
          const len = buf.readInt32BE(1);
          if (buf.length < len + 1) return;
          buf = buf.subarray(len + 1);
          const fields = ["SFATAL", "VFATAL", "C28P01", 'Mpassword authentication failed for user "app"'];
          const body = Buffer.concat([...fields.map((f) => Buffer.from(`${f}\0`)), Buffer.from([0])]);
          const head = Buffer.alloc(5);
          head.write("E", 0);
          head.writeInt32BE(body.length + 4, 1);
          socket.end(Buffer.concat([head, body]));
          return;
        }
      }
    });
    socket.on("error", () => undefined);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as net.AddressInfo).port;
}

/** A server that accepts connections and never says a word: a firewall that drops packets looks like this. */
async function silentServer(): Promise<number> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    s.on("error", () => undefined);
  });
  server.on("close", () => {
    for (const s of sockets) s.destroy();
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as net.AddressInfo).port;
}

const failure = cutoverErrorOf;
const stepsFor = (sourceUrl: string, targetUrl: string, withBlock?: string) =>
  dbStepsFor(sourceUrl, targetUrl, withBlock ? { config: dbConfig({ withBlock }) } : {});

beforeAll(async () => {
  source = await createFixtureSource("bad_src");
  target = await createRdsLikeTarget("bad_dst");
}, 60_000);

afterAll(async () => {
  for (const s of servers) s.close();
  await source?.drop();
  await target?.drop();
});

describe("preflight and the steps say what is wrong, and which side", () => {
  it("a wrong password: names the side and the variable, never the password", async () => {
    const port = await refusingServer();
    const { step, input } = await stepsFor(`postgres://app:${PASSWORD}@127.0.0.1:${port}/shop`, target.url);
    const ctx = makeStepContext();
    const err = await failure(step("db.preflight").run(input("db.preflight"), ctx));
    expect(err.code).toBe(ErrorCode.PreflightFailed);
    const text = describeError(err);
    expect(text).toContain("❌ *Source connection*: the source database (app@127.0.0.1");
    expect(text).toContain("refused the password");
    expect(text).toContain("SOURCE_DATABASE_URL");
    expect(text).toContain("✅ *Target connection*");
    expect(text).not.toContain(PASSWORD);
    expect(JSON.stringify(err.details)).not.toContain(PASSWORD);
    expect(ctx.logs.join("")).not.toContain(PASSWORD);
  });

  it("an unreachable host: fails within the connect timeout, naming the target", async () => {
    const port = await silentServer();
    const { step, input } = await stepsFor(
      source.url,
      `postgres://app:${PASSWORD}@127.0.0.1:${port}/app`,
      "{ connectTimeoutSeconds: 2 }",
    );
    const started = Date.now();
    const err = await failure(
      step("db.preflight").run(input("db.preflight", { connectTimeoutSeconds: 2 }), makeStepContext()),
    );
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(err.message).toMatch(
      /❌ \*Target connection\*: the target database .* is not reachable: no answer within 2 s/,
    );
    expect(err.message).toContain("⏭️ *Target is empty*: not checked");
    expect(err.message).not.toContain(PASSWORD);
  });

  it("a missing database: says it does not exist", async () => {
    const { step, input } = await stepsFor(source.url, databaseUrl("cutover_no_such_database"));
    const err = await failure(step("db.preflight").run(input("db.preflight"), makeStepContext()));
    expect(err.message).toMatch(
      /❌ \*Target connection\*: the target database .*cutover_no_such_database.* does not exist/,
    );
  });

  it("a non-empty target without --replace: preflight and restore refuse; with it, the target is replaced", async () => {
    const client = new pg.Client({ connectionString: target.url });
    await client.connect();
    await client.query("CREATE TABLE leftover (id int); CREATE VIEW leftover_v AS SELECT 1 AS one");
    await client.end();
    const { deps, step, input } = await stepsFor(source.url, target.url);
    const pre = await failure(step("db.preflight").run(input("db.preflight"), makeStepContext()));
    expect(pre.message).toMatch(/❌ \*Target is empty\*: it has 1 table, 1 view .*rerun with `--replace`/);
    await step("db.dump").run(input("db.dump"), makeStepContext());
    const refused = await failure(step("db.restore").run(input("db.restore"), makeStepContext()));
    expect(refused.code).toBe(ErrorCode.TargetNotEmpty);
    expect(describeError(refused)).toMatch(
      /is not empty: it has 1 table, 1 view .*public\.leftover.*\n.*--replace/,
    );
    const plan = await step("db.restore").plan(input("db.restore"), makeStepContext());
    expect(plan.summary).toMatch(/would refuse/);

    const replace = makeStepContext({ run: { options: { replace: true } } });
    const ok = await step("db.preflight").run(input("db.preflight"), replace);
    expect(ok.summary).toMatch(/⚠️ \*Target is empty\*: it has 1 table, 1 view; --replace was confirmed/);
    await step("db.restore").run(input("db.restore"), replace);
    const report = await runDatabaseVerify(deps);
    expect(report.differences).toEqual([]);
  });

  it("a pg_dump older than the source server: says which client package to install", async () => {
    const real = await findClientTools();
    const dir = await mkdtemp(path.join(tmpdir(), "cutover-old-pg-"));
    for (const tool of ["pg_dump", "pg_restore"]) {
      const file = path.join(dir, tool);
      const realPath = execFileSync("sh", [
        "-c",
        `command -v ${tool === "pg_dump" ? real.pgDump : real.pgRestore}`,
      ])
        .toString()
        .trim();
      await writeFile(
        file,
        `#!/bin/sh\nif [ "$1" = "--version" ]; then echo "${tool} (PostgreSQL) 13.16"; exit 0; fi\nexec ${realPath} "$@"\n`,
      );
      await chmod(file, 0o755);
    }
    try {
      const { step, input } = await stepsFor(source.url, target.url);
      const err = await failure(
        step("db.preflight").run(input("db.preflight", { binDir: dir }), makeStepContext()),
      );
      expect(err.message).toMatch(
        /❌ \*Client tools\*: pg_dump 13\.16 cannot dump the source's PostgreSQL 1\d/,
      );
      expect(err.message).toMatch(/apt-get install postgresql-client-1\d/);
      const dump = await failure(step("db.dump").run(input("db.dump", { binDir: dir }), makeStepContext()));
      expect(dump.code).toBe(ErrorCode.ToolMissing);
      expect(describeError(dump)).toMatch(/postgresql-client-1\d/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a dump folder that cannot be written: preflight and dump say so", async () => {
    const { step, input } = await stepsFor(source.url, target.url);
    const file = path.join(await mkdtemp(path.join(tmpdir(), "cutover-file-")), "a-file");
    await writeFile(file, "not a folder");
    const bad = path.join(file, "dumps"); // under a file: no user, root included, can create it
    const err = await failure(
      step("db.preflight").run(input("db.preflight", { dumpDir: bad }), makeStepContext()),
    );
    expect(err.message).toContain(`❌ *Dump folder*: cannot write dumps into ${bad}`);
    const dump = await failure(step("db.dump").run(input("db.dump", { dumpDir: bad }), makeStepContext()));
    expect(dump.code).toBe(ErrorCode.DumpFailed);
    expect(dump.message).toContain(`Cannot write dumps into ${bad}`);
  });

  it("a dump folder on a full disk: preflight sees it coming and the dump says to free space", async (t) => {
    const mnt = await mkdtemp(path.join(tmpdir(), "cutover-full-"));
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt], { stdio: "ignore" });
    } catch {
      await rm(mnt, { recursive: true, force: true });
      t.skip("cannot mount a small tmpfs here (needs root)");
      return;
    }
    try {
      await mkdir(path.join(mnt, "dumps"));
      const { step, input } = await stepsFor(source.url, target.url);
      const err = await failure(
        step("db.preflight").run(
          input("db.preflight", { dumpDir: path.join(mnt, "dumps") }),
          makeStepContext(),
        ),
      );
      expect(err.message).toMatch(
        /❌ \*Dump folder\*: .* has [\d.]+ KB free, the dump needs about [\d.]+ MB/,
      );
      const dump = await failure(
        step("db.dump").run(input("db.dump", { dumpDir: path.join(mnt, "dumps") }), makeStepContext()),
      );
      expect(dump.code).toBe(ErrorCode.DumpFailed);
      expect(describeError(dump)).toMatch(/No space left on device[\s\S]*ran out of room/);
    } finally {
      execFileSync("umount", [mnt], { stdio: "ignore" });
      await rm(mnt, { recursive: true, force: true });
    }
  });
});
