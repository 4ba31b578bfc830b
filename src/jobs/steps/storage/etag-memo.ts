import { appendFile, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";

/**
 * ETag pairs remembered from copies where the source's single-looking ETag was not the MD5 of
 * its content (the target's was): R2 multipart objects from before June 2023 and s3rver's
 * multipart objects. Without it every sync would copy those objects again. Kept in the data
 * directory, bounded; losing it only costs a copy.
 *
 * The file is a log, one JSON line per change (`["key","sourceEtag","targetEtag"]`, or `["key"]`
 * when forgotten): a checkpoint appends what changed since the last one instead of rewriting
 * every pair, and the log is compacted when it has grown well past what it holds. A torn last
 * line (a kill mid-append) is skipped.
 */
export class EtagMemo {
  private readonly pairs = new Map<string, [string, string]>();
  /** what changed since the last save: a pair, or null for forgotten */
  private readonly changes = new Map<string, [string, string] | null>();
  /** lines in the log file, for deciding when to compact it */
  private lines = 0;
  private legacy = false;
  static readonly LIMIT = 200_000;

  private constructor(
    private readonly file: string,
    private readonly legacyFile: string,
  ) {}

  static async load(dataDir: string, id: string): Promise<EtagMemo> {
    const base = path.join(dataDir, "storage", `etag-pairs-${id}`);
    const memo = new EtagMemo(`${base}.jsonl`, `${base}.json`);
    try {
      // the whole-JSON file of earlier versions: read once, replaced by the log at the next save
      const raw = JSON.parse(await readFile(memo.legacyFile, "utf8")) as Record<string, [string, string]>;
      for (const [k, v] of Object.entries(raw)) if (Array.isArray(v) && v.length === 2) memo.pairs.set(k, v);
      memo.legacy = true;
    } catch {
      // absent or unreadable
    }
    let text = "";
    try {
      text = await readFile(memo.file, "utf8");
    } catch {
      // absent: start empty
    }
    for (const line of text.split("\n")) {
      if (!line) continue;
      memo.lines++;
      let entry: unknown;
      try {
        entry = JSON.parse(line);
      } catch {
        continue; // a torn last line
      }
      if (!Array.isArray(entry) || typeof entry[0] !== "string") continue;
      if (entry.length === 3) memo.pairs.set(entry[0], [String(entry[1]), String(entry[2])]);
      else memo.pairs.delete(entry[0]);
    }
    return memo;
  }

  get size(): number {
    return this.pairs.size;
  }

  get(key: string): readonly [string, string] | undefined {
    return this.pairs.get(key);
  }

  remember(key: string, sourceEtag: string, targetEtag: string): void {
    if (this.pairs.size >= EtagMemo.LIMIT && !this.pairs.has(key)) return;
    const had = this.pairs.get(key);
    if (had && had[0] === sourceEtag && had[1] === targetEtag) return;
    this.pairs.set(key, [sourceEtag, targetEtag]);
    this.changes.set(key, [sourceEtag, targetEtag]);
  }

  forget(key: string): void {
    if (this.pairs.delete(key)) this.changes.set(key, null);
  }

  /** Appends what changed since the last save (compacting the log when it has grown too long). */
  async save(): Promise<void> {
    if (this.changes.size === 0 && !this.legacy) return;
    await mkdir(path.dirname(this.file), { recursive: true });
    if (this.legacy || this.lines + this.changes.size > 2 * this.pairs.size + 1_000) {
      this.changes.clear();
      const tmp = `${this.file}.${process.pid}.tmp`;
      const out: string[] = [];
      for (const [k, v] of this.pairs) out.push(JSON.stringify([k, v[0], v[1]]));
      await writeFile(tmp, out.length ? `${out.join("\n")}\n` : "");
      await rename(tmp, this.file);
      this.lines = out.length;
      if (this.legacy) await rm(this.legacyFile, { force: true });
      this.legacy = false;
      return;
    }
    const out: string[] = [];
    for (const [k, v] of this.changes) out.push(JSON.stringify(v ? [k, v[0], v[1]] : [k]));
    this.changes.clear();
    await appendFile(this.file, `${out.join("\n")}\n`);
    this.lines += out.length;
  }
}
