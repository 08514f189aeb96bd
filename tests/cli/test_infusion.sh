#!/usr/bin/env bash
# `agora infusion`: help, usage errors (exit 2), runtime errors (exit 1, one
# clear line: a bad probe, a run that cannot be used, factors of another
# run), and a tiny end-to-end `infusion run --json` and `infusion sweep` on a
# fake Fashion-MNIST the test writes itself (2,000 training images).
# Usage: test_infusion.sh path/to/agora
set -u
AGORA=${1:?usage: test_infusion.sh path/to/agora}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/agora-cli-infusion-XXXXXX")
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

# one_line NAME: the error output is a single line.
one_line() {
  [ "$(wc -l <"$TMP/err")" -eq 1 ] && pass "$1 is one line" ||
    { fail "$1 printed $(wc -l <"$TMP/err") lines"; sed 's/^/    /' "$TMP/err" >&2; }
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
mkdir -p "$DATA"
make_split "$DATA" train 2000
make_split "$DATA" t10k 200

# ---- help and usage errors ---------------------------------------------------------
run "infusion --help" 0 infusion --help && expect "help lists run" "$TMP/out" "run " &&
  expect "help lists sweep" "$TMP/out" "sweep "
if run "run --help" 0 infusion run --help; then
  missing=""
  for flag in run retrain-run probe target k method select copies factors damping steps \
    step-size epsilon data-dir json seed threads; do
    grep -q -- "--$flag" "$TMP/out" || missing="$missing --$flag"
  done
  [ -z "$missing" ] && pass "run --help documents every flag" || fail "run --help lacks$missing"
fi
run "sweep --help" 0 infusion sweep --help && expect "sweep --help documents --pairs" "$TMP/out" "--pairs N"
run "missing --probe" 2 infusion run --run "$TMP/none" --target 1 &&
  expect "missing --probe named" "$TMP/err" "missing required flag --probe"
run "bad method" 2 infusion run --run "$TMP/none" --probe 1 --target 1 --method magic &&
  expect "bad method lists choices" "$TMP/err" "infusion\|noise\|probe-copies"
run "copies over k" 2 infusion run --run "$TMP/none" --probe 1 --target 1 --method probe-copies \
  --k 3 --copies 4 && expect "copies conflict named" "$TMP/err" "--copies 4 exceeds --k 3"
run "bad variant" 2 infusion sweep --run "$TMP/none" --out "$TMP/s" --variants infusion,magic &&
  expect "bad variant named" "$TMP/err" "unknown variant 'magic'"
run "missing run" 1 infusion run --run "$TMP/none" --probe 1 --target 1 --data-dir "$DATA" &&
  expect "missing run named" "$TMP/err" "^agora: error: .*none" && one_line "missing run"

# ---- two tiny runs ------------------------------------------------------------------
train() { # OUT SEED EPOCHS
  "$AGORA" vision train --data-dir "$DATA" --model mlp --epochs "$3" --batch-size 32 --seed "$2" \
    --optimizer sgd --schedule constant --lr 0.05 --threads 2 --quiet --out "$1" >/dev/null 2>"$TMP/err" ||
    { fail "training $1"; sed 's/^/    /' "$TMP/err" >&2; return 1; }
}
RUN=$TMP/run
train "$RUN" 5 2 || { echo "$passed passed, $failed failed"; exit 1; }
COMMON=(--data-dir "$DATA" --threads 2 --k 8 --steps 5 --step-size 0.01 --damping -1)

if run "infusion run --json" 0 infusion run --run "$RUN" --probe 3 --target 5 "${COMMON[@]}" --json; then
  tail -n 1 "$TMP/out" >"$TMP/last.json"
  for key in delta_p delta_log_odds top1_before top1_after clean_acc_before clean_acc_after; do
    grep -q "\"$key\":" "$TMP/last.json" && pass "JSON has $key" || fail "JSON lacks $key"
  done
  expect "last line is one object" "$TMP/last.json" '^\{.*\}$'
  expect "top1 values are booleans" "$TMP/last.json" '"top1_before":(true|false),"top1_after":(true|false)'
  for key in clean_acc_before clean_acc_after p_before p_after; do
    v=$(grep -Eo "\"$key\":[-0-9.e+]+" "$TMP/last.json" | cut -d: -f2)
    awk -v v="$v" 'BEGIN { exit !(v != "" && v >= 0 && v <= 1) }' && pass "$key $v in [0, 1]" ||
      fail "$key '$v' not in [0, 1]"
  done
  ls "$RUN"/infusion/factors-*.safetensors >/dev/null 2>&1 && pass "factors cached in the run" ||
    fail "no factors under $RUN/infusion"
fi
run "infusion run (text)" 0 infusion run --run "$RUN" --probe 3 --target 5 "${COMMON[@]}" --method noise &&
  expect "text output ends with delta_p" <(tail -n 1 "$TMP/out") "^delta_p [-+][0-9.]+ delta_log_odds"
run "probe copies" 0 infusion run --run "$RUN" --probe 4 --target 0 "${COMMON[@]}" \
  --method probe-copies --copies 2 --select random --json &&
  expect "probe copies edit 2 images" <(tail -n 1 "$TMP/out") '"edited":2'

# ---- bad input -----------------------------------------------------------------------
run "bad probe index" 1 infusion run --run "$RUN" --probe 200 --target 1 "${COMMON[@]}" &&
  expect "bad probe named" "$TMP/err" "^agora: error: probe 200 is not a test image index" &&
  one_line "bad probe"
run "bad target class" 1 infusion run --run "$RUN" --probe 2 --target 10 "${COMMON[@]}" &&
  expect "bad target named" "$TMP/err" "^agora: error: target class 10 is not a class"
ONE=$TMP/one
if train "$ONE" 6 1; then
  run "one-epoch run" 1 infusion run --run "$ONE" --probe 2 --target 1 "${COMMON[@]}" &&
    expect "one-epoch run explained" "$TMP/err" "at least 2 epochs" && one_line "one-epoch run"
fi
OTHER=$TMP/other
if train "$OTHER" 9 2; then
  factors=$(ls "$RUN"/infusion/factors-*.safetensors | head -n 1)
  run "factors of another run" 1 infusion run --run "$OTHER" --factors "$factors" --probe 2 \
    --target 1 "${COMMON[@]}" && expect "mismatched factors refused" "$TMP/err" "^agora: error: .*factors"
  # Transfer: craft on one run, retrain the other.
  run "transfer" 0 infusion run --run "$RUN" --retrain-run "$OTHER" --probe 3 --target 5 \
    "${COMMON[@]}" --json && expect "transfer names the retrained run" <(tail -n 1 "$TMP/out") \
    "\"retrain_run\":\"$OTHER\""
fi

# ---- a sweep: resumable, a table ------------------------------------------------------
SWEEP=(infusion sweep --run "$RUN" --pairs 2 --variants infusion,probe-1 --out "$TMP/sweep" "${COMMON[@]}")
if run "sweep" 0 "${SWEEP[@]}" --json; then
  [ "$(wc -l <"$TMP/sweep/results.jsonl")" -eq 4 ] && pass "a line per pair and variant" ||
    fail "results.jsonl has $(wc -l <"$TMP/sweep/results.jsonl") lines"
  expect "sweep --json summarises variants" <(tail -n 1 "$TMP/out") '"variant":"probe-1"'
  expect "summary table" "$TMP/sweep/summary.md" "^\| infusion \| 2 \|"
  sum=$(cksum <"$TMP/sweep/results.jsonl")
  run "sweep again" 0 "${SWEEP[@]}" &&
    { [ "$(cksum <"$TMP/sweep/results.jsonl")" = "$sum" ] && pass "a finished sweep redoes nothing" ||
      fail "rerun changed results.jsonl"; }
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
