#!/usr/bin/env bash
# Builds every fuzz target (fuzz/, docs/fuzzing.md) with cargo-fuzz on the stable toolchain (no
# sanitizer: that is what needs nightly) and runs each for a bounded time from its seed corpus.
#   FUZZ_SECONDS  seconds per target (default 20)
#   FUZZ_TARGETS  space-separated targets to run (default: all of them)
# New inputs go to target/fuzz-corpus/<target> (the seeds in fuzz/corpus/ are only read); a crash
# is saved under fuzz/artifacts/<target>/. Prints one line per target and a closing
# "fuzz: N passed, M failed". Exit status: non-zero if a target failed to build or crashed.
set -uo pipefail
cd "$(dirname "$0")/../.."
CARGO_FUZZ_VERSION=0.13.1
seconds=${FUZZ_SECONDS:-20}
export CARGO_INCREMENTAL=0
start=$(date +%s)

# cargo-fuzz, pinned: the one on PATH if it is that version, else installed once into target/.
tools=$PWD/target/fuzz-tools
export PATH="$tools/bin:$PATH"
if ! cargo fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into $tools"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$tools" || {
    echo "fuzz: 0 passed, 1 failed (cargo-fuzz did not install)"
    exit 1
  }
fi

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
echo "=== building $(echo $targets | wc -w) fuzz targets"
# All targets in one cargo build: the dependencies are compiled once.
if ! cargo fuzz build --sanitizer none; then
  echo "fuzz: 0 passed, $(echo $targets | wc -w) failed (the fuzz targets did not build)"
  exit 1
fi
built=$(date +%s)
echo "=== built in $((built - start)) s; running each target for $seconds s"

passed=0
failed=0
failures=()
for t in $targets; do
  mkdir -p "target/fuzz-corpus/$t" "fuzz/artifacts/$t" target/fuzz-logs
  log=target/fuzz-logs/$t.log
  # -timeout: one input taking this long is a failure (a hang); -rss_limit_mb: so is this much memory.
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=("-dict=fuzz/dict/$t.dict")
  cargo fuzz run --sanitizer none "$t" "target/fuzz-corpus/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" >"$log" 2>&1
  status=$?
  runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  speed=$(grep -oE '^stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
  if [ $status -eq 0 ]; then
    passed=$((passed + 1))
    echo "fuzz $t: ok, ${runs:-0} runs, ${speed:-0} exec/s, coverage ${cov:-0}"
  else
    failed=$((failed + 1))
    failures+=("$t")
    echo "fuzz $t: FAILED (exit $status), ${runs:-0} runs; the end of its log:"
    grep -vE '^#[0-9]+' "$log" | tail -40 | sed 's/^/    /'
  fi
done
end=$(date +%s)
echo "=== fuzzing took $((end - start)) s (build $((built - start)) s, runs $((end - built)) s)"
[ ${#failures[@]} -eq 0 ] || echo "=== failed targets: ${failures[*]} (crash inputs in fuzz/artifacts/)"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
