#!/usr/bin/env bash
# First start of the TimescaleDB container (docker-compose.data.yml): the
# project's tuning included from postgresql.conf, then the roles and the
# database as on a native host (deploy/postgresql/setup.sql and roles.sql).
set -euo pipefail
echo "include_if_exists = '/etc/telegram-gateway/tuning.conf'" >>"$PGDATA/postgresql.conf"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -d postgres -v app_password="$APP_DB_PASSWORD" \
  -f /etc/telegram-gateway/setup.sql
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -d postgres -v app_password="$APP_ROLE_PASSWORD" \
  -f /etc/telegram-gateway/roles.sql
