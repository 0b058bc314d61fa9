#!/usr/bin/env bash
# Makes PgBouncer available to the pooler tests (tests/tests/e2e/pgbouncer.rs)
# and prints the program's path on stdout. Quiet when it is there; fails
# loudly when it cannot be had. Run by scripts/test and by the tests
# themselves.
#
# Debian's `pgbouncer` package (1.18 on bookworm); the tests start their
# own instance, in transaction pooling mode, on a free port.
set -euo pipefail
cd "$(dirname "$0")"

find_program() {
  command -v pgbouncer 2>/dev/null || { [ -x /usr/sbin/pgbouncer ] && echo /usr/sbin/pgbouncer; } || true
}

program="$(find_program)"
if [ -z "$program" ]; then
  . ../../scripts/lib/root.sh
  AS_ROOT_LOUD=1
  echo "pooler tests: installing pgbouncer (apt-get)" >&2
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null 2>&1; then
    # A fresh machine may have no package lists yet.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null || {
      echo "error: cannot install Debian's pgbouncer package (apt-get install pgbouncer)" >&2
      exit 1
    }
  fi
  program="$(find_program)"
fi
[ -n "$program" ] || {
  echo "error: pgbouncer is installed but not on PATH nor at /usr/sbin/pgbouncer" >&2
  exit 1
}
echo "$program"
