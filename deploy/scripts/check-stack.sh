#!/usr/bin/env bash
# One line per component of the stack: up or down, and where. For an operator
# after start-stack.sh or stop-stack.sh; health-check.sh looks deeper into the
# gateway itself (tiers, Telegram, write queue).
#
#   check-stack.sh [--only a,b,...]
#
#   --only      these components only (names as in start-stack.sh --help)
#   -h, --help  this text
#
# Changes nothing. Exit status: 0 when every component checked is up, 1 when
# one is down, 2 bad usage.
set -uo pipefail

only=""
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit "${1:-0}"; }
while (($# > 0)); do
  case "$1" in
    --only) only="${2:?--only needs a list}"; shift ;;
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
    printf '%-19s up    127.0.0.1:%s\n' "$name" "$(component_port "$name")"
  else
    printf '%-19s down  127.0.0.1:%s\n' "$name" "$(component_port "$name")"
    failed=1
  fi
done
exit "$failed"
