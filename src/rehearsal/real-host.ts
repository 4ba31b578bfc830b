import { readFile } from "node:fs/promises";
import pg from "pg";
import pino from "pino";
import { parseMigrationFile } from "../config/load.js";
import type { MigrationFile } from "../config/schema.js";
import type { StepContext } from "../jobs/define-step.js";
import { createAppDeployStep } from "../jobs/steps/host/app-deploy.js";
import { createHostSetupStep } from "../jobs/steps/host/setup.js";
import { createVerifyFunctionalStep } from "../jobs/steps/verify/functional.js";
import { createVerifyReliabilityStep } from "../jobs/steps/verify/reliability.js";
import type { VerificationReport } from "../jobs/steps/verify/report.js";
import { hostBoxUnsupported } from "../sandbox/host-box.js";
import { type RealHostWorld, SITE, siteGet, startRealHostWorld } from "../sandbox/real-host-world.js";
import { type S3Server, startMoto } from "../sandbox/s3-servers.js";
import { EXAMPLE_FILE } from "./config.js";

/** A step context for one call: in-memory checkpoints, progress shown on one line unless quiet. */
function context(say: (line: string) => void): StepContext & { checkpoints: Map<string, unknown> } {
  const checkpoints = new Map<string, unknown>();
  let shown = "";
  return {
    log: pino({ level: "silent" }),
    run: {
      id: `rehearsal-${Date.now()}`,
      env: "production",
      requestedBy: "rehearsal",
      dryRun: false,
      options: {},
    },
    signal: new AbortController().signal,
    attempt: 1,
    progress: (p) => {
      // one line per section of a remote script ("host set-up on … · packages"), not per output line
      const head = (p.message ?? "").split(" · ").slice(0, 2).join(" · ");
      if (head && head !== shown) {
        shown = head;
        say(`    … ${head.slice(0, 110)}`);
      }
    },
    checkpoint: {
      get: async <T>(key: string) => checkpoints.get(key) as T | undefined,
      set: async (key, value) => {
        checkpoints.set(key, value);
      },
    },
    checkpoints,
  };
}

async function health(w: RealHostWorld): Promise<{ status: number; release?: string; issuer: string }> {
  const r = await siteGet(w, "/health").catch(() => ({ status: 0, body: "", issuer: "" }));
  let release: string | undefined;
  try {
    release = (JSON.parse(r.body) as { release?: string }).release;
  } catch {
    release = undefined;
  }
  return { status: r.status, ...(release ? { release } : {}), issuer: r.issuer };
}

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * `npm run rehearse -- --real-host`: Phase 3 of the plan and its verification list on a real
 * Debian 12 box (src/sandbox/host-box.ts), through Cutover's own steps: host.setup (and again,
 * changing nothing), app.deploy of the sample app, verify.functional, verify.reliability's
 * auto-restart, a reboot of the box, a second release and the way back. Needs root; the machine's
 * PostgreSQL (REHEARSAL_PG_URL, default postgres://postgres@127.0.0.1:5432/postgres) holds the
 * app's database for the run; moto from AWS_ENDPOINT_URL or one started here holds its bucket.
 * Returns the exit status: 0 when every part held.
 */
export async function rehearseRealHost(opts: {
  out: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  quiet: boolean;
}): Promise<number> {
  const print = (line: string) => opts.out.write(`${line}\n`);
  const say = opts.quiet ? () => undefined : print;
  const why = await hostBoxUnsupported();
  if (why) {
    print(`The real-host rehearsal cannot run on this machine: ${why}.`);
    return 1;
  }
  const adminUrl = opts.env.REHEARSAL_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const dbName = `cutover_realhost_${process.pid.toString(36)}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${dbName} TEMPLATE template0`);
  const dbUrl = new URL(adminUrl);
  dbUrl.pathname = `/${dbName}`;
  let moto: S3Server | undefined;
  let w: RealHostWorld | undefined;
  const results: { part: string; ok: boolean; detail: string; seconds: number }[] = [];
  const part = async (name: string, fn: () => Promise<string>) => {
    say(`▸ ${name}`);
    const t0 = performance.now();
    try {
      const detail = await fn();
      results.push({ part: name, ok: true, detail, seconds: (performance.now() - t0) / 1000 });
      say(`  ✓ ${detail}`);
    } catch (err) {
      const detail = (err instanceof Error ? err.message : String(err))
        .split("\n")
        .slice(0, 6)
        .join("\n    ");
      results.push({ part: name, ok: false, detail, seconds: (performance.now() - t0) / 1000 });
      say(`  ✗ ${detail}`);
    }
  };
  try {
    let endpoint = opts.env.AWS_ENDPOINT_URL;
    if (
      !endpoint ||
      !(await fetch(`${endpoint}/moto-api/`).then(
        (r) => r.ok,
        () => false,
      ))
    ) {
      moto = await startMoto();
      endpoint = moto.endpoint;
    }
    const bucket = `realhost-${process.pid.toString(36)}`;
    const { S3Client, CreateBucketCommand } = await import("@aws-sdk/client-s3");
    await new S3Client({
      endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    }).send(new CreateBucketCommand({ Bucket: bucket }));
    const base = parseMigrationFile(await readFile(EXAMPLE_FILE, "utf8"), { checkEnv: false });
    const t0 = performance.now();
    w = await startRealHostWorld({ base, databaseUrl: dbUrl.toString(), s3: { endpoint, bucket }, log: say });
    const world = w;
    say(
      `the box: ${await world.box.osRelease()} at ${world.box.address}, up in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    const r1 = await world.fileFor("r1");
    await world.placeCertificate(r1.project);
    const address = { address: world.box.address };
    const setupOnce = async (file: MigrationFile) => {
      const step = createHostSetupStep(world.deps(file));
      const input = step.parse(address);
      const out = await step.run(input, context(say));
      const check = await step.verify(input, context(say));
      if (!check.ok) throw new Error(check.summary);
      return `${out.summary}; ${check.summary}`;
    };
    await part("host.setup (Phase 3: packages, Python, Gunicorn, Supervisor, Redis, Nginx, TLS)", () =>
      setupOnce(r1),
    );
    await part("host.setup again (nothing to change)", async () => {
      const s = await setupOnce(r1);
      if (!/already as configured/.test(s)) throw new Error(`the second run changed something: ${s}`);
      return s;
    });
    const deploy = async (file: MigrationFile) => {
      const step = createAppDeployStep(world.deps(file));
      const ctx = context(say);
      const input = step.parse({ ...address, healthIntervalMs: 500 });
      const out = await step.run(input, ctx);
      return { step, ctx, input, summary: out.summary };
    };
    await part("app.deploy of release r1", async () => (await deploy(r1)).summary);
    await part("TLS through Nginx with the local CA's certificate", async () => {
      const h = await health(world);
      if (h.status !== 200) throw new Error(`/health answered ${h.status}`);
      return `https://${SITE}/health 200, release ${h.release}, certificate issued by ${h.issuer} (certbot's DNS-01 gives Let's Encrypt's in production)`;
    });
    const verification = async (file: MigrationFile, step: "functional" | "reliability") => {
      const deps = world.deps(file);
      const ctx = context(say);
      if (step === "functional") {
        const s = createVerifyFunctionalStep(deps);
        await s.run(s.parse(address), ctx);
      } else {
        const s = createVerifyReliabilityStep(deps);
        await s.run(s.parse({ ...address, only: ["autoRestart"], restartPollMs: 200 }), ctx);
      }
      const report = ctx.checkpoints.get("report") as VerificationReport;
      const rows = report.rows.map((r) => `${r.status === "pass" ? "✓" : "✗"} ${r.id}: ${r.measured}`);
      if (!report.ok) throw new Error(rows.join("; "));
      return rows.join("\n    ");
    };
    await part("verify.functional (the plan's list)", () => verification(r1, "functional"));
    await part("verify.reliability: Supervisor restarts the app after kill -9", () =>
      verification(r1, "reliability"),
    );
    await part("the box's power cut and boot: Nginx and Gunicorn back by themselves", async () => {
      const { downMs } = await world.box.reboot();
      const t1 = performance.now();
      await until("/health through Nginx", 90_000, async () =>
        (await health(world)).status === 200 ? true : undefined,
      );
      return `/health 200 again ${((downMs + performance.now() - t1) / 1000).toFixed(1)} s after the power cut`;
    });
    await part("app.deploy of release r2, then its undo back to r1", async () => {
      const r2 = await deploy(await world.fileFor("r2"));
      const on = (await health(world)).release;
      await r2.step.undo!(r2.input, r2.ctx);
      const back = (await health(world)).release;
      if (on !== "r2" || back !== "r1") throw new Error(`live release was ${on}, then ${back}`);
      return `${r2.summary}; undo: live release r2 → r1`;
    });
  } catch (err) {
    results.push({
      part: "the local world",
      ok: false,
      detail: err instanceof Error ? err.message : String(err),
      seconds: 0,
    });
  } finally {
    await w?.close().catch(() => undefined);
    await moto?.stop().catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
    await admin.end().catch(() => undefined);
  }
  const failed = results.filter((r) => !r.ok);
  print("");
  for (const r of results) print(`${r.ok ? "✓" : "✗"} ${r.part} (${r.seconds.toFixed(1)} s)`);
  print(
    failed.length === 0
      ? `\nVERDICT: Phase 3 holds on a real Debian 12 host (${results.length} parts).`
      : `\nVERDICT: ${failed.length} of ${results.length} parts failed: ${failed.map((f) => f.part).join("; ")}`,
  );
  return failed.length === 0 ? 0 : 1;
}
