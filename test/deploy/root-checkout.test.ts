import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLUSTER_LOCATION_FILE, ROOT_CLUSTER_BASE } from "../../src/store/database.js";
import { testConfig } from "../helpers/bot.js";
import { type HealthyBot, startBotUntilHealthy } from "../helpers/healthy-bot.js";

/**
 * A checkout under a folder closed to others (`/root`, mode 0700), started as root on the
 * embedded default: the `postgres` user the server runs as can reach neither the data directory
 * nor the PostgreSQL binaries in node_modules. The binaries are copied once to
 * `<ROOT_CLUSTER_BASE>/postgres-<version>`, the cluster goes under ROOT_CLUSTER_BASE, and the bot
 * comes up healthy.
 *
 * The checkout is this one seen through symlinks from inside a `mktemp -d` folder (a real copy
 * would be a gigabyte of node_modules), and node is told to keep the symlinked paths
 * (`--preserve-symlinks`): the bot then finds its binaries where a checkout there would have them.
 */
const isRoot = process.getuid?.() === 0;
const why = isRoot ? "" : ` (skipped: this process runs as uid ${process.getuid?.()}, not root)`;
const ROOT = path.resolve(import.meta.dirname, "../..");

describe(`a checkout in a folder closed to others, started as root on the embedded default${why}`, () => {
  let bot: HealthyBot | undefined;
  let closed: string | undefined;
  let cluster: string | undefined;
  afterAll(async () => {
    await bot?.stop();
    if (closed) await rm(closed, { recursive: true, force: true });
    if (cluster) await rm(path.dirname(cluster), { recursive: true, force: true });
  });

  it.skipIf(!isRoot)(
    "copies the PostgreSQL binaries where postgres can reach them and comes up healthy",
    async () => {
      closed = execFileSync("mktemp", ["-d"], { encoding: "utf8" }).trim();
      expect((await stat(closed)).mode & 0o777).toBe(0o700);
      const checkout = path.join(closed, "checkout");
      const dataDir = path.join(closed, "data");
      await mkdir(checkout);
      for (const entry of ["dist", "node_modules", "package.json", "prisma"])
        await symlink(path.join(ROOT, entry), path.join(checkout, entry));
      const config = path.join(closed, "migration.yml");
      await writeFile(config, testConfig());
      bot = await startBotUntilHealthy({
        command: process.execPath,
        args: ["--preserve-symlinks", "--preserve-symlinks-main", "dist/app.js"],
        cwd: checkout,
        env: { CUTOVER_CONFIG: config, CUTOVER_DATA_DIR: dataDir },
        timeoutMs: 120_000,
      });
      expect(bot.health.body).toContain('"ok":true');

      // The server runs from a copy of the binaries under ROOT_CLUSTER_BASE (made by this start or
      // an earlier one), never from the closed checkout.
      const postmaster = execFileSync("ps", ["-o", "args=", "--ppid", String(bot.child.pid)], {
        encoding: "utf8",
      });
      const binary = postmaster.split("\n").find((l) => l.includes("/bin/postgres "));
      expect(binary?.startsWith(`${ROOT_CLUSTER_BASE}/postgres-`)).toBe(true);
      expect(existsSync(binary!.split(" ")[0]!)).toBe(true);

      cluster = (await readFile(path.join(dataDir, CLUSTER_LOCATION_FILE), "utf8")).split("\n")[0]!;
      expect(cluster.startsWith(`${ROOT_CLUSTER_BASE}/`)).toBe(true);

      await bot.stop();
    },
    180_000,
  );
});
