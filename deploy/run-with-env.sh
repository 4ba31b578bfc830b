#!/bin/sh
# run-with-env.sh ENV_FILE COMMAND [ARGS…]: exports the NAME=value lines of ENV_FILE (comments and
# blank lines skipped; values taken literally, not evaluated by the shell) and execs COMMAND, so the
# command is the process a supervisor signals. For Supervisor, which has no EnvironmentFile.
set -eu
env_file=$1
shift
[ -r "$env_file" ] || { echo "run-with-env: cannot read $env_file" >&2; exit 2; }
while IFS= read -r line || [ -n "$line" ]; do
  case $line in
    '' | '#'*) continue ;;
    *=*) export "${line%%=*}=${line#*=}" ;;
    *) echo "run-with-env: $env_file: not NAME=value: $line" >&2; exit 2 ;;
  esac
done < "$env_file"
exec "$@"
