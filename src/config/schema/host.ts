/**
 * The app host: packages, the app's release, its processes and its environment.
 */
import { z } from "zod";
import { didYouMean } from "../../text/suggest.js";
import { msg, repeats } from "./helpers.js";
import {
  ALL_REFS,
  EnvRefSchema,
  envVarKey,
  envVarName,
  hostname,
  httpUrl,
  port,
  refOf,
  seconds,
  urlPath,
} from "./scalars.js";

/** Placeholders allowed in host commands; the deploy step fills them in. */
export const COMMAND_PLACEHOLDERS = {
  appDir: "host.appDir",
  current: "the live release's app folder (appDir/current/<release.workdir>)",
  venv: "the Python virtualenv (appDir/venv)",
  gunicorn: "the gunicorn command line built from host.gunicorn",
} as const;

/** Placeholders allowed in release.fetchCommand. */
export const FETCH_PLACEHOLDERS = {
  repo: "release.repo",
  ref: "release.ref",
  archiveUrl: "release.archiveUrl",
  dir: "the new release folder",
} as const;

export const commandWith = (allowed: Record<string, string>) =>
  z
    .string()
    .min(1, "is empty — write the command")
    .superRefine((cmd, ctx) => {
      for (const m of cmd.matchAll(/\{([^{}\s]*)\}/g)) {
        const p = m[1] ?? "";
        if (!(p in allowed)) {
          ctx.addIssue({
            code: "custom",
            message: `uses an unknown placeholder {${p}} — use one of ${Object.keys(allowed)
              .map((k) => `{${k}}`)
              .join(", ")}${didYouMean(p, Object.keys(allowed))}`,
          });
        }
      }
    });

const gitRepo = z.string().refine(
  (v) => /^https:\/\/\S+$/.test(v) || /^(ssh:\/\/)?[\w.-]+@[\w.-]+[:/]\S+$/.test(v),
  msg((v) => `${v} is not a git repository address`, "write an https:// URL or git@host:owner/repo.git"),
);

export const SupervisorServiceSchema = z.strictObject({
  name: z.string().regex(
    /^[A-Za-z0-9_-]+$/,
    msg((v) => `${v} is not a valid service name`, "use letters, digits, '_' and '-', e.g. app-worker"),
  ),
  description: z.string().optional(),
  command: commandWith(COMMAND_PLACEHOLDERS),
  /** working directory; defaults to {current} */
  directory: z.string().optional(),
  autorestart: z.boolean().default(true),
  numprocs: z.number().int().min(1).max(32).default(1),
  stopWaitSeconds: seconds(1, 3600).default(30),
});

export const HostSchema = z
  .strictObject({
    sshUser: z
      .string()
      .regex(
        /^[a-z_][a-z0-9_-]{0,31}$/,
        msg((v) => `${v} is not a Unix user name`, "write it like ubuntu"),
      )
      .default("ubuntu"),
    sshPort: port.default(22),
    /** the variable holding the PATH of the SSH private key file for the key pair */
    sshKeyPathEnv: envVarName,
    /** pin the host key (from `ssh-keygen -lf`); without it the first key seen is trusted and recorded */
    hostKeyFingerprint: z
      .string()
      .regex(
        /^SHA256:[A-Za-z0-9+/]{43}=?$/,
        msg(
          (_v) => "is not an SSH host key fingerprint",
          "copy it from `ssh-keygen -lf <key>.pub`: SHA256:…",
        ),
      )
      .optional(),
    /** the Unix user the services run as; defaults to sshUser */
    appUser: z
      .string()
      .regex(
        /^[a-z_][a-z0-9_-]{0,31}$/,
        msg((v) => `${v} is not a Unix user name`, "write it like app"),
      )
      .optional(),
    appDir: z.string().regex(
      /^\/[^\s]*[^/\s]$/,
      msg((v) => `${v} is not an absolute folder path`, "write it like /opt/app"),
    ),
    /** Python version installed on the host, quoted: "3.11" */
    python: z
      .string()
      .regex(
        /^3\.\d{1,2}$/,
        msg((v) => `${v} is not a Python 3 version`, 'write it in quotes, e.g. "3.11"'),
      )
      .default("3.11"),
    /**
     * where the app's Python packages come from: `pip` (the virtualenv installs them from the
     * package index) or `os` (apt packages listed under `packages`, e.g. python3-fastapi, seen by
     * a virtualenv made with --system-site-packages; for a host without the package index, and
     * only where the OS's python3 is the configured version, as on Debian 12 with "3.11")
     */
    pythonPackages: z.enum(["pip", "os"]).default("pip"),
    /** apt packages installed besides Python, Nginx, Supervisor and Redis */
    packages: z
      .array(
        z.string().regex(
          /^[a-z0-9][a-z0-9.+-]*$/,
          msg((v) => `${v} is not an apt package name`, "write it like postgresql-client"),
        ),
      )
      .default(["postgresql-client"]),
    release: z
      .strictObject({
        /** git repository to deploy from (or archiveUrl) */
        repo: gitRepo.optional(),
        ref: z.string().min(1).default("main"),
        /** a .tar.gz to deploy instead of a git checkout */
        archiveUrl: httpUrl.optional(),
        /** replaces the built-in fetch; placeholders {repo} {ref} {archiveUrl} {dir} */
        fetchCommand: commandWith(FETCH_PLACEHOLDERS).optional(),
        /** the variable holding the PATH of a deploy key for a private repository */
        deployKeyPathEnv: envVarName.optional(),
        /** the app's folder inside the release, e.g. backend */
        workdir: z
          .string()
          .regex(
            /^(\.|[^/\s][^\s]*)$/,
            msg((v) => `${v} is not a relative folder`, "write it like backend, or . for the top"),
          )
          .default("."),
        installCommand: commandWith(COMMAND_PLACEHOLDERS).default(
          "{venv}/bin/pip install -r requirements.txt",
        ),
        /** run after install, before the services restart, e.g. database migrations */
        migrateCommand: commandWith(COMMAND_PLACEHOLDERS).optional(),
        /** releases kept on the host for a quick switch back */
        keep: z.number().int().min(1).max(20).default(3),
      })
      .superRefine((r, ctx) => {
        if ((r.repo === undefined) === (r.archiveUrl === undefined) && r.fetchCommand === undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["repo"],
            message:
              r.repo === undefined
                ? "is missing — say where the code comes from: repo (git) with ref, or archiveUrl, or a fetchCommand"
                : "is set together with archiveUrl — keep only one of the two",
          });
        }
      }),
    gunicorn: z.strictObject({
      /** the ASGI/WSGI app, module:variable */
      app: z.string().regex(
        /^[A-Za-z_][\w.]*:[A-Za-z_]\w*$/,
        msg((v) => `${v} is not a module:variable`, "write it like app.main:app"),
      ),
      workers: z.number().int().min(1).max(64).default(5),
      workerClass: z.string().default("uvicorn.workers.UvicornWorker"),
      bind: z
        .string()
        .regex(
          /^(\d{1,3}(\.\d{1,3}){3}|localhost|unix:\/\S+):?\d*$/,
          msg((v) => `${v} is not a bind address`, "write it like 127.0.0.1:8000"),
        )
        .default("127.0.0.1:8000"),
      timeoutSeconds: seconds(1, 3600).default(60),
    }),
    nginx: z.strictObject({
      /** names the site answers to, e.g. api.example.com */
      serverNames: z.array(hostname).min(1, "is empty — list the API's host name, e.g. api.example.com"),
      clientMaxBodyMb: z.number().int().min(1).max(10_240).default(25),
      /** how the host gets its TLS certificate */
      tls: z
        .strictObject({
          /** letsencrypt-dns: certbot DNS-01 through Cloudflare (works before DNS points here); letsencrypt-http: HTTP-01 (after DNS points here) */
          mode: z
            .enum(["letsencrypt-dns", "letsencrypt-http", "cloudflare-origin", "none"])
            .default("letsencrypt-dns"),
          email: z
            .email(
              msg(
                (v) => `${v} is not an e-mail address`,
                "Let's Encrypt sends expiry warnings there; write it like ops@example.com",
              ),
            )
            .optional(),
          /** for letsencrypt-dns: the variable holding a Cloudflare token limited to Zone → DNS → Edit (it is copied to the host) */
          dnsApiTokenEnv: envVarName.optional(),
        })
        .superRefine((t, ctx) => {
          if (t.mode.startsWith("letsencrypt") && !t.email) {
            ctx.addIssue({
              code: "custom",
              path: ["email"],
              message: "is missing — Let's Encrypt needs a contact address, e.g. email: ops@example.com",
            });
          }
          if (t.mode === "letsencrypt-dns" && !t.dnsApiTokenEnv) {
            ctx.addIssue({
              code: "custom",
              path: ["dnsApiTokenEnv"],
              message:
                "is missing — name the variable holding a Cloudflare token limited to Zone → DNS → Edit, e.g. dnsApiTokenEnv: CERTBOT_CLOUDFLARE_TOKEN",
            });
          }
        })
        .prefault({}),
    }),
    supervisor: z.strictObject({
      services: z
        .array(SupervisorServiceSchema)
        .min(1, "is empty — list the services to run, e.g. the web app and its workers"),
    }),
    redis: z
      .strictObject({
        /** install and run Redis on the host */
        local: z.boolean().default(true),
        url: z
          .string()
          .regex(
            /^rediss?:\/\/\S+$/,
            msg((v) => `${v} is not a Redis URL`, "write it like redis://127.0.0.1:6379/0"),
          )
          .default("redis://127.0.0.1:6379/0"),
      })
      .prefault({}),
    /** the app's environment file on the host; secrets come from Cutover's environment ({ env: NAME }) */
    appEnv: z
      .strictObject({
        /** relative to the app folder */
        path: z.string().min(1).default(".env"),
        vars: z
          .record(
            envVarKey("DATABASE_URL"),
            z.union([z.string(), z.number(), z.boolean(), EnvRefSchema, refOf(ALL_REFS)], {
              error:
                "is not a value — write a plain value, { env: VAR_NAME } for a secret, or { ref: target.rds.url } for a value Cutover provisions",
            }),
          )
          .default({}),
      })
      .prefault({}),
    healthPath: urlPath.default("/health"),
  })
  .superRefine((h, ctx) => {
    for (const { item: s, index: i, first } of repeats(h.supervisor.services, (s) => s.name))
      ctx.addIssue({
        code: "custom",
        path: ["supervisor", "services", i, "name"],
        message: `\`${s.name}\` is already used by supervisor.services[${first}] — give each service its own name`,
      });
  });
