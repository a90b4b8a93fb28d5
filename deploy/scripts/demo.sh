#!/usr/bin/env bash
# `npm run demo`: everything the demo needs on a fresh Debian machine with
# Node, then the demo itself. Extra arguments go to `telegram-gateway demo`
# (e.g. `npm run demo -- --duration "30 seconds"`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

bash deploy/scripts/stack.sh up >&2
# The supported runtime (.nvmrc), fetched once, whatever Node.js started npm.
PATH="$(bash deploy/scripts/node-runtime.sh):$PATH"
export PATH
if [ ! -x node_modules/.bin/tsx ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund >&2
fi
# The live view is the point of the demo: keep the logs to warnings unless asked.
export LOG_LEVEL="${LOG_LEVEL:-Warn}"
exec node_modules/.bin/tsx src/bin/telegram-gateway.ts demo "$@"
