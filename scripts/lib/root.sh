# Runs a command as root: directly when we are root, through passwordless
# sudo otherwise. Returns 1 when neither is possible; with AS_ROOT_LOUD=1 it
# also says so on stderr. Sourced by scripts/lib/services.sh and the
# scripts/docker/ scripts.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    if [ "${AS_ROOT_LOUD:-0}" = 1 ]; then
      echo "error: $* needs root: run as root or with passwordless sudo" >&2
    fi
    return 1
  fi
}
