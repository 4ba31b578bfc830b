import { Writable } from "node:stream";
import pino, { type Logger } from "pino";

/**
 * A JSON logger that cannot print a secret: the values of the given secrets are replaced by
 * "[secret]" in every line before it is written, whatever field they hide in, and the usual
 * credential-shaped keys are redacted as well.
 */
export function createLogger(opts: {
  secrets: readonly string[];
  level?: string;
  destination?: NodeJS.WritableStream;
}): Logger {
  const secrets = opts.secrets.filter((s) => s.length >= 6).sort((a, b) => b.length - a.length);
  const out = opts.destination ?? process.stdout;
  const scrub = (line: string) => {
    let clean = line;
    for (const s of secrets) clean = clean.split(s).join("[secret]");
    // a password inside a connection URL
    return clean.replace(/(postgres(?:ql)?:\/\/[^:/@\s"]+:)[^@\s"]+@/g, "$1[secret]@");
  };
  const stream = new Writable({
    write(chunk, _enc, cb) {
      out.write(scrub(chunk.toString()));
      cb();
    },
  });
  return pino(
    {
      level: opts.level ?? process.env.LOG_LEVEL ?? "info",
      redact: {
        paths: [
          "*.password",
          "*.token",
          "*.secret",
          "*.authorization",
          "*.headers.authorization",
          "*.connectionString",
          "password",
          "token",
        ],
        censor: "[secret]",
      },
    },
    stream,
  );
}

/** Bolt's logger interface, writing through pino (so Bolt's lines are JSON and scrubbed too). */
export function boltLogger(log: Logger): import("@slack/bolt").Logger {
  const child = log.child({ component: "bolt" });
  let level = "warn" as import("@slack/bolt").LogLevel;
  const text = (msg: unknown[]) =>
    msg
      .map((m) => (m instanceof Error ? m.message : typeof m === "string" ? m : JSON.stringify(m)))
      .join(" ");
  return {
    debug: (...msg: unknown[]) => child.debug(text(msg)),
    info: (...msg: unknown[]) => child.info(text(msg)),
    warn: (...msg: unknown[]) => child.warn(text(msg)),
    error: (...msg: unknown[]) => child.error(text(msg)),
    setLevel: (l) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => undefined,
  };
}
