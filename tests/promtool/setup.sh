#!/usr/bin/env bash
# Makes Prometheus's `promtool` available to the metrics test
# (tests/tests/e2e/first_run.rs) and prints its path on stdout. Quiet when it is
# there; fails loudly when it cannot be had. Run by scripts/test and by the
# test itself.
#
# promtool comes from Debian's `prometheus` package. Installing that package
# would also start the Prometheus server (on 9090, the worker's default
# address) and pull in a web UI's worth of JavaScript; only promtool, a
# static Go binary, is needed, so the package is downloaded and promtool
# alone unpacked under target/tools.
set -euo pipefail
cd "$(dirname "$0")"
root="$(cd ../.. && pwd)"

if command -v promtool >/dev/null 2>&1; then
  command -v promtool
  exit 0
fi
tools="${CARGO_TARGET_DIR:-$root/target}/tools/prometheus"
if [ -x "$tools/usr/bin/promtool" ]; then
  echo "$tools/usr/bin/promtool"
  exit 0
fi

. ../../scripts/lib/root.sh
AS_ROOT_LOUD=1

echo "metrics test: fetching promtool from Debian's prometheus package (apt-get download)" >&2
download="$(mktemp -d)"
trap 'rm -rf "$download"' EXIT
# A fresh machine may have no package lists yet.
if ! (cd "$download" && apt-get download -qq prometheus >/dev/null 2>&1); then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  (cd "$download" && apt-get download -qq prometheus >&2) || {
    echo "error: cannot download Debian's prometheus package (for promtool); install it with apt-get install prometheus" >&2
    exit 1
  }
fi
mkdir -p "$tools.partial"
dpkg-deb --fsys-tarfile "$download"/prometheus_*.deb | tar -x -C "$tools.partial" ./usr/bin/promtool
"$tools.partial/usr/bin/promtool" --version >/dev/null
rm -rf "$tools"
mv "$tools.partial" "$tools"
echo "$tools/usr/bin/promtool"
