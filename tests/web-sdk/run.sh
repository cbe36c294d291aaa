#!/usr/bin/env bash
# Runs the Web SDK suite: the unmodified aliyun-voip-web-sdk@0.0.11 in headless Chromium against
# the built emulator binary.
#   binary:   $ALICOM_EMU_BIN, default <repo>/target/release/alicom-emu (this script never builds it)
#   browser:  $CHROMIUM_BIN, default /usr/bin/chromium (Debian's package; installed with apt-get
#             when missing and we are root; no tool ever downloads a browser of its own)
#   deps:     `npm ci` when node_modules is missing or package-lock.json changed since the last install
#   report:   <repo>/target/web-sdk-report/report.{json,md} ($WEB_SDK_REPORT_DIR)
# Extra arguments are passed to `node --test` (e.g. --test-name-pattern=kick). Exit code = node's.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
export PUPPETEER_SKIP_DOWNLOAD=1 PUPPETEER_SKIP_CHROME_DOWNLOAD=1 PUPPETEER_SKIP_CHROME_HEADLESS_SHELL_DOWNLOAD=1

CHROMIUM="${CHROMIUM_BIN:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        echo "web-sdk: installing chromium (apt-get)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
    else
        echo "web-sdk: $CHROMIUM not found: apt-get install -y chromium (or set CHROMIUM_BIN)" >&2
        exit 1
    fi
fi

source "$HERE/../sdk/deps.sh"
ensure_node_modules web-sdk

node lib/report.js clean
set +e
# One test file at a time: each runs Chromium and its own emulators on a 2-core machine.
node --test --test-concurrency=1 "$@" test/*.test.js
rc=$?
set -e
node lib/report.js >&2 || true
exit $rc
