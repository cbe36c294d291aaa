#!/usr/bin/env bash
# Runs the Python real-SDK suite (tests/sdk/python) against the built emulator binary.
#   binary: $ALICOM_EMU_BIN, default <repo>/target/release/alicom-emu (this script never builds it)
#   venv:   <repo>/target/sdk-venv, (re)created when missing or when requirements.txt changed
# Extra arguments are passed to pytest (e.g. -k tea -x). Exit code = pytest's.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
VENV="$REPO/target/sdk-venv"
REQ="$HERE/requirements.txt"
# shellcheck source=../deps.sh
source "$REPO/tests/sdk/deps.sh"
ensure_venv "$VENV" "$REQ"

cd "$REPO"
export PYTHONDONTWRITEBYTECODE=1
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/sdk/python "$@"
rc=$?
set -e
exit $rc
