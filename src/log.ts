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
