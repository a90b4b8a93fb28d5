#!/usr/bin/env bash
# One look at the gateway's health, for an operator or a monitoring check.
#
#   health-check.sh [--gateway URL] [--api URL | --no-api] [--timeout SECONDS]
#
#   --gateway  the daemon's health endpoint (default http://127.0.0.1:4007)
#   --api      the consumer API's (default http://127.0.0.1:4010)
#   --no-api   do not check the API (hosts that run only the daemon)
#   --timeout  per request, in seconds (default 3)
#
# Checks the systemd unit (where systemd runs), /health/live, /health/ready
# (each tier, and this process's role for each Telegram account: owner,
# standby with the owner it sees, failed or needs-login), the Telegram
# connection and write queue from /metrics, and the API's /health/ready.
# One line per check, then the verdict.
# Exit status, as monitoring plugins use it:
#   0 ok        everything answers (a standby is ok: standing by is its job)
#   1 degraded  the gateway ingests, but without Redis or RabbitMQ, without
#               Telegram, with an account that nobody owns or that needs a
#               new login, or the API is not answering
#   2 down      the gateway is not running, cannot reach PostgreSQL, or
#               Telegram refused the session of an account it owned
#   3           bad usage
set -uo pipefail

gateway_url=http://127.0.0.1:4007
api_url=http://127.0.0.1:4010
check_api=true
timeout=3

usage() {
  sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

while (($# > 0)); do
  case "$1" in
    --gateway) gateway_url="${2:?--gateway needs a URL}"; shift ;;
    --api) api_url="${2:?--api needs a URL}"; shift ;;
    --no-api) check_api=false ;;
    --timeout) timeout="${2:?--timeout needs seconds}"; shift ;;
    -h | --help) usage 0 ;;
    *) printf 'unknown option: %s\n' "$1" >&2; usage 3 ;;
  esac
  shift
done

command -v curl >/dev/null 2>&1 || { printf 'curl is required\n' >&2; exit 3; }

readonly ok=0 degraded=1 down=2
verdict=$ok

# report LEVEL MESSAGE: prints the line and keeps the worst level seen.
report() {
  local level="$1" label
  shift
  case "$level" in
    "$ok") label=OK ;;
    "$degraded") label=DEGRADED ;;
    *) label=DOWN ;;
  esac
  printf '%-9s %s\n' "$label" "$*"
  if ((level > verdict)); then verdict=$level; fi
}

# fetch URL: the body, then the HTTP status on a last line; fails only when nothing answers.
fetch() {
  curl --silent --show-error --max-time "$timeout" --write-out '\n%{http_code}' "$1" 2>/dev/null
}

body_of() { sed '$d' <<<"$1"; }
status_of() { tail -n 1 <<<"$1"; }

# The readiness report is `{"status":...,"tiers":{"postgres":{"up":true,...},...}}`.
json_status() { grep -o '"status":"[a-z]*"' <<<"$1" | head -n 1 | cut -d'"' -f4; }
tier_states() {
  local tier state summary=()
  for tier in postgres redis rabbitmq; do
    state="$(grep -o "\"$tier\":{\"up\":[a-z]*" <<<"$1" | head -n 1 | sed 's/.*://')"
    case "$state" in
      true) summary+=("$tier up") ;;
      false) summary+=("$tier DOWN") ;;
      *) summary+=("$tier ?") ;;
    esac
  done
  local IFS=,
  printf '%s' "${summary[*]}" | sed 's/,/, /g'
}

# account_roles JSON: one line per account of the readiness report,
# "name role owner reason" (owner and reason "-" when absent). The report
# writes each account as {"account":..,"role":..,"since":..,"owner":..,...}.
account_roles() {
  grep -o '{"account":"[^"]*","role":"[a-z-]*","since":"[^"]*","owner":\(null\|"[^"]*"\)[^}]*\(}}\|}\)' <<<"$1" |
    sed -E 's/^\{"account":"([^"]*)","role":"([^"]*)","since":"[^"]*","owner":(null|"([^"]*)").*/\1 \2 \4 /; s/ $/ -/; s/  / - /' |
    while read -r name role owner _; do
      local entry reason
      # This account's object alone: from its name to the next account.
      entry="${1#*\{\"account\":\"$name\",}"
      entry="${entry%%\{\"account\":*}"
      reason="$(grep -o '"loginNeeded":{"reason":"[A-Z_]*"' <<<"$entry" | head -n 1 | cut -d'"' -f6)"
      printf '%s %s %s %s\n' "$name" "$role" "${owner:--}" "${reason:--}"
    done
}

# check_accounts JSON: one line per account with this process's role.
check_accounts() {
  local name role owner reason owns=false
  while read -r name role owner reason; do
    [[ -n "$name" ]] || continue
    case "$role" in
      owner) owns=true; report $ok "account $name: owner" ;;
      standby)
        if [[ "$owner" == - ]]; then
          report $degraded "account $name: standby, and nobody owns it now (a standby takes it within a poll; see TelegramAccountNoOwner)"
        else
          report $ok "account $name: standby, owned by $owner"
        fi
        ;;
      needs-login) report $degraded "account $name: needs login, Telegram refused its session ($reason): run telegram-gateway login --account $name" ;;
      failed) report $down "account $name: failed, Telegram refused its session ($reason): see journalctl -u telegram-gateway" ;;
      *) report $degraded "account $name: role ${role:-unknown}" ;;
    esac
  done < <(account_roles "$1")
  if [[ "$owns" == true ]]; then owns_accounts=yes; fi
}

# metric_value TEXT NAME: the first sample of an unlabelled metric.
metric_value() { grep -E "^$2(\{\})? " <<<"$1" | head -n 1 | awk '{print $2}'; }

check_unit() {
  if [[ ! -d /run/systemd/system ]] || ! command -v systemctl >/dev/null 2>&1; then return; fi
  local state
  state="$(systemctl is-active telegram-gateway.service 2>/dev/null)"
  if [[ "$state" == active ]]; then
    report $ok "systemd unit telegram-gateway: active"
  else
    report $down "systemd unit telegram-gateway: ${state:-unknown} (journalctl -u telegram-gateway -n 50)"
  fi
}

check_gateway() {
  local response status body
  if ! response="$(fetch "$gateway_url/health/live")" || [[ "$(status_of "$response")" != 200 ]]; then
    report $down "gateway not answering at $gateway_url/health/live"
    return
  fi
  report $ok "gateway live ($gateway_url)"

  response="$(fetch "$gateway_url/health/ready")" || { report $down "gateway readiness not answering"; return; }
  body="$(body_of "$response")"
  status="$(json_status "$body")"
  case "$status" in
    ok) report $ok "gateway ready: ok ($(tier_states "$body"))" ;;
    degraded) report $degraded "gateway ready: degraded ($(tier_states "$body"))" ;;
    down) report $down "gateway ready: down ($(tier_states "$body"))" ;;
    *) report $down "gateway readiness unreadable (HTTP $(status_of "$response"))" ;;
  esac
  owns_accounts=unknown
  if grep -q '"accounts":\[{' <<<"$body"; then
    owns_accounts=no
    check_accounts "$body"
  fi

  response="$(fetch "$gateway_url/metrics")" || { report $degraded "gateway metrics not answering"; return; }
  body="$(body_of "$response")"
  local connected queue
  connected="$(metric_value "$body" telegram_connected)"
  # A process that stands by for every account is not connected, by design.
  if [[ "$owns_accounts" == no ]]; then connected=standby; fi
  case "$connected" in
    standby) report $ok "telegram not connected: this process owns no account" ;;
    1) report $ok "telegram connected" ;;
    0) report $degraded "telegram disconnected (reconnecting; see journalctl -u telegram-gateway)" ;;
    *) report $degraded "telegram connection unknown (no telegram_connected metric yet)" ;;
  esac
  queue="$(metric_value "$body" ingest_queue_depth)"
  if [[ -n "$queue" ]]; then report $ok "write queue: ${queue%.*} events waiting"; fi
}

check_gateway_api() {
  local response status
  if ! response="$(fetch "$api_url/health/ready")"; then
    report $degraded "API not answering at $api_url/health/ready"
    return
  fi
  status="$(json_status "$(body_of "$response")")"
  case "$status" in
    ok) report $ok "API ready: ok ($api_url)" ;;
    *) report $degraded "API ready: ${status:-unreadable} ($api_url)" ;;
  esac
}

check_unit
check_gateway
if [[ "$check_api" == true ]]; then check_gateway_api; fi

case "$verdict" in
  "$ok") printf 'overall: ok\n' ;;
  "$degraded") printf 'overall: degraded\n' ;;
  *) printf 'overall: down\n' ;;
esac
exit "$verdict"
