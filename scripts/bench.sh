#!/usr/bin/env bash
# Benchmarks (not part of `make test`). Prints results; docs/benchmarks.md
# records them with the machine they ran on. Run on an otherwise idle machine.
set -euo pipefail
BUILD=${1:-build}
THREADS=${AG_THREADS:-2}
export AG_THREADS=$THREADS
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), threads $THREADS"
echo "== sgemm through the op layer vs OpenBLAS directly"
"$BUILD/bench_sgemm"
echo "== training steps, Fashion-MNIST shapes (1x28x28), SGD momentum"
"$BUILD/bench_train_step" all 64 20
"$BUILD/bench_train_step" all 128 10
if command -v perf >/dev/null 2>&1; then
  echo "== where a CNN training step spends its time (perf, cpu-clock samples, by library)"
  data=$(mktemp)
  if perf record -q -e cpu-clock -o "$data" -- "$BUILD/bench_train_step" cnn 64 20 >/dev/null 2>&1; then
    perf report -i "$data" --stdio --sort dso 2>/dev/null | grep -E '^ +[0-9]' | head -8
    echo "-- top symbols"
    perf report -i "$data" --stdio --sort dso,symbol 2>/dev/null | grep -E '^ +[0-9]' | head -12
  else
    echo "perf record failed (not permitted here?)"
  fi
  rm -f "$data"
fi
for b in "$BUILD"/bench_*; do
  case "$b" in *bench_sgemm | *bench_train_step) continue ;; esac
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  "$b"
done
