#!/usr/bin/env bash
# Benchmarks (not part of `make test`). Prints results; docs/benchmarks.md
# records them with the machine they ran on.
set -euo pipefail
BUILD=${1:-build}
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== sgemm through the op layer vs OpenBLAS directly (AG_THREADS=${AG_THREADS:-2})"
AG_THREADS=${AG_THREADS:-2} "$BUILD/bench_sgemm"
for b in "$BUILD"/bench_*; do
  case "$b" in *bench_sgemm) continue ;; esac
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  AG_THREADS=${AG_THREADS:-2} "$b"
done
