#!/usr/bin/env bash
# Starts the whole stack on a Debian host, in order: PostgreSQL, PgBouncer
# (127.0.0.1:6434), Redis master, replica and Sentinel, RabbitMQ with its
# Prometheus plugin, the exporters (postgres, redis, node; the gateway exports
# PgBouncer's pools itself), the gateway and the API. What already answers on its port is left alone, so it
# is safe to run again; each start waits until the component answers.
#
#   start-stack.sh [--only a,b,...] [--dry-run] [--timeout SECONDS]
#
#   --only      these components only: postgresql, pgbouncer, redis-master,
#               redis-replica, redis-sentinel, rabbitmq, postgres-exporter,
#               redis-exporter, node-exporter, gateway, api
#   --dry-run   print what would be started, start nothing
#   --timeout   how long each component may take to answer (default 60)
#   -h, --help  this text
#
# Runs as root. Configuration: the files under deploy/ (ports in
# docs/deployment.md); STACK_* variables (deploy/scripts/stack-services.sh)
# or /etc/telegram-gateway/stack.env move ports and directories. The gateway
# and the API run as their systemd units where systemd runs and install.sh
# installed them, otherwise as those units would run them (their user,
# environment, environment files and command with its node flags) from
# /opt/telegram-gateway with its own Node.js.
# Daemons started here keep their pid and log in /run/telegram-stack.
# Exit status: 0 when everything selected answers, 1 otherwise, 2 bad usage.
set -euo pipefail

only="" dry_run=false timeout=60
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit "${1:-0}"; }
while (($# > 0)); do
  case "$1" in
    --only) only="${2:?--only needs a list}"; shift ;;
    --dry-run) dry_run=true ;;
    --timeout) timeout="${2:?--timeout needs seconds}"; shift ;;
    -h | --help) usage 0 ;;
    *) printf 'unknown option: %s\n' "$1" >&2; usage 2 ;;
  esac
  shift
done
# shellcheck source=stack-services.sh
. "$(dirname "${BASH_SOURCE[0]}")/stack-services.sh"
check_names "$only"

failed=0
for name in $(select_components "$only"); do
  if component_up "$name"; then
    stack_log "$name already up on $(component_port "$name")"
    continue
  fi
  stack_log "starting $name on $(component_port "$name")"
  component_start "$name"
  [[ "$dry_run" == true ]] && continue
  if ! wait_up "$name" "$timeout"; then
    stack_log "$name did not answer on $(component_port "$name") within ${timeout}s (log: $STACK_RUN_DIR/$name.log)"
    failed=1
  fi
done
exit "$failed"
