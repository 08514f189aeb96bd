#!/usr/bin/env bash
# The main job: a short experiment E1 of social meta-learning (docs/sml.md).
# Pretrains the base student from nothing if there is none yet (about 4
# minutes on 2 cores), fine-tunes it with SML on its own dialogues with the
# programmatic teacher, and prints acc@k of the base vs the SML student on
# held-out tasks; the report (markdown, CSV, plot) is in $OUT/e1.
set -euo pipefail
AGORA=${1:-build/agora}
OUT=${DEMO_OUT:-runs/demo}
MINUTES=${DEMO_PRETRAIN_MINUTES:-4}
BASE=$OUT/base
finished() { [ -f "$BASE/pretrain.json" ] && grep -q '"results"' "$BASE/pretrain.json"; }
if finished; then
  echo "== agora demo: the base student in $BASE is already trained"
else
  resume=()
  [ -f "$BASE/pretrain.json" ] && resume=(--resume)
  echo "== agora demo: pretraining the base student in $BASE (about $MINUTES minutes)"
  "$AGORA" sml pretrain --out "$BASE" --minutes "$MINUTES" --no-eval "${resume[@]}"
fi
echo "== SML: rollouts with the teacher, fine-tuning, evaluation of both students"
rm -rf "$OUT/e1" # a fresh experiment each time; the base student is kept
"$AGORA" sml e1 --out "$OUT/e1" --base "$BASE"
echo "== report: $OUT/e1/report.md (plot: $OUT/e1/acc_at.svg)"
