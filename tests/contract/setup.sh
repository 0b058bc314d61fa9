#!/usr/bin/env bash
# Installs Schemathesis, the OpenAPI fuzzer of the contract test
# (tests/tests/e2e/contract.rs), into a virtualenv at target/contract-venv, at
# the exact versions of tests/contract/requirements.txt. Quiet when it is
# there; fails loudly when it cannot be installed. Run by scripts/test and
# by the test itself.
set -euo pipefail
cd "$(dirname "$0")"
root="$(cd ../.. && pwd)"
venv="${CARGO_TARGET_DIR:-$root/target}/contract-venv"
stamp="$venv/.installed"

# Installed, and from the current requirements: nothing to do.
if [ -x "$venv/bin/st" ] && [ -f "$stamp" ] && [ ! requirements.txt -nt "$stamp" ]; then
  exit 0
fi

. ../../scripts/lib/root.sh
AS_ROOT_LOUD=1

# Debian's python3 has venv only with python3-venv (which brings ensurepip).
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  echo "contract tests: installing python3 and python3-venv (apt-get)" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
fi

echo "contract tests: installing schemathesis into $venv (pip)" >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  --no-input --require-virtualenv -r requirements.txt >&2
"$venv/bin/st" --version >/dev/null
touch "$stamp"
