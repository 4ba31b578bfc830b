import { execFileSync } from "node:child_process";
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLUSTER_LOCATION_FILE, ROOT_CLUSTER_BASE } from "../../src/store/database.js";
import { testConfig } from "../helpers/bot.js";
import { type HealthyBot, startBotUntilHealthy } from "../helpers/healthy-bot.js";
import { waitForValue } from "../helpers/wait.js";

/**
 * The embedded default as a new user meets it on a small server or in CI: `npm start` (the
 * compiled bot, dist/ built by the test run's global set-up) as root, with a data directory made
 * by `mktemp -d` (mode 0700, owned by root, so the `postgres` user that the embedded server runs as
 * cannot enter it), no DATABASE_URL. It must come up healthy by itself and say where its cluster is.
 */
const isRoot = process.getuid?.() === 0;
const why = isRoot ? "" : ` (skipped: this process runs as uid ${process.getuid?.()}, not root)`;

describe(`npm start as root on the embedded default${why}`, () => {
  let bot: HealthyBot | undefined;
  let dataDir: string | undefined;
  let cluster: string | undefined;
  afterAll(async () => {
    await bot?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    if (cluster) await rm(path.dirname(cluster), { recursive: true, force: true });
  });

  it.skipIf(!isRoot)(
    "comes up healthy with a fresh `mktemp -d` data directory, its cluster where postgres can reach it",
    async () => {
      dataDir = execFileSync("mktemp", ["-d"], { encoding: "utf8" }).trim();
      expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
      const config = path.join(dataDir, "migration.yml");
      await writeFile(config, testConfig());
      bot = await startBotUntilHealthy({
        command: "npm",
        args: ["start"],
        cwd: path.resolve(import.meta.dirname, "../.."),
        env: { CUTOVER_CONFIG: config, CUTOVER_DATA_DIR: dataDir },
        timeoutMs: 90_000,
      });
      expect(bot.health.body).toContain('"ok":true');
      expect(bot.output()).toContain("node dist/app.js"); // npm ran the compiled bot, not tsx

      // The cluster lives under ROOT_CLUSTER_BASE, owned by postgres, and both the data directory
      // and the log say where.
      cluster = (await readFile(path.join(dataDir, CLUSTER_LOCATION_FILE), "utf8")).split("\n")[0]!;
      expect(cluster.startsWith(`${ROOT_CLUSTER_BASE}/`)).toBe(true);
      const owner = execFileSync("stat", ["-c", "%U", cluster], { encoding: "utf8" }).trim();
      expect(owner).toBe("postgres");
      expect(bot.output()).toContain(`the embedded PostgreSQL lives in ${cluster}`);

      // A SIGTERM stops it cleanly (the bot stops its own PostgreSQL).
      await bot.stop();
      await waitForValue(
        "the embedded PostgreSQL to stop",
        () =>
          readFile(path.join(cluster!, "postmaster.pid"), "utf8").then(
            () => "running",
            () => "stopped",
          ),
        (s) => s === "stopped",
        { timeoutMs: 30_000 },
      );
    },
    150_000,
  );
});
