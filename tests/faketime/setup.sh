#!/usr/bin/env bash
# Makes libfaketime available to the clock-skew test
# (tests/tests/e2e/leases.rs) and prints the library's path on stdout. Quiet
# when it is there; fails loudly when it cannot be had. Run by scripts/test
# and by the test itself.
#
# libfaketime (Debian's `faketime` package) is preloaded into one worker
# process to move its wall clock, as a host whose clock is off would be.
set -euo pipefail
cd "$(dirname "$0")"

find_lib() {
  find /usr/lib -path '*faketime/libfaketime.so.1' 2>/dev/null | head -n 1
}

lib="$(find_lib)"
if [ -z "$lib" ]; then
  . ../../scripts/lib/root.sh
  AS_ROOT_LOUD=1
  echo "clock-skew test: installing faketime (apt-get)" >&2
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null 2>&1; then
    # A fresh machine may have no package lists yet.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null || {
      echo "error: cannot install Debian's faketime package (apt-get install faketime)" >&2
      exit 1
    }
  fi
  lib="$(find_lib)"
fi
[ -n "$lib" ] || {
  echo "error: faketime is installed but libfaketime.so.1 is not under /usr/lib" >&2
  exit 1
}
echo "$lib"
