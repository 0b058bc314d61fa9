#!/usr/bin/env bash
# Installs what the browser tests (tests/tests/e2e/web.rs) need when it is
# missing: Debian's chromium (/usr/bin/chromium) and the npm packages locked
# in tests/browser/package-lock.json (playwright-core). Quiet when all is
# there; fails loudly when something cannot be installed. Run by
# scripts/test and by the test itself.
set -euo pipefail
cd "$(dirname "$0")"

. ../../scripts/lib/root.sh
AS_ROOT_LOUD=1

apt_install() {
  echo "browser tests: installing $* (apt-get)" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "error: the browser tests need Node.js 20 or newer (playwright-core); found $(node --version)" >&2
  exit 1
fi

if [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
fi

# npm ci writes node_modules/.package-lock.json; a lock file changed since
# (a new playwright-core) installs again.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "browser tests: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
