import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { MigrationFile } from "../../../src/config/schema.js";
import { ErrorCode, isCutoverError } from "../../../src/errors.js";
import { recordProvisioned } from "../../../src/jobs/provisioned.js";
import { createAppDeployStep, releaseId } from "../../../src/jobs/steps/host/app-deploy.js";
import { FakeHost } from "../../../src/sandbox/FakeHost.js";
import { clientKey, depsFor, fileWith, stepContext, tempDir } from "./fixtures.js";

const CURRENT = "/opt/gogojap/current";

/** Makes the fake host behave like the real one for the deploy and switch scripts. */
function emulateDeploys(host: FakeHost, health: () => string) {
  const scriptOf = (command: string) => {
    const path = /bash '([^']+)'$/.exec(command)?.[1] ?? "";
    return host.text(path) ?? "";
  };
  host.on(/deploy\.sh'$/, (command) => {
    const release = /^RELEASE='([^']+)'$/m.exec(scriptOf(command))?.[1];
    const previous = host.links.get(CURRENT)?.split("/").pop() ?? "none";
    host.links.set(CURRENT, `releases/${release}`);
    return {
      stdout: `::cutover:: previous ${previous}\n::cutover:: section fetch\n::cutover:: section install\nCollecting fastapi\n::cutover:: section migrate\n::cutover:: section switch\n::cutover:: section restart\n::cutover:: deployed ${release}\n`,
    };
  });
  host.on(/switch\.sh'$/, (command) => {
    const release = /^RELEASE='([^']+)'$/m.exec(scriptOf(command))?.[1];
    host.links.set(CURRENT, `releases/${release}`);
    return { stdout: `::cutover:: switched to ${release}\n` };
  });
  host.on(/^curl .*\/health'$/, () => ({ stdout: health() }));
  host.on(/supervisorctl status/, {
    stdout:
      "gogojap RUNNING pid 10, uptime 0:00:09\ngogojap-celery RUNNING pid 11, uptime 0:00:09\ngogojap-celery-beat RUNNING pid 12, uptime 0:00:09\n",
  });
}

describe("app.deploy over SSH (in-process ssh2 server)", () => {
  let host: FakeHost;
  let data: { dir: string; remove: () => Promise<void> };
  let file: MigrationFile;
  let env: NodeJS.ProcessEnv;
  let healthAnswers: string[];

  beforeEach(async () => {
    data = await tempDir();
    const key = await clientKey(data.dir);
    host = new FakeHost({ authorizedKeys: [key.publicKey] });
    const port = await host.start();
    file = await fileWith((f) => {
      f.target!.host!.sshPort = port;
    });
    env = { LIGHTSAIL_SSH_KEY_PATH: key.path };
    await recordProvisioned(data.dir, "production", { "target.lightsail.staticIp": "127.0.0.1" });
    healthAnswers = [];
    emulateDeploys(host, () => healthAnswers.shift() ?? "200");
  });
  afterEach(async () => {
    await host.stop();
    await data.remove();
  });

  const step = (f = file) => createAppDeployStep(depsFor(f, data.dir, env));
  const input = (raw: Record<string, unknown> = {}) => step().parse({ healthIntervalMs: 20, ...raw });

  it("deploys the configured release from a rendered script, restarts the programs and waits for /health", async () => {
    healthAnswers = ["000", "503", "200"];
    const ctx = stepContext();
    const out = await step().run(input(), ctx);
    const id = await ctx.checkpoint.get<string>("release");
    expect(id).toMatch(/^\d{8}T\d{6}Z-main$/);
    expect(out.figures).toMatchObject({ release: id, previous: "none" });
    expect(out.summary).toMatch(new RegExp(`^deployed ${id}; /health answered 200 after`));
    expect(host.links.get(CURRENT)).toBe(`releases/${id}`);

    const run = host.ran(/deploy\.sh'$/);
    expect(run).toHaveLength(1);
    expect(run[0]).toMatch(/^sudo -n bash '\/tmp\/cutover\.fake\d+\/deploy\.sh'$/);
    // the health endpoint was asked on the host, through gunicorn's bind
    expect(host.ran(/^curl /)[0]).toBe(
      "curl -s -o /dev/null -w '%{http_code}' --max-time 5 'http://127.0.0.1:8000/health'",
    );
    expect(
      ctx.reports.some((r) => r.message === "waiting for /health on 127.0.0.1 to answer 200 (now HTTP 503)"),
    ).toBe(true);
    expect(
      ctx.reports.some((r) => r.message?.startsWith(`deploy of ${id} · install · Collecting fastapi`)),
    ).toBe(true);

    const v = await step().verify(input(), ctx);
    expect(v).toMatchObject({
      ok: true,
      summary: `${id} live; gogojap, gogojap-celery, gogojap-celery-beat running; /health 200`,
    });
  });

  it("switches back to the previous release when the new one never becomes healthy", async () => {
    host.links.set(CURRENT, "releases/20260101T000000Z-main");
    healthAnswers = Array.from({ length: 1000 }, () => "502");
    const ctx = stepContext();
    const err = await step()
      .run(input({ healthTimeoutSeconds: 1, healthIntervalMs: 100 }), ctx)
      .catch((e: unknown) => e);
    expect(isCutoverError(err, ErrorCode.StepFailed)).toBe(true);
    expect((err as Error).message).toMatch(
      /did not become healthy \(Gave up waiting for \/health on 127.0.0.1 to answer 200 after 1 s \(last state: HTTP 502\)\.\); switched back to 20260101T000000Z-main/,
    );
    expect(host.ran(/switch\.sh'$/)).toHaveLength(1);
    expect(host.links.get(CURRENT)).toBe("releases/20260101T000000Z-main");
  });

  it("still goes back to the release live before when an attempt died after switching to the new one", async () => {
    host.links.set(CURRENT, "releases/20260101T000000Z-main");
    // the first deploy switches `current` and then dies, as when the bot or the connection is
    // killed mid-script; the retry runs the script again, which now sees its own release as live
    let first = true;
    host.on(/deploy\.sh'$/, (command) => {
      const path = /bash '([^']+)'$/.exec(command)?.[1] ?? "";
      const release = /^RELEASE='([^']+)'$/m.exec(host.text(path) ?? "")?.[1];
      const previous = host.links.get(CURRENT)?.split("/").pop() ?? "none";
      host.links.set(CURRENT, `releases/${release}`);
      if (first) {
        first = false;
        return { stdout: "::cutover:: section switch\n", stderr: "Killed\n", code: 137 };
      }
      return { stdout: `::cutover:: previous ${previous}\n::cutover:: deployed ${release}\n` };
    });
    healthAnswers = Array.from({ length: 1000 }, () => "502");
    const ctx = stepContext();
    const killed = await step()
      .run(input(), ctx)
      .catch((e: unknown) => e);
    expect(killed).toBeInstanceOf(Error);
    const id = await ctx.checkpoint.get<string>("release");
    expect(host.links.get(CURRENT)).toBe(`releases/${id}`);

    const retry = await step()
      .run(input({ healthTimeoutSeconds: 1, healthIntervalMs: 100 }), ctx)
      .catch((e: unknown) => e);
    expect((retry as Error).message).toContain("switched back to 20260101T000000Z-main");
    expect(host.links.get(CURRENT)).toBe("releases/20260101T000000Z-main");
    expect(await ctx.checkpoint.get("previous")).toBe("20260101T000000Z-main");
  });

  it("undo returns to the release that was live before", async () => {
    host.links.set(CURRENT, "releases/20260101T000000Z-main");
    const ctx = stepContext();
    await step().run(input(), ctx);
    expect(await ctx.checkpoint.get("previous")).toBe("20260101T000000Z-main");
    await step().undo!(input(), ctx);
    expect(host.links.get(CURRENT)).toBe("releases/20260101T000000Z-main");
    // a retry of the same run reuses its release folder rather than fetching another
    const again = await step().run(input(), ctx);
    expect(again.figures?.release).toBe(await ctx.checkpoint.get("release"));
  });

  it("deploys another ref on request and shows the script in a dry run", async () => {
    const plan = await step().plan(input({ ref: "v1.2.3" }), stepContext({ run: { dryRun: true } }));
    expect(plan.summary).toMatch(
      /^would deploy https:\/\/github.com\/gogojap\/gogojap.git @ v1.2.3 as release \d{8}T\d{6}Z-v1.2.3, migrate the database, restart gogojap, gogojap-celery, gogojap-celery-beat and wait for \/health$/,
    );
    const script = plan.changes.find((c) => c.target.startsWith("release "))!.detail!;
    expect(script).toContain(
      "git clone -q --depth 1 --branch '\\''v1.2.3'\\'' '\\''https://github.com/gogojap/gogojap.git'\\''",
    );
    expect(script).toContain("/opt/gogojap/venv/bin/alembic upgrade head");
    expect(script).toContain("supervisorctl restart 'gogojap' 'gogojap-celery' 'gogojap-celery-beat'");
    expect(plan.changes[0]).toMatchObject({ action: "check", detail: "none yet" });
    expect(host.ran(/deploy\.sh/)).toEqual([]);
  });

  it("names release folders by time and ref", () => {
    expect(releaseId("feature/x y", new Date("2026-03-10T02:00:00.123Z"))).toBe(
      "20260310T020000Z-feature-x-y",
    );
  });
});
