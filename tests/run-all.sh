#!/usr/bin/env bash
# Runs every test suite: Rust unit + integration tests, then the vendor's real SDKs (Python and
# Node) and schemathesis (the admin API's OpenAPI contract) against the release binary, then
# every fuzz target for a few seconds. Installs the SDKs, schemathesis and cargo-fuzz itself (into
# target/ and node_modules/) on first use. Logs go to target/test-logs/. Exit status: non-zero if
# any suite failed.
set -uo pipefail
cd "$(dirname "$0")/.."
# No incremental caches: they add ~0.7 GiB to target/ and a one-shot run never reuses them.
export CARGO_INCREMENTAL=0
logs=target/test-logs
mkdir -p "$logs"
failed_suites=()
passed=0
failed=0

count() { # $1 = log, $2 = regex with one number group for passed, $3 for failed
  local p f
  p=$(grep -oE "$2" "$1" | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
  f=$(grep -oE "$3" "$1" | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
}

run() { # $1 = name, rest = command
  local name=$1; shift
  echo "=== $name: $*"
  if "$@" 2>&1 | tee "$logs/$name.log"; then :; else failed_suites+=("$name"); fi
}

df -h . | tail -1 | awk '{print "disk: " $4 " free"}'
run build cargo build --release --locked
# Every later suite runs this binary: a failed build must not test a stale one.
if [ ${#failed_suites[@]} -gt 0 ] || [ ! -x target/release/alicom-emu ]; then
  echo "release build failed"
  exit 1
fi
run rust cargo test --workspace --locked
count "$logs/rust.log" 'test result: [a-zA-Z]+\. [0-9]+ passed' '; [0-9]+ failed'
export ALICOM_EMU_BIN="$PWD/target/release/alicom-emu"
run python bash tests/sdk/python/run.sh
count "$logs/python.log" '[0-9]+ passed' '[0-9]+ failed'
run node bash tests/sdk/node/run.sh
count "$logs/node.log" '^# pass [0-9]+' '^# fail [0-9]+'
run python-mns bash tests/sdk/mns/python/run.sh
count "$logs/python-mns.log" '[0-9]+ passed' '[0-9]+ failed'
run node-mns bash tests/sdk/mns/node/run.sh
count "$logs/node-mns.log" '^# pass [0-9]+' '^# fail [0-9]+'
run web-sdk bash tests/web-sdk/run.sh
count "$logs/web-sdk.log" '^# pass [0-9]+' '^# fail [0-9]+'
run openapi bash tests/openapi/run.sh
count "$logs/openapi.log" '^openapi: [0-9]+ passed' ', [0-9]+ failed$'
run examples bash examples/virtual-devices/run.sh
count "$logs/examples.log" '[0-9]+ passed' '[0-9]+ failed'
count "$logs/examples.log" '^# pass [0-9]+' '^# fail [0-9]+'

# Every fuzz target for a bounded time (FUZZ_SECONDS each, default 20; docs/fuzzing.md).
run fuzz bash tests/fuzz/run.sh
count "$logs/fuzz.log" '^fuzz: [0-9]+ passed' 'passed, [0-9]+ failed$'

echo
echo "=== suites failed: ${failed_suites[*]:-none}"
df -h . | tail -1 | awk '{print "disk: " $4 " free"}'
echo "all: $passed passed, $failed failed"
[ ${#failed_suites[@]} -eq 0 ]
