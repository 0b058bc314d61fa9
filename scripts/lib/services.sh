# Shared by scripts/up and scripts/test: make sure the local PostgreSQL and
# Redis are up, starting them when they are installed but stopped.

pg_up() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -h 127.0.0.1 -p 5432 -q
  else
    psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1
  fi
}

redis_up() {
  redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG
}

wait_for() { # what, check-function
  for _ in $(seq 1 100); do
    if "$2"; then return 0; fi
    sleep 0.2
  done
  echo "error: $1 did not come up on time" >&2
  exit 1
}

ensure_postgres() {
  if pg_up; then return 0; fi
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
    echo "starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start >&2
    wait_for PostgreSQL pg_up
  else
    echo "error: PostgreSQL is not running on 127.0.0.1:5432 and no local installation was found (install PostgreSQL 15 or start it)" >&2
    exit 1
  fi
}

ensure_redis() {
  if redis_up; then return 0; fi
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting Redis" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >&2
    wait_for Redis redis_up
  else
    echo "error: Redis is not running on 127.0.0.1:6379 and redis-server is not installed (install Redis 7 or start it)" >&2
    exit 1
  fi
}

ensure_services() {
  ensure_postgres
  ensure_redis
}
