#!/usr/bin/env bash
# The main job while the dialogue systems are being built: train a small CNN
# on Fashion-MNIST, then score its last checkpoint.
set -euo pipefail
AGORA=${1:-build/agora}
OUT=${DEMO_OUT:-runs/demo-cnn}
EPOCHS=${DEMO_EPOCHS:-3}
echo "== agora demo: CNN on Fashion-MNIST, $EPOCHS epochs, writing $OUT"
rm -rf "$OUT" # a fresh run refuses a folder that already holds checkpoints
"$AGORA" vision train --data fashion-mnist --model cnn --epochs "$EPOCHS" --out "$OUT" --seed 1
last=$(ls -d "$OUT"/epoch-* | sort | tail -n 1)
echo "== scoring $last"
"$AGORA" vision eval --checkpoint "$last"
echo "== per-epoch metrics: $OUT/metrics.jsonl"
cat "$OUT/metrics.jsonl"
