import { execFile } from "node:child_process";
import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The sample app's sources (src/sandbox/sample-app: a FastAPI app in the plan's shape). */
export const SAMPLE_APP_DIR = join(import.meta.dirname, "sample-app");

/**
 * The sample app as a release archive the way `app.deploy` fetches `release.archiveUrl`: a
 * .tar.gz with one top folder (stripped on the host), the app under `backend/` (release.workdir),
 * and `backend/RELEASE` naming the release, which `/health` and the Celery task report.
 */
export async function packSampleApp(release: string): Promise<Buffer> {
  if (!/^[A-Za-z0-9._-]+$/.test(release)) throw new Error(`${release} is not a release name`);
  const dir = await mkdtemp(join(tmpdir(), "cutover-sample-app-"));
  try {
    const top = join(dir, `sample-app-${release}`);
    await cp(SAMPLE_APP_DIR, top, { recursive: true, filter: (src) => !/__pycache__|\.pyc$/.test(src) });
    await writeFile(join(top, "backend", "RELEASE"), `${release}\n`);
    const { stdout } = await run("tar", ["-czf", "-", "-C", dir, `sample-app-${release}`], {
      encoding: "buffer",
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
