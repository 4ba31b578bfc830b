import type { AddressInfo } from "node:net";
import { posix } from "node:path";
import ssh2, { type Connection, type ParsedKey, type SFTPWrapper } from "ssh2";
import { sha256Fingerprint } from "../cloud/ssh.js";
import { generateEd25519 } from "./ssh-keys.js";

const { Server, utils } = ssh2;
const { STATUS_CODE } = utils.sftp;

/** How the fake host answers one command. */
export interface FakeReply {
  stdout?: string;
  stderr?: string;
  code?: number;
  /** streamed in pieces this far apart, so a test sees output arrive while it runs */
  chunkDelayMs?: number;
  /** never answers (until the client gives up) */
  hang?: boolean;
}

export type FakeResponder = FakeReply | ((command: string, host: FakeHost) => FakeReply | Promise<FakeReply>);

export interface FakeFile {
  data: Buffer;
  mode: number;
  owner?: string;
}

export interface FakeHostOptions {
  /** OpenSSH public keys ("ssh-ed25519 AAAA…") allowed to log in */
  authorizedKeys: string[];
  /** the user names that may log in (default: any) */
  users?: string[];
  /** the host's private key (OpenSSH format); generated when absent */
  hostKey?: string;
}

/**
 * An app host for tests and rehearsals: an in-process SSH server (ssh2's `Server`) that checks
 * the client's key, records every command and SFTP upload, and answers commands from a table of
 * responders (first match wins; unmatched commands exit 0 silently). It understands the few
 * commands Cutover's host steps rely on for files — `mktemp -d`, `install -m … SRC DEST`,
 * `rm -f`/`rm -rf`, `cat`, `readlink`, `stat -c %a` — against its in-memory file table, so a
 * test can assert what the host holds afterwards (the .env's content and mode).
 *
 * @example
 * const host = new FakeHost({ authorizedKeys: [publicKey] });
 * host.on(/setup\.sh$/, { stdout: "::cutover:: section packages\n", code: 0 });
 * await host.start();
 */
export class FakeHost {
  readonly commands: Array<{ user: string; command: string }> = [];
  readonly files = new Map<string, FakeFile>();
  readonly links = new Map<string, string>();
  private readonly responders: Array<{ match: RegExp; reply: FakeResponder }> = [];
  private hostKey: string;
  private server: InstanceType<typeof Server> | undefined;
  private port_ = 0;
  private readonly clients = new Set<Connection>();
  private tmpCounter = 0;

  constructor(private readonly opts: FakeHostOptions) {
    this.hostKey = opts.hostKey ?? FakeHost.newHostKey();
  }

  /** A fresh ed25519 host key (OpenSSH private key text). */
  static newHostKey(): string {
    return generateEd25519().private;
  }

  /** The SHA256 fingerprint clients see, as `ssh-keygen -lf` prints it. */
  get fingerprint(): string {
    const key = utils.parseKey(this.hostKey) as ParsedKey;
    return sha256Fingerprint(key.getPublicSSH());
  }

  get port(): number {
    return this.port_;
  }

  /** Adds a responder; later ones are tried first. */
  on(match: RegExp | string, reply: FakeResponder): this {
    const re = typeof match === "string" ? new RegExp(match.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) : match;
    this.responders.unshift({ match: re, reply });
    return this;
  }

  /** The commands received that match, in order. */
  ran(match: RegExp): string[] {
    return this.commands.map((c) => c.command).filter((c) => match.test(c));
  }

  /** A file's text, or undefined. */
  text(path: string): string | undefined {
    return this.files.get(path)?.data.toString("utf8");
  }

  async start(port = 0): Promise<number> {
    this.server = new Server({ hostKeys: [this.hostKey] }, (client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(port, "127.0.0.1", () => resolve());
    });
    this.port_ = (this.server.address() as AddressInfo).port;
    return this.port_;
  }

  async stop(): Promise<void> {
    for (const c of this.clients) c.end();
    this.clients.clear();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Restarts on the same port with another host key: what a rebuilt (or impostor) host looks like. */
  async rotateHostKey(): Promise<void> {
    const port = this.port_;
    await this.stop();
    this.hostKey = FakeHost.newHostKey();
    await this.start(port);
  }

  private accept(client: Connection): void {
    this.clients.add(client);
    // @types/ssh2 lacks the server connection's setNoDelay; without it every exchange waits out delayed ACKs
    (client as unknown as { setNoDelay(on: boolean): void }).setNoDelay(true);
    let user = "";
    const allowed = this.opts.authorizedKeys.map((k) => utils.parseKey(k) as ParsedKey);
    client.on("error", () => undefined);
    client.on("close", () => this.clients.delete(client));
    client.on("authentication", (ctx) => {
      if (this.opts.users && !this.opts.users.includes(ctx.username)) return ctx.reject(["publickey"]);
      if (ctx.method !== "publickey") return ctx.reject(["publickey"]);
      const key = allowed.find((k) => k.type === ctx.key.algo && k.getPublicSSH().equals(ctx.key.data));
      if (!key) return ctx.reject(["publickey"]);
      if (ctx.signature && ctx.blob && key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true)
        return ctx.reject(["publickey"]);
      user = ctx.username;
      ctx.accept();
    });
    client.on("ready", () => {
      client.on("session", (acceptSession) => {
        const session = acceptSession();
        session.on("exec", (acceptExec, _reject, info) => {
          const stream = acceptExec();
          this.commands.push({ user, command: info.command });
          void this.answer(info.command).then(async (reply) => {
            if (reply.hang) return;
            const send = async (text: string | undefined, err: boolean) => {
              if (!text) return;
              const pieces = reply.chunkDelayMs ? text.split(/(?<=\n)/) : [text];
              for (const piece of pieces) {
                if (err) stream.stderr.write(piece);
                else stream.write(piece);
                if (reply.chunkDelayMs) await new Promise((r) => setTimeout(r, reply.chunkDelayMs));
              }
            };
            await send(reply.stdout, false);
            await send(reply.stderr, true);
            stream.exit(reply.code ?? 0);
            stream.end();
          });
        });
        session.on("sftp", (acceptSftp) => this.serveSftp(acceptSftp(), user));
      });
    });
  }

  private async answer(command: string): Promise<FakeReply> {
    for (const r of this.responders) {
      if (r.match.test(command)) return typeof r.reply === "function" ? r.reply(command, this) : r.reply;
    }
    return this.builtin(command);
  }

  /** The few file commands the host steps use, against the in-memory file table. */
  private builtin(command: string): FakeReply {
    const words = shellWords(command.replace(/^sudo -n /, ""));
    const cmd = words[0];
    if (cmd === "mktemp" && words.includes("-d"))
      return { stdout: `/tmp/cutover.fake${++this.tmpCounter}\n` };
    if (cmd === "install") {
      const mode = Number.parseInt(words[words.indexOf("-m") + 1] ?? "644", 8);
      const owner = words.includes("-o") ? words[words.indexOf("-o") + 1] : undefined;
      const args = words
        .slice(1)
        .filter((w, i, all) => !w.startsWith("-") && !["-m", "-o", "-g"].includes(all[i - 1] ?? ""));
      const [src, dest] = [args[0] ?? "", args[1] ?? ""];
      const file = this.files.get(src);
      if (!file) return { stderr: `install: cannot stat '${src}': No such file or directory\n`, code: 1 };
      this.files.set(dest, { data: file.data, mode, ...(owner ? { owner } : {}) });
      const rm = words.indexOf("&&");
      if (rm > 0 && words[rm + 1] === "rm") for (const p of words.slice(rm + 3)) this.files.delete(p);
      return {};
    }
    if (cmd === "rm") {
      for (const p of words.slice(1).filter((w) => !w.startsWith("-"))) {
        for (const k of [...this.files.keys()]) if (k === p || k.startsWith(`${p}/`)) this.files.delete(k);
      }
      return {};
    }
    if (cmd === "cat") {
      const f = this.files.get(words[1] ?? "");
      return f
        ? { stdout: f.data.toString("utf8") }
        : { stderr: "No such file\n", code: command.includes("|| true") ? 0 : 1 };
    }
    if (cmd === "readlink")
      return { stdout: this.links.has(words[1] ?? "") ? `${this.links.get(words[1] ?? "")}\n` : "" };
    if (cmd === "stat" && words[1] === "-c" && words[2] === "%a") {
      const f = this.files.get(words[3] ?? "");
      return f ? { stdout: `${f.mode.toString(8)}\n` } : { code: 1, stderr: "No such file\n" };
    }
    return {};
  }

  private serveSftp(sftp: SFTPWrapper, _user: string): void {
    const handles = new Map<string, { path: string; chunks: Buffer[]; mode: number }>();
    let next = 0;
    const ok = (id: number) => sftp.status(id, STATUS_CODE.OK);
    sftp.on("OPEN", (id, filename, _flags, attrs) => {
      const h = String(next++);
      handles.set(h, { path: filename, chunks: [], mode: attrs.mode ?? 0o644 });
      sftp.handle(id, Buffer.from(h));
    });
    sftp.on("WRITE", (id, handle, offset, data) => {
      const h = handles.get(handle.toString());
      if (!h) return sftp.status(id, STATUS_CODE.FAILURE);
      const cur = Buffer.concat(h.chunks);
      const out = Buffer.alloc(Math.max(cur.length, offset + data.length));
      cur.copy(out);
      data.copy(out, offset);
      h.chunks = [out];
      ok(id);
    });
    sftp.on("CLOSE", (id, handle) => {
      const h = handles.get(handle.toString());
      if (h) {
        this.files.set(h.path, { data: Buffer.concat(h.chunks), mode: h.mode & 0o7777 });
        handles.delete(handle.toString());
      }
      ok(id);
    });
    const setMode = (path: string, mode: number | undefined) => {
      const f = this.files.get(path);
      if (f && mode !== undefined) f.mode = mode & 0o7777;
      else {
        for (const h of handles.values()) if (h.path === path && mode !== undefined) h.mode = mode;
      }
    };
    sftp.on("SETSTAT", (id, path, attrs) => {
      setMode(path, attrs.mode);
      ok(id);
    });
    sftp.on("FSETSTAT", (id, handle, attrs) => {
      const h = handles.get(handle.toString());
      if (h && attrs.mode !== undefined) h.mode = attrs.mode;
      ok(id);
    });
    sftp.on("REMOVE", (id, path) => {
      this.files.delete(path);
      ok(id);
    });
    sftp.on("RENAME", (id, from, to) => {
      const f = this.files.get(from);
      if (!f) return sftp.status(id, STATUS_CODE.NO_SUCH_FILE);
      if (this.files.has(to)) return sftp.status(id, STATUS_CODE.FAILURE);
      this.files.set(to, f);
      this.files.delete(from);
      ok(id);
    });
    const stat = (id: number, path: string) => {
      const f = this.files.get(path);
      if (!f) return sftp.status(id, STATUS_CODE.NO_SUCH_FILE);
      sftp.attrs(id, { mode: 0o100000 | f.mode, size: f.data.length, uid: 0, gid: 0, atime: 0, mtime: 0 });
    };
    sftp.on("STAT", stat);
    sftp.on("LSTAT", stat);
    sftp.on("FSTAT", (id, handle) => {
      const h = handles.get(handle.toString());
      if (!h) return sftp.status(id, STATUS_CODE.FAILURE);
      sftp.attrs(id, {
        mode: 0o100000 | h.mode,
        size: Buffer.concat(h.chunks).length,
        uid: 0,
        gid: 0,
        atime: 0,
        mtime: 0,
      });
    });
    sftp.on("REALPATH", (id, path) => {
      const p = posix.resolve("/", path);
      sftp.name(id, [
        { filename: p, longname: p, attrs: { mode: 0o40755, size: 0, uid: 0, gid: 0, atime: 0, mtime: 0 } },
      ]);
    });
    sftp.on("MKDIR", (id) => ok(id));
  }
}

/** Splits a command line into words (single and double quotes, backslash escapes). */
export function shellWords(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quote === "'") {
      if (ch === "'") quote = undefined;
      else cur += ch;
    } else if (quote === '"') {
      if (ch === '"') quote = undefined;
      else if (ch === "\\" && i + 1 < line.length) cur += line[++i];
      else cur += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (ch === "\\" && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) out.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}
