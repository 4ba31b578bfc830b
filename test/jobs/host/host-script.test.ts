import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MigrationFile } from "../../../src/config/schema.js";
import {
  FILE_ONLY_SECTIONS,
  renderAppEnv,
  renderDeployScript,
  renderSetupScript,
  renderSwitchScript,
  renderVerifyScript,
  scriptHash,
  setupPackages,
} from "../../../src/jobs/host-script.js";
import { exampleFile, fileWith, SECRETS, tempDir } from "./fixtures.js";

const run = promisify(execFile);
const SHELLCHECK = ["/usr/bin/shellcheck", "/bin/shellcheck"].find((p) => existsSync(p));

/** Every file under a folder with its mode and content, to compare two runs. */
async function snapshot(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string) => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isSymbolicLink()) out[p.slice(root.length)] = `link`;
      else
        out[p.slice(root.length)] =
          `${((await stat(p)).mode & 0o777).toString(8)} ${await readFile(p, "utf8")}`;
    }
  };
  await walk(root);
  return out;
}

describe("the rendered host scripts", () => {
  let file: MigrationFile;
  let scratch: { dir: string; remove: () => Promise<void> };

  beforeAll(async () => {
    file = await exampleFile();
    scratch = await tempDir("cutover-script-");
  });
  afterAll(async () => scratch.remove());

  const scripts = () => ({
    setup: renderSetupScript(file),
    deploy: renderDeployScript(file, { id: "20260310T020000Z-main" }),
    verify: renderVerifyScript(file),
    switch: renderSwitchScript(file, "20260310T020000Z-main"),
  });

  it("carries the plan's values: Python 3.11, 5 Gunicorn workers, three Supervisor programs with auto-restart, Redis, the PostgreSQL client, TLS", () => {
    const s = renderSetupScript(file);
    expect(s).toContain("PY='3.11'");
    expect(s).toContain("workers = 5");
    expect(s).toContain('worker_class = "uvicorn.workers.UvicornWorker"');
    for (const name of ["gogojap", "gogojap-celery", "gogojap-celery-beat"]) {
      expect(s).toContain(`[program:${name}]`);
    }
    expect(s.match(/^autorestart=true$/gm)).toHaveLength(3);
    expect(s).toContain(
      "command=/opt/gogojap/venv/bin/gunicorn -c /opt/gogojap/shared/gunicorn.conf.py app.main:app",
    );
    expect(s).toContain("'redis-server'");
    expect(s).toContain("'postgresql-client'");
    expect(s).toContain("proxy_pass http://127.0.0.1:8000;");
    expect(s).toContain("server_name api.gogojap.com;");
    expect(s).toContain("client_max_body_size 25m;");
    expect(s).toMatch(/certbot certonly .*--dns-cloudflare .*-d 'api.gogojap.com'/);
  });

  it("renders the same text twice, and no secret is in any script", () => {
    const a = scripts();
    const b = scripts();
    expect(a).toEqual(b);
    const all = Object.values(a).join("\n");
    for (const secret of Object.values(SECRETS)) expect(all).not.toContain(secret);
    expect(all).not.toMatch(/dns_cloudflare_api_token|SECRET_KEY=|ANTHROPIC_API_KEY=/);
  });

  it("passes bash -n", async () => {
    for (const [name, text] of Object.entries(scripts())) {
      const path = join(scratch.dir, `${name}.sh`);
      await writeFile(path, text);
      await expect(run("bash", ["-n", path]), name).resolves.toBeDefined();
    }
  });

  it.skipIf(!SHELLCHECK)(
    "passes shellcheck (all severities) — CI installs the shellcheck package",
    async () => {
      const variants = [
        file,
        await fileWith((f) => {
          f.target!.host!.nginx.tls = { mode: "letsencrypt-http", email: "ops@example.com" };
          f.target!.host!.release = {
            ...f.target!.host!.release,
            repo: undefined,
            archiveUrl: "https://example.com/app.tar.gz",
          };
          f.target!.host!.redis.local = false;
        }),
        await fileWith((f) => {
          f.target!.host!.nginx.tls = { mode: "none" };
          f.target!.host!.release = {
            ...f.target!.host!.release,
            ref: "0123abcd",
            fetchCommand: "git clone {repo} {dir} && git -C {dir} checkout {ref}",
            deployKeyPathEnv: "DEPLOY_KEY",
          };
          f.target!.host!.gunicorn.bind = "unix:/run/gunicorn.sock";
        }),
        await fileWith((f) => {
          f.target!.host!.pythonPackages = "os";
        }),
      ];
      for (const [i, f] of variants.entries()) {
        const paths: string[] = [];
        for (const [name, text] of Object.entries({
          setup: renderSetupScript(f),
          deploy: renderDeployScript(f, { id: "r1" }),
          verify: renderVerifyScript(f),
          switch: renderSwitchScript(f, "r1"),
        })) {
          const path = join(scratch.dir, `sc-${i}-${name}.sh`);
          await writeFile(path, text);
          paths.push(path);
        }
        const res = await run(SHELLCHECK!, ["-S", "style", ...paths]).catch((e: { stdout?: string }) => e);
        expect((res as { stdout?: string }).stdout ?? "", `variant ${i}`).toBe("");
      }
    },
  );

  it("is idempotent: the file-writing sections run twice in a scratch root change nothing the second time", async () => {
    const root = join(scratch.dir, "root");
    const script = join(scratch.dir, "setup.sh");
    const text = renderSetupScript(file);
    await writeFile(script, text);
    const env = { ...process.env, CUTOVER_ROOT: root, CUTOVER_SECTIONS: FILE_ONLY_SECTIONS.join(" ") };
    const first = await run("bash", [script], { env });
    expect(first.stdout).toMatch(/::cutover:: updated \/opt\/gogojap\/shared\/gunicorn.conf.py/);
    expect(first.stdout).toMatch(
      /::cutover:: done changed=gunicorn supervisor supervisor supervisor nginx nginx/,
    );
    const after1 = await snapshot(root);
    expect(Object.keys(after1).sort()).toEqual([
      "/etc/cutover/gogojap-setup.sha256",
      "/etc/nginx/sites-available/gogojap",
      "/etc/nginx/sites-enabled/gogojap",
      "/etc/supervisor/conf.d/gogojap-celery-beat.conf",
      "/etc/supervisor/conf.d/gogojap-celery.conf",
      "/etc/supervisor/conf.d/gogojap.conf",
      "/opt/gogojap/shared/gunicorn.conf.py",
    ]);
    expect(after1["/opt/gogojap/shared/gunicorn.conf.py"]).toMatch(/^644 .*workers = 5/s);
    expect(after1["/etc/cutover/gogojap-setup.sha256"]).toBe(`644 ${scriptHash(text)}\n`);

    const second = await run("bash", [script], { env });
    expect(second.stdout).not.toMatch(/::cutover:: updated/);
    expect(second.stdout).toMatch(/::cutover:: done changed=$/m);
    expect(await snapshot(root)).toEqual(after1);

    // a program dropped from the file is removed on the next run; one changed is rewritten
    const fewer = await fileWith((f) => {
      f.target!.host!.supervisor.services = f.target!.host!.supervisor.services.slice(0, 2);
      f.target!.host!.gunicorn.workers = 3;
    });
    await writeFile(script, renderSetupScript(fewer));
    const third = await run("bash", [script], { env });
    expect(third.stdout).toMatch(/removed .*gogojap-celery-beat.conf/);
    expect(third.stdout).toMatch(/updated \/opt\/gogojap\/shared\/gunicorn.conf.py/);
    const after3 = await snapshot(root);
    expect(after3["/etc/supervisor/conf.d/gogojap-celery-beat.conf"]).toBeUndefined();
    expect(after3["/opt/gogojap/shared/gunicorn.conf.py"]).toMatch(/workers = 3/);
  });

  it("switches nginx to the TLS site once a certificate exists", async () => {
    const root = join(scratch.dir, "root-tls");
    const script = join(scratch.dir, "setup-tls.sh");
    await writeFile(script, renderSetupScript(file));
    const env = { ...process.env, CUTOVER_ROOT: root, CUTOVER_SECTIONS: "nginx" };
    await run("bash", [script], { env });
    expect(await readFile(join(root, "etc/nginx/sites-available/gogojap"), "utf8")).not.toContain(
      "listen 443",
    );
    await run("mkdir", ["-p", join(root, "etc/letsencrypt/live/gogojap")]);
    await writeFile(join(root, "etc/letsencrypt/live/gogojap/fullchain.pem"), "cert");
    const res = await run("bash", [script], { env });
    expect(res.stdout).toMatch(/updated \/etc\/nginx\/sites-available\/gogojap/);
    const site = await readFile(join(root, "etc/nginx/sites-available/gogojap"), "utf8");
    expect(site).toContain("listen 443 ssl http2;");
    expect(site).toContain("return 301 https://$host$request_uri;");
  });

  it("writes the .env so a shell reads the same values back (quoted where needed)", async () => {
    const values = {
      PLAIN: "redis://127.0.0.1:6379/0",
      SPACES: "a value with spaces",
      QUOTE: 'it\'s $HOME "quoted"',
      SECRET: SECRETS.APP_AWS_SECRET_ACCESS_KEY,
    };
    const text = renderAppEnv(file, values);
    const path = join(scratch.dir, "app.env");
    await writeFile(path, text);
    const echoed = await run(
      "bash",
      ["-c", `set -a; . ${path}; printf '%s\\n' "$PLAIN" "$SPACES" "$QUOTE" "$SECRET"`],
      {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: "/nowhere" },
      },
    );
    expect(echoed.stdout.split("\n").slice(0, 4)).toEqual(Object.values(values));
  });
});

describe("the set-up script on Ubuntu 22.04 and Debian 12", () => {
  it("chooses by /etc/os-release where they differ, and refuses an OS it does not know", async () => {
    const script = renderSetupScript(await exampleFile());
    const python = script.slice(script.indexOf("section python"), script.indexOf("section app_user"));
    // Debian 12: its own Python 3.11, no PPA; Ubuntu 22.04: deadsnakes when apt has no 3.11
    expect(python).toMatch(/debian-12\)[\s\S]*Debian 12 ships Python 3\.11 only[\s\S]*;;\s+ubuntu-22\.04\)/);
    expect(python.slice(python.indexOf("ubuntu-22.04)"))).toContain(
      "add-apt-repository -y ppa:deadsnakes/ppa",
    );
    expect(python.slice(0, python.indexOf("ubuntu-22.04)"))).not.toContain("ppa:");
    expect(script).toContain("this set-up knows Ubuntu 22.04 and Debian 12");
  });

  it("runs an OS without systemd (a container) through its init.d scripts, and never leaves its lock to a daemon", async () => {
    const script = renderSetupScript(await exampleFile());
    expect(script).not.toMatch(/^\s*systemctl (reload|start|enable)/m);
    expect(script).toMatch(/service "\$2" start 8>&-/);
    expect(script).toContain("svc enable redis-server");
    expect(script).toContain("flock -w 900 8");
  });

  it("with pythonPackages: os, makes a virtualenv that sees the OS's packages and downloads nothing", async () => {
    const file = await fileWith((f) => {
      f.target!.host!.pythonPackages = "os";
    });
    const script = renderSetupScript(file);
    expect(script).toContain("-m venv --system-site-packages");
    expect(script).not.toContain('pip" install -q --upgrade');
    expect(setupPackages(file.target!.host!)).toEqual(
      expect.arrayContaining(["gunicorn", "python3-uvicorn"]),
    );
    // the programs call {venv}/bin/gunicorn and {venv}/bin/celery: both get a wrapper
    expect(script).toContain("for tool in gunicorn celery; do");
    expect(renderSetupScript(await exampleFile())).toContain(
      '"$VENV/bin/pip" install -q --upgrade pip wheel gunicorn uvicorn',
    );
  });
});
