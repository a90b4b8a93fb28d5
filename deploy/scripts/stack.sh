#!/usr/bin/env bash
# The gateway's local service stack on a Debian machine without systemd as PID 1.
#
#   stack.sh up      install what is missing, start PostgreSQL, Redis and RabbitMQ
#                    when they are down, create the roles and database, start the
#                    project's PgBouncer on 127.0.0.1:6434. Safe to run again.
#   stack.sh status  one line per service; exits non-zero when one is down.
#   stack.sh down    stops the project's PgBouncer only: PostgreSQL, Redis and
#                    RabbitMQ are the machine's and shared, they are never stopped.
#   stack.sh timescaledb
#                    builds TimescaleDB into its private PostgreSQL tree (skipped
#                    when built), starts its side cluster on 127.0.0.1:5439 and
#                    creates the roles there as on 5432, for the test suites'
#                    TimescaleDB run (.ci/run). Needs ../shared/timescaledb beside
#                    the clone, or TSDB_SHARED pointing at it.
#
# Runs as root (apt-get, runuser). Environment: APP_DB_PASSWORD for the owner
# role telegram_gateway and APP_ROLE_PASSWORD for the application role
# telegram_gateway_app (development default telegram_gateway for both).
set -euo pipefail

readonly project_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly runtime_dir=/run/telegram-gateway/pgbouncer
readonly pgbouncer_source_ini="$project_dir/deploy/pgbouncer/pgbouncer.ini"
readonly pgbouncer_ini="$runtime_dir/pgbouncer.ini"
readonly pgbouncer_userlist="$runtime_dir/userlist.txt"
readonly pgbouncer_pidfile="$runtime_dir/pgbouncer.pid"
readonly pgbouncer_port=6434
readonly app_db_password="${APP_DB_PASSWORD:-telegram_gateway}"
readonly app_role_password="${APP_ROLE_PASSWORD:-telegram_gateway}"

log() { printf '[stack] %s\n' "$*" >&2; }

# Superuser psql over the local socket (trust or peer auth for postgres).
psql_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@"; }

apt_updated=false
ensure_packages() {
  local missing=() entry command package
  # promtool, systemd-analyze, curl, redis-sentinel and the exporters: the checks of deploy/ (test/deploy) run them.
  for entry in pg_ctlcluster:postgresql pg_isready:postgresql-client redis-server:redis-server \
    rabbitmq-server:rabbitmq-server pgbouncer:pgbouncer promtool:prometheus systemd-analyze:systemd curl:curl \
    redis-sentinel:redis-sentinel prometheus-postgres-exporter:prometheus-postgres-exporter \
    prometheus-redis-exporter:prometheus-redis-exporter prometheus-pgbouncer-exporter:prometheus-pgbouncer-exporter \
    prometheus-node-exporter:prometheus-node-exporter; do
    command="${entry%%:*}" package="${entry#*:}"
    if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$command" >/dev/null 2>&1; then
      missing+=("$package")
    fi
  done
  if ((${#missing[@]} == 0)); then return; fi
  if [[ "$apt_updated" == false ]]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    apt_updated=true
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

postgres_version() { ls /etc/postgresql | sort -V | tail -n 1; }

postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
redis_up() { [[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == PONG ]]; }
rabbitmq_up() { rabbitmqctl -q await_startup --timeout 5 >/dev/null 2>&1; }
pgbouncer_up() { pg_isready -q -h 127.0.0.1 -p "$pgbouncer_port"; }

# Polls a check every half second, for at most $1 seconds.
wait_for() {
  local seconds="$1" attempt
  shift
  for ((attempt = 0; attempt < seconds * 2; attempt++)); do
    if "$@"; then return 0; fi
    sleep 0.5
  done
  "$@"
}

start_postgres() {
  if postgres_up; then return; fi
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(postgres_version)" main start
  wait_for 30 postgres_up || { log "PostgreSQL did not accept connections"; exit 1; }
}

start_redis() {
  if redis_up; then return; fi
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for 15 redis_up || { log "Redis did not answer PING"; exit 1; }
}

# The Prometheus endpoint (15692) that deploy/prometheus/prometheus.yml scrapes;
# enabled on the running node, and for its next start.
enable_rabbitmq_prometheus() {
  if rabbitmq-plugins -q is_enabled rabbitmq_prometheus >/dev/null 2>&1; then return; fi
  log "enabling rabbitmq_prometheus"
  rabbitmq-plugins -q enable --online rabbitmq_prometheus >/dev/null
}

start_rabbitmq() {
  if rabbitmq_up; then return; fi
  log "starting RabbitMQ"
  rabbitmq-server -detached
  # await_startup fails at once until the node has registered with epmd.
  local attempt
  for ((attempt = 1; attempt <= 30; attempt++)); do
    if rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1; then return; fi
    sleep 2
  done
  log "RabbitMQ did not start"
  exit 1
}

# Fed on stdin: the postgres user may not be able to read a clone under /root.
setup_database() {
  psql_admin -d postgres -v app_password="$app_db_password" <"$project_dir/deploy/postgresql/setup.sql" >/dev/null
  # The least-privilege application role (telegram_gateway_app); its SCRAM
  # secret reaches PgBouncer through write_userlist below.
  psql_admin -d postgres -v app_password="$app_role_password" <"$project_dir/deploy/postgresql/roles.sql" >/dev/null
}

# Every role with a password, SCRAM secret as stored by PostgreSQL; the file is
# replaced atomically and PgBouncer re-reads it on RELOAD.
write_userlist() {
  local staged="$pgbouncer_userlist.new"
  psql_admin -d postgres -At -c \
    "SELECT format('%s %s', '\"' || replace(rolname, '\"', '\"\"') || '\"', '\"' || rolpassword || '\"')
       FROM pg_authid WHERE rolcanlogin AND rolpassword IS NOT NULL ORDER BY rolname" >"$staged"
  chown postgres:postgres "$staged"
  chmod 0600 "$staged"
  mv "$staged" "$pgbouncer_userlist"
}

pgbouncer_pid() {
  local pid
  pid="$(cat "$pgbouncer_pidfile" 2>/dev/null)" || return 1
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && printf '%s\n' "$pid"
}

start_pgbouncer() {
  install -d -o postgres -g postgres -m 0755 "$runtime_dir"
  # A copy the postgres user can read even when the clone is under /root.
  install -o postgres -g postgres -m 0640 "$pgbouncer_source_ini" "$pgbouncer_ini"
  write_userlist
  local pid
  if pid="$(pgbouncer_pid)"; then
    log "PgBouncer running (pid $pid): reloading config and userlist"
    kill -HUP "$pid"
  else
    log "starting PgBouncer on 127.0.0.1:$pgbouncer_port"
    runuser -u postgres -- pgbouncer -d "$pgbouncer_ini"
  fi
  wait_for 10 pgbouncer_up || { log "PgBouncer did not accept connections; see $runtime_dir/pgbouncer.log"; exit 1; }
}

stop_pgbouncer() {
  local pid attempt
  if ! pid="$(pgbouncer_pid)"; then
    log "PgBouncer not running"
    return
  fi
  log "stopping PgBouncer (pid $pid)"
  kill -INT "$pid"
  for ((attempt = 0; attempt < 20; attempt++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  kill -TERM "$pid"
}

print_status() {
  local failed=0 name check
  for entry in "postgresql:postgres_up" "redis:redis_up" "rabbitmq:rabbitmq_up" "pgbouncer:pgbouncer_up"; do
    name="${entry%%:*}" check="${entry#*:}"
    if "$check"; then
      printf '%-11s up\n' "$name"
    else
      printf '%-11s down\n' "$name"
      failed=1
    fi
  done
  return "$failed"
}

readonly tsdb_port=5439

# The side cluster: TimescaleDB preloaded, never seen by the main cluster on 5432.
start_timescaledb() {
  local shared="${TSDB_SHARED:-$project_dir/../shared/timescaledb}"
  [ -f "$shared/build.sh" ] || { log "no TimescaleDB sources at $shared (set TSDB_SHARED)"; exit 1; }
  bash "$shared/build.sh" >&2
  bash "$shared/cluster.sh" up >&2
  local psql_tsdb=(runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$tsdb_port" -d postgres)
  "${psql_tsdb[@]}" -v app_password="$app_db_password" <"$project_dir/deploy/postgresql/setup.sql" >/dev/null
  "${psql_tsdb[@]}" -v app_password="$app_role_password" <"$project_dir/deploy/postgresql/roles.sql" >/dev/null
  log "TimescaleDB side cluster ready on 127.0.0.1:$tsdb_port"
}

main() {
  case "${1:-}" in
    up)
      ensure_packages
      start_postgres
      start_redis
      start_rabbitmq
      enable_rabbitmq_prometheus
      setup_database
      start_pgbouncer
      print_status
      ;;
    down) stop_pgbouncer ;;
    status) print_status ;;
    timescaledb) start_timescaledb ;;
    *)
      printf 'usage: %s up|down|status|timescaledb\n' "$0" >&2
      exit 2
      ;;
  esac
}

main "$@"
