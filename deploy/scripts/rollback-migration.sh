#!/usr/bin/env bash
# The way back: copies the gateway's messages into the legacy single-table
# layout, so the previous system can take over again.
#
#   rollback-migration.sh GATEWAY_URL LEGACY_URL [SINCE]
#
# For every message in the gateway (or only those received since SINCE, an
# ISO timestamp: e.g. the moment of the cut-over), the latest version that is
# not deleted becomes one telegram_messages row (channel_id, message_id,
# date, text, payload = the raw Telegram message). Rows already in the legacy
# table are updated, missing ones inserted: safe to run again. Creates
# telegram_messages when the legacy database has none. Nothing is deleted on
# either side; to also undo the gateway's schema, run
# `telegram-gateway rollback --to 0` afterwards (that DROPS its tables).
set -euo pipefail

readonly gateway_url="${1:?usage: rollback-migration.sh GATEWAY_URL LEGACY_URL [SINCE]}"
readonly legacy_url="${2:?usage: rollback-migration.sh GATEWAY_URL LEGACY_URL [SINCE]}"
readonly since="${3:-1970-01-01T00:00:00Z}"

log() { printf '[rollback-migration] %s\n' "$*" >&2; }

log "exporting messages received since $since"
psql -X -q -v ON_ERROR_STOP=1 "$gateway_url" -c "\\copy (
    SELECT DISTINCT ON (channel_id, message_id) channel_id, message_id, date, text, raw
    FROM messages
    WHERE deleted_at IS NULL AND received_at >= '$since'::timestamptz
    ORDER BY channel_id, message_id, version DESC
  ) TO STDOUT" |
  psql -X -q -v ON_ERROR_STOP=1 "$legacy_url" \
    -c "CREATE TABLE IF NOT EXISTS telegram_messages (
          channel_id bigint NOT NULL, message_id bigint NOT NULL, date timestamptz NOT NULL, text text, payload jsonb,
          PRIMARY KEY (channel_id, message_id))" \
    -c "CREATE TEMP TABLE rollback_staging (channel_id bigint, message_id bigint, date timestamptz, text text, payload jsonb)" \
    -c "\\copy rollback_staging FROM pstdin" \
    -c "UPDATE telegram_messages t SET date = s.date, text = s.text, payload = s.payload
        FROM rollback_staging s WHERE t.channel_id = s.channel_id AND t.message_id = s.message_id" \
    -c "INSERT INTO telegram_messages (channel_id, message_id, date, text, payload)
        SELECT s.channel_id, s.message_id, s.date, s.text, s.payload FROM rollback_staging s
        WHERE NOT EXISTS (SELECT 1 FROM telegram_messages t
                          WHERE t.channel_id = s.channel_id AND t.message_id = s.message_id)" \
    -c "SELECT format('legacy table now holds %s rows', count(*)) FROM telegram_messages"
log "done"
