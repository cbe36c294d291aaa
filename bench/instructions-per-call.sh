#!/usr/bin/env bash
# User-space instructions per VoIP→VoIP call (docs/benchmarks.md#per-call-cpu): runs the
# emulator under valgrind's callgrind while `alicom-bench calls` drives it, counts the
# instructions of a window once calls are flowing, and divides by the calls that ended in it
# (`alicom_calls_ended_total`). Linux, valgrind (callgrind_control, callgrind_annotate), curl.
#
#   bash bench/instructions-per-call.sh [target/release]   # the dir holding alicom-emu and alicom-bench
#
# Unlike CPU time on a shared machine, the count repeats to about half a per cent from run to
# run, so a change of a few per cent shows in one run per build. It counts neither the kernel
# (system calls, loopback TCP) nor cache misses: a change that saves instructions saves at most
# that share of the time. The profile stays in $OUT (callgrind_annotate --inclusive=yes $OUT).
#
# CONCURRENCY (default 8) calls at a time; WINDOW_SECS (default 10) counted after WARM_SECS
# (default 5); under callgrind the emulator runs some 50 times slower.
#
# CACHE_SIM=1 also simulates the caches (valgrind's --cache-sim, with this machine's cache sizes)
# and prints the misses per call, first level and last level, reads and writes: what costs when
# instructions do not explain the time. Give it WARM_SECS=40 so that every retained collection
# (the event log holds some 770 calls) is full and evicting before the window opens. valgrind
# reads the last level's size from the CPU and can get it wrong (on one AMD EPYC host it took a
# 256 MiB direct-mapped cache for a 32 MiB one): LL=size,ways,line sets it, e.g. LL=33554432,16,64.
set -euo pipefail
dir=$(cd "${1:-target/release}" && pwd)
emu=$dir/alicom-emu
concurrency=${CONCURRENCY:-8}
window=${WINDOW_SECS:-10}
warm=${WARM_SECS:-5}
out=${OUT:-$(mktemp -d)/callgrind.out}
for tool in valgrind callgrind_control callgrind_annotate curl; do
  command -v "$tool" > /dev/null || { echo "needs $tool" >&2; exit 1; }
done

# alicom-bench starts the emulator it is given: this wrapper starts it under callgrind, with
# instrumentation off until the window opens.
wrap=$(mktemp)
trap 'rm -f "$wrap"' EXIT
cache_sim=""
[ "${CACHE_SIM:-0}" = 1 ] && cache_sim="--cache-sim=yes${LL:+ --LL=$LL}"
printf '#!/usr/bin/env bash\nexec valgrind --tool=callgrind %s --instr-atstart=no --callgrind-out-file=%q %q "$@"\n' \
  "$cache_sim" "$out" "$emu" > "$wrap"
chmod +x "$wrap"

log=$(mktemp)
ALICOM_EMU_BIN=$wrap "$dir/alicom-bench" calls --concurrency "$concurrency" --duration-secs $((warm + window + 20)) \
  > "$log" 2>&1 &
bench=$!
admin="" pid=""
for _ in $(seq 120); do
  sleep 0.5
  pid=$(pgrep -f -- "--callgrind-out-file=$out" | head -1) || continue
  for port in $(ss -ltnpH | grep "pid=$pid," | awk '{print $4}' | sed 's/.*://'); do
    curl -sf -m 2 "http://127.0.0.1:$port/metrics" | grep -q '^alicom_calls_ended_total' && admin=$port
  done
  [ -n "$admin" ] && break
done
[ -n "$admin" ] || { echo "no emulator with ended calls found" >&2; cat "$log" >&2; exit 1; }
sleep "$warm"
ended() { curl -sf "http://127.0.0.1:$admin/metrics" | awk '/^alicom_calls_ended_total/ {s += $2} END {print s + 0}'; }
callgrind_control -i on "$pid" > /dev/null
before=$(ended)
sleep "$window"
calls=$(( $(ended) - before ))
callgrind_control -d "$pid" > /dev/null   # the window's counts, in $out.1
callgrind_control -i off "$pid" > /dev/null
wait "$bench" || true
# The first line of totals: Ir, then (with the cache simulation) Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw.
totals=$(callgrind_annotate "$out.1" 2> /dev/null | awk '/PROGRAM TOTALS/ && !n {gsub(",", ""); print; n = 1}')
read -r -a t <<< "$(echo "$totals" | tr -d '()%' | awk '{for (i = 1; i <= NF; i += 2) printf "%s ", $i}')"
instructions=${t[0]}
echo "calls ended in the window: $calls"
echo "instructions: $instructions ($((instructions / calls)) per call)"
if [ -n "$cache_sim" ]; then
  echo "misses per call: first level $(((t[4] + t[5]) / calls)) (reads $((t[4] / calls)), writes $((t[5] / calls))); last level $(((t[7] + t[8]) / calls)) (reads $((t[7] / calls)), writes $((t[8] / calls)))"
fi
echo "profile: $out.1"
