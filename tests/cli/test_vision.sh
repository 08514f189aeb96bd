#!/usr/bin/env bash
# `agora vision`: help, usage errors (exit 2, flag named), runtime errors
# (exit 1, one line), and a tiny end-to-end train / resume / eval run on a
# fake Fashion-MNIST the test writes itself.
# Usage: test_vision.sh path/to/agora
set -u
AGORA=${1:?usage: test_vision.sh path/to/agora}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/agora-cli-vision-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0

pass() { passed=$((passed + 1)); echo "ok   $1" >&2; }
fail() { failed=$((failed + 1)); echo "FAIL $1" >&2; }

# run NAME EXPECTED_STATUS ARGS...: runs agora, keeps stdout/stderr in
# $TMP/out and $TMP/err, checks the exit status.
run() {
  local name=$1 want=$2
  shift 2
  "$AGORA" "$@" >"$TMP/out" 2>"$TMP/err"
  local got=$?
  if [ "$got" -ne "$want" ]; then
    fail "$name (exit $got, expected $want)"
    sed 's/^/    /' "$TMP/err" >&2
    return 1
  fi
  return 0
}

# expect NAME FILE PATTERN: FILE contains the extended regex PATTERN.
expect() {
  if grep -Eq -- "$3" "$2"; then pass "$1"; else
    fail "$1 (no /$3/ in $2)"
    sed 's/^/    /' "$2" >&2
  fi
}

# ---- a fake Fashion-MNIST: random pixels, labels 0..9 in turn ------------
u32() { # a big-endian 32-bit integer
  printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) \
    $(($1 >> 8 & 255)) $(($1 & 255)))"
}
make_split() { # DIR PREFIX COUNT
  { printf '\x00\x00\x08\x03'; u32 "$3"; u32 28; u32 28; head -c $(($3 * 784)) /dev/urandom; } |
    gzip >"$1/$2-images-idx3-ubyte.gz"
  { printf '\x00\x00\x08\x01'; u32 "$3"; for ((i = 0; i < $3; i++)); do printf "\\x0$((i % 10))"; done; } |
    gzip >"$1/$2-labels-idx1-ubyte.gz"
}
DATA=$TMP/fmnist
mkdir -p "$DATA" "$TMP/empty"
make_split "$DATA" train 300
make_split "$DATA" t10k 100

# ---- help ------------------------------------------------------------------
run "vision --help" 0 vision --help && expect "vision --help lists verbs" "$TMP/out" "train.*" &&
  expect "vision --help lists eval" "$TMP/out" "eval"
if run "train --help" 0 vision train --help; then
  missing=""
  for flag in data data-dir model epochs out seed threads batch-size lr optimizer momentum \
    weight-decay limit resume from-epoch quiet json; do
    grep -q -- "--$flag" "$TMP/out" || missing="$missing --$flag"
  done
  if [ -z "$missing" ]; then pass "train --help documents every flag"; else
    fail "train --help lacks$missing"
  fi
fi
run "eval --help" 0 vision eval --help && expect "eval --help documents --checkpoint" "$TMP/out" "--checkpoint DIR"

# ---- usage errors: exit 2, the flag named ------------------------------------
run "unknown flag" 2 vision train --model mlp --out "$TMP/x" --bogus 3 &&
  expect "unknown flag is named" "$TMP/err" "^agora: error: .*'--bogus'"
run "missing value" 2 vision train --model mlp --out "$TMP/x" --epochs &&
  expect "missing value names the flag" "$TMP/err" "^agora: error: .*--epochs needs a value"
run "missing value before a flag" 2 vision train --model mlp --out --epochs 2 &&
  expect "missing value names --out" "$TMP/err" "--out needs a value"
run "bad integer" 2 vision train --model mlp --out "$TMP/x" --epochs=two &&
  expect "bad integer names the flag" "$TMP/err" "--epochs expects an integer"
run "out of range" 2 vision train --model mlp --out "$TMP/x" --epochs 0 &&
  expect "out of range names the flag" "$TMP/err" "--epochs 0 is out of range"
run "bad choice" 2 vision train --model vgg --out "$TMP/x" &&
  expect "bad choice lists the choices" "$TMP/err" "--model must be one of mlp\|cnn\|resnet"
run "missing required flag" 2 vision train --model mlp &&
  expect "missing --out is named" "$TMP/err" "missing required flag --out"
run "momentum with adamw" 2 vision train --model mlp --out "$TMP/x" --optimizer adamw --momentum 0.5 &&
  expect "momentum conflict named" "$TMP/err" "--momentum applies to --optimizer sgd only"
run "unknown verb" 2 vision fly && expect "unknown verb named" "$TMP/err" "unknown verb 'fly'"
run "eval without checkpoint" 2 vision eval && expect "eval needs --checkpoint" "$TMP/err" "--checkpoint"
[ ! -e "$TMP/x" ] && pass "usage errors write nothing" || fail "usage errors wrote $TMP/x"

# ---- runtime errors: exit 1, one clear line ------------------------------------
if run "missing dataset" 1 vision train --model mlp --out "$TMP/x" --data-dir "$TMP/empty"; then
  expect "missing dataset names the package" "$TMP/err" \
    "^agora: error: .*apt-get install dataset-fashion-mnist"
  [ "$(wc -l <"$TMP/err")" -eq 1 ] && pass "missing dataset is one line" ||
    fail "missing dataset printed $(wc -l <"$TMP/err") lines"
fi
run "eval of a missing checkpoint" 1 vision eval --checkpoint "$TMP/nope/epoch-001" &&
  expect "missing checkpoint is named" "$TMP/err" "^agora: error: checkpoint .*nope/epoch-001 does not exist"

# ---- a tiny run end to end -------------------------------------------------------
RUN=$TMP/run
TRAIN=(vision train --data-dir "$DATA" --model mlp --epochs 2 --batch-size 32 --limit 250
  --seed 5 --threads 2 --out "$RUN")
if run "train" 0 "${TRAIN[@]}"; then
  expect "train prints test_acc last" <(tail -n 1 "$TMP/out") "^test_acc [01]\.[0-9]{4}$"
  train_acc=$(tail -n 1 "$TMP/out")
  [ "$(wc -l <"$RUN/metrics.jsonl")" -eq 2 ] && pass "metrics.jsonl has a line per epoch" ||
    fail "metrics.jsonl lines: $(wc -l <"$RUN/metrics.jsonl")"
  expect "metrics have the promised fields" "$RUN/metrics.jsonl" \
    '"epoch":2,"train_loss":.*"test_loss":.*"test_acc":.*"lr":.*"seconds":'
  for f in model.safetensors optimizer.safetensors state.json; do
    [ -s "$RUN/epoch-001/$f" ] && [ -s "$RUN/epoch-002/$f" ] && pass "every epoch has $f" ||
      fail "missing $f"
  done
  if run "eval" 0 vision eval --checkpoint "$RUN/epoch-002" --data-dir "$DATA" --threads 2; then
    [ "$(tail -n 1 "$TMP/out")" = "$train_acc" ] && pass "eval repeats the final test_acc" ||
      fail "eval says '$(tail -n 1 "$TMP/out")', train said '$train_acc'"
  fi
  run "eval --json" 0 vision eval --checkpoint "$RUN/epoch-001" --data-dir "$DATA" --json &&
    expect "eval --json last line is an object" <(tail -n 1 "$TMP/out") '^\{"test_acc": ?[0-9.e-]+,.*\}$'

  sum_before=$(cat "$RUN"/epoch-*/* | cksum)
  run "fresh run into a used folder" 1 "${TRAIN[@]}" &&
    expect "refusal suggests --resume" "$TMP/err" "^agora: error: .*--resume"
  [ "$(cat "$RUN"/epoch-*/* | cksum)" = "$sum_before" ] && pass "refused run damaged nothing" ||
    fail "refused run changed checkpoints"

  # Interrupt after epoch 1 (epoch 2 never landed), then resume: same result.
  rm -rf "$RUN/epoch-002"
  if run "resume" 0 "${TRAIN[@]}" --resume --json; then
    expect "train --json last line is an object" <(tail -n 1 "$TMP/out") '^\{"test_acc": ?[0-9.e-]+,.*"epoch": ?2'
    run "eval after resume" 0 vision eval --checkpoint "$RUN/epoch-002" --data-dir "$DATA" --threads 2 &&
      { [ "$(tail -n 1 "$TMP/out")" = "$train_acc" ] && pass "resumed run reaches the same test_acc" ||
        fail "resumed: '$(tail -n 1 "$TMP/out")' vs '$train_acc'"; }
  fi

  # A truncated checkpoint: one clear line, the file itself left as it was.
  cp -r "$RUN/epoch-002" "$TMP/cut"
  size=$(stat -c %s "$TMP/cut/model.safetensors")
  head -c $((size / 2)) "$RUN/epoch-002/model.safetensors" >"$TMP/cut/model.safetensors"
  sum_cut=$(cksum <"$TMP/cut/model.safetensors")
  if run "eval of a truncated checkpoint" 1 vision eval --checkpoint "$TMP/cut" --data-dir "$DATA"; then
    expect "truncated checkpoint error names it" "$TMP/err" "^agora: error: .*cut"
    [ "$(wc -l <"$TMP/err")" -eq 1 ] && pass "truncated checkpoint is one line" ||
      fail "truncated checkpoint printed $(wc -l <"$TMP/err") lines"
  fi
  [ "$(cksum <"$TMP/cut/model.safetensors")" = "$sum_cut" ] && pass "failed eval damaged nothing" ||
    fail "failed eval changed the checkpoint"
  run "resume with other settings" 1 "${TRAIN[@]}" --resume --lr 0.5 &&
    expect "changed setting is named" "$TMP/err" "its lr is 0.05, this run.s is 0.5"
  run "resume and from-epoch together" 2 "${TRAIN[@]}" --resume --from-epoch 1 &&
    expect "conflict named" "$TMP/err" "--resume and --from-epoch"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
