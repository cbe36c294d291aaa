#!/usr/bin/env bash
# Runs the virtual-device examples (docs/voip-devices.md#examples) against the built emulator:
# a pytest and a Node test of a customer's outbound-callback server, using only HTTP.
#   binary: $ALICOM_EMU_BIN, default <repo>/target/release/alicom-emu (this script never builds it)
#   venv:   <repo>/target/examples-venv (pytest only)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
export ALICOM_EMU_BIN="${ALICOM_EMU_BIN:-$REPO/target/release/alicom-emu}"
# shellcheck source=../../tests/sdk/deps.sh
source "$REPO/tests/sdk/deps.sh"
ensure_venv "$REPO/target/examples-venv" "$HERE/python/requirements.txt"
rc=0
"$REPO/target/examples-venv/bin/python" -m pytest -q -p no:cacheprovider "$HERE/python" || rc=1
node --test "$HERE/node/outbound-callback.test.mjs" || rc=1
exit $rc
