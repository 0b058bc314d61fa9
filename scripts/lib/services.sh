# Shared by scripts/up and scripts/test: make sure a PostgreSQL and a Redis
# answer, so that a fresh machine needs nothing but these scripts. For each:
#   1. one answers on its default port (127.0.0.1:5432, 127.0.0.1:6379): use it;
#   2. the system's own is installed but stopped: start it;
#   3. nothing is installed: install the OS packages (apt-get, as root or with
#      passwordless sudo), or print the one command that does and stop;
#   4. the binaries are there but the system server cannot be started (not
#      root, no cluster): run a private one under var/services/, on the
#      default port when it is free and on a free port otherwise, and export
#      DATABASE_URL / REDIS_URL for it unless they are set. It keeps its data
#      and is started again by the next run (stop it with `pg_ctl -D
#      var/services/postgres stop` and `redis-cli -p PORT shutdown`).

SERVICES_DIR="$PWD/var/services"

pg_up() { # [port]
  local port="${1:-5432}"
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -h 127.0.0.1 -p "$port" -q
  else
    psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1
  fi
}

redis_up() { # [port]
  redis-cli -h 127.0.0.1 -p "${1:-6379}" ping 2>/dev/null | grep -q PONG
}

wait_for() { # what, check-function [args...]
  local what="$1"
  shift
  for _ in $(seq 1 100); do
    if "$@"; then return 0; fi
    sleep 0.2
  done
  echo "error: $what did not come up on time" >&2
  exit 1
}

# as_root: scripts/lib/root.sh
. "$(dirname "${BASH_SOURCE[0]}")/root.sh"

# Installs an OS package with apt-get when this user may; otherwise prints
# the command to run and stops. `first|second`: the first one apt knows.
install_packages() { # what, package
  local what="$1" choices="$2" choice
  set -- "${choices%%|*}"
  if command -v apt-get >/dev/null 2>&1 && as_root true; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    for choice in ${choices//|/ }; do
      if apt-cache show "$choice" >/dev/null 2>&1; then set -- "$choice"; break; fi
    done
    echo "installing $what: $* (apt-get)" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  elif command -v apt-get >/dev/null 2>&1; then
    echo "error: $what is not installed; run: sudo apt-get install -y $*" >&2
    exit 1
  else
    echo "error: $what is not installed; install it with your package manager ($*) and run this again" >&2
    exit 1
  fi
}

port_free() { # port
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The default port when free, else the first free one above 20000 + it.
free_port() { # default
  local port="$1"
  if port_free "$port"; then echo "$port"; return; fi
  for port in $(seq $((20000 + $1)) $((20100 + $1))); do
    if port_free "$port"; then echo "$port"; return; fi
  done
  echo "error: no free port for a private server near $((20000 + $1))" >&2
  exit 1
}

pg_bin() { # program: on PATH, or in Debian's versioned directory
  if command -v "$1" >/dev/null 2>&1; then
    command -v "$1"
    return
  fi
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -n "$dir" ] && [ -x "$dir/$1" ]; then echo "$dir/$1"; fi
}

start_system_postgres() {
  command -v pg_ctlcluster >/dev/null 2>&1 && [ -n "$(ls /etc/postgresql 2>/dev/null)" ] || return 1
  local version
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  echo "starting PostgreSQL $version" >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 2>/dev/null \
    || as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 2>/dev/null \
    || return 1
  wait_for PostgreSQL pg_up
}

start_private_postgres() {
  local initdb pg_ctl data="$SERVICES_DIR/postgres" port
  initdb="$(pg_bin initdb)"
  pg_ctl="$(pg_bin pg_ctl)"
  if [ -z "$initdb" ] || [ -z "$pg_ctl" ]; then
    echo "error: PostgreSQL's initdb/pg_ctl were not found; install the server (apt-get install postgresql-15)" >&2
    exit 1
  fi
  if [ "$(id -u)" -eq 0 ]; then
    echo "error: PostgreSQL is installed but not running and cannot be started; as root, start it (pg_ctlcluster 15 main start) or run as another user for a private instance" >&2
    exit 1
  fi
  mkdir -p "$SERVICES_DIR"
  port="$(cat "$SERVICES_DIR/postgres.port" 2>/dev/null || true)"
  if [ -n "$port" ] && pg_up "$port"; then
    :
  else
    if [ ! -s "$data/PG_VERSION" ]; then
      echo "creating a private PostgreSQL in var/services/postgres" >&2
      "$initdb" -D "$data" -U postgres --auth=trust >"$SERVICES_DIR/initdb.log" 2>&1 || {
        echo "error: initdb failed; see var/services/initdb.log" >&2
        exit 1
      }
    fi
    port="$(free_port 5432)"
    echo "starting a private PostgreSQL on 127.0.0.1:$port (var/services/postgres)" >&2
    "$pg_ctl" -D "$data" -l "$SERVICES_DIR/postgres.log" -w -o "-p $port -c listen_addresses=127.0.0.1 -k $SERVICES_DIR" start >/dev/null || {
      echo "error: the private PostgreSQL did not start; see var/services/postgres.log" >&2
      exit 1
    }
    echo "$port" >"$SERVICES_DIR/postgres.port"
    wait_for PostgreSQL pg_up "$port"
  fi
  export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:$port/bourse}"
  export TEST_DATABASE_ADMIN_URL="${TEST_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:$port/postgres}"
}

start_private_redis() {
  local port
  mkdir -p "$SERVICES_DIR"
  port="$(cat "$SERVICES_DIR/redis.port" 2>/dev/null || true)"
  if [ -z "$port" ] || ! redis_up "$port"; then
    port="$(free_port 6379)"
    echo "starting a private Redis on 127.0.0.1:$port (var/services/redis.conf)" >&2
    cat >"$SERVICES_DIR/redis.conf" <<CONF
bind 127.0.0.1
port $port
daemonize yes
pidfile $SERVICES_DIR/redis.pid
logfile $SERVICES_DIR/redis.log
dir $SERVICES_DIR
save ""
appendonly no
CONF
    redis-server "$SERVICES_DIR/redis.conf" >&2
    echo "$port" >"$SERVICES_DIR/redis.port"
    wait_for Redis redis_up "$port"
  fi
  export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:$port/0}"
}

# A cluster this script just installed asks for a password over TCP;
# scripts/up and the tests connect to 127.0.0.1 as postgres without one, as
# on a developer's machine. Only the loopback lines change.
trust_local_tcp() {
  local hba
  for hba in /etc/postgresql/*/main/pg_hba.conf; do
    [ -f "$hba" ] || continue
    echo "PostgreSQL: trusting connections from this machine (127.0.0.1, ::1) in $hba" >&2
    as_root sed -i -E 's#^(host[[:space:]]+all[[:space:]]+all[[:space:]]+(127\.0\.0\.1/32|::1/128)[[:space:]]+)[a-z0-9-]+#\1trust#' "$hba"
  done
}

ensure_postgres() {
  if pg_up; then return 0; fi
  if [ -z "$(pg_bin initdb)" ] && [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    install_packages "PostgreSQL 15" "postgresql-15|postgresql"
    trust_local_tcp
    # The package starts its cluster where services can be started.
    if pg_up; then
      local version
      version="$(ls /etc/postgresql | sort -V | tail -n 1)"
      as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload >&2
      return 0
    fi
  fi
  start_system_postgres || start_private_postgres
}

ensure_redis() {
  if redis_up; then return 0; fi
  if ! command -v redis-server >/dev/null 2>&1; then
    install_packages "Redis 7" redis-server
    if redis_up; then return 0; fi
  fi
  if [ "$(id -u)" -eq 0 ] || port_free 6379; then
    # Today's instance: on the default port, nothing kept on disk.
    echo "starting Redis" >&2
    if redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >&2 \
      && wait_for Redis redis_up; then
      return 0
    fi
  fi
  start_private_redis
}

ensure_services() {
  ensure_postgres
  ensure_redis
}
