# The whole stack's components, for start-stack.sh, stop-stack.sh and
# check-stack.sh (sourced, not run). Each component has an `up` check (its
# port answers), a `start` and a `stop`; the scripts call them in order and
# only when needed, so every run is safe to repeat.
#
# Ports, directories and credentials come from the environment (defaults: the
# project's configuration files under deploy/, the ports docs/deployment.md
# lists). A file named by STACK_ENV (default /etc/telegram-gateway/stack.env)
# is read first when it exists.

stack_project="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ -f "${STACK_ENV:-/etc/telegram-gateway/stack.env}" ]]; then
  # shellcheck disable=SC1090
  set -a && . "${STACK_ENV:-/etc/telegram-gateway/stack.env}" && set +a
fi

: "${STACK_RUN_DIR:=/run/telegram-stack}"            # pid files and logs of the daemons started here
: "${STACK_DATA_DIR:=/var/lib/telegram-stack}"       # Redis data (master, replica, sentinel state)
: "${STACK_PG_CLUSTER:=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)/main}"
: "${STACK_PG_PORT:=5432}"
: "${STACK_PGBOUNCER_PORT:=6434}"
: "${STACK_REDIS_PORT:=6379}"
: "${STACK_REDIS_REPLICA_PORT:=6380}"
: "${STACK_SENTINEL_PORT:=26379}"
: "${STACK_RABBITMQ_PORT:=5672}"
: "${STACK_RABBITMQ_PROMETHEUS_PORT:=15692}"
: "${STACK_POSTGRES_EXPORTER_PORT:=9187}"
: "${STACK_REDIS_EXPORTER_PORT:=9121}"
: "${STACK_NODE_EXPORTER_PORT:=9100}"
: "${STACK_GATEWAY_PORT:=4007}"
: "${STACK_API_PORT:=4010}"
: "${STACK_APP_DIR:=/opt/telegram-gateway}"          # install.sh's layout: dist/ and node/
# STACK_UNIT_DIR: where the app's units are read when systemd does not run them (start_app)
: "${STACK_POSTGRES_EXPORTER_DSN:=postgresql://postgres@127.0.0.1:$STACK_PG_PORT/postgres?sslmode=disable}"

# In order of start; stop goes backwards. No PgBouncer exporter: Debian 12's
# fails every scrape against PgBouncer 1.18, and the gateway exports the pools
# itself (deploy/prometheus/prometheus.yml, job pgbouncer).
stack_components=(postgresql pgbouncer redis-master redis-replica redis-sentinel rabbitmq
  postgres-exporter redis-exporter node-exporter gateway api)

dry_run=${dry_run:-false}
stack_log() { printf '[stack] %s\n' "$*" >&2; }

# Commands that change the host go through here (--dry-run prints them).
stack_run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [[ "$dry_run" == false ]]; then "$@"; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The port of each component, for `up` and the check's output.
component_port() {
  case "$1" in
    postgresql) echo "$STACK_PG_PORT" ;;
    pgbouncer) echo "$STACK_PGBOUNCER_PORT" ;;
    redis-master) echo "$STACK_REDIS_PORT" ;;
    redis-replica) echo "$STACK_REDIS_REPLICA_PORT" ;;
    redis-sentinel) echo "$STACK_SENTINEL_PORT" ;;
    rabbitmq) echo "$STACK_RABBITMQ_PORT" ;;
    postgres-exporter) echo "$STACK_POSTGRES_EXPORTER_PORT" ;;
    redis-exporter) echo "$STACK_REDIS_EXPORTER_PORT" ;;
    node-exporter) echo "$STACK_NODE_EXPORTER_PORT" ;;
    gateway) echo "$STACK_GATEWAY_PORT" ;;
    api) echo "$STACK_API_PORT" ;;
    *) return 1 ;;
  esac
}

component_up() {
  case "$1" in
    redis-master | redis-replica | redis-sentinel)
      [[ "$(redis-cli -h 127.0.0.1 -p "$(component_port "$1")" ping 2>/dev/null)" == PONG ]] ;;
    postgresql | pgbouncer) pg_isready -q -h 127.0.0.1 -p "$(component_port "$1")" ;;
    rabbitmq) port_open "$STACK_RABBITMQ_PORT" && port_open "$STACK_RABBITMQ_PROMETHEUS_PORT" ;;
    gateway | api) curl -fs -m 3 -o /dev/null "http://127.0.0.1:$(component_port "$1")/health/live" ;;
    *) curl -fs -m 3 -o /dev/null "http://127.0.0.1:$(component_port "$1")/metrics" ;;
  esac
}

# Polls `component_up` every half second for at most $2 seconds.
wait_up() {
  local attempt
  for ((attempt = 0; attempt < $2 * 2; attempt++)); do
    component_up "$1" && return 0
    sleep 0.5
  done
  component_up "$1"
}

pid_file() { echo "$STACK_RUN_DIR/$1.pid"; }
running_pid() {
  local pid
  pid="$(cat "$(pid_file "$1")" 2>/dev/null)" || return 1
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# A daemon in the background, its pid recorded; output in $STACK_RUN_DIR/NAME.log.
spawn() {
  local name="$1" user="$2"
  shift 2
  stack_run install -d -m 0755 "$STACK_RUN_DIR"
  if [[ "$dry_run" == true ]]; then
    stack_run runuser -u "$user" -- "$@"
    return
  fi
  runuser -u "$user" -- "$@" >>"$STACK_RUN_DIR/$name.log" 2>&1 </dev/null &
  echo "$!" >"$(pid_file "$name")"
}

# SIGTERM, then SIGKILL after $2 seconds (default 30).
terminate() {
  local name="$1" grace="${2:-30}" pid attempt
  pid="$(running_pid "$name")" || return 0
  stack_run kill -TERM "$pid"
  [[ "$dry_run" == true ]] && return 0
  for ((attempt = 0; attempt < grace * 2; attempt++)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$(pid_file "$name")"; return 0; }
    sleep 0.5
  done
  stack_log "$name did not stop within ${grace}s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$(pid_file "$name")"
}

systemd_unit() { [[ -d /run/systemd/system ]] && systemctl cat "$1" >/dev/null 2>&1; }

# A Redis config from deploy/redis/ with this stack's ports and directories.
redis_config() {
  local name="$1" dir="$STACK_DATA_DIR/$1"
  sed -e "s|^port .*|port $(component_port "$name")|" \
    -e "s|^dir .*|dir $dir|" \
    -e "s|^replicaof 127.0.0.1 .*|replicaof 127.0.0.1 $STACK_REDIS_PORT|" \
    -e "s|^sentinel monitor telegram-gateway 127.0.0.1 [0-9]* |sentinel monitor telegram-gateway 127.0.0.1 $STACK_REDIS_PORT |" \
    "$stack_project/deploy/redis/${name#redis-}.conf"
}

start_redis() {
  local name="$1" dir="$STACK_DATA_DIR/$1" config="$STACK_DATA_DIR/$1/$1.conf"
  stack_run install -d -m 0750 -o redis -g redis "$dir"
  # The sentinel rewrites its own config (the state it learns); a new copy only when there is none.
  if [[ "$name" != redis-sentinel || ! -f "$config" ]]; then
    if [[ "$dry_run" == true ]]; then
      stack_log "would write $config from deploy/redis/${name#redis-}.conf"
    else
      redis_config "$name" >"$config.new" && chown redis:redis "$config.new" && mv "$config.new" "$config"
    fi
  fi
  if [[ "$name" == redis-sentinel ]]; then
    spawn "$name" redis redis-sentinel "$config"
  else
    spawn "$name" redis redis-server "$config"
  fi
}

start_pgbouncer() {
  local dir="$STACK_RUN_DIR/pgbouncer"
  stack_run install -d -m 0755 -o postgres -g postgres "$dir"
  if [[ "$dry_run" == true ]]; then
    stack_log "would write $dir/pgbouncer.ini from deploy/pgbouncer/pgbouncer.ini and its userlist from pg_authid"
  else
    sed -e "s|^listen_port = .*|listen_port = $STACK_PGBOUNCER_PORT|" \
      -e "s|/run/telegram-gateway/pgbouncer|$dir|g" \
      -e "s|^\* = host=127.0.0.1 port=[0-9]*|* = host=127.0.0.1 port=$STACK_PG_PORT|" \
      "$stack_project/deploy/pgbouncer/pgbouncer.ini" >"$dir/pgbouncer.ini"
    # SCRAM secrets as PostgreSQL stores them (docs/operations.md, PgBouncer).
    runuser -u postgres -- psql -X -q -At -h 127.0.0.1 -p "$STACK_PG_PORT" -d postgres -c \
      "SELECT format('\"%s\" \"%s\"', rolname, rolpassword) FROM pg_authid WHERE rolcanlogin AND rolpassword IS NOT NULL" \
      >"$dir/userlist.txt"
    chown postgres:postgres "$dir/pgbouncer.ini" "$dir/userlist.txt"
    chmod 0600 "$dir/userlist.txt"
  fi
  # PgBouncer refuses to run as root; -d daemonizes and writes its own pid file.
  stack_run runuser -u postgres -- pgbouncer -d "$dir/pgbouncer.ini"
  [[ "$dry_run" == true ]] && return
  local attempt
  for ((attempt = 0; attempt < 20; attempt++)); do
    [[ -s "$dir/pgbouncer.pid" ]] && break
    sleep 0.25
  done
  cp "$dir/pgbouncer.pid" "$(pid_file pgbouncer)"
}

start_rabbitmq() {
  stack_run rabbitmq-server -detached
  if [[ "$dry_run" == true ]]; then return; fi
  local attempt
  # await_startup fails at once until the node has registered with epmd.
  for ((attempt = 1; attempt <= 30; attempt++)); do
    rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1 && break
    sleep 2
  done
  # The Prometheus endpoint (deploy/rabbitmq/enabled_plugins), on the running node too.
  rabbitmq-plugins -q enable --online rabbitmq_prometheus >/dev/null
}

# The unit file the app runs from where systemd does not run it: in
# $STACK_UNIT_DIR, else the installed one (install.sh), else the project's.
app_unit_file() {
  local dir
  for dir in ${STACK_UNIT_DIR:+"$STACK_UNIT_DIR"} /etc/systemd/system "$stack_project/deploy/systemd"; do
    if [[ -f "$dir/$1" ]]; then echo "$dir/$1"; return; fi
  done
}

# The app: its systemd unit where systemd runs it, otherwise the unit's own
# command as the unit would run it: as its User=, with its Environment=
# settings (the heap and allocator settings, NODE_ENV, LOG_FORMAT, the API's
# address), then its EnvironmentFile= files in order (a leading "-" marks one
# that may be missing), then its ExecStart= with its node flags, from
# $STACK_APP_DIR.
start_app() {
  local name="$1" unit=telegram-gateway.service
  if [[ "$name" == api ]]; then unit=telegram-gateway-api.service; fi
  if systemd_unit "$unit"; then
    stack_run systemctl start "$unit"
    return
  fi
  local file line value user=telegram-gateway
  local -a assignments=() env_files=() command=()
  file="$(app_unit_file "$unit")"
  while IFS= read -r line; do
    case "$line" in
      User=*) user="${line#User=}" ;;
      Environment=*)
        value="${line#Environment=}" && value="${value#\"}" && assignments+=("${value%\"}") ;;
      EnvironmentFile=*) env_files+=("${line#EnvironmentFile=}") ;;
      ExecStart=*) read -r -a command <<<"${line#ExecStart=}" ;;
    esac
  done <"$file"
  if [[ ${#command[@]} -eq 0 ]]; then
    stack_log "$file has no ExecStart=: cannot start $name"
    return 1
  fi
  spawn "$name" "$user" env -C "$STACK_APP_DIR" "${assignments[@]}" bash -c '
    set -a
    while [[ "$1" != -- ]]; do
      file="${1#-}"
      if [[ -f "$file" ]]; then . "$file"; elif [[ "$1" != -* ]]; then echo "$file: no such environment file" >&2; exit 1; fi
      shift
    done
    shift
    set +a
    exec "$@"' env-files "${env_files[@]}" -- "${command[@]//\/opt\/telegram-gateway/$STACK_APP_DIR}"
}

component_start() {
  case "$1" in
    postgresql) stack_run pg_ctlcluster --skip-systemctl-redirect ${STACK_PG_CLUSTER/\// } start ;;
    pgbouncer) start_pgbouncer ;;
    redis-master | redis-replica | redis-sentinel) start_redis "$1" ;;
    rabbitmq) start_rabbitmq ;;
    postgres-exporter)
      spawn "$1" prometheus env DATA_SOURCE_NAME="$STACK_POSTGRES_EXPORTER_DSN" prometheus-postgres-exporter \
        --web.listen-address="127.0.0.1:$STACK_POSTGRES_EXPORTER_PORT" \
        --extend.query-path="$stack_project/deploy/exporters/postgres-exporter-queries.yml" ;;
    redis-exporter)
      spawn "$1" prometheus prometheus-redis-exporter -redis.addr="redis://127.0.0.1:$STACK_REDIS_PORT" \
        -web.listen-address="127.0.0.1:$STACK_REDIS_EXPORTER_PORT" ;;
    node-exporter)
      spawn "$1" prometheus prometheus-node-exporter --web.listen-address="127.0.0.1:$STACK_NODE_EXPORTER_PORT" ;;
    gateway | api) start_app "$1" ;;
  esac
}

component_stop() {
  case "$1" in
    postgresql) stack_run pg_ctlcluster --skip-systemctl-redirect ${STACK_PG_CLUSTER/\// } stop -m fast ;;
    rabbitmq) stack_run rabbitmqctl -q stop ;;
    gateway | api)
      local unit=telegram-gateway.service
      [[ "$1" == api ]] && unit=telegram-gateway-api.service
      if systemd_unit "$unit"; then stack_run systemctl stop "$unit"; else terminate "$1" 45; fi ;;
    pgbouncer)
      # Started elsewhere (not by these scripts): its own pid file.
      if ! running_pid pgbouncer >/dev/null && [[ -f "$STACK_RUN_DIR/pgbouncer/pgbouncer.pid" ]]; then
        cp "$STACK_RUN_DIR/pgbouncer/pgbouncer.pid" "$(pid_file pgbouncer)"
      fi
      terminate pgbouncer ;;
    *) terminate "$1" ;;
  esac
}

# Components named on the command line (--only a,b), in the stack's order.
select_components() {
  local only="$1" each
  for each in "${stack_components[@]}"; do
    if [[ -z "$only" || ",$only," == *",$each,"* ]]; then printf '%s\n' "$each"; fi
  done
}

check_names() {
  local only="$1" name
  for name in ${only//,/ }; do
    component_port "$name" >/dev/null || { printf 'unknown component: %s (one of: %s)\n' "$name" "${stack_components[*]}" >&2; exit 2; }
  done
}
