#!/usr/bin/env bash
# Backs up what the gateway cannot rebuild: the PostgreSQL database (the record
# of truth), the Telegram session (the account's credential), the configuration,
# and RabbitMQ's definitions (exchanges, queues, bindings). Redis is a cache
# rebuilt from PostgreSQL and is not backed up. Restore: docs/operations.md.
#
#   backup.sh [--output DIR] [--keep N] [--env-file FILE] [--database-url URL]
#             [--session-dir DIR] [--config-dir DIR] [--no-rabbitmq]
#
#   --output        where backups go (default /var/backups/telegram-gateway)
#   --keep          complete backups to keep, oldest removed first (default 7)
#   --env-file      read DATABASE_MIGRATION_URL and TELEGRAM_SESSION_FILE from
#                   it (default /etc/telegram-gateway/gateway.env, if readable)
#   --database-url  a direct PostgreSQL URL (not PgBouncer: pg_dump needs a
#                   session); default DATABASE_MIGRATION_URL, then the
#                   gateway's default
#   --session-dir   default: the directory of TELEGRAM_SESSION_FILE, then
#                   /opt/telegram-gateway/.session
#   --config-dir    default /etc/telegram-gateway (skipped when absent)
#   --no-rabbitmq   skip `rabbitmqctl export_definitions`
#
# Each backup is a directory telegram-gateway-<UTC time>/ with database.dump
# (pg_dump custom format), session.tar, config.tar, rabbitmq-definitions.json
# and SHA256SUMS, all 0600. It is written as <name>.partial and renamed when
# complete, so an interrupted run never looks like a backup. Prints its path.
set -euo pipefail

output_dir=/var/backups/telegram-gateway
keep=7
env_file=/etc/telegram-gateway/gateway.env
database_url=""
session_dir=""
config_dir=/etc/telegram-gateway
rabbitmq=true

log() { printf '[backup] %s\n' "$*" >&2; }
fail() { printf '[backup] error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

while (($# > 0)); do
  case "$1" in
    --output) output_dir="${2:?--output needs a directory}"; shift ;;
    --keep) keep="${2:?--keep needs a number}"; shift ;;
    --env-file) env_file="${2:?--env-file needs a file}"; shift ;;
    --database-url) database_url="${2:?--database-url needs a URL}"; shift ;;
    --session-dir) session_dir="${2:?--session-dir needs a directory}"; shift ;;
    --config-dir) config_dir="${2:?--config-dir needs a directory}"; shift ;;
    --no-rabbitmq) rabbitmq=false ;;
    -h | --help) usage 0 ;;
    *) printf 'unknown option: %s\n' "$1" >&2; usage 2 ;;
  esac
  shift
done

[[ "$keep" =~ ^[1-9][0-9]*$ ]] || fail "--keep must be a positive number, got '$keep'"

# One KEY=value of a systemd EnvironmentFile, without sourcing it (it is not a script).
env_value() {
  [[ -r "$env_file" ]] || return 0
  local line
  line="$(grep -E "^[[:space:]]*$1=" "$env_file" | tail -n 1)" || return 0
  line="${line#*=}"
  line="${line%\"}" line="${line#\"}"
  line="${line%\'}" line="${line#\'}"
  printf '%s' "$line"
}

database_url="${database_url:-$(env_value DATABASE_MIGRATION_URL)}"
database_url="${database_url:-postgres://telegram_gateway:telegram_gateway@127.0.0.1:5432/telegram_gateway}"
if [[ -z "$session_dir" ]]; then
  session_file="$(env_value TELEGRAM_SESSION_FILE)"
  session_dir="$(dirname "${session_file:-/opt/telegram-gateway/.session/telegram.session}")"
fi

# The password goes to pg_dump through PGPASSWORD, not its command line (visible in ps).
split_password() {
  local pattern='^(postgres(ql)?://[^:/@]+):([^@]*)@(.*)$'
  if [[ "$database_url" =~ $pattern ]]; then
    local encoded="${BASH_REMATCH[3]}"
    export PGPASSWORD
    PGPASSWORD="$(printf '%b' "${encoded//%/\\x}")"
    database_url="${BASH_REMATCH[1]}@${BASH_REMATCH[4]}"
  fi
}

umask 077
readonly name="telegram-gateway-$(date -u +%Y%m%dT%H%M%SZ)"
readonly staging="$output_dir/$name.partial"
mkdir -p "$output_dir"
[[ ! -e "$output_dir/$name" ]] || fail "$output_dir/$name already exists"
rm -rf "$staging"
mkdir "$staging"
trap 'rm -rf "$staging"' EXIT

dump_database() {
  split_password
  log "dumping PostgreSQL ($database_url)"
  pg_dump --format=custom --compress=6 --no-password --dbname="$database_url" --file="$staging/database.dump" ||
    fail "pg_dump failed: check --database-url (a direct connection, not PgBouncer)"
}

archive_session() {
  [[ -d "$session_dir" ]] || fail "no session directory at $session_dir (use --session-dir)"
  log "archiving the session ($session_dir)"
  tar --create --file="$staging/session.tar" --directory="$(dirname "$session_dir")" "$(basename "$session_dir")"
}

archive_config() {
  if [[ ! -d "$config_dir" ]]; then
    log "no configuration directory at $config_dir: skipped"
    return
  fi
  log "archiving the configuration ($config_dir)"
  tar --create --file="$staging/config.tar" --directory="$(dirname "$config_dir")" "$(basename "$config_dir")"
}

export_rabbitmq() {
  if [[ "$rabbitmq" == false ]]; then return; fi
  if ! PATH="$PATH:/usr/sbin" command -v rabbitmqctl >/dev/null 2>&1; then
    log "rabbitmqctl not found: RabbitMQ definitions skipped"
    return
  fi
  log "exporting RabbitMQ definitions"
  # To stdout: Debian's rabbitmqctl runs as the rabbitmq user, who cannot write our 0700 directory.
  PATH="$PATH:/usr/sbin" rabbitmqctl -q export_definitions - >"$staging/rabbitmq-definitions.json" ||
    fail "rabbitmqctl export_definitions failed (or use --no-rabbitmq)"
}

# Oldest complete backups beyond --keep; names sort by time.
prune() {
  local backups=() index
  mapfile -t backups < <(find "$output_dir" -mindepth 1 -maxdepth 1 -type d -name 'telegram-gateway-*' ! -name '*.partial' | sort)
  for ((index = 0; index < ${#backups[@]} - keep; index++)); do
    log "removing old backup ${backups[index]}"
    rm -rf "${backups[index]}"
  done
}

dump_database
archive_session
archive_config
export_rabbitmq
(cd "$staging" && sha256sum -- * >SHA256SUMS)
mv "$staging" "$output_dir/$name"
trap - EXIT
prune
printf '%s\n' "$output_dir/$name"
