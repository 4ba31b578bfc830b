import type { RemoteShell } from "../../../cloud/ssh.js";
import type { StepContext, StepDeps } from "../../define-step.js";
import { openHostShell } from "../host/shell.js";

/** An open SSH shell to the app host, shared by the checks of one step and closed after them. */
export class LazyShell {
  private shell: Promise<RemoteShell> | undefined;

  constructor(
    private readonly deps: StepDeps,
    private readonly w: { address?: string | undefined; connectTimeoutSeconds: number },
    private readonly ctx: StepContext,
  ) {}

  get(): Promise<RemoteShell> {
    this.shell ??= openHostShell(this.deps, this.w, this.ctx);
    return this.shell;
  }

  async close(): Promise<void> {
    const s = this.shell;
    this.shell = undefined;
    if (s) await (await s.catch(() => undefined))?.close();
  }
}
