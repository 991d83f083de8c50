#!/usr/bin/env bash
# Debian's postgresql-15 (the operations tests start a throwaway server with initdb and pg_ctl;
# pg_dump/pg_restore come with it), installed with apt-get only when missing. Prints how long it
# took. The tests install it themselves when missing (tests/service/postgres.py); CI runs this
# first so the cost shows on its own line.
set -euo pipefail
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "postgres: initdb and pg_ctl are installed"
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
start=$(date +%s)
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
echo "postgres: installed postgresql-15 in $(( $(date +%s) - start )) s"
