import { createHash } from "node:crypto";
import { posix } from "node:path";
import type { HostConfig, MigrationFile } from "../config/schema.js";
import { CutoverError, ErrorCode } from "../errors.js";

/**
 * The app host's scripts, rendered from the migration file. Pure functions: file in, text out.
 * No script holds a secret: the app's .env and the certbot credentials are written by the step
 * over SFTP with mode 0600, never through a script or a command line.
 *
 * The set-up script is idempotent (every file is written only when its content differs, every
 * install is a no-op the second time) and runs in named sections, so a test can run the parts
 * that only write files under a scratch root:
 *
 *   CUTOVER_ROOT=/tmp/scratch CUTOVER_SECTIONS="app_user gunicorn supervisor nginx mark" bash setup.sh
 *
 * With CUTOVER_ROOT set, files go under that folder and nothing is installed, started or chowned.
 */

/** Sections of the set-up script, in the order they run. */
export const SETUP_SECTIONS = [
  "packages",
  "python",
  "app_user",
  "gunicorn",
  "supervisor",
  "redis",
  "nginx",
  "tls",
  "reload",
  "mark",
] as const;

/** Sections that only write files, so a scratch-root run is safe anywhere. */
export const FILE_ONLY_SECTIONS = ["app_user", "gunicorn", "supervisor", "nginx", "mark"] as const;

/** Where things live on the host. */
export interface HostPaths {
  appDir: string;
  appUser: string;
  venv: string;
  releases: string;
  shared: string;
  current: string;
  /** the app's folder inside the live release */
  currentApp: string;
  gunicornConf: string;
  /** the real .env file; each release links to it */
  envFile: string;
  /** where the .env link sits inside a release's app folder (relative) */
  envLink: string;
  nginxSite: string;
  supervisorDir: string;
  /** the certificate nginx uses, when TLS is on */
  certDir: string;
  certbotCredentials: string;
  setupMarker: string;
  deployKey: string;
}

export function hostPaths(file: MigrationFile, host: HostConfig): HostPaths {
  const appDir = host.appDir;
  const workdir = host.release.workdir;
  const current = `${appDir}/current`;
  const project = file.project;
  const tls = host.nginx.tls.mode;
  return {
    appDir,
    appUser: host.appUser ?? host.sshUser,
    venv: `${appDir}/venv`,
    releases: `${appDir}/releases`,
    shared: `${appDir}/shared`,
    current,
    currentApp: workdir === "." ? current : `${current}/${workdir}`,
    gunicornConf: `${appDir}/shared/gunicorn.conf.py`,
    envFile: `${appDir}/shared/${posix.basename(host.appEnv.path)}`,
    envLink: host.appEnv.path,
    nginxSite: `/etc/nginx/sites-available/${project}`,
    supervisorDir: "/etc/supervisor/conf.d",
    certDir: tls === "cloudflare-origin" ? `/etc/ssl/cutover/${project}` : `/etc/letsencrypt/live/${project}`,
    certbotCredentials: "/etc/letsencrypt/cutover-cloudflare.ini",
    setupMarker: `/etc/cutover/${project}-setup.sha256`,
    deployKey: `${appDir}/shared/deploy_key`,
  };
}

/** Single-quotes a value for bash. */
export function shq(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The host command with {venv}, {appDir}, {current} and {gunicorn} filled in. */
export function fillCommand(
  command: string,
  host: HostConfig,
  paths: HostPaths,
  current = paths.currentApp,
): string {
  const gunicorn = `${paths.venv}/bin/gunicorn -c ${paths.gunicornConf} ${host.gunicorn.app}`;
  return command.replace(/\{(venv|appDir|current|gunicorn)\}/g, (_, p: string) =>
    p === "venv" ? paths.venv : p === "appDir" ? paths.appDir : p === "current" ? current : gunicorn,
  );
}

/** sha256 of a script's text, as `sha256sum` prints it. */
export function scriptHash(script: string): string {
  return createHash("sha256").update(script, "utf8").digest("hex");
}

/** The address nginx and the health check reach gunicorn on. */
export function upstreamOf(bind: string): { proxyPass: string; curl: string } {
  if (bind.startsWith("unix:")) {
    const sock = bind.slice("unix:".length);
    return { proxyPass: `http://unix:${sock}`, curl: `--unix-socket ${shq(sock)} http://localhost` };
  }
  const hostPort = bind.includes(":") ? bind : `${bind}:8000`;
  return { proxyPass: `http://${hostPort}`, curl: `http://${hostPort}` };
}

const py = (s: string) => JSON.stringify(s);

/** Names the failing command and line on stderr, which the step quotes when a script fails. */
const ERR_TRAP = [
  'on_error() { local rc=$?; echo "::cutover:: failed line=$1 exit=$rc command=$2" >&2; exit "$rc"; }',
  'trap \'on_error "$LINENO" "$BASH_COMMAND"\' ERR',
];

function gunicornConf(host: HostConfig): string {
  const g = host.gunicorn;
  return [
    "# Written by Cutover from the migration file (target.host.gunicorn); edits here are overwritten.",
    `bind = ${py(g.bind)}`,
    `workers = ${g.workers}`,
    `worker_class = ${py(g.workerClass)}`,
    `timeout = ${g.timeoutSeconds}`,
    "graceful_timeout = 30",
    'accesslog = "-"',
    'errorlog = "-"',
    "capture_output = True",
    "",
    "# A master killed outright (kill -9, the OOM killer) leaves its workers behind: uvicorn's worker,",
    "# unlike gunicorn's own, never checks that its parent is alive, so they keep serving the old",
    "# code and keep the port, and the master Supervisor restarts cannot bind it. The kernel tells",
    "# each worker when its master dies (PR_SET_PDEATHSIG); SIGTERM closes its listener at once.",
    "import ctypes",
    "import os",
    "import signal",
    "",
    "",
    "def post_fork(server, worker):",
    "    PR_SET_PDEATHSIG = 1",
    "    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))",
    "    if os.getppid() != worker.ppid:  # the master died before the line above",
    "        os.kill(os.getpid(), signal.SIGTERM)",
    "",
  ].join("\n");
}

/** Supervisor expands %(name)s in values: a literal % is written %%. */
const sv = (s: string) => s.replace(/%/g, "%%");

function supervisorProgram(file: MigrationFile, host: HostConfig, paths: HostPaths, i: number): string {
  const s = host.supervisor.services[i]!;
  const command = fillCommand(s.command, host, paths);
  const directory = s.directory ? fillCommand(s.directory, host, paths) : paths.currentApp;
  return [
    `# cutover-project: ${file.project}`,
    `# ${(s.description ?? s.name).replace(/[\r\n]+/g, " ")} — written by Cutover; edits here are overwritten.`,
    `[program:${s.name}]`,
    `command=${sv(command)}`,
    `directory=${sv(directory)}`,
    `user=${paths.appUser}`,
    `numprocs=${s.numprocs}`,
    s.numprocs > 1 ? "process_name=%(program_name)s_%(process_num)02d" : "process_name=%(program_name)s",
    "autostart=true",
    `autorestart=${s.autorestart ? "true" : "false"}`,
    "startsecs=5",
    `stopwaitsecs=${s.stopWaitSeconds}`,
    "stopasgroup=true",
    "killasgroup=true",
    `stdout_logfile=/var/log/supervisor/${s.name}-stdout.log`,
    `stderr_logfile=/var/log/supervisor/${s.name}-stderr.log`,
    `environment=HOME="${sv(`/home/${paths.appUser}`)}",USER="${paths.appUser}",PATH="${sv(paths.venv)}/bin:/usr/local/bin:/usr/bin:/bin"`,
    "",
  ].join("\n");
}

function nginxSite(host: HostConfig, paths: HostPaths, withTls: boolean): string {
  const names = host.nginx.serverNames.join(" ");
  const { proxyPass } = upstreamOf(host.gunicorn.bind);
  const proxy = [
    "    location / {",
    `        proxy_pass ${proxyPass};`,
    "        proxy_http_version 1.1;",
    "        proxy_set_header Host $host;",
    "        proxy_set_header X-Real-IP $remote_addr;",
    "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    "        proxy_set_header X-Forwarded-Proto $scheme;",
    `        proxy_read_timeout ${host.gunicorn.timeoutSeconds + 5}s;`,
    "        proxy_redirect off;",
    "    }",
  ];
  const acme = ["    location /.well-known/acme-challenge/ {", "        root /var/www/letsencrypt;", "    }"];
  const head =
    "# Written by Cutover from the migration file (target.host.nginx); edits here are overwritten.";
  if (!withTls) {
    return [
      head,
      "server {",
      "    listen 80;",
      "    listen [::]:80;",
      `    server_name ${names};`,
      `    client_max_body_size ${host.nginx.clientMaxBodyMb}m;`,
      ...acme,
      ...proxy,
      "}",
      "",
    ].join("\n");
  }
  return [
    head,
    "server {",
    "    listen 80;",
    "    listen [::]:80;",
    `    server_name ${names};`,
    ...acme,
    "    location / {",
    "        return 301 https://$host$request_uri;",
    "    }",
    "}",
    "",
    "server {",
    "    listen 443 ssl http2;",
    "    listen [::]:443 ssl http2;",
    `    server_name ${names};`,
    `    ssl_certificate ${paths.certDir}/fullchain.pem;`,
    `    ssl_certificate_key ${paths.certDir}/privkey.pem;`,
    "    ssl_protocols TLSv1.2 TLSv1.3;",
    "    ssl_prefer_server_ciphers off;",
    '    add_header Strict-Transport-Security "max-age=31536000" always;',
    `    client_max_body_size ${host.nginx.clientMaxBodyMb}m;`,
    ...proxy,
    "}",
    "",
  ].join("\n");
}

/** The tools the Supervisor programs run from the virtualenv (`{venv}/bin/<tool>`), gunicorn always. */
export function venvTools(host: HostConfig): string[] {
  const tools = new Set(["gunicorn"]);
  for (const s of host.supervisor.services) {
    for (const m of s.command.matchAll(/\{venv\}\/bin\/([A-Za-z0-9._-]+)/g)) tools.add(m[1]!);
  }
  return [...tools].filter((t) => !/^(python[0-9.]*|pip[0-9.]*)$/.test(t));
}

/** apt packages the set-up installs. */
export function setupPackages(host: HostConfig): string[] {
  const tls = host.nginx.tls.mode;
  const pkgs = ["nginx", "supervisor", "curl", "git", "ca-certificates"];
  if (host.redis.local) pkgs.push("redis-server", "redis-tools");
  if (tls === "letsencrypt-dns") pkgs.push("certbot", "python3-certbot-dns-cloudflare");
  if (tls === "letsencrypt-http") pkgs.push("certbot");
  // the OS's own gunicorn and uvicorn, for a virtualenv that sees the OS's Python packages
  if (host.pythonPackages === "os") pkgs.push("gunicorn", "python3-uvicorn");
  for (const p of host.packages) if (!pkgs.includes(p)) pkgs.push(p);
  return pkgs;
}

function need(file: MigrationFile): HostConfig {
  const host = file.target?.host;
  if (!host) {
    throw new CutoverError(
      ErrorCode.ConfigInvalid,
      "target.host: missing from the migration file — add the `target.host` section (migration.example.yml has one)",
    );
  }
  return host;
}

const heredoc = (body: string) => {
  if (/^CUTOVER_EOF$/m.test(body)) {
    throw new CutoverError(ErrorCode.ConfigInvalid, "a rendered file contains the line CUTOVER_EOF");
  }
  return `<<'CUTOVER_EOF'\n${body.endsWith("\n") ? body : `${body}\n`}CUTOVER_EOF`;
};

const COMMON = `say() { printf '::cutover:: %s\\n' "$*"; }
section() { say "section $1"; }
want() { case " $SECTIONS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
real() { [ -z "$ROOT" ]; }
# wait_for TRIES CMD...: runs CMD (quietly) every 0.2 s until it succeeds, at most TRIES times; a
# daemon's start script returns once it forked, before it answers
wait_for() { local n="$1"; shift; for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
redis_up() { [ "$(redis-cli ping 2>/dev/null)" = PONG ]; }

# svc ACTION NAME: systemd where it runs (Ubuntu, Debian on a VM), else the init.d scripts
# (a container or the test box); ACTION is enable (at boot, and start now), active, reload, start
svc() {
  # 8>&-: a daemon started from here must not inherit the set-up's lock (fd 8) and hold it for ever
  if [ -d /run/systemd/system ]; then
    case "$1" in
      enable) systemctl enable --now "$2" >/dev/null 2>&1 8>&- || systemctl start "$2" 8>&- ;;
      active) systemctl is-active --quiet "$2" ;;
      *) systemctl "$1" "$2" 8>&- ;;
    esac
  else
    case "$1" in
      enable)
        update-rc.d "$2" defaults >/dev/null 2>&1 || true
        update-rc.d "$2" enable >/dev/null 2>&1 || true
        service "$2" status >/dev/null 2>&1 || service "$2" start 8>&-
        ;;
      active) service "$2" status >/dev/null 2>&1 ;;
      *) service "$2" "$1" 8>&- ;;
    esac
  fi
}

# put_file PATH MODE OWNER TAG: writes stdin to $ROOT/PATH only when the content differs
put_file() {
  local path="$ROOT$1" mode="$2" owner="$3" tag="$4" tmp
  mkdir -p "$(dirname "$path")"
  tmp="$(mktemp "$path.XXXXXX")"
  cat >"$tmp"
  chmod "$mode" "$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
    say "unchanged $1"
  else
    mv -f "$tmp" "$path"
    say "updated $1"
    CHANGED="$CHANGED $tag"
  fi
  chmod "$mode" "$path"
  if real; then chown "$owner" "$path"; fi
}`;

const OS_DETECT = `# The host's OS, from /etc/os-release: where Ubuntu 22.04 and Debian 12 differ (where Python
# comes from, which packages that needs), the script chooses by it.
osr() { sed -n "s/^$1=//p" /etc/os-release | head -n 1 | tr -d '"'; }
detect_os() {
  local id version pretty
  id="$(osr ID)"
  version="$(osr VERSION_ID)"
  pretty="$(osr PRETTY_NAME)"
  OS="$id-$version"
  case "$OS" in
    ubuntu-22.04 | debian-12) say "os $OS ($pretty)" ;;
    *)
      echo "this set-up knows Ubuntu 22.04 and Debian 12; the host runs $pretty — use one of those for the instance's blueprint" >&2
      exit 4
      ;;
  esac
}
OS=""
if real; then
  # one set-up at a time: a rerun after Cutover was killed waits for the first run's remains
  exec 8>"/run/lock/cutover-$PROJECT-setup.lock"
  flock -w 900 8 || { echo "another set-up of $PROJECT has held the lock for 15 minutes; look for it with: ps aux | grep setup.sh" >&2; exit 5; }
  detect_os
fi
# apt waits for a lock another apt holds (a first boot's unattended upgrades) instead of failing
apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }`;

/**
 * The set-up script for the app host: packages, Python, the app user and folders, Gunicorn,
 * Supervisor programs, Redis, Nginx and the TLS certificate. Runs as root; safe to run again.
 */
export function renderSetupScript(file: MigrationFile): string {
  const host = need(file);
  const p = hostPaths(file, host);
  const tls = host.nginx.tls;
  const services = host.supervisor.services;
  const firstName = host.nginx.serverNames[0]!;
  const lines: string[] = [];
  const push = (...l: string[]) => lines.push(...l);

  push(
    "#!/usr/bin/env bash",
    `# Cutover: set-up of the app host for ${file.project}, rendered from the migration file.`,
    "# Idempotent: run it again and it changes only what differs. It holds no secret.",
    `# Sections: ${SETUP_SECTIONS.join(" ")}`,
    "set -Eeuo pipefail",
    "umask 022",
    "export DEBIAN_FRONTEND=noninteractive",
    `ROOT="\${CUTOVER_ROOT:-}"`,
    `SECTIONS="\${CUTOVER_SECTIONS:-${SETUP_SECTIONS.join(" ")}}"`,
    ...ERR_TRAP,
    "",
    `PROJECT=${shq(file.project)}`,
    `APP_USER=${shq(p.appUser)}`,
    `APP_DIR=${shq(p.appDir)}`,
    `VENV=${shq(p.venv)}`,
    `PY=${shq(host.python)}`,
    `CERT_DIR=${shq(p.certDir)}`,
    `SITE=${shq(p.nginxSite)}`,
    'CHANGED=""',
    "",
    COMMON,
    OS_DETECT,
    "",
  );

  push(
    "if want packages && real; then",
    "  section packages",
    "  # a run killed mid-install leaves dpkg half done; this finishes it (a no-op otherwise)",
    "  dpkg --configure -a",
    "  apt_get update -qq",
    `  apt_get install -y -qq --no-install-recommends ${setupPackages(host).map(shq).join(" ")}`,
    "fi",
    "",
    "if want python && real; then",
    "  section python",
    '  case "$OS" in',
    "    debian-12)",
    "      # Debian 12's own Python is 3.11; there is no PPA to add another",
    '      if [ "$PY" != 3.11 ]; then',
    '        echo "Debian 12 ships Python 3.11 only; set target.host.python to \\"3.11\\" or use Ubuntu 22.04 (deadsnakes)" >&2',
    "        exit 4",
    "      fi",
    '      apt_get install -y -qq --no-install-recommends "python$PY" "python$PY-venv" "python$PY-dev"',
    "      ;;",
    "    ubuntu-22.04)",
    "      # Ubuntu 22.04's Python is 3.10: another version comes from the deadsnakes PPA",
    '      if ! command -v "python$PY" >/dev/null 2>&1 || ! "python$PY" -c "import venv, ensurepip" >/dev/null 2>&1; then',
    '        if ! apt_get install -y -qq "python$PY" "python$PY-venv" "python$PY-dev"; then',
    "          apt_get install -y -qq software-properties-common",
    "          add-apt-repository -y ppa:deadsnakes/ppa",
    "          apt_get update -qq",
    '          apt_get install -y -qq "python$PY" "python$PY-venv" "python$PY-dev"',
    "        fi",
    "      fi",
    "      ;;",
    "  esac",
    '  "python$PY" --version',
    ...(host.pythonPackages === "os"
      ? [
          "  # the app's Python packages come from the OS (target.host.pythonPackages: os): its python3 must be $PY",
          '  if [ "$(python3 -c \'import sys; print("%d.%d" % sys.version_info[:2])\')" != "$PY" ]; then',
          '    echo "pythonPackages: os needs the OS\'s python3 to be $PY; on $OS it is $(python3 --version 2>&1) — set target.host.python to it, or use pythonPackages: pip" >&2',
          "    exit 4",
          "  fi",
        ]
      : []),
    "fi",
    "",
    "if want app_user; then",
    "  section app_user",
    '  if real && ! id -u "$APP_USER" >/dev/null 2>&1; then',
    '    useradd --system --create-home --home-dir "/home/$APP_USER" --shell /usr/sbin/nologin "$APP_USER"',
    "  fi",
    '  for d in "$APP_DIR" "$APP_DIR/releases" "$APP_DIR/shared"; do',
    '    mkdir -p "$ROOT$d"',
    '    if real; then chown "$APP_USER:$APP_USER" "$d"; fi',
    "  done",
    "  if real; then",
    '    if [ -x "$VENV/bin/python" ] && [ "$("$VENV/bin/python" -c \'import sys; print("%d.%d" % sys.version_info[:2])\')" != "$PY" ]; then',
    '      say "the virtualenv has another Python; recreating it"',
    '      rm -rf "$VENV"',
    "    fi",
    ...(host.pythonPackages === "os"
      ? [
          '    if [ -x "$VENV/bin/python" ] && ! grep -qx "include-system-site-packages = true" "$VENV/pyvenv.cfg"; then',
          '      say "the virtualenv does not see the OS\'s packages; recreating it"',
          '      rm -rf "$VENV"',
          "    fi",
          '    if [ ! -x "$VENV/bin/python" ]; then runuser -u "$APP_USER" -- "python$PY" -m venv --system-site-packages "$VENV"; CHANGED="$CHANGED venv"; fi',
          "    # the OS's console scripts the programs call as {venv}/bin/<tool>, run by the venv's Python",
          `    for tool in ${venvTools(host).join(" ")}; do`,
          '      if [ ! -e "$VENV/bin/$tool" ] && [ -f "/usr/bin/$tool" ]; then',
          '        printf \'#!/bin/sh\\nexec %s/bin/python /usr/bin/%s "$@"\\n\' "$VENV" "$tool" >"$VENV/bin/$tool"',
          '        chmod 0755 "$VENV/bin/$tool"',
          '        chown "$APP_USER:$APP_USER" "$VENV/bin/$tool"',
          '        CHANGED="$CHANGED venv"',
          "      fi",
          '      if [ ! -e "$VENV/bin/$tool" ]; then',
          '        echo "a Supervisor program runs $VENV/bin/$tool, but the OS has no /usr/bin/$tool: add the package that ships it to target.host.packages (on Debian 12 and Ubuntu 22.04: $tool)" >&2',
          "        exit 4",
          "      fi",
          "    done",
          '    runuser -u "$APP_USER" -- "$VENV/bin/python" -c \'import gunicorn, uvicorn\'',
        ]
      : [
          '    if [ ! -x "$VENV/bin/python" ]; then runuser -u "$APP_USER" -- "python$PY" -m venv "$VENV"; CHANGED="$CHANGED venv"; fi',
          '    runuser -u "$APP_USER" -- "$VENV/bin/pip" install -q --upgrade pip wheel gunicorn uvicorn',
        ]),
    "  fi",
    "fi",
    "",
    "if want gunicorn; then",
    "  section gunicorn",
    `  put_file ${shq(p.gunicornConf)} 0644 "$APP_USER:$APP_USER" gunicorn ${heredoc(gunicornConf(host))}`,
    "fi",
    "",
    "if want supervisor; then",
    "  section supervisor",
  );
  services.forEach((s, i) => {
    push(
      `  put_file ${shq(`${p.supervisorDir}/${s.name}.conf`)} 0644 root:root supervisor ${heredoc(supervisorProgram(file, host, p, i))}`,
    );
  });
  push(
    "  # programs Cutover wrote earlier that the migration file no longer lists",
    `  for f in "$ROOT"${shq(p.supervisorDir)}/*.conf; do`,
    '    [ -e "$f" ] || continue',
    '    grep -qx "# cutover-project: $PROJECT" "$f" || continue',
    '    case "$(basename "$f" .conf)" in',
    `      ${services.map((s) => shq(s.name)).join(" | ")}) ;;`,
    '      *) rm -f "$f"; say "removed $f"; CHANGED="$CHANGED supervisor" ;;',
    "    esac",
    "  done",
    "fi",
    "",
  );
  if (host.redis.local) {
    push(
      "if want redis && real; then",
      "  section redis",
      "  svc enable redis-server",
      // a ping at once was refused on a loaded machine: wait up to 15 s, then ping once more for
      // the error it prints
      "  wait_for 75 redis_up || true",
      "  redis-cli ping",
      "fi",
      "",
    );
  }
  push(
    "write_site() {",
    '  if [ -f "$ROOT$CERT_DIR/fullchain.pem" ]; then',
    `    put_file "$SITE" 0644 root:root nginx ${heredoc(nginxSite(host, p, true))}`,
    "  else",
    `    put_file "$SITE" 0644 root:root nginx ${heredoc(nginxSite(host, p, false))}`,
    "  fi",
    '  mkdir -p "$ROOT/etc/nginx/sites-enabled" "$ROOT/var/www/letsencrypt"',
    '  if [ "$(readlink "$ROOT/etc/nginx/sites-enabled/$PROJECT" 2>/dev/null || true)" != "$SITE" ]; then',
    '    ln -sfn "$SITE" "$ROOT/etc/nginx/sites-enabled/$PROJECT"',
    '    CHANGED="$CHANGED nginx"',
    "  fi",
    '  if [ -L "$ROOT/etc/nginx/sites-enabled/default" ]; then',
    '    rm -f "$ROOT/etc/nginx/sites-enabled/default"',
    '    say "disabled the default nginx site"',
    '    CHANGED="$CHANGED nginx"',
    "  fi",
    "}",
    "",
    "if want nginx; then",
    "  section nginx",
    "  write_site",
    "fi",
    "",
    "if want tls && real; then",
    "  section tls",
  );
  const domains = host.nginx.serverNames.map((n) => `-d ${shq(n)}`).join(" ");
  if (tls.mode === "letsencrypt-dns") {
    push(
      '  if [ -f "$CERT_DIR/fullchain.pem" ]; then',
      '    say "certificate present for $PROJECT; certbot renews it"',
      "  else",
      `    if [ ! -f ${shq(p.certbotCredentials)} ]; then`,
      `      echo "the certbot Cloudflare credentials are missing at ${p.certbotCredentials}" >&2`,
      "      exit 3",
      "    fi",
      `    certbot certonly --non-interactive --agree-tos --email ${shq(tls.email ?? "")} --dns-cloudflare --dns-cloudflare-credentials ${shq(p.certbotCredentials)} --dns-cloudflare-propagation-seconds 30 --cert-name "$PROJECT" ${domains} --keep-until-expiring`,
      "  fi",
    );
  } else if (tls.mode === "letsencrypt-http") {
    push(
      "  svc reload nginx || svc restart nginx",
      '  if [ -f "$CERT_DIR/fullchain.pem" ]; then',
      '    say "certificate present for $PROJECT; certbot renews it"',
      `  elif ! certbot certonly --non-interactive --agree-tos --email ${shq(tls.email ?? "")} --webroot -w /var/www/letsencrypt --cert-name "$PROJECT" ${domains} --keep-until-expiring; then`,
      `    say "warning: no certificate yet for ${firstName}: HTTP-01 needs DNS to point here; run host.setup again after the DNS switch"`,
      "  fi",
    );
  } else if (tls.mode === "cloudflare-origin") {
    push(
      '  if [ ! -f "$CERT_DIR/fullchain.pem" ]; then',
      '    say "warning: place the Cloudflare origin certificate at $CERT_DIR/fullchain.pem and its key at $CERT_DIR/privkey.pem, then run host.setup again"',
      "  fi",
    );
  } else {
    push('  say "TLS is off (target.host.nginx.tls.mode: none)"');
  }
  if (tls.mode.startsWith("letsencrypt")) {
    push(
      `  put_file /etc/letsencrypt/renewal-hooks/deploy/cutover-reload-nginx.sh 0755 root:root tls ${heredoc("#!/bin/sh\n# Written by Cutover: reload nginx after a renewal.\nif [ -d /run/systemd/system ]; then systemctl reload nginx; else service nginx reload; fi\n")}`,
    );
  }
  push(
    "  write_site",
    "fi",
    "",
    "if want reload && real; then",
    "  section reload",
    "  nginx -t",
    "  svc enable nginx",
    "  svc reload nginx",
    "  svc enable supervisor",
    "  # supervisord answers its socket a moment after its start",
    "  wait_for 50 supervisorctl pid || true",
    "  supervisorctl reread",
    '  if [ -e "$APP_DIR/current" ]; then supervisorctl update; else say "no release deployed yet: the programs start with the first deploy"; fi',
    "fi",
    "",
    "if want mark; then",
    "  section mark",
    `  mkdir -p "$ROOT"${shq(posix.dirname(p.setupMarker))}`,
    `  sha256sum "$0" | cut -d' ' -f1 >"$ROOT"${shq(p.setupMarker)}`,
    "fi",
    "",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: bash parameter expansion, not a JS template
    'say "done changed=${CHANGED# }"',
    "",
  );
  return lines.join("\n");
}

/**
 * Checks that the set-up holds, one line each: `ok <check>` or `FAIL <check>: <why>`. Read-only;
 * always exits 0 so every line arrives.
 */
export function renderVerifyScript(file: MigrationFile): string {
  const host = need(file);
  const p = hostPaths(file, host);
  const lines = [
    "#!/usr/bin/env bash",
    "# shellcheck disable=SC2016",
    "# (single-quoted commands are run by another bash, which expands them)",
    `# Cutover: checks of the app host for ${file.project} (read-only).`,
    "set -uo pipefail",
    'check() { local name="$1"; shift; if out="$("$@" 2>&1)"; then echo "ok $name"; else echo "FAIL $name: $(printf %s "$out" | tail -n 1)"; fi; }',
    `check python${host.python} "python${host.python}" --version`,
    `check venv test -x ${shq(`${p.venv}/bin/python`)}`,
    `check gunicorn.conf grep -qx ${shq(`workers = ${host.gunicorn.workers}`)} ${shq(p.gunicornConf)}`,
    "check nginx-config nginx -t",
    `check nginx-site test -L ${shq(`/etc/nginx/sites-enabled/${file.project}`)}`,
    "# shellcheck disable=SC2317 # (called through check)",
    'svc_active() { if [ -d /run/systemd/system ]; then systemctl is-active --quiet "$1"; else service "$1" status; fi; }',
    "check nginx-running svc_active nginx",
    "check supervisor-running svc_active supervisor",
    ...host.supervisor.services.map(
      (s) => `check ${shq(`supervisor:${s.name}`)} test -f ${shq(`${p.supervisorDir}/${s.name}.conf`)}`,
    ),
    ...setupPackages(host).map((pkg) => `check ${shq(`package:${pkg}`)} dpkg -s ${shq(pkg)}`),
    ...(host.redis.local ? ["check redis bash -c '[ \"$(redis-cli ping)\" = PONG ]'"] : []),
    `check env-file-0600 bash -c ${shq(`[ "$(stat -c %a ${shq(p.envFile)})" = 600 ]`)}`,
    ...(host.nginx.tls.mode === "letsencrypt-dns"
      ? [`check tls-certificate test -f ${shq(`${p.certDir}/fullchain.pem`)}`]
      : []),
    "exit 0",
    "",
  ];
  return lines.join("\n");
}

/** What the deploy script needs besides the file. */
export interface DeployRelease {
  /** the release folder's name, e.g. 20260310T020000Z-main */
  id: string;
}

/**
 * The deploy script: fetch the configured release into its own folder, link the shared .env,
 * install, migrate (when configured), switch `current` atomically, restart the Supervisor
 * programs and prune old releases. Rerunning it for the same release id skips the fetch and
 * install that already completed.
 */
export function renderDeployScript(file: MigrationFile, release: DeployRelease): string {
  const host = need(file);
  const p = hostPaths(file, host);
  const r = host.release;
  const rel = `${p.releases}/${release.id}`;
  const app = r.workdir === "." ? rel : `${rel}/${r.workdir}`;
  const partial = `${rel}.partial`;
  let fetch: string;
  if (r.fetchCommand) {
    fetch = r.fetchCommand.replace(/\{(repo|ref|archiveUrl|dir)\}/g, (_, k: string) =>
      k === "dir"
        ? '"$PARTIAL"'
        : shq(k === "repo" ? (r.repo ?? "") : k === "ref" ? r.ref : (r.archiveUrl ?? "")),
    );
  } else if (r.repo) {
    fetch = /^[0-9a-f]{7,40}$/.test(r.ref)
      ? `git init -q "$PARTIAL" && git -C "$PARTIAL" remote add origin ${shq(r.repo)} && git -C "$PARTIAL" fetch -q --depth 1 origin ${shq(r.ref)} && git -C "$PARTIAL" checkout -q FETCH_HEAD`
      : `git clone -q --depth 1 --branch ${shq(r.ref)} ${shq(r.repo)} "$PARTIAL"`;
  } else {
    fetch = `curl -fsSL ${shq(r.archiveUrl ?? "")} -o "$PARTIAL.tar.gz" && if [ "$(tar -tzf "$PARTIAL.tar.gz" | cut -d/ -f1 | sort -u | wc -l)" = 1 ]; then tar -xzf "$PARTIAL.tar.gz" -C "$PARTIAL" --strip-components=1; else tar -xzf "$PARTIAL.tar.gz" -C "$PARTIAL"; fi && rm -f "$PARTIAL.tar.gz"`;
  }
  const gitSsh = r.deployKeyPathEnv
    ? `GIT_SSH_COMMAND=${shq(`ssh -i ${p.deployKey} -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new`)} `
    : "";
  const services = host.supervisor.services.map((s) => shq(s.name)).join(" ");
  const lines = [
    "#!/usr/bin/env bash",
    "# shellcheck disable=SC2016",
    "# (single-quoted commands are run by another bash, which expands them)",
    `# Cutover: deploy release ${release.id} of ${file.project}, rendered from the migration file. No secrets.`,
    "set -Eeuo pipefail",
    "umask 022",
    ...ERR_TRAP,
    `APP_USER=${shq(p.appUser)}`,
    `APP_DIR=${shq(p.appDir)}`,
    `RELEASE=${shq(release.id)}`,
    `REL=${shq(rel)}`,
    `APP=${shq(app)}`,
    `PARTIAL=${shq(partial)}`,
    `KEEP=${r.keep}`,
    "say() { printf '::cutover:: %s\\n' \"$*\"; }",
    'as_app() { local dir="$1"; shift; (cd "$dir" && runuser -u "$APP_USER" -- env HOME="/home/$APP_USER" bash -c "$1"); }',
    "# one deploy at a time: a rerun after Cutover was killed waits for the first run's remains",
    `exec 8>${shq(`/run/lock/cutover-${file.project}-deploy.lock`)}`,
    'flock -w 900 8 || { echo "another deploy has held the lock for 15 minutes" >&2; exit 5; }',
    'PREVIOUS="$(basename "$(readlink "$APP_DIR/current" 2>/dev/null || echo none)")"',
    'say "previous $PREVIOUS"',
    "",
    'if [ -f "$REL/.cutover-complete" ]; then',
    '  say "release $RELEASE already fetched and installed"',
    "else",
    '  say "section fetch"',
    '  rm -rf "$PARTIAL" "$REL"',
    '  mkdir -p "$PARTIAL"',
    '  chown "$APP_USER:$APP_USER" "$PARTIAL"',
    `  runuser -u "$APP_USER" -- env HOME="/home/$APP_USER" PARTIAL="$PARTIAL" ${gitSsh}bash -c ${shq(fetch)}`,
    '  mv "$PARTIAL" "$REL"',
    '  say "section env"',
    `  mkdir -p "$(dirname "$APP/"${shq(p.envLink)})"`,
    `  ln -sfn ${shq(p.envFile)} "$APP/"${shq(p.envLink)}`,
    '  say "section install"',
    `  as_app "$APP" ${shq(fillCommand(r.installCommand, host, p, app))}`,
    ...(r.migrateCommand
      ? ['  say "section migrate"', `  as_app "$APP" ${shq(fillCommand(r.migrateCommand, host, p, app))}`]
      : []),
    '  touch "$REL/.cutover-complete"',
    "fi",
    "",
    'say "section switch"',
    'ln -sfn "releases/$RELEASE" "$APP_DIR/current.cutover-new"',
    'mv -T "$APP_DIR/current.cutover-new" "$APP_DIR/current"',
    'say "section restart"',
    "supervisorctl reread",
    "supervisorctl update",
    `supervisorctl restart ${services}`,
    'say "section prune"',
    `find "$APP_DIR/releases" -mindepth 1 -maxdepth 1 -type d ! -name '*.partial' -printf '%T@ %f\\n' | sort -rn | tail -n +"$((KEEP + 1))" | while read -r _ old; do`,
    // biome-ignore lint/suspicious/noTemplateCurlyInString: bash parameter expansion, not a JS template
    '  if [ "$old" != "$RELEASE" ] && [ "$old" != "$PREVIOUS" ]; then rm -rf "${APP_DIR:?}/releases/$old"; say "pruned $old"; fi',
    "done",
    'say "deployed $RELEASE"',
    "",
  ];
  return lines.join("\n");
}

/** Points `current` at another (already installed) release and restarts the programs. */
export function renderSwitchScript(file: MigrationFile, releaseId: string): string {
  const host = need(file);
  const p = hostPaths(file, host);
  const services = host.supervisor.services.map((s) => shq(s.name)).join(" ");
  return [
    "#!/usr/bin/env bash",
    `# Cutover: switch ${file.project} back to release ${releaseId}.`,
    "set -Eeuo pipefail",
    `APP_DIR=${shq(p.appDir)}`,
    `RELEASE=${shq(releaseId)}`,
    'test -f "$APP_DIR/releases/$RELEASE/.cutover-complete"',
    'ln -sfn "releases/$RELEASE" "$APP_DIR/current.cutover-new"',
    'mv -T "$APP_DIR/current.cutover-new" "$APP_DIR/current"',
    "supervisorctl reread",
    "supervisorctl update",
    `supervisorctl restart ${services}`,
    "printf '::cutover:: switched to %s\\n' \"$RELEASE\"",
    "",
  ].join("\n");
}

/** A value for an .env line: bare when plain, otherwise single-quoted (python-dotenv and bash read both). */
function envValue(value: string): string {
  if (/^[A-Za-z0-9_./:@%+,=-]*$/.test(value)) return value;
  if (!value.includes("'") && !/[\r\n]/.test(value)) return `'${value}'`;
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n").replace(/\r/g, "\\r").replace(/\$/g, "\\$")}"`;
}

/** The app's .env text from resolved values, keys in the file's order. */
export function renderAppEnv(file: MigrationFile, values: Record<string, string>): string {
  return [
    `# ${file.project}: written by Cutover from target.host.appEnv (mode 0600). Edits here are overwritten.`,
    ...Object.entries(values).map(([k, v]) => `${k}=${envValue(v)}`),
    "",
  ].join("\n");
}
