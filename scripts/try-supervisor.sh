#!/usr/bin/env bash
# scripts/try-supervisor.sh: runs deploy/supervisor/cutover.conf under a real supervisord in a
# temporary folder (this checkout standing in for /opt/cutover; a 0700 `mktemp -d` data directory
# on the embedded default), waits for GET /healthz, stops the program (Supervisor's SIGTERM) and
# shows that the bot stopped cleanly (exit status 0, its embedded PostgreSQL stopped).
# supervisord: the one on PATH, else SUPERVISOR_ROOT=<a folder where the Debian package was
# unpacked with `apt-get download supervisor && dpkg -x supervisor_*.deb DIR`>.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=$(mktemp -d)
data=$(mktemp -d)
port=${PORT:-3977}
if command -v supervisord >/dev/null; then
  sd=(supervisord) sc=(supervisorctl)
else
  : "${SUPERVISOR_ROOT:?no supervisord on PATH: set SUPERVISOR_ROOT (see the header)}"
  export PYTHONPATH="$SUPERVISOR_ROOT/usr/lib/python3/dist-packages"
  sd=(python3 "$SUPERVISOR_ROOT/usr/bin/supervisord") sc=(python3 "$SUPERVISOR_ROOT/usr/bin/supervisorctl")
fi
cleanup() {
  "${sc[@]}" -c "$work/supervisord.conf" shutdown >/dev/null 2>&1 || true
  loc=$(head -n 1 "$data/postgres.location" 2>/dev/null || true)
  [ -n "$loc" ] && rm -rf "$(dirname "$loc")"
  rm -rf "$work" "$data"
}
trap cleanup EXIT

cat > "$work/migration.yml" <<YAML
version: 1
project: supervised
environment: supervised
slack: { channel: C0MIGRATE }
access: { operators: [U0OPERATOR], approvers: [U0APPROVER], channels: [C0MIGRATE] }
digest: { enabled: false }
runbook:
  phases:
    - id: check
      title: Check
      steps: [{ id: home, uses: http.check, with: { url: "http://127.0.0.1:9/" } }]
YAML
cat > "$work/cutover.env" <<ENV
SLACK_BOT_TOKEN=xoxb-supervised
SLACK_SIGNING_SECRET=supervised-secret
SLACK_API_URL=http://127.0.0.1:9/api/
PORT=$port
CUTOVER_CONFIG=$work/migration.yml
CUTOVER_DATA_DIR=$data
ENV
sed -e "s#/opt/cutover#$repo#g" -e "s#/etc/cutover/cutover.env#$work/cutover.env#" \
  -e "s#/var/log/cutover#$work#" deploy/supervisor/cutover.conf > "$work/cutover.conf"
cat > "$work/supervisord.conf" <<CONF
[unix_http_server]
file=$work/supervisor.sock
[supervisord]
logfile=$work/supervisord.log
pidfile=$work/supervisord.pid
childlogdir=$work
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://$work/supervisor.sock
[include]
files = $work/cutover.conf
CONF

echo "== supervisord $("${sd[@]}" --version), program from deploy/supervisor/cutover.conf, data dir $data ($(stat -c %a "$data"))"
"${sd[@]}" -c "$work/supervisord.conf"
start=$(date +%s.%N)
for _ in $(seq 1 600); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
echo "== GET /healthz after $(echo "$(date +%s.%N) - $start" | bc | cut -c1-4) s: $(curl -sS "http://127.0.0.1:$port/healthz")"
"${sc[@]}" -c "$work/supervisord.conf" status
echo "== the process Supervisor signals: $(ps -o pid=,args= -p "$(pgrep -P "$(< "$work/supervisord.pid")" | head -n 1)")"
echo "== supervisorctl stop cutover (SIGTERM)"
"${sc[@]}" -c "$work/supervisord.conf" stop cutover
echo "== supervisord's log:"
grep -E "spawned|success|stopped|exited|waiting" "$work/supervisord.log" | sed 's/^/   /'
echo "== the bot's last lines:"
grep -E "Cutover is up|lives in|stopping|PostgreSQL stopped" "$work"/cutover.log | cut -c1-220 | sed 's/^/   /'
