import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import fc from "fast-check";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseMigrationFile } from "../../src/config/load.js";
import { ErrorCode, isCutoverError } from "../../src/errors.js";
import { KNOWN_STEP_TYPES } from "../../src/jobs/catalogue.js";
import type { StepDefinition } from "../../src/jobs/define-step.js";
import { shq } from "../../src/jobs/host-script.js";
import { createDbSteps } from "../../src/jobs/steps/db/index.js";
import { dumpRoot } from "../../src/jobs/steps/db/options.js";
import { saveReport } from "../../src/jobs/steps/verify/checks.js";
import { replyText, startTestBot, type TestBot } from "../helpers/bot.js";
import { serverUrl, withAdmin } from "../helpers/db.js";
import { makeStepContext } from "../helpers/step-context.js";
import { dbConfig, makeDeps } from "../jobs/db/fixture.js";
import { reportFigure } from "./figures.js";

/**
 * Injection: values that come from Slack or from the migration file and reach a shell, SQL, a
 * file path or a URL are fuzzed with metacharacters. Nothing may be interpreted: the canary file
 * a payload tries to create never appears, SQL does what it did before, paths stay where they
 * belong. And the migration-file loader, fuzzed with 10,000 inputs, never crashes and always
 * answers with a message that names where the problem is and how to fix it.
 */

const execFileAsync = promisify(execFile);
const CANARY_DIR = await mkdtemp(path.join(tmpdir(), "cutover-injection-"));
const CANARY = path.join(CANARY_DIR, "pwned");
/** `${HOME}` as literal text (a template placeholder a shell or a formatter might expand) */
const DOLLAR_HOME = ["$", "{HOME}"].join("");

/** Fragments that mean something to a shell, SQL, a path or a URL. */
const FRAGMENTS = [
  `$(touch ${CANARY})`,
  `\`touch ${CANARY}\``,
  `; touch ${CANARY};`,
  `| touch ${CANARY}`,
  `&& touch ${CANARY}`,
  `\ntouch ${CANARY}\n`,
  `'; touch ${CANARY}; '`,
  `"; touch ${CANARY}; "`,
  "'; DROP TABLE runs; --",
  '"; DROP TABLE runs; --',
  "' OR '1'='1",
  "%",
  "_",
  "\\",
  "../../../../etc/passwd",
  "..",
  "%2e%2e%2f",
  "?x=1&y=2#frag",
  DOLLAR_HOME,
  "$HOME",
  "*",
  "~",
  "{{name}}",
  "<script>",
  "&lt;&gt;&amp;",
  "\u0000",
  "\t",
  "\r\n",
  "—",
  "名前",
  "🙂",
];
const hostile = fc
  .array(fc.oneof(fc.constantFrom(...FRAGMENTS), fc.string({ maxLength: 6 })), { minLength: 1, maxLength: 5 })
  .map((parts) => parts.join(""));

afterAll(async () => {
  await rm(CANARY_DIR, { recursive: true, force: true });
});

// ───────────────────────────── child processes ─────────────────────────────

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() && e.name !== "generated") out.push(...(await sourceFiles(p)));
    else if (e.isFile() && p.endsWith(".ts")) out.push(p);
  }
  return out;
}

describe("child processes", () => {
  it("are started only with argument arrays: no exec, no shell: true, no command strings", async () => {
    const files = await sourceFiles("src");
    const calls: string[] = [];
    const problems: string[] = [];
    for (const file of files) {
      const text = await readFile(file, "utf8");
      if (!/from "node:child_process"|require\("(node:)?child_process"\)/.test(text)) {
        // nothing else may reach a local shell either
        if (/\bchild_process\b/.test(text.replace(/import\("node:child_process"\)\.ChildProcess/g, "")))
          problems.push(`${file}: uses child_process without importing it plainly`);
        continue;
      }
      const imported = /import\s*\{([^}]*)\}\s*from\s*"node:child_process"/.exec(text)?.[1] ?? "";
      for (const name of imported.split(",").map((s) => s.replace(/\btype\b/, "").trim())) {
        if (["exec", "execSync"].includes(name))
          problems.push(`${file}: imports ${name} (runs a shell string)`);
      }
      if (/shell\s*:\s*(true|[^,}\s]+)/.test(text)) problems.push(`${file}: passes a shell option`);
      for (const m of text.matchAll(
        /\b(spawn|spawnSync|execFile|execFileSync|fork)\s*\(\s*([^,]+),\s*(\S)/g,
      )) {
        calls.push(`${path.relative("src", file)}: ${m[1]}(${m[2]!.trim()}, …)`);
        if (m[3] !== "[" && !/^[a-z]\w*$/i.test(text.slice(m.index! + m[0].length - 1).split(/[,)]/)[0]!)) {
          problems.push(`${file}: ${m[1]} is not given an argument array`);
        }
        if (/^["'`]/.test(m[2]!.trim()) && /\s/.test(m[2]!.trim().slice(1, -1)))
          problems.push(`${file}: ${m[1]} runs a command line "${m[2]}" (must be one program)`);
      }
      const promisified = /promisify\((exec)\)/.exec(text);
      if (promisified) problems.push(`${file}: promisifies exec`);
    }
    expect(problems).toEqual([]);
    // the calls the scan saw (so the scan cannot silently match nothing)
    expect(calls.length).toBeGreaterThanOrEqual(3);
    expect(calls.some((c) => c.startsWith("cloud/postgres.ts: spawn(cmd"))).toBe(true);
    reportFigure("child-processes", { files: files.length, calls: calls.length, problems: problems.length });
  });

  it("quotes every value it puts into a remote shell command: bash gets the value back, literally", async () => {
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(hostile, async (value) => {
        const clean = value.replaceAll("\u0000", ""); // a shell argument cannot hold NUL (a C string)
        runs++;
        const { stdout } = await execFileAsync("bash", ["-c", `printf '%s' ${shq(clean)}`], {
          cwd: CANARY_DIR,
          env: { PATH: process.env.PATH ?? "", HOME: CANARY_DIR },
        });
        expect(stdout).toBe(clean);
        expect(existsSync(CANARY)).toBe(false);
      }),
      { numRuns: 150, seed: 9 },
    );
    reportFigure("shell-quoting", { inputs: runs, interpreted: existsSync(CANARY) ? 1 : 0 });
  }, 120_000);
});

// ───────────────────────────── values from Slack ─────────────────────────────

describe("values from Slack, through the real bot", () => {
  let t: TestBot;
  beforeAll(async () => {
    t = await startTestBot("sec_inject");
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("treats run targets, run ids, audit counts, verify kinds and --reason text as data", async () => {
    const db = t.bot.deps.db;
    const runsBefore = await db.run.count({ where: { dryRun: false } });
    const forms = [
      (v: string) => `run ${JSON.stringify(v)}`,
      (v: string) => `run ${v}`,
      (v: string) => `plan ${JSON.stringify(v)}`,
      (v: string) => `cancel ${JSON.stringify(v)}`,
      (v: string) => `audit ${JSON.stringify(v)}`,
      (v: string) => `verify ${JSON.stringify(v)}`,
      (v: string) => `cutover --reason ${JSON.stringify(v)}`,
      (v: string) => `status ${v}`,
      (v: string) => v,
    ];
    let sent = 0;
    const silent: string[] = [];
    const started: string[] = [];
    await fc.assert(
      fc.asyncProperty(fc.nat(forms.length - 1), hostile, async (i, value) => {
        // Slack never delivers NUL in a form field; and it escapes &, < and > as entities
        const v = value
          .replaceAll("\u0000", "")
          .replace(/&/g, "&amp;")
          .replace(/</g, "&lt;")
          .replace(/>/g, "&gt;");
        const text = forms[i]!(v);
        const before = await db.run.count({ where: { dryRun: false } });
        const res = await t.command(text);
        sent++;
        expect(res.status).toBe(200);
        const reply = await replyText(t, res, 10_000).catch(() => "");
        if (!reply.trim()) silent.push(text);
        if ((await db.run.count({ where: { dryRun: false } })) !== before) started.push(text);
        expect(existsSync(CANARY)).toBe(false);
      }),
      { numRuns: 120, seed: 42 },
    );
    expect(silent).toEqual([]);
    expect(started).toEqual([]);
    // no run was started by any of it (no step or phase has such a name; `plan ""` is a dry run
    // of everything, which is what it says), and every table is whole
    expect(await db.run.count({ where: { dryRun: false } })).toBe(runsBefore);
    const tables = await db.$queryRawUnsafe<{ n: number }[]>(
      "SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('runs','audit_events','approvals','env_locks')",
    );
    expect(tables[0]!.n).toBe(4);
    // and a real command still works afterwards
    expect(await replyText(t, await t.command("status"))).toMatch(/^Migration status/);
    reportFigure("slack-input", { sent, interpreted: existsSync(CANARY) ? 1 : 0, silent: silent.length });
  }, 180_000);
});

// ───────────────────────────── names that reach SQL, pg_dump and paths ─────────────────────────────

describe("database, schema, table and column names", () => {
  const suffix = randomBytes(3).toString("hex");
  // Database names with quotes, spaces, $() and ; reach libpq (environment), pg_dump and SQL.
  const SRC = `cutover_t_inj src $(touch ${path.basename(CANARY)});'"${suffix}`.slice(0, 63);
  const DST = `cutover_t_inj dst \`id\`; --'"${suffix}`.slice(0, 63);
  let steps: Map<string, StepDefinition<unknown>>;
  let srcUrl: string;
  let dstUrl: string;

  beforeAll(async () => {
    await withAdmin(async (c) => {
      await c.query(`CREATE DATABASE ${c.escapeIdentifier(SRC)} TEMPLATE template0`);
      await c.query(`CREATE DATABASE ${c.escapeIdentifier(DST)} TEMPLATE template0`);
    });
    // encodeURI, not encodeURIComponent: node-pg reads the database name with decodeURI, so a
    // name holding $ or ; must be written raw in the URL (libpq's environment, built by
    // src/cloud/postgres.ts with decodeURIComponent, reads both forms)
    srcUrl = `${serverUrl()}/${encodeURI(SRC)}`;
    dstUrl = `${serverUrl()}/${encodeURI(DST)}`;
    const client = new pg.Client({ connectionString: srcUrl });
    await client.connect();
    try {
      await client.query(String.raw`
        CREATE SCHEMA "s; DROP SCHEMA public CASCADE; --";
        CREATE TABLE "s; DROP SCHEMA public CASCADE; --"."t'$(touch x)" (
          "id""; DELETE FROM x; --" serial PRIMARY KEY,
          "v\`ls\`" text,
          "名前 %s %n" text
        );
        INSERT INTO "s; DROP SCHEMA public CASCADE; --"."t'$(touch x)" ("v\`ls\`", "名前 %s %n")
          SELECT '$(touch pwned) ' || g, E'\\x00? no: ''; DROP TABLE x; --' || g FROM generate_series(1, 300) g;
        CREATE TABLE public."a.b" (k text PRIMARY KEY);
        INSERT INTO public."a.b" VALUES ('../../etc/passwd'), ('%2e%2e'), ('${DOLLAR_HOME}');
      `);
    } finally {
      await client.end();
    }
    const deps = await makeDeps(srcUrl, dstUrl, { config: dbConfig() });
    steps = new Map(createDbSteps(deps).map((s) => [s.type, s]));
  }, 60_000);

  afterAll(async () => {
    await withAdmin(async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(SRC)} WITH (FORCE)`);
      await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(DST)} WITH (FORCE)`);
    });
  });

  it("copies and verifies them literally: preflight, pg_dump, pg_restore and verify interpret nothing", async () => {
    const stepsRun: string[] = [];
    for (const type of ["db.preflight", "db.dump", "db.restore", "db.verify"]) {
      const step = steps.get(type)!;
      const input = step.parse({ jobs: 2 });
      const ctx = makeStepContext();
      const outcome = await step.run(input, ctx);
      expect(outcome.summary, type).toBeTruthy();
      const verified = await step.verify(input, ctx);
      expect(verified.ok, `${type}: ${verified.summary}`).toBe(true);
      stepsRun.push(type);
    }
    expect(existsSync(CANARY)).toBe(false);
    expect(existsSync(path.join(process.cwd(), "pwned"))).toBe(false);
    expect(existsSync(path.join(process.cwd(), "x"))).toBe(false);
    const client = new pg.Client({ connectionString: dstUrl });
    await client.connect();
    try {
      const rows = await client.query(
        String.raw`SELECT count(*)::int AS n FROM "s; DROP SCHEMA public CASCADE; --"."t'$(touch x)" WHERE "v\`ls\`" LIKE '$(touch pwned) %'`,
      );
      expect(rows.rows[0].n).toBe(300);
      const keys = await client.query(`SELECT k FROM public."a.b" ORDER BY k`);
      expect(keys.rows.map((r) => r.k)).toEqual([DOLLAR_HOME, "%2e%2e", "../../etc/passwd"].sort());
    } finally {
      await client.end();
    }
    reportFigure("hostile-names-db-copy", { steps: stepsRun.length, interpreted: 0 });
  }, 180_000);
});

describe("file paths built from the migration file", () => {
  it("keep the dump folder and reports inside the data directory whatever the environment is called", async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), "cutover-paths-"));
    const env = {
      PATH: "",
      SOURCE_DATABASE_URL: "postgres://a@127.0.0.1/x",
      TARGET_DATABASE_URL: "postgres://a@127.0.0.1/y",
      RDS_MASTER_PASSWORD: "xxxxxxxx",
    };
    const base = parseMigrationFile(dbConfig(), { env });
    let checked = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(hostile, fc.constantFrom(".", "..", "...", "../..", "/", "/etc", "a/../..")),
          async (environment) => {
            if (environment.length === 0) return;
            const file = { ...base, environment };
            const root = dumpRoot({ file, dataDir, env, log: undefined as never } as never, {});
            const rel = path.relative(path.join(dataDir, "dumps"), root);
            expect(
              rel.startsWith("..") || path.isAbsolute(rel) || rel === "",
              `${environment} → ${root}`,
            ).toBe(false);
            const report = await saveReport(dataDir, environment, {
              kind: "functional",
              runId: "00000000-0000-0000-0000-000000000000",
              ok: true,
              rows: [],
            } as never);
            const relReport = path.relative(path.join(dataDir, "reports"), path.dirname(report));
            expect(relReport.startsWith("..") || relReport === "", `${environment} → ${report}`).toBe(false);
            checked++;
          },
        ),
        { numRuns: 500, seed: 3 },
      );
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
    reportFigure("paths", { inputs: checked, escaped: 0 });
  });
});

// ───────────────────────────── the migration-file loader ─────────────────────────────

const EXAMPLE = await readFile("migration.example.yml", "utf8");
const LINES = EXAMPLE.split("\n");
const YAML_BITS = [
  ":",
  ": ",
  "- ",
  "#",
  " #",
  "&a ",
  "*a",
  "*nope",
  "!!str ",
  "!!binary ",
  "!tag ",
  "{",
  "}",
  "[",
  "]",
  "'",
  '"',
  "\t",
  "|",
  ">",
  "%YAML 1.2\n",
  "? ",
  "---\n",
  "...\n",
  "<<: *a\n",
  ",",
  "@",
  "`",
  "\\",
  "\u0000",
  "\ufeff",
  "~",
  "null",
  "true",
  "0x1F",
  "1e400",
  "-.inf",
  ".nan",
  "2026-01-01",
  "&a [*a]",
  "\n",
  "  ",
];

type Mutation = (lines: string[]) => string[];
const anyMutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.nat().map((i) => (l: string[]) => l.filter((_, j) => j !== i % l.length)),
  fc.nat().map((i) => (l: string[]) => {
    const k = i % l.length;
    return [...l.slice(0, k + 1), l[k]!, ...l.slice(k + 1)];
  }),
  fc.tuple(fc.nat(), fc.nat(), fc.constantFrom(...YAML_BITS)).map(([i, p, bit]) => (l: string[]) => {
    const k = i % l.length;
    const line = l[k]!;
    const at = line.length ? p % (line.length + 1) : 0;
    return [...l.slice(0, k), line.slice(0, at) + bit + line.slice(at), ...l.slice(k + 1)];
  }),
  fc
    .tuple(
      fc.nat(),
      fc.oneof(
        fc.string(),
        fc.integer().map(String),
        fc.double().map(String),
        fc.constantFrom(
          "",
          "null",
          "~",
          "[]",
          "{}",
          "yes",
          "-1",
          "0",
          "99999999999999999999",
          "'unterminated",
          '"x',
        ),
        fc.string({ unit: "grapheme", maxLength: 20 }),
        fc.string({ maxLength: 3000 }).map((s) => s.repeat(2)),
        hostile,
      ),
    )
    .map(([i, value]) => (l: string[]) => {
      const k = i % l.length;
      const m = /^(\s*(?:- )?[^#:\s][^:]*:)\s/.exec(l[k]!);
      if (!m) return l;
      return [...l.slice(0, k), `${m[1]} ${value}`, ...l.slice(k + 1)];
    }),
  fc.tuple(fc.nat(), fc.integer({ min: -4, max: 4 })).map(([i, d]) => (l: string[]) => {
    const k = i % l.length;
    const line = l[k]!;
    return [
      ...l.slice(0, k),
      d > 0 ? " ".repeat(d) + line : line.slice(Math.min(-d, line.search(/\S|$/))),
      ...l.slice(k + 1),
    ];
  }),
  fc.nat().map((i) => (l: string[]) => l.slice(0, 1 + (i % l.length))),
);
// an earlier mutation may have deleted every line: nothing is left to mutate
const mutation = anyMutation.map(
  (m): Mutation =>
    (l) =>
      l.length === 0 ? l : m(l),
);

const loaderInput: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .array(mutation, { minLength: 1, maxLength: 4 })
      .map((ms) => ms.reduce((l, m) => m(l), LINES).join("\n")),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 400 }) },
  {
    weight: 1,
    arbitrary: fc.anything().map((v) => {
      try {
        return JSON.stringify(v) ?? "null";
      } catch {
        return "null";
      }
    }),
  },
  {
    weight: 1,
    arbitrary: fc
      .array(fc.constantFrom(...YAML_BITS, "version: 1\n", "project: x\n", "runbook:\n", "  phases:\n"), {
        maxLength: 30,
      })
      .map((a) => a.join("")),
  },
);

/** A problem line names where (a line and column, a setting's path, or the file) and says what to do. */
const SEG = String.raw`(?:[A-Za-z_$][\w$-]*|\[\d+\]|\["(?:[^"\\]|\\.)*"\])`;
const PROBLEM = new RegExp(
  String.raw`^(?:line \d+, column \d+|\(file\)|\(top level\)|${SEG}(?:\.?${SEG})*): .+ — .+`,
  "s",
);

describe("the migration-file loader under fuzzed inputs (10,000 in the chaos bench)", () => {
  it("never crashes, and every refusal is a helpful message with a path", () => {
    // 10,000 in `npm run bench -- chaos` (about 4 min on two cores); 1,000 in `npm test`
    const runs = Number(process.env.CUTOVER_LOADER_FUZZ_RUNS ?? 1_000);
    const env = Object.fromEntries(
      [...EXAMPLE.matchAll(/\b([A-Z][A-Z0-9_]{3,})\b/g)].map((m) => [m[1]!, "set-for-the-fuzz"]),
    );
    const counts = { accepted: 0, refused: 0, crashed: 0, unhelpful: 0 };
    const started = performance.now();
    fc.assert(
      fc.property(loaderInput, (text) => {
        try {
          const file = parseMigrationFile(text, { env, knownStepTypes: KNOWN_STEP_TYPES });
          expect(file.version).toBe(1);
          counts.accepted++;
        } catch (err) {
          if (!isCutoverError(err) || err.code !== ErrorCode.ConfigInvalid) {
            counts.crashed++;
            throw err;
          }
          const problems = (err.details as { problems?: string[] } | undefined)?.problems ?? [];
          expect(problems.length).toBeGreaterThan(0);
          expect(err.message).toMatch(/^migration\.yml is not ready — \d+ problems?/);
          for (const p of problems) {
            if (!PROBLEM.test(p)) {
              counts.unhelpful++;
              throw new Error(`not a helpful problem line: ${JSON.stringify(p)}`);
            }
          }
          counts.refused++;
        }
      }),
      { numRuns: runs, seed: 2026 },
    );
    reportFigure("loader-fuzz", {
      inputs: runs,
      ...counts,
      seconds: Math.round((performance.now() - started) / 1000),
    });
    expect(counts.crashed + counts.unhelpful).toBe(0);
  }, 900_000);
});
