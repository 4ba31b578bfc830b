import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { collectEnvRefs, loadMigrationFile, parseMigrationFile } from "../../src/config/load.js";
import type { MigrationFile } from "../../src/config/schema.js";
import { CutoverError, ErrorCode } from "../../src/errors.js";
import { KNOWN_STEP_TYPES, STEP_SECTIONS } from "../../src/jobs/catalogue.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const fixture = (name: string) => path.join(root, "test/fixtures/config", name);
const examplePath = path.join(root, "migration.example.yml");

/** Every variable migration.example.yml names, with a recognisable fake value. */
const EXAMPLE_VARS = [
  "NEON_DATABASE_URL",
  "R2_ACCESS_KEY_ID",
  "R2_SECRET_ACCESS_KEY",
  "RDS_MASTER_PASSWORD",
  "LIGHTSAIL_SSH_KEY_PATH",
  "CERTBOT_CLOUDFLARE_TOKEN",
  "APP_SECRET_KEY",
  "ANTHROPIC_API_KEY",
  "APP_AWS_ACCESS_KEY_ID",
  "APP_AWS_SECRET_ACCESS_KEY",
  "CLOUDFLARE_API_TOKEN",
  "VERIFY_API_TOKEN",
] as const;
const exampleEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(EXAMPLE_VARS.map((v) => [v, `value-of-${v.toLowerCase()}`]));

async function exampleText(): Promise<string> {
  return readFile(examplePath, "utf8");
}

/** The example with `from` replaced by `to` (which must be there, so a stale test fails loudly). */
async function exampleWith(...edits: Array<[string, string]>): Promise<string> {
  let text = await exampleText();
  for (const [from, to] of edits) {
    expect(text, `the example should contain ${JSON.stringify(from)}`).toContain(from);
    text = text.replace(from, to);
  }
  return text;
}

/** Runs `fn`, expects a ConfigInvalid CutoverError, and returns it. */
function configError(fn: () => unknown): CutoverError & { details: { problems: string[] } } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CutoverError);
    expect((err as CutoverError).code).toBe(ErrorCode.ConfigInvalid);
    const problems = (err as CutoverError).details.problems;
    expect(Array.isArray(problems)).toBe(true);
    return err as CutoverError & { details: { problems: string[] } };
  }
  throw new Error("expected a ConfigInvalid error, but the file was accepted");
}

const problemAt = (problems: string[], path: string) => problems.filter((p) => p.startsWith(`${path}: `));

describe("migration.example.yml", () => {
  it("loads cleanly with its variables set and every step type known to the catalogue", async () => {
    const { file, path: loadedPath } = await loadMigrationFile(examplePath, {
      env: exampleEnv(),
      knownStepTypes: KNOWN_STEP_TYPES,
    });
    expect(loadedPath).toBe(examplePath);
    expect(file.project).toBe("gogojap");
  });

  it("carries the plan's values", async () => {
    const { file } = await loadMigrationFile(examplePath, { env: exampleEnv() });
    const t = file.target!;
    expect(t.aws.region).toBe("ap-southeast-1");

    const ls = t.lightsail!;
    expect(ls.region).toBe("ap-southeast-1");
    expect(ls.blueprintId).toBe("ubuntu_22_04");
    expect(ls.bundle).toMatchObject({ cpu: 2, ramGb: 4, diskGb: 80, transferTb: 4 });
    expect(ls.firewall.map((r) => r.port)).toEqual([22, 80, 443]);

    const rds = t.rds!;
    expect(rds).toMatchObject({
      engine: "postgres",
      engineVersion: "14",
      instanceClass: "db.t4g.micro",
      storageType: "gp3",
      allocatedStorageGb: 20,
      multiAz: false,
      backupRetentionDays: 7,
      publiclyAccessible: true,
      storageEncrypted: true,
      requireTls: true,
      masterPasswordEnv: "RDS_MASTER_PASSWORD",
    });
    expect(rds.ingress).toEqual({ fromLightsailStaticIp: true, extraCidrs: [] });

    const s3 = t.s3!;
    expect(s3).toMatchObject({
      bucket: "gogojap-media",
      region: "ap-southeast-1",
      storageClass: "STANDARD",
      versioning: false,
    });
    expect(s3.lifecycle[0]?.transitions).toEqual([{ afterDays: 90, storageClass: "STANDARD_IA" }]);

    expect(t.cloudfront).toMatchObject({
      priceClass: "PriceClass_200",
      defaultTtlSeconds: 86_400,
      compress: true,
      cachePolicy: "CachingOptimized",
      originAccessControl: true,
    });

    const host = t.host!;
    expect(host.python).toBe("3.11");
    expect(host.gunicorn.workers).toBe(5);
    expect(host.redis.local).toBe(true);
    expect(host.healthPath).toBe("/health");
    expect(host.supervisor.services.map((s) => s.name)).toEqual([
      "gogojap",
      "gogojap-celery",
      "gogojap-celery-beat",
    ]);

    expect(file.source?.storage).toMatchObject({ region: "auto", accessKeyIdEnv: "R2_ACCESS_KEY_ID" });
    expect(file.source?.database?.urlEnv).toBe("NEON_DATABASE_URL");

    expect(file.dns?.cutoverTtl).toBe(60);
    expect(file.dns?.apiTokenEnv).toBe("CLOUDFLARE_API_TOKEN");
    expect(file.dns?.records[0]).toMatchObject({
      name: "api.gogojap.com",
      type: "A",
      to: { ref: "target.lightsail.staticIp" },
    });
    expect(Object.keys(file.pages?.env ?? {})).toEqual(["NEXT_PUBLIC_API_URL", "NEXT_PUBLIC_CDN_URL"]);

    expect(file.cutover.window).toMatchObject({ start: "02:00", end: "05:00", timezone: "Asia/Singapore" });
    expect(file.cutover.approvalExpiryMinutes).toBe(30);

    const perf = file.verification.performance;
    expect([
      perf.api.maxAvgMs,
      perf.database.maxAvgMs,
      perf.upload.minMBps,
      perf.cdn.minHitRatioPercent,
    ]).toEqual([200, 50, 1, 80]);
    expect(file.verification.reliability.autoRestart.enabled).toBe(false);
    expect(file.verification.functional.map((c) => c.kind)).toEqual([
      "http",
      "http",
      "sql",
      "upload",
      "http",
      "command",
      "command",
    ]);

    expect(file.kpis.migration).toEqual({
      maxDowntimeMinutes: 60,
      dataIntegrityPercent: 100,
      functionalAvailabilityPercent: 100,
      maxPerformanceDegradationPercent: 10,
      maxErrorRatePercent: 0.1,
    });
    expect(file.kpis.longTerm).toEqual({
      availabilityPercent: { min: 99.9, period: "daily" },
      avgResponseMs: { max: 200, period: "daily" },
      dbQueryMs: { max: 50, period: "daily" },
      monthlyCost: { max: 85, period: "monthly" },
      errorRatePercent: { max: 0.1, period: "weekly" },
    });
    expect(file.kpis.probes.intervalSeconds).toBe(60);

    const cost = file.cost!;
    expect([cost.currency, cost.monthlyTarget, cost.budgetAlert]).toEqual(["USD", 85, 100]);
    expect(cost.current.map((l) => l.monthly)).toEqual([20, 0, 5]);
    expect(cost.target.map((l) => l.monthly)).toEqual([44, { min: 15, max: 30 }, { min: 5, max: 10 }]);
    expect(cost.optimisations.map((o) => o.savingsPercent)).toEqual([40, { min: 50, max: 80 }, 20]);

    expect(file.digest).toMatchObject({ time: "09:00", timezone: "Asia/Singapore", stabilisationDays: 14 });

    const phases = file.runbook.phases;
    expect(phases.map((p) => p.title)).toEqual([
      "准备 Preparation",
      "数据迁移 Data migration",
      "应用部署 Application deployment",
      "验证和切换 Verification and switch",
      "稳定和优化 Stabilisation and optimisation",
    ]);
    const uses = phases.flatMap((p) => p.steps.map((s) => s.uses));
    for (const type of [
      "lightsail.instance",
      "rds.instance",
      "s3.bucket",
      "db.dump",
      "db.restore",
      "db.replicate",
      "db.replication-teardown",
      "storage.sync",
      "host.setup",
      "app.deploy",
      "dns.lower-ttl",
      "dns.cutover",
      "kpi.monitor",
      "decommission",
    ]) {
      expect(uses).toContain(type);
    }
    // a live migration: replication from the dump's snapshot, the post-switch sync of the uploads
    expect(file.replication?.appRoles).toEqual({ source: "gogojap_app", target: "gogojap_app" });
    expect(uses).not.toContain("db.verify");
    const switchSteps = phases[3]!.steps.map((s) => s.id);
    expect(switchSteps.indexOf("storage-sync-after-switch")).toBe(switchSteps.indexOf("dns-cutover") + 1);
  });

  it("names exactly the variables the test sets, in collectEnvRefs", async () => {
    const { file } = await loadMigrationFile(examplePath, { env: exampleEnv() });
    const refs = collectEnvRefs(file);
    expect(new Set(refs.map((r) => r.variable))).toEqual(new Set(EXAMPLE_VARS));
    expect(refs).toContainEqual({ path: "source.database.urlEnv", variable: "NEON_DATABASE_URL" });
    expect(refs).toContainEqual({ path: "pages.apiTokenEnv", variable: "CLOUDFLARE_API_TOKEN" });
    expect(refs).toContainEqual({
      path: "target.host.appEnv.vars.SECRET_KEY.env",
      variable: "APP_SECRET_KEY",
    });
  });
});

describe("loadMigrationFile errors", () => {
  it("reports a missing file with the way to create one", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "cutover-config-"));
    const missing = path.join(dir, "migration.yml");
    const err = await loadMigrationFile(missing, { env: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CutoverError);
    expect((err as CutoverError).code).toBe(ErrorCode.ConfigInvalid);
    expect((err as CutoverError).message).toContain("cp migration.example.yml migration.yml");
    expect((err as CutoverError).message).toContain("CUTOVER_CONFIG");
    expect((err as CutoverError).message).toContain(missing);
  });
});

describe("parseMigrationFile", () => {
  it("lists several mistakes at once, each on its own line with its path", async () => {
    const text = await readFile(fixture("several-mistakes.yml"), "utf8");
    const err = configError(() => parseMigrationFile(text, { env: {}, name: "several-mistakes.yml" }));
    const { problems } = err.details;
    const expected: Array<[string, RegExp]> = [
      ["slack.channel", /`general` is not a Slack channel id — /],
      ["access.approvers", /is empty — /],
      ["target.aws.region", /`Singapore` is not an AWS region — .*ap-southeast-1/],
      ["target.rds.engineVersion", /expected text, got a number .* put it in quotes .*"14"/],
      ["target.rds.instanceClas", /did you mean `instanceClass`\?/],
      ["target.rds.allocatedStorageGb", /`10` is below 20 — /],
      ["target.rds.storageType", /`gp4` is not one of the allowed values — use one of: gp2, gp3, io1, io2/],
      ["cutover.window.start", /`25:00` is not a time of day — /],
      ["cutover.window.timezone", /did you mean `Asia\/Singapore`\?/],
      ["runbook.phases[1].steps[0].id", /`db` is already used by runbook.phases\[0\].steps\[0\]/],
      ["target.rds.masterPasswordEnv", /SHOP_DB_PASSWORD is not set/],
    ];
    for (const [at, re] of expected) {
      const found = problemAt(problems, at);
      expect(found, `a problem at ${at} in:\n${problems.join("\n")}`).toHaveLength(1);
      expect(found[0]).toMatch(re);
      expect(found[0]).toContain(" — ");
    }
    expect(problems).toHaveLength(expected.length);
    // One line per problem in the message, after a header that counts them.
    const lines = err.message.split("\n");
    expect(lines[0]).toBe(`several-mistakes.yml is not ready — ${expected.length} problems:`);
    expect(lines.slice(1)).toEqual(problems);
    // The line numbers point into the file.
    expect(problemAt(problems, "target.aws.region")[0]).toMatch(/\(line 12\)$/);
  });

  it("suggests the intended key for a misspelling and does not also call that key missing", async () => {
    const text = await exampleWith(
      ["instanceClass: db.t4g.micro", "instanceClas: db.t4g.micro"],
      ["    healthPath: /health\n\n", "    helthPath: /health\n\n"],
    );
    const { problems } = configError(() => parseMigrationFile(text, { env: exampleEnv() })).details;
    expect(problemAt(problems, "target.rds.instanceClas")[0]).toMatch(
      /unknown setting — did you mean `instanceClass`\? \(`instanceClass` is required here\)/,
    );
    expect(problemAt(problems, "target.host.helthPath")[0]).toMatch(/did you mean `healthPath`\?/);
    expect(problemAt(problems, "target.rds.instanceClass")).toEqual([]);
    expect(problems).toHaveLength(2);
  });

  it("lists the allowed keys when nothing is close", async () => {
    const text = await exampleWith(["  cutoverTtl: 60", "  cutoverTtl: 60\n  flux: capacitor"]);
    const [problem] = configError(() => parseMigrationFile(text, { env: exampleEnv() })).details.problems;
    expect(problem).toMatch(
      /^dns\.flux: unknown setting — remove it or check the spelling; allowed here: .*zone.*records/,
    );
  });

  it("points at the line and column of a YAML syntax error", async () => {
    const text = await readFile(fixture("syntax-error.yml"), "utf8");
    const err = configError(() => parseMigrationFile(text, { env: {} }));
    expect(err.details.problems[0]).toMatch(/^line 5, column \d+: .+ — check the indentation/);
  });

  it("reports a key given twice as a YAML error with its line", () => {
    const err = configError(() => parseMigrationFile("version: 1\nproject: a\nproject: b\n", { env: {} }));
    expect(err.details.problems).toEqual([
      expect.stringMatching(/^line 3, column 1: .*unique.* — a key appears twice/),
    ]);
  });

  it("says what to add, with an example value, when a required setting is missing", async () => {
    const text = await exampleWith(["project: gogojap\n", ""], ["    instanceClass: db.t4g.micro\n", ""]);
    const { problems } = configError(() => parseMigrationFile(text, { env: exampleEnv() })).details;
    expect(problemAt(problems, "project")[0]).toMatch(
      /^project: missing — add it, e\.g\. `project: gogojap`/,
    );
    expect(problemAt(problems, "target.rds.instanceClass")[0]).toMatch(
      /missing — add it, e\.g\. `instanceClass: db\.t4g\.micro`/,
    );
  });

  it("rejects an empty file and a file that is not a mapping", () => {
    expect(configError(() => parseMigrationFile("", { env: {} })).details.problems[0]).toMatch(
      /the file is empty — run `cp migration\.example\.yml/,
    );
    expect(configError(() => parseMigrationFile("- a\n", { env: {} })).details.problems[0]).toMatch(
      /must be a mapping/,
    );
  });

  it("lists every missing or empty variable, naming the field, and never prints a value", async () => {
    const text = await exampleText();
    const env = exampleEnv();
    delete env.NEON_DATABASE_URL;
    delete env.CLOUDFLARE_API_TOKEN;
    env.RDS_MASTER_PASSWORD = "   ";
    const err = configError(() => parseMigrationFile(text, { env }));
    const { problems } = err.details;
    expect(problems).toHaveLength(3);
    expect(problemAt(problems, "source.database.urlEnv")[0]).toMatch(
      /environment variable NEON_DATABASE_URL is not set — /,
    );
    expect(problemAt(problems, "dns.apiTokenEnv")[0]).toMatch(
      /CLOUDFLARE_API_TOKEN is not set \(also needed by pages\.apiTokenEnv\)/,
    );
    expect(problemAt(problems, "target.rds.masterPasswordEnv")[0]).toMatch(/RDS_MASTER_PASSWORD is empty/);
    for (const value of Object.values(env)) {
      if (value?.trim()) expect(err.message).not.toContain(value);
    }
  });

  it("skips the environment check when asked to", async () => {
    expect(parseMigrationFile(await exampleText(), { env: {}, checkEnv: false }).project).toBe("gogojap");
  });

  it("refuses secrets written into the file, says to use the …Env form, and does not echo them", async () => {
    const text = await readFile(fixture("inline-secret.yml"), "utf8");
    const err = configError(() => parseMigrationFile(text, { env: { R2_ACCESS_KEY_ID: "x" } }));
    const { problems } = err.details;
    expect(problemAt(problems, "source.storage.secretAccessKey")[0]).toMatch(
      /secret .* — .*`secretAccessKeyEnv: SOME_VARIABLE`/,
    );
    expect(problemAt(problems, "target.rds.password")[0]).toMatch(
      /secret .* — .*`masterPasswordEnv: SOME_VARIABLE`/,
    );
    expect(problemAt(problems, "source.database.urlEnv")[0]).toMatch(
      /looks like a URL with a password in it .* NAME of an environment variable/,
    );
    // The secret keys are not also reported as unknown settings.
    expect(problems.filter((p) => p.includes("unknown setting"))).toEqual([]);
    for (const secret of ["sEcReT-r2-value-123", "pg-pass-456", "rds-pass-789"])
      expect(err.message).not.toContain(secret);
  });

  it("refuses a literal secret in the app's environment and suggests { env: … }", async () => {
    const text = await exampleWith(["SECRET_KEY: { env: APP_SECRET_KEY }", "SECRET_KEY: not-so-secret-42"]);
    const err = configError(() => parseMigrationFile(text, { env: exampleEnv() }));
    expect(err.details.problems).toEqual([
      expect.stringMatching(
        /^target\.host\.appEnv\.vars\.SECRET_KEY: .* `SECRET_KEY: \{ env: SECRET_KEY \}`/,
      ),
    ]);
    expect(err.message).not.toContain("not-so-secret-42");
  });

  it("rejects a step type the catalogue does not know, listing the known ones", async () => {
    const text = await exampleWith(["uses: db.dump", "uses: db.dumpp"]);
    const { problems } = configError(() =>
      parseMigrationFile(text, { env: exampleEnv(), knownStepTypes: KNOWN_STEP_TYPES }),
    ).details;
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(
      /^runbook\.phases\[1\]\.steps\[1\]\.uses: unknown step type `db\.dumpp` — did you mean `db\.dump`\? known step types: .*db\.restore/,
    );
  });

  it("rejects ids used twice across phases and steps", async () => {
    const text = await exampleWith(
      ["- id: db-replicate", "- id: db-dump"],
      ["- id: monitoring", "- id: data"],
    );
    const { problems } = configError(() => parseMigrationFile(text, { env: exampleEnv() })).details;
    expect(problemAt(problems, "runbook.phases[1].steps[3].id")[0]).toMatch(
      /`db-dump` is already used by runbook\.phases\[1\]\.steps\[1\]/,
    );
    expect(problemAt(problems, "runbook.phases[3].steps[6].id")[0]).toMatch(
      /`data` is already used by runbook\.phases\[1\]/,
    );
  });

  it("requires the section a step type needs", async () => {
    const text = (await readFile(fixture("minimal.yml"), "utf8")).replace(
      "uses: verify.functional",
      "uses: db.dump",
    );
    const { problems } = configError(() =>
      parseMigrationFile(text, { env: {}, stepSections: STEP_SECTIONS }),
    ).details;
    expect(problems).toEqual([
      expect.stringMatching(
        /^runbook\.phases\[0\]\.steps\[0\]\.uses: step type `db\.dump` needs the `source\.database` section/,
      ),
    ]);
  });

  it("accepts a minimal file and fills in the defaults", async () => {
    const file: MigrationFile = parseMigrationFile(await readFile(fixture("minimal.yml"), "utf8"), {
      env: {},
    });
    expect(file.environment).toBe("production");
    expect(file.engine).toEqual({
      attempts: 3,
      backoffMs: 2_000,
      progressEditsPerSecond: 1,
      stallSeconds: 600,
      shardWorkers: 2,
    });
    expect(file.cutover.approvalExpiryMinutes).toBe(30);
    expect(file.verification.performance.api.maxAvgMs).toBe(200);
    expect(file.digest.time).toBe("09:00");
    expect(file.target).toBeUndefined();
    expect(collectEnvRefs(file)).toEqual([]);
  });

  it("checks values against each other", async () => {
    const text = await exampleWith(
      ["availabilityZone: ap-southeast-1a", "availabilityZone: us-east-1a"],
      ["budgetAlert: 100", "budgetAlert: 80"],
      ["defaultTtlSeconds: 86400", "defaultTtlSeconds: 3600"],
      ["from: 203.0.113.10", "from: old.zeabur.app"],
      ["afterDays: 90", "afterDays: 10"],
      ["    - port: 22\n", "    - port: 2222\n"],
    );
    const { problems } = configError(() => parseMigrationFile(text, { env: exampleEnv() })).details;
    expect(problemAt(problems, "target.lightsail.availabilityZone")[0]).toMatch(
      /is not in region `ap-southeast-1`/,
    );
    expect(problemAt(problems, "cost.budgetAlert")[0]).toMatch(/below monthlyTarget \(85\)/);
    expect(problemAt(problems, "target.cloudfront.defaultTtlSeconds")[0]).toMatch(
      /CachingOptimized policy's default TTL is 86400/,
    );
    expect(problemAt(problems, "dns.records[0].from")[0]).toMatch(
      /`old\.zeabur\.app` is not an IPv4 address, which an A record needs/,
    );
    expect(problemAt(problems, "target.s3.lifecycle[0].transitions[0].afterDays")[0]).toMatch(
      /at least 30 days/,
    );
    expect(problemAt(problems, "target.lightsail.firewall")[0]).toMatch(/does not open the SSH port 22/);
    expect(problems).toHaveLength(6);
  });

  it("needs a second person who can approve", async () => {
    const text = await exampleWith(["approvers: [U0987654321]", "approvers: [U0123456789]"]);
    const { problems } = configError(() => parseMigrationFile(text, { env: exampleEnv() })).details;
    expect(problems).toEqual([expect.stringMatching(/^access\.approvers: holds only the one operator — /)]);
  });

  it("picks the branch a value was meant for and explains it", async () => {
    const text = await exampleWith([
      "DATABASE_URL: { ref: target.rds.url }",
      "DATABASE_URL: { ref: target.rds.uri }",
    ]);
    const { problems } = configError(() => parseMigrationFile(text, { env: exampleEnv() })).details;
    expect(problems).toEqual([
      expect.stringMatching(
        /^target\.host\.appEnv\.vars\.DATABASE_URL\.ref: `target\.rds\.uri` is not one of the allowed values — .*did you mean `target\.rds\.url`\?/,
      ),
    ]);
  });

  it("loads a file from disk and returns its absolute path", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "cutover-config-"));
    const file = path.join(dir, "migration.yml");
    await writeFile(file, await readFile(fixture("minimal.yml"), "utf8"));
    const loaded = await loadMigrationFile(path.relative(process.cwd(), file), { env: {} });
    expect(loaded.path).toBe(file);
    expect(loaded.file.project).toBe("shop");
  });
});
