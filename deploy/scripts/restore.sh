#!/usr/bin/env bash
# Restores a backup made by deploy/scripts/backup.sh: checks its SHA256SUMS,
# then the PostgreSQL database, the Telegram session and, when asked, the
# configuration and RabbitMQ's definitions. Stop the gateway and the API first
# (systemctl stop telegram-gateway telegram-gateway-api); start them after.
#
#   restore.sh BACKUP_DIR --database-url URL [--session-dir DIR]
#              [--config-dir DIR] [--rabbitmq] [--dry-run]
#
#   BACKUP_DIR      a telegram-gateway-<UTC time>/ directory of backup.sh
#   --database-url  a direct PostgreSQL URL (not PgBouncer) of the database to
#                   restore into; it must exist, and what the dump holds is
#                   dropped and recreated in it (pg_restore --clean --if-exists)
#   --session-dir   where the session directory goes back (default
#                   /opt/telegram-gateway/.session); its contents are replaced,
#                   modes kept (0700, files 0600)
#   --config-dir    restore config.tar into this directory too (default: not
#                   restored, so a restore on a new host keeps its own settings)
#   --rabbitmq      import rabbitmq-definitions.json (rabbitmqctl import_definitions)
#   --dry-run       check the backup and print what would be done, change nothing
#
# Running it twice with the same backup gives the same result. Exit codes: 0
# restored, 1 failed (nothing after the failing step is touched), 2 bad usage.
set -euo pipefail

database_url=""
session_dir=/opt/telegram-gateway/.session
config_dir=""
rabbitmq=false
dry_run=false
backup=""

log() { printf '[restore] %s\n' "$*" >&2; }
fail() { printf '[restore] error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

while (($# > 0)); do
  case "$1" in
    --database-url) database_url="${2:?--database-url needs a URL}"; shift ;;
    --session-dir) session_dir="${2:?--session-dir needs a directory}"; shift ;;
    --config-dir) config_dir="${2:?--config-dir needs a directory}"; shift ;;
    --rabbitmq) rabbitmq=true ;;
    --dry-run) dry_run=true ;;
    -h | --help) usage 0 ;;
    -*) printf 'unknown option: %s\n' "$1" >&2; usage 2 ;;
    *)
      [[ -z "$backup" ]] || { printf 'one backup directory only\n' >&2; usage 2; }
      backup="$1"
      ;;
  esac
  shift
done

[[ -n "$backup" ]] || { printf 'which backup? give its directory\n' >&2; usage 2; }
[[ -n "$database_url" ]] || { printf -- '--database-url is required\n' >&2; usage 2; }
[[ -d "$backup" ]] || fail "$backup is not a directory"
[[ -f "$backup/SHA256SUMS" ]] || fail "$backup has no SHA256SUMS: not a complete backup of backup.sh"

# Every command that changes something goes through here.
run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [[ "$dry_run" == false ]]; then "$@"; fi
}

log "checking $backup/SHA256SUMS"
(cd "$backup" && sha256sum --quiet --check SHA256SUMS) || fail "checksums do not match: the backup is damaged"
for name in database.dump session.tar; do
  [[ -f "$backup/$name" ]] || fail "$backup/$name is missing"
done

# The password goes to pg_restore through PGPASSWORD, not its command line
# (visible in ps), as in backup.sh.
split_password() {
  local pattern='^(postgres(ql)?://[^:/@]+):([^@]*)@(.*)$'
  if [[ "$database_url" =~ $pattern ]]; then
    local encoded="${BASH_REMATCH[3]}"
    export PGPASSWORD
    PGPASSWORD="$(printf '%b' "${encoded//%/\\x}")"
    database_url="${BASH_REMATCH[1]}@${BASH_REMATCH[4]}"
  fi
}

restore_database() {
  log "restoring the database"
  split_password
  run pg_restore --clean --if-exists --no-owner --exit-on-error --single-transaction \
    --no-password --dbname="$database_url" "$backup/database.dump" ||
    fail "pg_restore failed: check --database-url (a direct connection to an existing database)"
}

restore_session() {
  log "restoring the session into $session_dir"
  local parent staging archived
  parent="$(dirname "$session_dir")"
  # The archive holds one directory (.session/ as backup.sh wrote it), with its modes.
  # awk reads the whole listing: `head` would close the pipe early and tar die of SIGPIPE.
  archived="$(tar --list --file="$backup/session.tar" | awk -F/ 'NR == 1 { print $1 }')"
  [[ -n "$archived" ]] || fail "session.tar is empty"
  if [[ "$dry_run" == true ]]; then
    printf '+ replace %q with %q from session.tar (directory 0700)\n' "$session_dir" "$archived"
    return
  fi
  install -d -m 0755 "$parent"
  # Unpacked beside the target first, then swapped in: a failed unpack leaves the old session.
  staging="$(mktemp -d "$parent/.restore-session.XXXXXX")"
  tar --extract --same-permissions --file="$backup/session.tar" --directory="$staging" ||
    { rm -rf "$staging"; fail "session.tar could not be unpacked"; }
  [[ -d "$staging/$archived" ]] || { rm -rf "$staging"; fail "session.tar holds no directory"; }
  chmod 0700 "$staging/$archived"
  rm -rf "$session_dir"
  mv "$staging/$archived" "$session_dir"
  rm -rf "$staging"
}

restore_config() {
  [[ -n "$config_dir" ]] || return 0
  [[ -f "$backup/config.tar" ]] || fail "--config-dir given but the backup has no config.tar"
  log "restoring the configuration into $config_dir"
  run install -d -m 0750 "$config_dir"
  run tar --extract --same-permissions --file="$backup/config.tar" --directory="$config_dir" --strip-components=1
}

restore_rabbitmq() {
  [[ "$rabbitmq" == true ]] || return 0
  [[ -f "$backup/rabbitmq-definitions.json" ]] || fail "--rabbitmq given but the backup has no rabbitmq-definitions.json"
  log "importing RabbitMQ definitions"
  # From stdin: Debian's rabbitmqctl runs as the rabbitmq user, who cannot read the 0600 file.
  if [[ "$dry_run" == true ]]; then
    printf '+ rabbitmqctl import_definitions - < %q\n' "$backup/rabbitmq-definitions.json"
  else
    PATH="$PATH:/usr/sbin" rabbitmqctl -q import_definitions - <"$backup/rabbitmq-definitions.json" ||
      fail "rabbitmqctl import_definitions failed"
  fi
}

restore_database
restore_session
restore_config
restore_rabbitmq
log "done$([[ "$dry_run" == true ]] && printf ' (dry run: nothing changed)')"
