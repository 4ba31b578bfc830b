import { tailLines } from "../../../cloud/ssh.js";
import { CutoverError, ErrorCode } from "../../../errors.js";
import type { StepContext } from "../../define-step.js";

/** A remote script's output: relayed as progress with secrets redacted, and the error when it fails. */

/** Replaces every secret value in text with `[redacted]` (values shorter than 4 characters are left). */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join("[redacted]");
  return out;
}

/**
 * Streams a remote command's output to the run: each complete line goes to the step's log, the
 * latest one (trimmed) to its progress line; `::cutover:: section X` markers become "section k of
 * n", and as each section ends its last lines go into the run's thread (trimmed, one message
 * per section). Secrets are redacted before anything leaves.
 */
export class OutputRelay {
  private partial = "";
  private section = "";
  private lastLine = "";
  private readonly lines: string[] = [];
  /** lines of the section running now, for its thread excerpt */
  private sectionLines: string[] = [];
  private sectionCount = 0;

  /** lines of each section shown in the thread */
  static readonly EXCERPT_LINES = 8;

  constructor(
    private readonly ctx: Pick<StepContext, "log" | "progress" | "report">,
    private readonly opts: { sections?: readonly string[]; secrets?: readonly string[]; label: string },
  ) {}

  /** feed for ExecOptions.onOutput */
  readonly onOutput = (text: string): void => {
    const all = this.partial + text;
    const parts = all.split(/\r?\n/);
    this.partial = parts.pop() ?? "";
    for (const raw of parts) this.line(raw);
  };

  private line(raw: string): void {
    const line = redact(raw, this.opts.secrets ?? []).replace(/\s+$/, "");
    if (!line) return;
    if (!line.startsWith("::cutover::")) {
      this.lines.push(line);
      if (this.lines.length > 200) this.lines.shift();
      this.sectionLines.push(line);
      this.sectionCount++;
      if (this.sectionLines.length > OutputRelay.EXCERPT_LINES) this.sectionLines.shift();
    }
    this.ctx.log.info({ host: this.opts.label, line: line.slice(0, 500) }, "remote output");
    const m = /^::cutover:: section (\S+)/.exec(line);
    if (m) {
      this.flushSection();
      this.section = m[1]!;
    } else if (!line.startsWith("::cutover::")) this.lastLine = line.slice(0, 150);
    const sections = this.opts.sections ?? [];
    const index = sections.indexOf(this.section);
    this.ctx.progress({
      done: index >= 0 ? index + 1 : 0,
      ...(sections.length > 0 ? { total: sections.length, unit: "sections" } : {}),
      message: `${this.opts.label}${this.section ? ` · ${this.section}` : ""}${this.lastLine ? ` · ${this.lastLine}` : ""}`,
    });
  }

  /** Posts what is left of the last section's output to the thread; call when the command ends. */
  finish(): void {
    const rest = redact(this.partial, this.opts.secrets ?? []).trim();
    if (rest) {
      this.sectionLines.push(rest.slice(0, 300));
      this.sectionCount++;
    }
    this.partial = "";
    this.flushSection();
  }

  private flushSection(): void {
    if (!this.ctx.report || this.sectionLines.length === 0) {
      this.sectionLines = [];
      this.sectionCount = 0;
      return;
    }
    const shown = this.sectionLines.map((l) => (l.length > 200 ? `${l.slice(0, 199)}…` : l));
    const skipped = this.sectionCount - shown.length;
    const title = `${this.opts.label}${this.section ? ` · ${this.section}` : ""}`;
    this.ctx.report({
      text: `${title} (${this.sectionCount} line${this.sectionCount === 1 ? "" : "s"}${skipped > 0 ? `, last ${shown.length}` : ""}):\n\`\`\`\n${shown.join("\n").replace(/```/g, "ˋˋˋ")}\n\`\`\``,
    });
    this.sectionLines = [];
    this.sectionCount = 0;
  }

  /** The section running when output stopped. */
  get currentSection(): string {
    return this.section;
  }

  /** The last `n` lines seen (redacted). */
  tail(n: number): string {
    return tailLines([...this.lines, redact(this.partial, this.opts.secrets ?? [])].join("\n"), n);
  }
}

/**
 * The error for a script that exited non-zero: the failing command (from the script's ERR
 * trap), its section, and the last lines of output.
 */
export function scriptFailure(
  what: string,
  result: { code: number | null; stdout: string; stderr: string },
  relay: OutputRelay,
  secrets: readonly string[],
): CutoverError {
  const all = redact(`${result.stdout}\n${result.stderr}`, secrets);
  const trap = /::cutover:: failed line=(\d+) exit=(\d+) command=(.*)$/m.exec(all);
  const command = trap ? trap[3]!.trim() : undefined;
  const tail = relay.tail(15);
  const section = relay.currentSection;
  return new CutoverError(
    ErrorCode.RemoteCommandFailed,
    `${what} failed${section ? ` in section ${section}` : ""}${command ? `: \`${command}\` exited ${trap![2]}` : ` with exit code ${result.code ?? "none (killed)"}`}.\nLast lines:\n${tail || "(no output)"}`,
    { details: { section, command, code: result.code } },
  );
}
