#!/usr/bin/env bash
# Benchmarks (not part of `make test`). Prints results; docs/benchmarks.md
# records them with the machine they ran on. Run on an otherwise idle machine.
set -euo pipefail
BUILD=${1:-build}
THREADS=${AG_THREADS:-2}
export AG_THREADS=$THREADS
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), threads $THREADS"
# bench-lm: GPT-2 124M training and stories15M/110M-shaped decoding, with the
# memory bandwidth decoding is bound by. `scripts/bench.sh BUILD lm` runs only this.
bench_lm() {
  echo "== bench-lm: language models (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  "$BUILD/bench_membw"
  "$BUILD/bench_lm_train" 10
  "$BUILD/bench_lm_decode" s15m 256 3
  "$BUILD/bench_lm_decode" s110m 256 3
}
if [ "${2:-all}" = lm ]; then
  bench_lm
  exit 0
fi
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
bench_lm
for b in "$BUILD"/bench_*; do
  case "$b" in *bench_sgemm | *bench_train_step | *bench_membw | *bench_lm_train | *bench_lm_decode) continue ;; esac
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  "$b"
done
