#!/usr/bin/env bash
# Runs the Python MNS real-SDK suite (tests/sdk/mns/python: aliyun-mns-sdk 1.3.0, plus
# aliyun-python-sdk-dybaseapi for QueryTokenForMnsQueue, and paho-mqtt for the virtual Web SDK
# device that makes the call whose receipts test_mns_alicom_call_receipts.py consumes) against
# the built emulator binary.
#   binary: $ALICOM_EMU_BIN, default <repo>/target/release/alicom-emu (this script never builds it);
#           The suite skips itself when the ready-file has no "mns" endpoint.
#   venv:   <repo>/target/sdk-venv-mns, (re)created when missing or when requirements.txt changed
# Extra arguments are passed to pytest (e.g. -k visibility -x). Exit code = pytest's.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../../.." && pwd)"
VENV="$REPO/target/sdk-venv-mns"
REQ="$HERE/requirements.txt"
# shellcheck source=../../deps.sh
source "$REPO/tests/sdk/deps.sh"
ensure_venv "$VENV" "$REQ"

cd "$REPO"
export PYTHONDONTWRITEBYTECODE=1
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -rs tests/sdk/mns/python "$@"
rc=$?
set -e
exit $rc
