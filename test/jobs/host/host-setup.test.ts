import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { MigrationFile } from "../../../src/config/schema.js";
import { ErrorCode, isCutoverError } from "../../../src/errors.js";
import { renderSetupScript } from "../../../src/jobs/host-script.js";
import { recordProvisioned } from "../../../src/jobs/provisioned.js";
import { OutputRelay } from "../../../src/jobs/steps/host/script-output.js";
import { createHostSetupStep } from "../../../src/jobs/steps/host/setup.js";
import { FakeHost } from "../../../src/sandbox/FakeHost.js";
import { clientKey, depsFor, fileWith, SECRETS, stepContext, tempDir } from "./fixtures.js";

const SETUP_OUTPUT = [
  "::cutover:: section packages",
  "Reading package lists...",
  "::cutover:: section python",
  "Python 3.11.9",
  "::cutover:: section gunicorn",
  "::cutover:: updated /opt/gogojap/shared/gunicorn.conf.py",
  "::cutover:: section nginx",
  "::cutover:: section mark",
  "::cutover:: done changed=gunicorn nginx",
  "",
].join("\n");

describe("host.setup over SSH (in-process ssh2 server)", () => {
  let host: FakeHost;
  let data: { dir: string; remove: () => Promise<void> };
  let file: MigrationFile;
  let env: NodeJS.ProcessEnv;

  beforeEach(async () => {
    data = await tempDir();
    const key = await clientKey(data.dir);
    host = new FakeHost({ authorizedKeys: [key.publicKey], users: ["ubuntu"] });
    const port = await host.start();
    file = await fileWith((f) => {
      f.target!.host!.sshPort = port;
    });
    env = { LIGHTSAIL_SSH_KEY_PATH: key.path, ...SECRETS };
    // what the provisioning steps recorded
    await recordProvisioned(data.dir, "production", {
      "target.lightsail.staticIp": "127.0.0.1",
      "target.rds.endpoint": "gogojap-db.abc.ap-southeast-1.rds.amazonaws.com",
      "target.rds.port": "5432",
      "target.cloudfront.domain": "d111111abcdef8.cloudfront.net",
    });
    host.on(/bash '\/tmp\/cutover\.fake\d+\/setup\.sh'$/, { stdout: SETUP_OUTPUT, chunkDelayMs: 2 });
  });
  afterEach(async () => {
    await host.stop();
    await data.remove();
  });

  const step = (f = file, e = env) => createHostSetupStep(depsFor(f, data.dir, e));
  const input = (raw: Record<string, unknown> = {}) => step().parse(raw);

  it("uploads the rendered script over SFTP, runs it as root, streams its sections, then writes the .env 0600", async () => {
    const ctx = stepContext();
    const out = await step().run(input(), ctx);

    const uploaded = [...host.files.entries()].find(([p]) => p.endsWith("/setup.sh"));
    // the staging folder is removed afterwards; the SFTP upload is in the record of commands
    expect(uploaded).toBeUndefined();
    const runs = host.ran(/setup\.sh/);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatch(/^sudo -n bash '\/tmp\/cutover\.fake\d+\/setup\.sh'$/);
    // nothing was typed command by command: the script itself never appears in a command line
    expect(host.commands.some((c) => c.command.includes("apt-get"))).toBe(false);

    const envFile = host.files.get("/opt/gogojap/shared/.env")!;
    expect(envFile.mode).toBe(0o600);
    expect(envFile.owner).toBe("gogojap");
    const text = envFile.data.toString("utf8");
    expect(text).toContain(`SECRET_KEY=${SECRETS.APP_SECRET_KEY}`);
    expect(text).toContain("REDIS_URL=redis://127.0.0.1:6379/0");
    expect(text).toContain("S3_BUCKET=gogojap-media");
    expect(text).toContain("CDN_URL=https://cdn.gogojap.com");
    expect(text).toContain(
      `DATABASE_URL='postgresql://gogojap_admin:${encodeURIComponent(SECRETS.RDS_MASTER_PASSWORD)}@gogojap-db.abc.ap-southeast-1.rds.amazonaws.com:5432/gogojap?sslmode=require'`,
    );
    const ini = host.files.get("/etc/letsencrypt/cutover-cloudflare.ini")!;
    expect(ini.mode).toBe(0o600);
    expect(ini.data.toString()).toContain(`dns_cloudflare_api_token = ${SECRETS.CERTBOT_CLOUDFLARE_TOKEN}`);
    // no secret on a command line, in progress, in the log or in the outcome
    const seen = JSON.stringify([
      host.commands,
      ctx.reports,
      ctx.posted,
      ctx.logs,
      out,
      [...ctx.checkpoints],
    ]);
    for (const secret of Object.values(SECRETS)) expect(seen).not.toContain(secret);

    expect(out.summary).toMatch(
      /127.0.0.1 set up: changed gunicorn, nginx; .env written \(11 variables, mode 0600\)/,
    );
    expect(ctx.reports.map((r) => r.message)).toContain("host set-up on 127.0.0.1 · python · Python 3.11.9");
    expect(ctx.reports.some((r) => r.total === 10 && r.unit === "sections")).toBe(true);
    // the output went into the run's thread, one trimmed excerpt per section
    const excerpts = ctx.posted.map((p) => p.text);
    expect(excerpts.find((t) => t.startsWith("host set-up on 127.0.0.1 · python ("))).toContain(
      "Python 3.11.9",
    );
    expect(excerpts.every((t) => t.split("\n").length <= OutputRelay.EXCERPT_LINES + 3)).toBe(true);
    expect(await readFile(join(data.dir, "known_hosts.json"), "utf8")).toContain(host.fingerprint);
  });

  it("shows the failing command and its last lines when the script fails", async () => {
    host.on(/setup\.sh'$/, {
      stdout: "::cutover:: section packages\nE: Unable to locate package python3-certbot-dns-cloudflare\n",
      stderr: `::cutover:: failed line=52 exit=100 command=apt-get install -y -qq --no-install-recommends 'nginx'\n`,
      code: 100,
    });
    const failing = stepContext();
    const err = await step()
      .run(input(), failing)
      .catch((e: unknown) => e);
    expect(isCutoverError(err, ErrorCode.RemoteCommandFailed)).toBe(true);
    expect(failing.posted.at(-1)!.text).toMatch(/· packages \(1 line\):\n```\nE: Unable to locate package/);
    const message = (err as Error).message;
    expect(message).toMatch(
      /host set-up on 127.0.0.1 failed in section packages: `apt-get install -y -qq --no-install-recommends 'nginx'` exited 100/,
    );
    expect(message).toMatch(/Last lines:\n.*Unable to locate package python3-certbot-dns-cloudflare/);
    expect(host.files.get("/opt/gogojap/shared/.env")).toBeUndefined();
  });

  it("a dry run shows the rendered script and contacts nothing else", async () => {
    const plan = await step().plan(input(), stepContext({ run: { dryRun: true } }));
    const scriptChange = plan.changes.find((c) => c.target.startsWith("set-up script"))!;
    expect(scriptChange.detail).toBe(renderSetupScript(file));
    expect(plan.changes[0]!.detail).toBe(`host key ${host.fingerprint}`);
    expect(host.ran(/setup\.sh'|install /)).toEqual([]);
    expect(plan.changes.find((c) => c.target.includes(".env"))!.detail).toMatch(
      /11 variables: ENVIRONMENT, DATABASE_URL/,
    );
    expect(JSON.stringify(plan)).not.toContain(SECRETS.APP_SECRET_KEY);
  });

  it("a dry run before the host answers says so and still shows the script", async () => {
    const port = await freePort();
    const unanswered = await fileWith((f) => {
      f.target!.host!.sshPort = port;
    });
    const plan = await step(unanswered).plan(input(), stepContext({ run: { dryRun: true } }));
    expect(plan.changes[0]).toMatchObject({ action: "check", target: "host" });
    expect(plan.changes[0]!.detail).toMatch(/^not reachable yet: /);
    expect(plan.changes.find((c) => c.target.startsWith("set-up script"))!.detail).toBe(
      renderSetupScript(unanswered),
    );
  });

  it("refuses to go on when a pinned host key does not match, before sending anything", async () => {
    const pinned = await fileWith((f) => {
      f.target!.host!.sshPort = host.port;
      f.target!.host!.hostKeyFingerprint = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    });
    const err = await step(pinned)
      .run(input(), stepContext())
      .catch((e: unknown) => e);
    expect(isCutoverError(err, ErrorCode.HostKeyChanged)).toBe(true);
    expect((err as Error).message).toMatch(
      new RegExp(
        `host key of 127.0.0.1:${host.port} has changed: expected SHA256:A+ \\(pinned in target.host.hostKeyFingerprint\\), the host presented ${host.fingerprint.replace(/[+/]/g, "\\$&")}`,
      ),
    );
    expect(host.commands).toEqual([]);
  });

  it("records the host key on first contact and stops when it changes later", async () => {
    await step().run(input(), stepContext());
    const first = host.fingerprint;
    await host.rotateHostKey();
    const before = host.commands.length;
    const err = await step()
      .run(input(), stepContext())
      .catch((e: unknown) => e);
    expect(isCutoverError(err, ErrorCode.HostKeyChanged)).toBe(true);
    expect((err as Error).message).toContain(`expected ${first} (recorded when Cutover first connected)`);
    expect((err as { hint?: string }).hint).toMatch(/known_hosts.json/);
    expect(host.commands.length).toBe(before);
  });

  it("says the key was refused when the host does not accept it", async () => {
    const other = await clientKey(data.dir, "other_key");
    const err = await step(file, { ...env, LIGHTSAIL_SSH_KEY_PATH: other.path })
      .run(input(), stepContext())
      .catch((e: unknown) => e);
    expect(isCutoverError(err, ErrorCode.SshAuthRefused)).toBe(true);
    expect((err as Error).message).toMatch(
      /127.0.0.1:\d+ refused the SSH key from LIGHTSAIL_SSH_KEY_PATH \(.*other_key\) for user ubuntu/,
    );
  });

  it("gives up on a host that does not answer, within the connect timeout", async () => {
    // accepts TCP connections and never says a word
    const silent: Server = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    try {
      const port = (silent.address() as { port: number }).port;
      const f = await fileWith((x) => {
        x.target!.host!.sshPort = port;
      });
      const started = Date.now();
      // no wait for the port: this is about the connect timeout itself
      const err = await step(f)
        .run(input({ connectTimeoutSeconds: 1, sshReadySeconds: 0 }), stepContext())
        .catch((e: unknown) => e);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(isCutoverError(err, ErrorCode.Unreachable)).toBe(true);
      expect((err as Error).message).toBe(`127.0.0.1:${port} did not answer within 1 s.`);
    } finally {
      silent.close();
    }
  });

  it("waits for the SSH port of a new instance (running before sshd answers), saying so, then goes on", async () => {
    // a port nothing listens on yet: connections are refused, as while the instance boots
    const port = await host.stop().then(() => freePort());
    const f = await fileWith((x) => {
      x.target!.host!.sshPort = port;
    });
    const ctx = stepContext();
    const running = step(f).run(input({ sshReadySeconds: 30 }), ctx);
    await vi.waitFor(
      () =>
        expect(
          ctx.reports.some((r) => /waiting for SSH on the app host to answer/.test(r.message ?? "")),
        ).toBe(true),
      { timeout: 5_000 },
    );
    const report = ctx.reports.find((r) => /waiting for SSH/.test(r.message ?? ""))!;
    expect(report.message).toMatch(
      new RegExp(
        `\\(Could not connect to 127\\.0\\.0\\.1:${port}: ECONNREFUSED\\); try 2 in 1 s, giving up at \\d\\d:\\d\\d:\\d\\d UTC`,
      ),
    );
    await host.start(port); // sshd comes up
    const out = await running;
    expect(out.summary).toBeDefined();
    expect(host.ran(/setup\.sh/)).toHaveLength(1);
  });

  it("gives up on an SSH port that never opens after the bounded wait, saying how long and how often it tried", async () => {
    const port = await host.stop().then(() => freePort());
    const f = await fileWith((x) => {
      x.target!.host!.sshPort = port;
    });
    const started = Date.now();
    const err = await step(f)
      .run(input({ sshReadySeconds: 2 }), stepContext())
      .catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(6_000);
    expect(isCutoverError(err, ErrorCode.Unreachable)).toBe(true);
    expect((err as Error).message).toMatch(
      new RegExp(
        `^SSH on the app host did not come up within 2 s \\(\\d tries; last: Could not connect to 127\\.0\\.0\\.1:${port}: ECONNREFUSED\\.\\)$`,
      ),
    );
  });

  it("says which .env values are missing before touching the host", async () => {
    const { APP_SECRET_KEY: _a, ANTHROPIC_API_KEY: _b, ...rest } = env;
    const err = await step(file, rest)
      .run(input(), stepContext())
      .catch((e: unknown) => e);
    expect((err as Error).message).toMatch(
      /SECRET_KEY: APP_SECRET_KEY is not set\n• ANTHROPIC_API_KEY: ANTHROPIC_API_KEY is not set/,
    );
    expect(host.commands).toEqual([]);
  });

  it("verify runs the uploaded checks and reports the failing ones", async () => {
    host.on(/verify\.sh'$/, {
      stdout: "ok python3.11\nok nginx-config\nFAIL redis: Could not connect to Redis\nok env-file-0600\n",
    });
    const v = await step().verify(input(), stepContext());
    expect(v).toMatchObject({
      ok: false,
      summary: "1 of 4 checks failed: redis: Could not connect to Redis",
    });
    host.on(/verify\.sh'$/, { stdout: "ok python3.11\nok nginx-config\n" });
    expect((await step().verify(input(), stepContext())).ok).toBe(true);
  });
});

/** A port nothing listens on (taken from the OS, then released). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
