#!/usr/bin/env bash
# Runs the Node MNS real-SDK suite (tests/sdk/mns/node: @alicloud/mns 1.2.0, plus
# @alicloud/dybaseapi 1.0.0 for QueryTokenForMnsQueue) against the built emulator binary.
#   binary: $ALICOM_EMU_BIN, default <repo>/target/release/alicom-emu (this script never builds it);
#           the suite skips itself when the ready-file has no "mns" endpoint.
#   deps:   `npm ci` when node_modules is missing or package-lock.json changed since the last install
# Extra arguments are passed to `node --test`. Exit code = node's.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

source "$HERE/../../deps.sh"
ensure_node_modules node

set +e
node --test "$@" test/*.test.js
rc=$?
set -e
exit $rc
