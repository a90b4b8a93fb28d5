#!/usr/bin/env bash
# Moves an existing single-table archive (telegram_messages: channel_id,
# message_id, date, text, payload) into the gateway's schema.
#
#   migrate-to-hybrid.sh LEGACY_URL
#
# 1. checks the legacy table is there and counts it;
# 2. `telegram-gateway migrate` (schema, then storage policies from the config);
# 3. `telegram-gateway db import --from LEGACY_URL` (resumable: if it stops,
#    run this script again, it continues after the last committed batch);
# 4. checks every legacy (channel_id, message_id) has arrived.
# The legacy database is only read. Environment: TELEGRAM_GATEWAY (the CLI,
# default telegram-gateway), TELEGRAM_GATEWAY_CONFIG (its config file),
# GATEWAY_URL (psql URL of the gateway database for the final check, default
# the migration URL of the development stack).
set -euo pipefail

readonly legacy_url="${1:?usage: migrate-to-hybrid.sh LEGACY_URL}"
readonly gateway="${TELEGRAM_GATEWAY:-telegram-gateway}"
readonly gateway_url="${GATEWAY_URL:-postgres://telegram_gateway@127.0.0.1:5432/telegram_gateway}"

log() { printf '[migrate-to-hybrid] %s\n' "$*" >&2; }
count() { psql -X -At -v ON_ERROR_STOP=1 "$1" -c "$2"; }

log "checking the legacy table"
legacy_rows="$(count "$legacy_url" "SELECT count(*) FROM telegram_messages")"
log "legacy rows: $legacy_rows"

log "migrating the gateway schema"
$gateway migrate

log "importing (progress on stderr)"
$gateway db import --from "$legacy_url"

log "verifying"
imported="$(count "$gateway_url" "SELECT count(*) FROM (SELECT DISTINCT channel_id, message_id FROM messages) m")"
if ((imported < legacy_rows)); then
  log "only $imported distinct messages in the gateway for $legacy_rows legacy rows: run this script again"
  exit 1
fi
log "done: $legacy_rows legacy rows, $imported messages in the gateway"
