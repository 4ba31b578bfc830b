import { readFile } from "node:fs/promises";
import { z } from "zod";
import type { RemoteShell } from "../../../cloud/ssh.js";
import { requireSection } from "../../../config/schema.js";
import { CutoverError, describeError, ErrorCode, notSet } from "../../../errors.js";
import type { PlannedChange, StepContext, StepDefinition, StepDeps } from "../../define-step.js";
import { defineStep } from "../../define-step.js";
import { hostPaths, renderDeployScript, renderSwitchScript, shq, upstreamOf } from "../../host-script.js";
import { installSecretFile, runScript, SshInput, withStaging } from "./setup.js";
import { lookAtHost, openHostShell, sudoFor } from "./shell.js";
import { waitFor } from "./wait.js";

const TYPE = "app.deploy";

const Input = z.strictObject({
  ...SshInput,
  /** deploy this git ref instead of target.host.release.ref */
  ref: z.string().min(1).optional(),
  healthTimeoutSeconds: z.number().int().min(1).max(1800).default(120),
  healthIntervalMs: z.number().int().min(10).max(60_000).default(3_000),
});
type Input = z.infer<typeof Input>;

export const appDeploy = defineStep({
  type: TYPE,
  description: "deploy a release to the app host and wait for its health endpoint",
  input: Input,
  configSections: ["target.host", "target.lightsail"],
  timeLimit: 1_800,
  mutating: true,
  checkpoints: { release: z.string(), previous: z.string() },
});

export const DEPLOY_SECTIONS = ["fetch", "env", "install", "migrate", "switch", "restart", "prune"] as const;

/** A release folder name: UTC time plus the ref, e.g. 20260310T020000Z-main. */
export function releaseId(ref: string, now = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  return `${stamp}-${ref.replace(/[^A-Za-z0-9._-]+/g, "-").slice(0, 40)}`;
}

/**
 * `app.deploy`: fetches the configured release (git ref, archive, or the file's fetch command)
 * into its own folder, installs it, migrates the app's database when configured, switches
 * `current`, restarts the Supervisor programs and waits for the health endpoint. A failed health
 * check switches back to the previous release; undo does the same on request.
 */
export function createAppDeployStep(deps: StepDeps): StepDefinition<Input> {
  const hostOf = () => requireSection(deps.file, "target.host");
  const fileFor = (input: Input) =>
    input.ref && deps.file.target?.host
      ? {
          ...deps.file,
          target: {
            ...deps.file.target,
            host: { ...deps.file.target.host, release: { ...deps.file.target.host.release, ref: input.ref } },
          },
        }
      : deps.file;

  /** Asks the app's health endpoint on the host itself (through gunicorn's bind). */
  async function healthOnce(shell: RemoteShell, signal: AbortSignal): Promise<string> {
    const host = hostOf();
    const { curl } = upstreamOf(host.gunicorn.bind);
    const r = await shell.exec(
      `curl -s -o /dev/null -w '%{http_code}' --max-time 5 ${curl.includes("--unix-socket") ? `${curl}${host.healthPath}` : shq(`${curl}${host.healthPath}`)}`,
      { signal, timeoutMs: 15_000 },
    );
    return r.stdout.trim() || `exit ${r.code}`;
  }

  async function waitHealthy(shell: RemoteShell, input: Input, ctx: StepContext): Promise<number> {
    const started = Date.now();
    await waitFor({
      what: `${hostOf().healthPath} on ${shell.host} to answer 200`,
      timeoutMs: input.healthTimeoutSeconds * 1000,
      intervalMs: input.healthIntervalMs,
      ctx,
      check: async () => {
        const code = await healthOnce(shell, ctx.signal);
        return { done: code === "200", state: code === "000" ? "no answer" : `HTTP ${code}` };
      },
    });
    return Date.now() - started;
  }

  async function currentRelease(shell: RemoteShell): Promise<string | undefined> {
    const p = hostPaths(deps.file, hostOf());
    const r = await shell.exec(`readlink ${shq(p.current)} 2>/dev/null || true`);
    const target = r.stdout.trim();
    return target ? target.split("/").pop() : undefined;
  }

  async function switchTo(shell: RemoteShell, release: string, ctx: StepContext): Promise<void> {
    await withStaging(shell, async (dir) => {
      await shell.upload(`${dir}/switch.sh`, renderSwitchScript(deps.file, release), 0o700);
      await runScript(shell, {
        path: `${dir}/switch.sh`,
        sudo: sudoFor(hostOf()),
        what: `switch back to ${release}`,
        ctx,
        secrets: [],
        timeoutMs: 300_000,
      });
    });
  }

  return appDeploy.implement({
    async plan(input, ctx) {
      const file = fileFor(input);
      const host = requireSection(file, "target.host");
      const r = host.release;
      const id = releaseId(r.ref);
      const changes: PlannedChange[] = [];
      await lookAtHost(deps, input, ctx, changes, async (shell) => {
        const current = await currentRelease(shell);
        changes.push({
          action: "check",
          target: `current release on ${shell.host}`,
          detail: current ?? "none yet",
        });
      });
      const source = r.fetchCommand
        ? `fetch command`
        : r.repo
          ? `${r.repo} @ ${r.ref}`
          : (r.archiveUrl ?? "");
      changes.push({ action: "create", target: `release ${id}`, detail: renderDeployScript(file, { id }) });
      changes.push({
        action: "check",
        target: `health ${host.healthPath}`,
        detail: `wait up to ${input.healthTimeoutSeconds} s for HTTP 200; on failure switch back to the previous release`,
      });
      return {
        summary: `would deploy ${source} as release ${id}${r.migrateCommand ? ", migrate the database" : ""}, restart ${host.supervisor.services.map((s) => s.name).join(", ")} and wait for ${host.healthPath}`,
        changes,
      };
    },

    async run(input, ctx) {
      const file = fileFor(input);
      const host = requireSection(file, "target.host");
      const paths = hostPaths(file, host);
      const sudo = sudoFor(host);
      let id = await ctx.checkpoint.get("release");
      if (!id) {
        id = releaseId(host.release.ref);
        await ctx.checkpoint.set("release", id);
      }
      const deployKey = host.release.deployKeyPathEnv ? deps.env[host.release.deployKeyPathEnv] : undefined;
      if (host.release.deployKeyPathEnv && !deployKey)
        throw notSet(host.release.deployKeyPathEnv, { where: "target.host.release.deployKeyPathEnv" });
      const deployKeyText = deployKey ? await readFile(deployKey, "utf8") : undefined;
      const shell = await openHostShell(deps, input, ctx);
      try {
        // The release live now is what a failure or undo goes back to. It is read and kept
        // before anything changes: a crash after the switch would otherwise leave a retry that
        // sees its own release as "previous" and nothing to go back to.
        if ((await ctx.checkpoint.get("previous")) === undefined) {
          const live = await currentRelease(shell);
          // "" when nothing was live: there is nothing to go back to
          await ctx.checkpoint.set("previous", live && live !== id ? live : "");
        }
        await withStaging(shell, async (dir) => {
          if (deployKeyText) {
            await installSecretFile(shell, dir, {
              sudo,
              name: "deploy_key",
              content: deployKeyText,
              dest: paths.deployKey,
              owner: paths.appUser,
            });
          }
          await shell.upload(`${dir}/deploy.sh`, renderDeployScript(file, { id: id! }), 0o700);
          return runScript(shell, {
            path: `${dir}/deploy.sh`,
            sudo,
            what: `deploy of ${id}`,
            ctx,
            sections: DEPLOY_SECTIONS,
            secrets: deployKeyText ? [deployKeyText] : [],
            timeoutMs: input.scriptTimeoutSeconds * 1000,
          });
        });
        const before = (await ctx.checkpoint.get("previous")) || undefined;
        let healthMs: number;
        try {
          healthMs = await waitHealthy(shell, input, ctx);
        } catch (err) {
          if (ctx.signal.aborted) throw err;
          if (before) {
            await switchTo(shell, before, ctx);
            throw new CutoverError(
              ErrorCode.StepFailed,
              `Release ${id} did not become healthy (${describeError(err).split("\n")[0]}); switched back to ${before}.`,
              {
                hint: `Look at /var/log/supervisor/${host.supervisor.services[0]?.name ?? "app"}-stderr.log on the host, fix the release, then run the step again.`,
              },
            );
          }
          throw err;
        }
        return {
          summary: `deployed ${id}${before ? ` (previous ${before})` : ""}; ${host.healthPath} answered 200 after ${Math.round(healthMs / 100) / 10} s`,
          figures: { release: id, previous: before ?? "none", healthMs },
        };
      } finally {
        await shell.close();
      }
    },

    async verify(input, ctx) {
      const host = hostOf();
      const want = await ctx.checkpoint.get("release");
      const shell = await openHostShell(deps, input, ctx);
      try {
        const problems: string[] = [];
        const current = await currentRelease(shell);
        if (want && current !== want) problems.push(`current release is ${current ?? "none"}, not ${want}`);
        const status = await shell.exec(
          `${sudoFor(host)}supervisorctl status ${host.supervisor.services.map((s) => shq(s.name)).join(" ")}`,
          { signal: ctx.signal, timeoutMs: 30_000 },
        );
        for (const s of host.supervisor.services) {
          const line = status.stdout.split("\n").find((l) => l.startsWith(s.name));
          if (!line || !/\bRUNNING\b/.test(line))
            problems.push(`${s.name} is ${line?.split(/\s+/)[1] ?? "not known to supervisor"}`);
        }
        const code = await healthOnce(shell, ctx.signal);
        if (code !== "200") problems.push(`${host.healthPath} answered ${code}`);
        return {
          ok: problems.length === 0,
          summary:
            problems.length === 0
              ? `${current} live; ${host.supervisor.services.map((s) => s.name).join(", ")} running; ${host.healthPath} 200`
              : problems.join("; "),
          figures: { release: current ?? "none" },
        };
      } finally {
        await shell.close();
      }
    },

    async undo(input, ctx) {
      const host = hostOf();
      const previous = await ctx.checkpoint.get("previous");
      const shell = await openHostShell(deps, input, ctx);
      try {
        if (previous) {
          await switchTo(shell, previous, ctx);
          await waitHealthy(shell, input, ctx);
          ctx.log.info({ release: previous }, "returned to the previous release");
          return;
        }
        const p = hostPaths(deps.file, host);
        const r = await shell.exec(
          `${sudoFor(host)}bash -c ${shq(`supervisorctl stop ${host.supervisor.services.map((s) => shq(s.name)).join(" ")}; rm -f ${shq(p.current)}`)}`,
          { signal: ctx.signal, timeoutMs: 120_000 },
        );
        if (r.code !== 0)
          throw new CutoverError(
            ErrorCode.RemoteCommandFailed,
            `Stopping the app on ${shell.host} failed: ${r.stderr.trim()}`,
          );
        ctx.log.info("no previous release: stopped the programs and removed the current link");
      } finally {
        await shell.close();
      }
    },
  });
}
