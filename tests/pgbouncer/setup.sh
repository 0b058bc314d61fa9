#!/usr/bin/env bash
# Makes PgBouncer available to the pooler tests (tests/tests/e2e/pgbouncer.rs
# and the `…through_pgbouncer…` tests) and prints the program's path on
# stdout. Quiet when it is there; fails loudly when it cannot be had. Run by
# scripts/test and by the tests themselves.
#
# Debian's `pgbouncer` package (1.18 on bookworm); the tests start their
# own instance, in transaction pooling mode, on a free port.
set -euo pipefail
cd "$(dirname "$0")/../.."

find_program() {
  command -v pgbouncer 2>/dev/null || { [ -x /usr/sbin/pgbouncer ] && echo /usr/sbin/pgbouncer; } || true
}

program="$(find_program)"
if [ -z "$program" ]; then
  # install_packages: apt-get as root (or with sudo), else the command to run.
  . scripts/lib/services.sh
  install_packages "PgBouncer (pooler tests)" pgbouncer
  program="$(find_program)"
fi
[ -n "$program" ] || {
  echo "error: pgbouncer is installed but not on PATH nor at /usr/sbin/pgbouncer" >&2
  exit 1
}
echo "$program"
