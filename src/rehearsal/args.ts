import { FAULTS } from "./faults.js";

/** What `npm run rehearse -- …` was asked to do. */
export interface RehearsalArgs {
  /** size of the generated source database, in MB (the media bucket grows with it) */
  sizeMb: number;
  /** print only the verdict */
  quiet: boolean;
  /** the step id to inject a failure into */
  fail: string | undefined;
  /** keep the world's data (databases, buckets, dumps) after the run, for a look around */
  keep: boolean;
  /** the moment the rehearsal's calendar starts at (the bot's clock); default the machine's */
  at: Date | undefined;
  /** the live shop's writes per second, from the data phase to the end */
  writesPerSecond: number;
  /** rehearse Phase 3 (the app host) and the verification list on a real Debian box instead */
  realHost: boolean;
  help: boolean;
}

export const DEFAULT_SIZE_MB = 3;
export const MAX_SIZE_MB = 20_000;
export const DEFAULT_WRITES_PER_SECOND = 20;
export const MAX_WRITES_PER_SECOND = 500;

export const USAGE = `npm run rehearse [-- options]

Runs the whole runbook of migration.example.yml end to end on this machine, live: a generated
shop database and media bucket, customers writing the whole time (the live shop), fakes of Lightsail, RDS, S3, CloudFront, Cloudflare and Slack, an SSH
host, the old and the new app. The real bot is driven through its Slack endpoint by two people
(an operator and an approver). Ends with a verdict and a report (Markdown and JSON).

Options:
  --size <MB>     size of the source database in MB (default ${DEFAULT_SIZE_MB}; the media bucket grows with it)
  --fail <step>   inject a failure into a step to see the recovery; one of:
${Object.entries(FAULTS)
  .map(([id, f]) => `                    ${id.padEnd(14)} ${f.what}`)
  .join("\n")}
  --writes-per-second <N>
                  the live shop's pace: customers order, pay, cancel and upload through whichever
                  app DNS points at, from the data phase to the end (default ${DEFAULT_WRITES_PER_SECOND})
  --quiet         print only the verdict
  --keep          keep the databases, the dump and the source bucket's files afterwards
  --at <time>     rehearse on another day: the bot's calendar starts at this moment and runs on
                  at the usual pace (cost month to date, KPI windows, the digest's "yesterday"),
                  e.g. --at 2026-11-30T23:59+08:00 for the last minute of a month in Singapore
  --real-host     instead: Phase 3 on a real host, as root: a Debian 12 box in its own namespaces
                  (debootstrap, built once and cached), set up by host.setup, the sample app
                  deployed by app.deploy behind Nginx and Gunicorn under Supervisor, then the
                  verification list, an auto-restart, a reboot, a second release and back (minutes)
  --help          this text

Environment: CUTOVER_DATA_DIR (where the report goes; default a temporary folder),
AWS_ENDPOINT_URL (a moto server to use; default: one is started), REHEARSAL_POSTGRES=embedded
(an embedded PostgreSQL even when the machine's on 127.0.0.1:5432 answers).`;

/** A bad command line: the message says what is wrong and what would be right. */
export class UsageError extends Error {}

/** Parses the command line; throws a {@link UsageError} naming the problem. */
export function parseArgs(argv: readonly string[]): RehearsalArgs {
  const out: RehearsalArgs = {
    sizeMb: DEFAULT_SIZE_MB,
    quiet: false,
    fail: undefined,
    keep: false,
    at: undefined,
    writesPerSecond: DEFAULT_WRITES_PER_SECOND,
    realHost: false,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i]!;
    const eq = raw.indexOf("=");
    const name = raw.startsWith("--") && eq > 0 ? raw.slice(0, eq) : raw;
    const inline = raw.startsWith("--") && eq > 0 ? raw.slice(eq + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[i + 1];
      if (next === undefined || next.startsWith("--")) throw new UsageError(`${name} needs a value.`);
      i++;
      return next;
    };
    switch (name) {
      case "--size": {
        const v = value();
        const n = Number(v.replace(/mb$/i, ""));
        if (!/^\d+(\.\d+)?(mb)?$/i.test(v) || !Number.isFinite(n) || n < 1 || n > MAX_SIZE_MB) {
          throw new UsageError(
            `--size ${v} is not a size: give the source database's size in MB, a number from 1 to ${MAX_SIZE_MB} (default ${DEFAULT_SIZE_MB}), e.g. --size 50.`,
          );
        }
        out.sizeMb = n;
        break;
      }
      case "--fail": {
        const v = value();
        if (!Object.hasOwn(FAULTS, v)) {
          throw new UsageError(
            `--fail ${v}: the rehearsal cannot inject a failure into "${v}". Choose one of: ${Object.keys(FAULTS).join(", ")}.`,
          );
        }
        out.fail = v;
        break;
      }
      case "--at": {
        const v = value();
        // a zone is required: "23:59" means a different moment in Singapore and in UTC
        const at = /(Z|[+-]\d\d:?\d\d)$/i.test(v) ? new Date(v) : new Date(Number.NaN);
        if (Number.isNaN(at.getTime())) {
          throw new UsageError(
            `--at ${v} is not a moment: give a date and time with its zone, e.g. --at 2026-12-01T00:00+08:00 or --at 2026-11-30T15:59Z.`,
          );
        }
        out.at = at;
        break;
      }
      case "--writes-per-second": {
        const v = value();
        const n = Number(v);
        if (!/^\d+$/.test(v) || n < 1 || n > MAX_WRITES_PER_SECOND) {
          throw new UsageError(
            `--writes-per-second ${v} is not a rate: give a whole number of writes per second from 1 to ${MAX_WRITES_PER_SECOND} (default ${DEFAULT_WRITES_PER_SECOND}), e.g. --writes-per-second 50.`,
          );
        }
        out.writesPerSecond = n;
        break;
      }
      case "--quiet":
      case "-q":
        out.quiet = true;
        break;
      case "--keep":
        out.keep = true;
        break;
      case "--real-host":
        out.realHost = true;
        break;
      case "--help":
      case "-h":
        out.help = true;
        break;
      default:
        throw new UsageError(`Unknown option ${raw}. Try --help.`);
    }
  }
  return out;
}
