#!/usr/bin/env bash
# Runs the Node real-SDK suite (tests/sdk/node) against the built emulator binary.
#   binary: $ALICOM_EMU_BIN, default <repo>/target/release/alicom-emu (this script never builds it)
#   deps:   `npm ci` when node_modules is missing or package-lock.json changed since the last install
# Extra arguments are passed to `node --test`. Exit code = node's.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

source "$HERE/../deps.sh"
ensure_node_modules node

set +e
node --test "$@" test/*.test.js
rc=$?
set -e
exit $rc
