#!/usr/bin/env bash
# Runs schemathesis against the admin API's OpenAPI document (docs/admin-api.md#openapi) on the
# built emulator binary, for a bounded time: every generated request (valid and invalid) must get
# an answer that is not a 5xx and that matches the document's schema for its status.
#   binary:  $ALICOM_EMU_BIN, default <repo>/target/release/alicom-emu (this script never builds it)
#   venv:    <repo>/target/openapi-venv, (re)created when requirements.txt changes
#   budget:  $OPENAPI_MAX_EXAMPLES test cases per operation (default 30), $OPENAPI_MAX_TIME seconds
#            in all (default 120)
#   report:  <repo>/target/openapi-report (JUnit XML), the emulator's log beside it
# Extra arguments are passed to `schemathesis run` (e.g. --include-path /admin/sts). Ends with
# "openapi: N passed, N failed" (operations). Exit code = schemathesis' (or 1 when the emulator does
# not start, dies, or does not stop cleanly).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="$REPO/target/openapi-venv"
BIN="${ALICOM_EMU_BIN:-$REPO/target/release/alicom-emu}"
REPORT="$REPO/target/openapi-report"
# shellcheck source=../sdk/deps.sh
source "$REPO/tests/sdk/deps.sh"
ensure_venv "$VENV" "$HERE/requirements.txt"

if [[ ! -x "$BIN" ]]; then
    echo "openapi: emulator binary not found: $BIN (build it, or set ALICOM_EMU_BIN)" >&2
    exit 1
fi
rm -rf "$REPORT"
mkdir -p "$REPORT"
work="$(mktemp -d)"
log="$REPORT/emulator.log"
"$BIN" --config "$HERE/emu.toml" --ephemeral-ports --ready-file "$work/ready.json" >"$log" 2>&1 &
emu=$!
cleanup() {
    kill "$emu" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The ready-file appears (atomically) once every listener accepts.
for _ in $(seq 150); do
    [[ -s "$work/ready.json" ]] && break
    if ! kill -0 "$emu" 2>/dev/null; then
        echo "openapi: the emulator exited before it was ready" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done
admin="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["admin"])' "$work/ready.json")"

# Left out, and why:
# - GET /admin/events/stream: Server-Sent Events that never end; every request would time out.
# - PUT /admin/callbacks, PUT /admin/mns/push: they set URLs the emulator then sends HTTP to; a
#   generated URL may name any host, and a test run talks to this machine only.
# One worker: schemathesis' threads trip a CPython 3.11 bug ("AST constructor recursion depth
# mismatch") in Hypothesis, and the machine has two cores anyway.
# From target/openapi-cache: schemathesis keeps the failures it found there (and replays them first
# on the next run), out of the source tree.
mkdir -p "$REPO/target/openapi-cache"
cd "$REPO/target/openapi-cache"
set +e
"$VENV/bin/schemathesis" run "$admin/admin/openapi.json" \
    --checks not_a_server_error,response_schema_conformance \
    --exclude-name 'GET /admin/events/stream' \
    --exclude-name 'PUT /admin/callbacks' \
    --exclude-name 'PUT /admin/mns/push' \
    --max-examples "${OPENAPI_MAX_EXAMPLES:-30}" \
    --max-time "${OPENAPI_MAX_TIME:-120}" \
    --request-timeout 10 \
    --workers 1 \
    --report junit --report-junit-path "$REPORT/junit.xml" \
    "$@"
rc=$?
set -e

# One line for tests/run-all.sh: operations tested, and those with a failure or an error.
if [[ -s "$REPORT/junit.xml" ]]; then
    python3 - "$REPORT/junit.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET

cases = ET.parse(sys.argv[1]).getroot().iter("testcase")
failed = passed = 0
for case in cases:
    if case.find("failure") is not None or case.find("error") is not None:
        failed += 1
    else:
        passed += 1
print(f"openapi: {passed} passed, {failed} failed")
PY
fi

# The emulator must have survived the run and stop cleanly.
if ! kill -0 "$emu" 2>/dev/null; then
    echo "openapi: the emulator died during the run; its log: $log" >&2
    exit 1
fi
kill -TERM "$emu"
if ! wait "$emu"; then
    echo "openapi: the emulator did not exit cleanly after SIGTERM; its log: $log" >&2
    rc=1
fi
exit $rc
