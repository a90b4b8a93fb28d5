#!/usr/bin/env bash
# Runs a command on the project's Node.js runtime (.nvmrc), fetching it the
# first time (node-runtime.sh), whatever Node.js started npm: `npm test` and
# `npm run demo` work the same on a machine whose own Node.js is older.
#
#   on-node-runtime.sh COMMAND [ARG...]
set -euo pipefail
bin="$(bash "$(dirname "${BASH_SOURCE[0]}")/node-runtime.sh")"
export PATH="$bin:$PATH"
exec "$@"
