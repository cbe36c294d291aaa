#!/usr/bin/env bash
# Heap allocations per VoIP→VoIP call (docs/benchmarks.md#per-call-cpu): counts the emulator's
# calls into mimalloc with uprobes while `alicom-bench calls` runs, and divides by the calls that
# ended meanwhile (`alicom_calls_ended_total`). Linux, root (tracefs), perf, binutils.
#
#   bash bench/allocations-per-call.sh [target/release]   # the dir holding alicom-emu and alicom-bench
#
# CONCURRENCY (default 8) calls at a time, counted over WINDOW_SECS (default 8): few calls in
# flight at the window's edges, so that the count per call is steady to a few per cent.
#
# The probes are defined through tracefs at each symbol's file offset: `perf probe` refuses
# mimalloc's C symbols in a release build without their debug information.
set -euo pipefail
dir=$(cd "${1:-target/release}" && pwd)
emu=$dir/alicom-emu
tracefs=/sys/kernel/tracing
[ -w "$tracefs/uprobe_events" ] || { echo "needs root and tracefs at $tracefs" >&2; exit 1; }

# The executable segment's file offset and address turn a symbol's address into a file offset.
read -r vaddr off < <(readelf -lW "$emu" | awk '$1 == "LOAD" && $8 == "E" {print $3, $2}')
cleanup() {
  { echo 0 > "$tracefs/events/uprobes/enable"; } 2>/dev/null || true
  for p in malloc zalloc realloc free; do { echo "-:uprobes/alicom_$p" >> "$tracefs/uprobe_events"; } 2>/dev/null || true; done
}
trap cleanup EXIT
cleanup
for p in malloc zalloc realloc free; do
  sym=mi_${p}_aligned
  [ "$p" = free ] && sym=mi_free
  addr=0x$(nm "$emu" | awk -v s="$sym" '$2 == "T" && $3 == s {print $1}')
  [ "$addr" != 0x ] || { echo "no $sym in $emu" >&2; exit 1; }
  echo "p:uprobes/alicom_$p $emu:$(printf '0x%x' $((addr - vaddr + off)))" >> "$tracefs/uprobe_events"
done

log=$(mktemp)
concurrency=${CONCURRENCY:-8}
window=${WINDOW_SECS:-8}
ALICOM_EMU_BIN=$emu "$dir/alicom-bench" calls --concurrency "$concurrency" --duration-secs $((window + 8)) > "$log" 2>&1 &
bench=$!
# The emulator's admin listener, once calls have ended (its metrics then name alicom_calls_ended_total).
admin=""
for _ in $(seq 40); do
  sleep 0.25
  pid=$(pgrep -nx alicom-emu) || continue
  for port in $(ss -ltnpH | grep "pid=$pid," | awk '{print $4}' | sed 's/.*://'); do
    curl -sf -m 1 "http://127.0.0.1:$port/metrics" | grep -q '^alicom_calls_ended_total' && admin=$port
  done
  [ -n "$admin" ] && break
done
[ -n "$admin" ] || { echo "no emulator with ended calls found" >&2; exit 1; }
sleep 2 # past the start
ended() { curl -sf "http://127.0.0.1:$admin/metrics" | awk '/^alicom_calls_ended_total/ {s += $2} END {print s + 0}'; }
before=$(ended)
counts=$(perf stat -x, -e 'uprobes:alicom_*' -p "$pid" -- sleep "$window" 2>&1 >/dev/null)
calls=$(( $(ended) - before ))
wait "$bench" || true
echo "$counts" | awk -F, -v calls="$calls" '$3 ~ /uprobes/ {
  name = $3; sub(/uprobes:alicom_/, "", name)
  printf "%-8s %10d  %7.1f per call\n", name, $1, $1 / calls
}'
echo "calls ended while counting: $calls (the probes slow the emulator; counts per call are unaffected)"
rm -f "$log"
