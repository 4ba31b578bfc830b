import { z } from "zod";
import type { RemoteShell } from "../../../cloud/ssh.js";
import { type MigrationFile, requireSection, type ValueRefName } from "../../../config/schema.js";
import { CutoverError, describeError, ErrorCode, notSet } from "../../../errors.js";
import type { Ports } from "../../../ports.js";
import type { PlannedChange, StepContext, StepDefinition, StepDeps } from "../../define-step.js";
import { defineStep } from "../../define-step.js";
import {
  FILE_ONLY_SECTIONS,
  hostPaths,
  renderAppEnv,
  renderSetupScript,
  renderVerifyScript,
  SETUP_SECTIONS,
  scriptHash,
  shq,
} from "../../host-script.js";
import { readRdsMasterPassword, resolveValueRef } from "../../provisioned.js";
import { OutputRelay, scriptFailure } from "./script-output.js";
import { lookAtHost, openHostShell, openHostShellWhenReady, sudoFor } from "./shell.js";

const TYPE = "host.setup";

export const SshInput = {
  /** connect here instead of the Lightsail static IP */
  address: z.string().min(1).optional(),
  /** TCP connect plus SSH handshake */
  connectTimeoutSeconds: z.number().min(0.1).max(300).default(20),
  /** the whole remote script */
  scriptTimeoutSeconds: z.number().int().min(1).max(7200).default(1800),
};

const Input = z.strictObject({
  ...SshInput,
  /**
   * how long to wait for the SSH port of a new instance to answer: Lightsail says `running`
   * before sshd is up (first boot); the wait is retried and shown, and bounded by this
   */
  sshReadySeconds: z.number().min(0).max(1800).default(300),
});
type Input = z.infer<typeof Input>;

export const hostSetup = defineStep({
  type: TYPE,
  description: "set the app host up over SSH with a rendered, idempotent script",
  input: Input,
  configSections: ["target.host", "target.lightsail"],
  timeLimit: 3_600,
  mutating: true,
  checkpoints: { scriptHash: z.string() },
});

/** The app's environment, resolved: values (secret), where each came from (safe), secrets to redact. */
export interface ResolvedAppEnv {
  values: Record<string, string>;
  sources: Record<string, string>;
  secrets: string[];
}

/**
 * Resolves target.host.appEnv.vars: literals as written, `{ env: NAME }` from Cutover's
 * environment, `{ ref: … }` from what Cutover provisioned. Every missing value is reported at once.
 */
export async function resolveAppEnv(deps: {
  env: NodeJS.ProcessEnv;
  dataDir: string;
  file: MigrationFile;
  ports: Ports;
}): Promise<ResolvedAppEnv> {
  const host = requireSection(deps.file, "target.host");
  const out: ResolvedAppEnv = { values: {}, sources: {}, secrets: [] };
  const missing: string[] = [];
  for (const [key, spec] of Object.entries(host.appEnv.vars)) {
    if (typeof spec === "string" || typeof spec === "number" || typeof spec === "boolean") {
      out.values[key] = String(spec);
      out.sources[key] = "literal";
    } else if ("env" in spec) {
      const value = deps.env[spec.env];
      out.sources[key] = `$${spec.env}`;
      if (value === undefined || value === "") missing.push(`${key}: ${spec.env} is not set`);
      else {
        out.values[key] = value;
        out.secrets.push(value);
      }
    } else {
      out.sources[key] = spec.ref;
      try {
        out.values[key] = await resolveValueRef(deps, spec.ref as ValueRefName);
        if (spec.ref === "target.rds.url") out.secrets.push(out.values[key]!);
      } catch (err) {
        missing.push(`${key}: ${describeError(err).split("\n")[0]}`);
      }
    }
  }
  if (
    deps.file.target?.rds &&
    Object.values(host.appEnv.vars).some(
      (v) => typeof v === "object" && "ref" in v && v.ref === "target.rds.url",
    )
  ) {
    const password = await readRdsMasterPassword({
      env: deps.env,
      dataDir: deps.dataDir,
      rds: deps.file.target.rds,
      region: deps.file.target.aws.region,
      ports: deps.ports,
    }).catch(() => undefined);
    if (password) out.secrets.push(password, encodeURIComponent(password));
  }
  if (missing.length > 0) {
    throw new CutoverError(
      ErrorCode.BadArgument,
      `The app's .env cannot be written yet:\n• ${missing.join("\n• ")}`,
      {
        details: { missing: missing.length },
      },
    );
  }
  return out;
}

/** A private folder on the host for this step's uploads, removed afterwards. */
export async function withStaging<T>(shell: RemoteShell, fn: (dir: string) => Promise<T>): Promise<T> {
  const made = await shell.exec("mktemp -d /tmp/cutover.XXXXXXXX");
  const dir = made.stdout.trim();
  if (made.code !== 0 || !dir.startsWith("/tmp/cutover.")) {
    throw new CutoverError(
      ErrorCode.RemoteCommandFailed,
      `Could not make a folder on the host: ${made.stderr.trim() || made.stdout.trim()}`,
    );
  }
  try {
    return await fn(dir);
  } finally {
    await shell.exec(`rm -rf ${shq(dir)}`).catch(() => undefined);
  }
}

/** Uploads a secret file to staging (0600) and installs it in place with its owner and mode. */
export async function installSecretFile(
  shell: RemoteShell,
  staging: string,
  opts: { sudo: string; name: string; content: string; dest: string; owner: string; mode?: string },
): Promise<void> {
  const tmp = `${staging}/${opts.name}`;
  await shell.upload(tmp, opts.content, 0o600);
  const r = await shell.exec(
    `${opts.sudo}install -D -m ${opts.mode ?? "600"} -o ${shq(opts.owner)} -g ${shq(opts.owner)} ${shq(tmp)} ${shq(opts.dest)} && rm -f ${shq(tmp)}`,
  );
  if (r.code !== 0) {
    throw new CutoverError(
      ErrorCode.RemoteCommandFailed,
      `Could not put ${opts.dest} in place on ${shell.host}: ${r.stderr.trim().split("\n").slice(-3).join(" ")}`,
    );
  }
}

/** Runs an uploaded script as root, streaming its output; throws with the failing command. */
export async function runScript(
  shell: RemoteShell,
  opts: {
    path: string;
    sudo: string;
    what: string;
    ctx: Pick<StepContext, "log" | "progress" | "signal" | "report">;
    sections?: readonly string[];
    secrets: readonly string[];
    timeoutMs: number;
  },
): Promise<string> {
  const relay = new OutputRelay(opts.ctx, {
    label: opts.what,
    ...(opts.sections ? { sections: opts.sections } : {}),
    secrets: opts.secrets,
  });
  const result = await shell.exec(`${opts.sudo}bash ${shq(opts.path)}`, {
    onOutput: relay.onOutput,
    signal: opts.ctx.signal,
    timeoutMs: opts.timeoutMs,
  });
  relay.finish();
  if (result.code !== 0) throw scriptFailure(opts.what, result, relay, opts.secrets);
  return result.stdout;
}

/**
 * `host.setup`: renders the set-up script from target.host, uploads it over SFTP and runs it as
 * root (Python, Nginx, Gunicorn, Supervisor programs, Redis, PostgreSQL client, TLS), then writes
 * the app's .env (mode 0600) from Cutover's environment. A dry run shows the script.
 */
export function createHostSetupStep(deps: StepDeps): StepDefinition<Input> {
  const hostOf = () => requireSection(deps.file, "target.host");

  async function certbotCredentials(): Promise<string | undefined> {
    const tls = hostOf().nginx.tls;
    if (tls.mode !== "letsencrypt-dns" || !tls.dnsApiTokenEnv) return undefined;
    const token = deps.env[tls.dnsApiTokenEnv];
    if (!token) throw notSet(tls.dnsApiTokenEnv, { where: "target.host.nginx.tls.dnsApiTokenEnv" });
    return token;
  }

  return hostSetup.implement({
    async plan(input, ctx) {
      const host = hostOf();
      const script = renderSetupScript(deps.file);
      const hash = scriptHash(script);
      const paths = hostPaths(deps.file, host);
      const changes: PlannedChange[] = [];
      let applied: string | undefined;
      await lookAtHost(deps, input, ctx, changes, async (shell) => {
        changes.push({
          action: "check",
          target: `host ${shell.host}:${host.sshPort}`,
          detail: `host key ${shell.hostKeyFingerprint}`,
        });
        applied = (await shell.exec(`cat ${shq(paths.setupMarker)} 2>/dev/null || true`)).stdout.trim();
      });
      const same = applied === hash;
      changes.push({
        action: same ? "none" : "update",
        target: `set-up script (${script.split("\n").length} lines, sha256 ${hash.slice(0, 12)})`,
        detail: script,
      });
      const vars = Object.keys(host.appEnv.vars);
      changes.push({
        action: "update",
        target: `${paths.envFile} (mode 0600)`,
        detail: vars.length ? `${vars.length} variables: ${vars.join(", ")}` : "no variables",
      });
      if (host.nginx.tls.mode === "letsencrypt-dns") {
        changes.push({
          action: "update",
          target: `${paths.certbotCredentials} (mode 0600)`,
          detail: `Cloudflare token from $${host.nginx.tls.dnsApiTokenEnv}`,
        });
      }
      return {
        summary: same
          ? "the host already ran this exact set-up script; running it again only rewrites the .env"
          : `would run the set-up script (${SETUP_SECTIONS.join(", ")}) and write the .env`,
        changes,
      };
    },

    async run(input, ctx) {
      const host = hostOf();
      const paths = hostPaths(deps.file, host);
      const sudo = sudoFor(host);
      const script = renderSetupScript(deps.file);
      const hash = scriptHash(script);
      const appEnv = await resolveAppEnv(deps);
      const token = await certbotCredentials();
      const secrets = [...appEnv.secrets, ...(token ? [token] : [])];
      const shell = await openHostShellWhenReady(deps, input, ctx);
      try {
        const output = await withStaging(shell, async (dir) => {
          if (token) {
            await installSecretFile(shell, dir, {
              sudo,
              name: "cloudflare.ini",
              content: `# written by Cutover for certbot-dns-cloudflare\ndns_cloudflare_api_token = ${token}\n`,
              dest: paths.certbotCredentials,
              owner: "root",
            });
          }
          await shell.upload(`${dir}/setup.sh`, script, 0o700);
          ctx.progress({
            done: 0,
            total: SETUP_SECTIONS.length,
            unit: "sections",
            message: `running the set-up script on ${shell.host}`,
          });
          const out = await runScript(shell, {
            path: `${dir}/setup.sh`,
            sudo,
            what: `host set-up on ${shell.host}`,
            ctx,
            sections: SETUP_SECTIONS,
            secrets,
            timeoutMs: input.scriptTimeoutSeconds * 1000,
          });
          await installSecretFile(shell, dir, {
            sudo,
            name: "app.env",
            content: renderAppEnv(deps.file, appEnv.values),
            dest: paths.envFile,
            owner: paths.appUser,
          });
          return out;
        });
        await ctx.checkpoint.set("scriptHash", hash);
        const changed = /::cutover:: done changed=(.*)$/m.exec(output)?.[1]?.trim() ?? "";
        const parts = [...new Set(changed.split(/\s+/).filter(Boolean))];
        return {
          summary:
            parts.length === 0
              ? `${shell.host} already as configured (script ${hash.slice(0, 12)}); .env rewritten (${Object.keys(appEnv.values).length} variables, mode 0600)`
              : `${shell.host} set up: changed ${parts.join(", ")}; .env written (${Object.keys(appEnv.values).length} variables, mode 0600)`,
          figures: {
            host: shell.host,
            hostKey: shell.hostKeyFingerprint,
            scriptSha256: hash,
            changed: parts.join(",") || "nothing",
            envVars: Object.keys(appEnv.values).length,
          },
        };
      } finally {
        await shell.close();
      }
    },

    async verify(input, ctx) {
      const host = hostOf();
      const shell = await openHostShell(deps, input, ctx);
      try {
        const out = await withStaging(shell, async (dir) => {
          await shell.upload(`${dir}/verify.sh`, renderVerifyScript(deps.file), 0o700);
          return shell.exec(`${sudoFor(host)}bash ${shq(`${dir}/verify.sh`)}`, {
            signal: ctx.signal,
            timeoutMs: 120_000,
          });
        });
        const lines = out.stdout.split("\n").filter((l) => /^(ok|FAIL) /.test(l));
        const failed = lines.filter((l) => l.startsWith("FAIL "));
        const ok = out.code === 0 && lines.length > 0 && failed.length === 0;
        return {
          ok,
          summary: ok
            ? `${lines.length} checks passed on ${shell.host}`
            : failed.length > 0
              ? `${failed.length} of ${lines.length} checks failed: ${failed.map((l) => l.slice(5)).join("; ")}`
              : `the checks did not run (exit ${out.code}): ${out.stderr.trim().split("\n").slice(-2).join(" ")}`,
          figures: { checks: lines.length, failed: failed.length },
        };
      } finally {
        await shell.close();
      }
    },

    async undo(input, ctx) {
      const host = hostOf();
      const paths = hostPaths(deps.file, host);
      const sudo = sudoFor(host);
      const files = [
        paths.nginxSite,
        `/etc/nginx/sites-enabled/${deps.file.project}`,
        paths.gunicornConf,
        paths.envFile,
        paths.certbotCredentials,
        paths.setupMarker,
        ...host.supervisor.services.map((s) => `${paths.supervisorDir}/${s.name}.conf`),
      ];
      const shell = await openHostShell(deps, input, ctx);
      try {
        const r = await shell.exec(
          `${sudo}bash -c ${shq(`rm -f ${files.map(shq).join(" ")}; supervisorctl reread >/dev/null 2>&1 && supervisorctl update >/dev/null 2>&1; nginx -t >/dev/null 2>&1 && systemctl reload nginx; true`)}`,
          { signal: ctx.signal, timeoutMs: 120_000 },
        );
        if (r.code !== 0)
          throw new CutoverError(
            ErrorCode.RemoteCommandFailed,
            `Undoing the set-up on ${shell.host} failed: ${r.stderr.trim()}`,
          );
        ctx.log.info(
          { files: files.length },
          "removed the files the set-up wrote; packages and the app user stay",
        );
      } finally {
        await shell.close();
      }
    },
  });
}

/** The sections a scratch-root run may execute (they only write files). */
export const SAFE_SECTIONS = FILE_ONLY_SECTIONS;
