import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type Document, isMap, isScalar, isSeq, LineCounter, parseDocument, stringify } from "yaml";
import type { z } from "zod";
import { CutoverError, ErrorCode } from "../errors.js";
import { closeMatches, didYouMean } from "../text/suggest.js";
import {
  isSecretKeyName,
  type MigrationFile,
  MigrationFileSchema,
  missingStepSections,
  type SectionPath,
  secretValueKind,
  show,
} from "./schema.js";

/**
 * Loads the migration file and reports everything wrong with it in one CutoverError
 * (code ConfigInvalid): YAML syntax, every schema issue, inline secrets, unknown step types
 * and unset environment variables. Each problem is one line, `path.to.field: what is wrong —
 * how to fix`, also available as `err.details.problems`.
 */

export interface LoadOptions {
  /** where `…Env` variables are looked up; defaults to process.env. Values are never printed. */
  env?: NodeJS.ProcessEnv;
  /** the step catalogue's type names; when given, every `uses` must be one of them */
  knownStepTypes?: readonly string[];
  /** the sections each step type needs (the catalogue's STEP_SECTIONS); when given, a step's type makes its sections required */
  stepSections?: Readonly<Record<string, readonly SectionPath[]>>;
  /** check that every variable named by the file is set (default true) */
  checkEnv?: boolean;
}

/** A place in the file that names an environment variable. */
export interface EnvRef {
  /** e.g. `source.database.urlEnv` or `target.host.appEnv.vars.SECRET_KEY.env` */
  path: string;
  variable: string;
}

const EXAMPLE_NAME = "migration.example.yml";
const ENV_NAME_RE = /^[A-Z_][A-Z0-9_]*$/;

type Seg = string | number;
type Rec = Record<string, unknown>;
const isRec = (v: unknown): v is Rec => typeof v === "object" && v !== null && !Array.isArray(v);

interface Problem {
  path: Seg[];
  text: string;
  /** file problems come first, sorted by line; then the environment's */
  kind: "file" | "env";
  line?: number;
}

/**
 * Reads and validates a migration file.
 * @example const { file } = await loadMigrationFile(settings.configPath, { knownStepTypes: catalogue.types });
 */
export async function loadMigrationFile(
  file: string,
  opts: LoadOptions = {},
): Promise<{ file: MigrationFile; path: string }> {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = await readFile(absolute, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const problem =
      code === "ENOENT"
        ? `${file}: not found (looked at ${absolute}) — run \`cp ${EXAMPLE_NAME} migration.yml\` and edit it, or set CUTOVER_CONFIG to the file's path`
        : code === "EISDIR"
          ? `${file}: is a folder, not a file — point CUTOVER_CONFIG at the migration file itself, e.g. ./migration.yml`
          : code === "EACCES" || code === "EPERM"
            ? `${file}: cannot be read (permission denied) — give the user running Cutover read access to ${absolute}`
            : `${file}: cannot be read (${code ?? "unknown error"}) — check the path, or set CUTOVER_CONFIG to the file's path`;
    throw configError(file, [problem], err);
  }
  return { file: parseMigrationFile(text, { ...opts, name: file }), path: absolute };
}

/**
 * Validates the text of a migration file (sync; for tests, the fuzzer and `loadMigrationFile`).
 * `name` is how the file is called in messages.
 */
export function parseMigrationFile(text: string, opts: LoadOptions & { name?: string } = {}): MigrationFile {
  const name = opts.name ?? "migration.yml";
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, merge: true, uniqueKeys: true });

  if (doc.errors.length > 0) {
    const problems = doc.errors.map((e) => {
      const { line, col } = lineCounter.linePos(e.pos[0]);
      return `line ${line}, column ${col}: ${yamlMessage(e.message)} — ${yamlHint(e.code)}`;
    });
    throw configError(name, problems, undefined, "YAML syntax; the settings are checked once it parses");
  }

  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    throw configError(name, [
      `(file): cannot be read as data (${(err as Error).message}) — check anchors and aliases (&name / *name)`,
    ]);
  }
  if (raw === null || raw === undefined) {
    throw configError(name, [`(file): the file is empty — run \`cp ${EXAMPLE_NAME} ${name}\` and edit it`]);
  }
  if (!isRec(raw)) {
    throw configError(name, [
      `(file): the file must be a mapping of settings starting with \`version: 1\` — start from ${EXAMPLE_NAME}`,
    ]);
  }

  const problems: Problem[] = [];
  const secrets = findInlineSecrets(raw);
  problems.push(...secrets);
  const secretPaths = secrets.map((p) => p.path);

  const parsed = MigrationFileSchema.safeParse(raw);
  if (!parsed.success) problems.push(...issueProblems(parsed.error.issues, raw, secretPaths));

  if (opts.knownStepTypes) problems.push(...unknownStepTypes(raw, opts.knownStepTypes));
  if (opts.stepSections)
    for (const { path: here, message } of missingStepSections(raw, opts.stepSections))
      problems.push({ path: here, kind: "file", text: `${formatPath(here)}: ${message}` });

  if (opts.checkEnv !== false)
    problems.push(...missingEnv(parsed.success ? parsed.data : raw, opts.env ?? process.env));

  if (problems.length > 0) {
    for (const p of problems) if (p.kind === "file") p.line = lineOf(doc, lineCounter, p.path);
    const sorted = [
      ...problems
        .filter((p) => p.kind === "file")
        .sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity)),
      ...problems.filter((p) => p.kind === "env"),
    ];
    const lines = [
      ...new Set(sorted.map((p) => (p.line === undefined ? p.text : `${p.text} (line ${p.line})`))),
    ];
    throw configError(name, lines);
  }
  return (parsed as { data: MigrationFile }).data;
}

/**
 * Every place the file names an environment variable: fields ending in `Env` and `{ env: NAME }` values.
 * @example collectEnvRefs(file) // [{ path: "source.database.urlEnv", variable: "NEON_DATABASE_URL" }, …]
 */
export function collectEnvRefs(file: unknown): EnvRef[] {
  const refs: EnvRef[] = [];
  const walk = (value: unknown, at: Seg[]) => {
    if (Array.isArray(value)) {
      for (const [i, v] of value.entries()) walk(v, [...at, i]);
    } else if (isRec(value)) {
      for (const [key, v] of Object.entries(value)) {
        const isRef = (key === "env" || (key.length > 3 && key.endsWith("Env"))) && typeof v === "string";
        if (isRef && ENV_NAME_RE.test(v)) refs.push({ path: formatPath([...at, key]), variable: v });
        else walk(v, [...at, key]);
      }
    }
  };
  walk(file, []);
  return refs;
}

/** `a.b[0].c`; keys that are not plain words are quoted: `tags["app.kubernetes.io"]`. */
export function formatPath(segs: readonly PropertyKey[]): string {
  let out = "";
  for (const s of segs) {
    if (typeof s === "number") out += `[${s}]`;
    else if (typeof s === "string" && /^[A-Za-z_$][\w$-]*$/.test(s)) out += out ? `.${s}` : s;
    else out += `[${JSON.stringify(String(s))}]`;
  }
  return out || "(top level)";
}

// ───────────────────────────── the error ─────────────────────────────

function configError(name: string, problems: string[], cause?: unknown, note?: string): CutoverError {
  const count = problems.length;
  const header = `${name} is not ready — ${count} problem${count === 1 ? "" : "s"}${note ? ` (${note})` : ""}:`;
  return new CutoverError(ErrorCode.ConfigInvalid, [header, ...problems].join("\n"), {
    details: { problems, file: name },
    hint: `Fix ${count === 1 ? "it" : "them"} in ${name} and start again; ${EXAMPLE_NAME} shows every setting with the plan's values.`,
    cause,
  });
}

// ───────────────────────────── YAML ─────────────────────────────

function yamlMessage(message: string): string {
  // prettyErrors is off, but keep only the first sentence in case a context excerpt follows.
  return message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
}

function yamlHint(code: string): string {
  switch (code) {
    case "DUPLICATE_KEY":
      return "a key appears twice in the same block; keep one";
    case "TAB_AS_INDENT":
      return "indent with spaces, not tabs";
    case "MISSING_CHAR":
      return "a quote or bracket is not closed; close it on the same line";
    case "BAD_INDENT":
    case "BLOCK_AS_IMPLICIT_KEY":
    case "MULTILINE_IMPLICIT_KEY":
      return "check the indentation here (keys of one block line up; nested keys are indented by 2 spaces more)";
    case "ALIAS_PROPS":
    case "BAD_ALIAS":
      return "check the anchor (&name) and alias (*name) here";
    default:
      return "check the indentation and quoting around this line (put text containing ': ' or ' #' in quotes)";
  }
}

/** The line (1-based) of the deepest node that exists along the path, or undefined. */
function lineOf(doc: Document, lines: LineCounter, segs: Seg[]): number | undefined {
  let node: unknown = doc.contents;
  let offset: number | undefined = isMap(node) || isSeq(node) ? node.range?.[0] : undefined;
  for (const seg of segs) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      if (isScalar(pair.key) && pair.key.range) offset = pair.key.range[0];
      node = pair.value;
    } else if (isSeq(node) && typeof seg === "number") {
      const item = node.items[seg];
      if (!item) break;
      const range = (item as { range?: [number, number, number] }).range;
      if (range) offset = range[0];
      node = item;
    } else break;
  }
  return offset === undefined ? undefined : lines.linePos(offset).line;
}

// ───────────────────────────── secrets ─────────────────────────────

function findInlineSecrets(raw: Rec): Problem[] {
  const out: Problem[] = [];
  const walk = (value: unknown, at: Seg[]) => {
    if (Array.isArray(value)) {
      for (const [i, v] of value.entries()) walk(v, [...at, i]);
      return;
    }
    if (isRec(value)) {
      for (const [key, v] of Object.entries(value)) {
        const here = [...at, key];
        const literal = (typeof v === "string" && v.trim() !== "") || typeof v === "number";
        if (literal && isSecretKeyName(key)) {
          out.push({ path: here, kind: "file", text: `${formatPath(here)}: ${secretKeyAdvice(key, at)}` });
        } else if (typeof v === "string" && secretValueKind(v)) {
          const kind = secretValueKind(v)!;
          const fix =
            key.endsWith("Env") || key === "env"
              ? "this field takes the NAME of an environment variable (e.g. NEON_DATABASE_URL); put the secret itself in Cutover's environment"
              : "put it in an environment variable and name that variable here instead (a field ending in Env, or { env: NAME })";
          out.push({
            path: here,
            kind: "file",
            text: `${formatPath(here)}: looks like ${kind} written into the file — ${fix}; the file must never hold a secret`,
          });
        } else walk(v, here);
      }
    }
  };
  walk(raw, []);
  return out;
}

function secretKeyAdvice(key: string, parent: Seg[]): string {
  const what = "looks like a secret written into the file, which must never hold one";
  // In the app's environment (KEY: value), the fix is `{ env: NAME }`.
  if (/^[A-Z0-9_]+$/.test(key)) {
    return `${what} — write \`${key}: { env: ${key} }\` and set ${key} in Cutover's environment`;
  }
  const envKeys = keysAt(parent).filter((k) => k.endsWith("Env"));
  const best = closeMatches(`${key}Env`, envKeys, 1)[0] ?? `${key}Env`;
  return `${what} — remove it, write \`${best}: SOME_VARIABLE\` (the NAME of an environment variable) and set that variable in Cutover's environment`;
}

// ───────────────────────────── schema issues ─────────────────────────────

type Issue = z.core.$ZodIssue;

function get(raw: unknown, segs: readonly PropertyKey[]): unknown {
  let v: unknown = raw;
  for (const s of segs) {
    if (Array.isArray(v) && typeof s === "number") v = v[s];
    else if (isRec(v) && typeof s === "string") v = v[s];
    else return undefined;
  }
  return v;
}

function startsWith(path: readonly PropertyKey[], prefix: readonly PropertyKey[]): boolean {
  return prefix.length <= path.length && prefix.every((s, i) => s === path[i]);
}

function issueProblems(issues: readonly Issue[], raw: Rec, secretPaths: Seg[][]): Problem[] {
  const flat: Array<{ issue: Issue; path: Seg[] }> = [];
  const flatten = (list: readonly Issue[], prefix: Seg[]) => {
    for (const issue of list) {
      const full = [...prefix, ...(issue.path as Seg[])];
      if (issue.code === "invalid_union" && issue.errors.length > 0) {
        const branch = matchingBranch(issue.errors);
        if (branch) {
          flatten(branch, full);
          continue;
        }
      }
      flat.push({ issue, path: full });
    }
  };
  flatten(issues, []);

  const out: Problem[] = [];
  const suppressedMissing = new Set<string>();
  // Misspelled keys first: a did-you-mean explains the "missing" issue of the key it meant.
  for (const { issue, path: at } of flat) {
    if (issue.code !== "unrecognized_keys") continue;
    const allowed = keysAt(at);
    for (const key of issue.keys) {
      const here = [...at, key];
      if (secretPaths.some((s) => startsWith(here, s))) continue;
      const guess = closeMatches(key, allowed, 1)[0];
      if (guess !== undefined) {
        const missing = flat.some(
          (f) =>
            f.issue.code === "invalid_type" &&
            formatPath(f.path) === formatPath([...at, guess]) &&
            get(raw, f.path) === undefined,
        );
        if (missing) suppressedMissing.add(formatPath([...at, guess]));
        out.push({
          path: here,
          kind: "file",
          text: `${formatPath(here)}: unknown setting — did you mean \`${guess}\`?${missing ? ` (\`${guess}\` is required here)` : ""}`,
        });
      } else {
        out.push({
          path: here,
          kind: "file",
          text: `${formatPath(here)}: unknown setting — remove it or check the spelling; allowed here: ${allowed.join(", ") || "nothing"}`,
        });
      }
    }
  }
  for (const { issue, path: at } of flat) {
    if (issue.code === "unrecognized_keys") continue;
    if (secretPaths.some((s) => startsWith(at, s))) continue;
    if (suppressedMissing.has(formatPath(at)) && get(raw, at) === undefined) continue;
    out.push({ path: at, kind: "file", text: `${formatPath(at)}: ${describeIssue(issue, at, raw)}` });
  }
  return out;
}

/**
 * The union branch the value was evidently meant for: not one whose type did not match at all,
 * preferring one without unknown keys, then the one with the fewest issues.
 */
function matchingBranch(branches: readonly (readonly Issue[])[]): readonly Issue[] | undefined {
  let candidates = branches.filter((b) => !b.every((i) => i.code === "invalid_type" && i.path.length === 0));
  const known = candidates.filter((b) => !b.some((i) => i.code === "unrecognized_keys"));
  if (known.length > 0) candidates = known;
  const fewest = Math.min(...candidates.map((b) => b.length));
  const best = candidates.filter((b) => b.length === fewest);
  return best.length === 1 ? best[0] : undefined;
}

function typeName(v: unknown): string {
  if (v === null) return "nothing (an empty value)";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "string") return `text (${show(v)})`;
  if (typeof v === "number") return `a number (${show(v)})`;
  if (typeof v === "boolean") return `true/false (${show(v)})`;
  if (typeof v === "object") return "a mapping";
  return typeof v;
}

const EXPECTED: Record<string, string> = {
  string: "text",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  object: "a mapping (key: value lines indented under it)",
  array: "a list (- item lines, or [a, b])",
  record: "a mapping (key: value lines indented under it)",
};

function describeIssue(issue: Issue, at: Seg[], raw: Rec): string {
  const value = get(raw, at);
  const message = issue.message;
  // A field that names a variable or a secret never has its value repeated back.
  const last = at[at.length - 1];
  const hidden =
    typeof last === "string" && (last === "env" || last.endsWith("Env") || isSecretKeyName(last));
  const shown = (v: unknown) => (hidden ? "this value" : show(v));

  if (issue.code === "invalid_type" && value === undefined) return missingMessage(at, issue.expected);

  // Hand-written messages carry their own fix ("what — how").
  if (message.includes(" — ")) {
    const scalar = typeof value === "string" || typeof value === "number" || typeof value === "boolean";
    const prefix = scalar && /^is (not|below|above|too|reserved)\b/.test(message) ? `${shown(value)} ` : "";
    return `${prefix}${message}`;
  }

  switch (issue.code) {
    case "invalid_type": {
      const expected = EXPECTED[issue.expected] ?? issue.expected;
      let fix = `write ${expected}`;
      if (issue.expected === "string" && (typeof value === "number" || typeof value === "boolean")) {
        fix = hidden
          ? "put it in quotes so it stays text"
          : `put it in quotes so it stays text: "${String(value)}"`;
      } else if (
        (issue.expected === "number" || issue.expected === "int") &&
        typeof value === "string" &&
        value.trim() !== "" &&
        !Number.isNaN(Number(value))
      ) {
        fix = hidden ? "remove the quotes" : `remove the quotes: ${value.trim()}`;
      } else if (issue.expected === "int" && typeof value === "number") {
        fix = `use a whole number, e.g. ${Math.round(value)}`;
      } else if (issue.expected === "boolean" && typeof value === "string") {
        fix = "write true or false, without quotes";
      } else if (value === null) {
        fix = `fill it in (${expected}) or remove the key`;
      }
      return `expected ${expected}, got ${hidden ? typeName(value).replace(/ \(.*\)$/, "") : typeName(value)} — ${fix}`;
    }
    case "invalid_value": {
      const allowed = issue.values.map((v) => String(v));
      if (allowed.length === 1) return `${shown(value)} is not allowed here — write ${allowed[0]}`;
      const guess = typeof value === "string" ? didYouMean(value, allowed) : "";
      return `${shown(value)} is not one of the allowed values — use one of: ${allowed.join(", ")}${guess}`;
    }
    case "invalid_union": {
      if ("note" in issue && issue.note === "No matching discriminator") {
        const options = ((issue as { options?: unknown[] }).options ?? []).map(String);
        if (value === undefined) return `missing — add it: one of ${options.join(", ")}`;
        return `${shown(value)} is not one of the allowed values — use one of: ${options.join(", ")}${typeof value === "string" ? didYouMean(value, options) : ""}`;
      }
      return `${shown(value)} does not have the expected shape — compare it with ${EXAMPLE_NAME}`;
    }
    case "too_small": {
      const min = Number(issue.minimum);
      if (issue.origin === "array")
        return `has ${Array.isArray(value) ? value.length : 0} entries — list at least ${min}`;
      if (issue.origin === "string")
        return min <= 1
          ? "is empty — fill it in or remove the key"
          : `is too short — use at least ${min} characters`;
      return issue.inclusive
        ? `${shown(value)} is below the minimum — use ${min} or more`
        : `${shown(value)} is too small — use a number above ${min}`;
    }
    case "too_big": {
      const max = Number(issue.maximum);
      if (issue.origin === "array")
        return `has ${Array.isArray(value) ? value.length : 0} entries — list at most ${max}`;
      if (issue.origin === "string") return `is too long — use at most ${max} characters`;
      return issue.inclusive
        ? `${shown(value)} is above the maximum — use ${max} or less`
        : `${shown(value)} is too big — use a number below ${max}`;
    }
    case "invalid_format":
      return `${shown(value)} is not a valid ${issue.format} — see ${EXAMPLE_NAME} for the expected form`;
    case "invalid_key": {
      const inner = issue.issues[0]?.message ?? "";
      return inner.includes(" — ")
        ? `the key ${inner.startsWith("is ") ? `${show(at[at.length - 1])} ` : ""}${inner}`
        : `is not an allowed key — see ${EXAMPLE_NAME}`;
    }
    case "not_multiple_of":
      return `${shown(value)} is not a multiple of ${String(issue.divisor)} — round it`;
    default:
      return `${message} — compare it with ${EXAMPLE_NAME}`;
  }
}

function missingMessage(at: Seg[], expected: string): string {
  const key = at[at.length - 1];
  const example = exampleAt(at);
  if (example !== undefined && typeof key === "string") {
    if (
      example === null ||
      typeof example !== "object" ||
      (Array.isArray(example) && example.every((e) => typeof e !== "object"))
    ) {
      const snippet = `${key}: ${stringify(example, { flowCollectionPadding: false, collectionStyle: "flow" }).trim()}`;
      if (!snippet.includes("\n") && snippet.length <= 100) return `missing — add it, e.g. \`${snippet}\``;
    }
    return `missing — add the \`${key}:\` block (copy it from ${EXAMPLE_NAME} and adjust the values)`;
  }
  return `missing — add it (${EXPECTED[expected] ?? expected})`;
}

// ───────────────────────────── the example, for "e.g." ─────────────────────────────

let exampleCache: unknown;

function example(): unknown {
  if (exampleCache !== undefined) return exampleCache;
  try {
    const file = fileURLToPath(new URL(`../../${EXAMPLE_NAME}`, import.meta.url));
    exampleCache = parseDocument(readFileSync(file, "utf8")).toJS() ?? null;
  } catch {
    exampleCache = null;
  }
  return exampleCache;
}

function exampleAt(at: Seg[]): unknown {
  let v: unknown = example();
  for (const s of at) {
    if (Array.isArray(v)) v = v[typeof s === "number" && s < v.length ? s : 0];
    else if (isRec(v) && typeof s === "string") v = v[s];
    else return undefined;
    if (v === undefined) return undefined;
  }
  return v;
}

// ───────────────────────────── the schema, for "did you mean" ─────────────────────────────

interface SchemaNode {
  _zod: {
    def: {
      type: string;
      shape?: Record<string, SchemaNode>;
      innerType?: SchemaNode;
      in?: SchemaNode;
      element?: SchemaNode;
      valueType?: SchemaNode;
      options?: SchemaNode[];
      getter?: () => SchemaNode;
    };
  };
}

function unwrap(s: SchemaNode): SchemaNode[] {
  const d = s._zod.def;
  switch (d.type) {
    case "optional":
    case "nullable":
    case "default":
    case "prefault":
    case "nonoptional":
    case "readonly":
    case "catch":
      return d.innerType ? unwrap(d.innerType) : [];
    case "pipe":
      return d.in ? unwrap(d.in) : [];
    case "lazy":
      return d.getter ? unwrap(d.getter()) : [];
    case "union":
      return (d.options ?? []).flatMap(unwrap);
    default:
      return [s];
  }
}

/** The keys an object at `at` may have (from every schema that can sit there). */
function keysAt(at: Seg[]): string[] {
  let current = unwrap(MigrationFileSchema as unknown as SchemaNode);
  for (const seg of at) {
    const next: SchemaNode[] = [];
    for (const s of current) {
      const d = s._zod.def;
      if (d.type === "object" && typeof seg === "string" && d.shape?.[seg])
        next.push(...unwrap(d.shape[seg]));
      else if (d.type === "array" && typeof seg === "number" && d.element) next.push(...unwrap(d.element));
      else if (d.type === "record" && d.valueType) next.push(...unwrap(d.valueType));
    }
    current = next;
  }
  return [
    ...new Set(
      current.flatMap((s) => (s._zod.def.type === "object" ? Object.keys(s._zod.def.shape ?? {}) : [])),
    ),
  ];
}

// ───────────────────────────── runbook and environment ─────────────────────────────

function unknownStepTypes(raw: Rec, known: readonly string[]): Problem[] {
  const out: Problem[] = [];
  const phases = get(raw, ["runbook", "phases"]);
  if (!Array.isArray(phases)) return out;
  phases.forEach((phase, p) => {
    const steps = get(phase, ["steps"]);
    if (!Array.isArray(steps)) return;
    steps.forEach((step, s) => {
      const uses = get(step, ["uses"]);
      if (typeof uses !== "string" || known.includes(uses)) return;
      const here: Seg[] = ["runbook", "phases", p, "steps", s, "uses"];
      const guess = closeMatches(uses, known, 1)[0];
      out.push({
        path: here,
        kind: "file",
        text: `${formatPath(here)}: unknown step type ${show(uses)} — ${guess ? `did you mean \`${guess}\`? ` : ""}known step types: ${[...known].sort().join(", ")}`,
      });
    });
  });
  return out;
}

/** What the variable behind a field should hold, for the message. */
function envPurpose(ref: EnvRef): string {
  const p = ref.path;
  if (p.endsWith("database.urlEnv"))
    return "the source PostgreSQL connection URL (postgres://user:password@host/db?sslmode=require)";
  if (p.endsWith("accessKeyIdEnv")) return "the access key id of the source bucket's API token";
  if (p.endsWith("secretAccessKeyEnv")) return "the secret access key that goes with it";
  if (p.endsWith("masterPasswordEnv"))
    return 'the RDS master password Cutover sets (8+ characters, no / @ " or space)';
  if (p.endsWith("sshKeyPathEnv")) return "the path of the SSH private key file for the Lightsail key pair";
  if (p.endsWith("deployKeyPathEnv")) return "the path of the deploy key for the repository";
  if (p.endsWith("dnsApiTokenEnv")) return "a Cloudflare API token limited to Zone → DNS → Edit";
  if (p.endsWith("apiTokenEnv"))
    return "a Cloudflare API token (My Profile → API Tokens) with Zone → DNS → Edit and Account → Cloudflare Pages → Edit";
  if (p.endsWith("bearerTokenEnv")) return "a token of a test user the check signs in as";
  const m = /appEnv\.vars\.([A-Z0-9_]+)\.env$/.exec(p);
  if (m) return `the value of ${m[1]} in the app's environment on the host`;
  return "the value this setting needs";
}

function missingEnv(file: unknown, env: NodeJS.ProcessEnv): Problem[] {
  const byVar = new Map<string, EnvRef[]>();
  for (const ref of collectEnvRefs(file)) byVar.set(ref.variable, [...(byVar.get(ref.variable) ?? []), ref]);
  const out: Problem[] = [];
  for (const [variable, refs] of byVar) {
    const value = env[variable];
    if (value !== undefined && value.trim() !== "") continue;
    const first = refs[0]!;
    const also =
      refs.length > 1
        ? ` (also needed by ${refs
            .slice(1)
            .map((r) => r.path)
            .join(", ")})`
        : "";
    const state = value === undefined ? "is not set" : "is empty";
    out.push({
      path: [],
      kind: "env",
      text: `${first.path}: environment variable ${variable} ${state}${also} — set it in Cutover's environment (e.g. export ${variable}=…); it holds ${envPurpose(first)}`,
    });
  }
  return out;
}
