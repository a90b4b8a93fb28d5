#!/usr/bin/env bash
# Stops the whole stack on a Debian host, in the reverse order of
# start-stack.sh: the API and the gateway first (the gateway commits what it
# accepted, up to 45 s), then the exporters, RabbitMQ, Redis, PgBouncer and
# PostgreSQL. What is already stopped is skipped, so it is safe to run again.
#
#   stop-stack.sh [--only a,b,...] [--dry-run] [--keep-data]
#
#   --only       these components only (names as in start-stack.sh --help)
#   --keep-data  leave PostgreSQL, RabbitMQ and the Redis master running
#                (for restarting the gateway side only)
#   --dry-run    print what would be stopped, stop nothing
#   -h, --help   this text
#
# Redis, PgBouncer and the exporters are stopped only when started by
# start-stack.sh (their pid in /run/telegram-stack); PostgreSQL and RabbitMQ
# through pg_ctlcluster and rabbitmqctl. Exit status: 0 when everything
# selected is down (or left running on purpose), 1 otherwise, 2 bad usage.
set -euo pipefail

only="" dry_run=false keep_data=false
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit "${1:-0}"; }
while (($# > 0)); do
  case "$1" in
    --only) only="${2:?--only needs a list}"; shift ;;
    --dry-run) dry_run=true ;;
    --keep-data) keep_data=true ;;
    -h | --help) usage 0 ;;
    *) printf 'unknown option: %s\n' "$1" >&2; usage 2 ;;
  esac
  shift
done
# shellcheck source=stack-services.sh
. "$(dirname "${BASH_SOURCE[0]}")/stack-services.sh"
check_names "$only"

failed=0
for name in $(select_components "$only" | tac); do
  if [[ "$keep_data" == true && " postgresql rabbitmq redis-master " == *" $name "* ]]; then
    stack_log "$name left running (--keep-data)"
    continue
  fi
  if ! component_up "$name" && ! running_pid "$name" >/dev/null; then
    stack_log "$name already down"
    continue
  fi
  stack_log "stopping $name"
  component_stop "$name"
  [[ "$dry_run" == true ]] && continue
  if component_up "$name"; then
    stack_log "$name still answers on $(component_port "$name"): not started by start-stack.sh, left alone"
    failed=1
  fi
done
exit "$failed"
