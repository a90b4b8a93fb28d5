#!/usr/bin/env bash
# Installs the gateway daemon and its consumer API on a host, from a built
# checkout (`npm run build`).
#
#   install.sh [--dry-run] [--skip-npm] [--source DIR] [--root DIR]
#
#   --dry-run   print every command that would change the host, change nothing
#   --skip-npm  do not use npm: no runtime download, no `npm ci --omit=dev`
#               (/opt/telegram-gateway/node and node_modules provisioned otherwise,
#               with `node patches/apply-telegram-patch.mjs --modules DIR` run on them)
#   --source    the checkout to install from (default: this script's project)
#   --root      install under DIR instead of / (staging images, tests); systemd
#               is then not reloaded
#
# What it does, each step safe to repeat:
#   1. the system user and group `telegram-gateway` (no login, no home)
#   2. /opt/telegram-gateway (root-owned, read-only to the service) with the
#      build (dist/, sql/, docs/, deploy/, package files), the Node.js runtime
#      the units run (node/, the version in .nvmrc, deploy/scripts/node-runtime.sh)
#      and production node_modules (installed with that runtime, the GramJS
#      patch in patches/ applied to them)
#   3. /opt/telegram-gateway/.session, 0700, owned by the service: the only
#      path the unit lets the daemon write
#   4. /etc/telegram-gateway/gateway.env (0640 root:telegram-gateway) from the
#      project's .env.example, only if there is none yet
#   5. /etc/systemd/system/telegram-gateway.service and
#      telegram-gateway-api.service, then `systemctl daemon-reload`
# It never starts, stops or enables a service; docs/operations.md does.
set -euo pipefail

readonly user=telegram-gateway
readonly unit=telegram-gateway.service
readonly units=(telegram-gateway.service telegram-gateway-api.service)

dry_run=false
skip_npm=false
source_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
root=/

log() { printf '[install] %s\n' "$*" >&2; }
fail() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

# Every command that changes the host goes through here.
run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [[ "$dry_run" == false ]]; then "$@"; fi
}

usage() {
  sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

while (($# > 0)); do
  case "$1" in
    --dry-run) dry_run=true ;;
    --skip-npm) skip_npm=true ;;
    --source) source_dir="${2:?--source needs a directory}"; shift ;;
    --root) root="${2:?--root needs a directory}"; shift ;;
    -h | --help) usage 0 ;;
    *) printf 'unknown option: %s\n' "$1" >&2; usage 2 ;;
  esac
  shift
done

root="${root%/}"
readonly app_dir="$root/opt/telegram-gateway"
readonly session_dir="$app_dir/.session"
readonly config_dir="$root/etc/telegram-gateway"
readonly env_file="$config_dir/gateway.env"
readonly unit_dir="$root/etc/systemd/system"

# useradd and the id lookups work on $root's own /etc/passwd when it is not /.
prefix_args=()
if [[ -n "$root" ]]; then prefix_args=(--prefix "$root"); fi

passwd_entry() {
  if [[ -z "$root" ]]; then getent passwd "$user" || true; else grep "^$user:" "$root/etc/passwd" 2>/dev/null || true; fi
}

check_source() {
  [[ -f "$source_dir/dist/bin/telegram-gateway.js" ]] ||
    fail "no build in $source_dir/dist: run 'npm run build' there first"
  [[ -f "$source_dir/deploy/systemd/$unit" ]] || fail "$source_dir is not a telegram-gateway checkout"
  if [[ "$dry_run" == false && "$(id -u)" != 0 ]]; then fail "run as root (or with --dry-run)"; fi
}

ensure_user() {
  if [[ -n "$(passwd_entry)" ]]; then
    log "user $user exists"
    return
  fi
  run useradd "${prefix_args[@]}" --system --user-group --home-dir /opt/telegram-gateway --no-create-home \
    --shell /usr/sbin/nologin --comment "Telegram gateway" "$user"
}

# Numeric ids: under --root the host's name service does not know the user.
owner_ids() {
  local entry
  entry="$(passwd_entry)"
  if [[ -z "$entry" ]]; then printf '%s:%s\n' "$user" "$user"; return; fi
  printf '%s:%s\n' "$(cut -d: -f3 <<<"$entry")" "$(cut -d: -f4 <<<"$entry")"
}

ensure_directories() {
  local ids group_id
  ids="$(owner_ids)"
  group_id="${ids#*:}"
  run install -d -m 0755 -o 0 -g 0 "$app_dir"
  run install -d -m 0700 -o "${ids%:*}" -g "$group_id" "$session_dir"
  # install -d leaves an existing directory's mode alone only if it matches: enforce it.
  run chmod 0700 "$session_dir"
  run chown "$ids" "$session_dir"
  run install -d -m 0750 -o 0 -g "$group_id" "$config_dir"
  run install -d -m 0755 -o 0 -g 0 "$unit_dir"
}

# Replaces a directory of the build as a whole, so files removed upstream go away.
copy_tree() {
  local name="$1"
  [[ -d "$source_dir/$name" ]] || return 0
  run rm -rf "$app_dir/$name.new"
  run cp -R "$source_dir/$name" "$app_dir/$name.new"
  run chown -R 0:0 "$app_dir/$name.new"
  run chmod -R u=rwX,go=rX "$app_dir/$name.new"
  run rm -rf "$app_dir/$name"
  run mv "$app_dir/$name.new" "$app_dir/$name"
}

copy_build() {
  local name
  for name in dist sql docs deploy patches; do copy_tree "$name"; done
  for name in package.json package-lock.json; do
    run install -m 0644 -o 0 -g 0 "$source_dir/$name" "$app_dir/$name"
  done
}

# The runtime the units run (ExecStart=/opt/telegram-gateway/node/bin/node);
# node-runtime.sh leaves an install of the same version alone.
install_runtime() {
  if [[ "$skip_npm" == true ]]; then
    log "skipping the Node.js runtime (--skip-npm)"
    return
  fi
  if [[ "$dry_run" == true ]]; then
    run bash "$source_dir/deploy/scripts/node-runtime.sh" "$app_dir/node"
    return
  fi
  bash "$source_dir/deploy/scripts/node-runtime.sh" "$app_dir/node" >/dev/null
}

# `npm ci` only when the lock file changed since the last install.
install_dependencies() {
  if [[ "$skip_npm" == true ]]; then
    log "skipping npm ci (--skip-npm)"
    return
  fi
  local stamp="$app_dir/node_modules/.installed-lock.sha256" wanted
  wanted="$(sha256sum "$source_dir/package-lock.json" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    log "node_modules up to date"
  else
    run env PATH="$app_dir/node/bin:$PATH" npm ci --prefix "$app_dir" --omit=dev --ignore-scripts --no-audit --no-fund
    if [[ "$dry_run" == false ]]; then printf '%s\n' "$wanted" >"$stamp"; fi
  fi
  # --ignore-scripts skips the project's own postinstall too: the GramJS patch
  # (patches/, docs/architecture.md) is applied here, every time (idempotent).
  run "$app_dir/node/bin/node" "$app_dir/patches/apply-telegram-patch.mjs" --modules "$app_dir/node_modules"
}

install_env_file() {
  local ids
  ids="$(owner_ids)"
  if [[ -e "$env_file" ]]; then
    log "$env_file exists: left as it is"
    return
  fi
  if [[ -f "$source_dir/.env.example" ]]; then
    run install -m 0640 -o 0 -g "${ids#*:}" "$source_dir/.env.example" "$env_file"
  else
    run install -m 0640 -o 0 -g "${ids#*:}" /dev/null "$env_file"
  fi
}

install_unit() {
  local each
  for each in "${units[@]}"; do
    run install -m 0644 -o 0 -g 0 "$source_dir/deploy/systemd/$each" "$unit_dir/$each"
  done
  if [[ -n "$root" ]]; then
    log "installed under $root: systemd not reloaded"
  elif [[ -d /run/systemd/system ]]; then
    run systemctl daemon-reload
  else
    log "systemd is not running here: run 'systemctl daemon-reload' on the target host"
  fi
}

main() {
  check_source
  ensure_user
  ensure_directories
  copy_build
  install_runtime
  install_dependencies
  install_env_file
  install_unit
  log "done. Next: edit $env_file, run 'telegram-gateway login' as $user, then"
  log "  systemctl enable --now telegram-gateway   (docs/operations.md, Install)"
  log "  systemctl enable --now telegram-gateway-api   (once API_KEYS is set in /etc/telegram-gateway/api.env)"
}

main
