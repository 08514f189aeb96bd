#!/usr/bin/env bash
# `agora influence fit|query|score`: help, usage errors (exit 2, one line
# naming the flag), runtime errors (exit 1, one line), and fit -> query ->
# score end to end on a small slice of Fashion-MNIST with a small MLP:
# provenance files, top.jsonl's shape and its agreement with scores.npy, the
# PNG grid's size, the sign of the scores (the training images that most raise
# log p(class | query) mostly carry that class), resuming without recomputing
# finished chunks, and refusal of a checkpoint the factors or queries were not
# made for. Sizes scale with AG_TEST_SCALE (0.25 in the sanitizer build).
# Usage: test_influence.sh path/to/agora
set -u
AGORA=${1:?usage: test_influence.sh path/to/agora}
PY=/usr/bin/python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/agora-cli-influence-XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$TMP"' EXIT
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

# one_line NAME: the error on stderr is exactly one line `agora: error: ...`.
one_line() {
  if [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^agora: error: ' "$TMP/err"; then
    pass "$1 is one error line"
  else
    fail "$1 printed $(wc -l <"$TMP/err") lines"
    sed 's/^/    /' "$TMP/err" >&2
  fi
}

# check NAME PYTHON ARGS...: runs a python check; it prints what is wrong, or nothing.
check() {
  local name=$1 code=$2
  shift 2
  local why
  why=$("$PY" -c "$code" "$@" 2>&1)
  if [ -z "$why" ]; then pass "$name"; else
    fail "$name"
    echo "$why" | sed 's/^/    /' >&2
  fi
}

scaled() { # N MIN: N * AG_TEST_SCALE, at least MIN
  awk -v n="$1" -v m="$2" -v s="${AG_TEST_SCALE:-1}" 'BEGIN { v = int(n * s); print (v < m ? m : v) }'
}

# ---- help --------------------------------------------------------------------------------
run "influence --help" 0 influence --help &&
  expect "influence --help lists the verbs" "$TMP/out" "fit.*" &&
  expect "influence --help lists query" "$TMP/out" "query" &&
  expect "influence --help lists score" "$TMP/out" "score"
check_flags() { # VERB FLAG...
  local verb=$1
  shift
  if run "$verb --help" 0 influence "$verb" --help; then
    local missing=""
    for flag in "$@" threads quiet json; do
      grep -q -- "--$flag" "$TMP/out" || missing="$missing --$flag"
    done
    if [ -z "$missing" ]; then pass "$verb --help documents every flag"; else
      fail "$verb --help lacks$missing"
    fi
  fi
}
check_flags fit run checkpoint epoch data data-dir limit layers labels damping batch out seed
check_flags query run checkpoint epoch data data-dir factors test-index target-class out
check_flags score run checkpoint epoch data data-dir queries limit chunk batch top scale out
run "score --help" 0 influence score --help &&
  expect "score --help says the score is signed" "$TMP/out" "Positive: up-weighting z raises f"

# ---- usage errors: exit 2 ------------------------------------------------------------------
run "fit without --out" 2 influence fit --run "$TMP/run" &&
  expect "missing --out is named" "$TMP/err" "^agora: error: .*missing required flag --out"
run "fit with --run and --checkpoint" 2 influence fit --run a --checkpoint b --out f &&
  expect "run/checkpoint conflict named" "$TMP/err" "give one of --run DIR and --checkpoint DIR"
run "fit with neither" 2 influence fit --out f &&
  expect "neither run nor checkpoint named" "$TMP/err" "give one of --run DIR and --checkpoint DIR"
run "--epoch with --checkpoint" 2 influence fit --checkpoint b --epoch 2 --out f &&
  expect "--epoch conflict named" "$TMP/err" "--epoch needs --run"
run "bad --labels" 2 influence fit --run a --out f --labels true &&
  expect "bad --labels lists the choices" "$TMP/err" "--labels must be one of sampled\|expected"
run "empty layer name" 2 influence fit --run a --out f --layers fc1,,fc2 &&
  expect "empty layer named" "$TMP/err" "--layers expects comma-separated layer names"
run "malformed --test-index" 2 influence query --run a --factors f --test-index 3,x --out q &&
  expect "malformed index named" "$TMP/err" "--test-index expects indices like 3,7,10-12, got '3,x'"
run "backwards range" 2 influence query --run a --factors f --test-index 5-2 --out q &&
  expect "backwards range named" "$TMP/err" "--test-index expects"
run "target count mismatch" 2 influence query --run a --factors f --test-index 1,2,3 \
  --target-class 1,2 --out q && expect "target count named" "$TMP/err" "2 classes for 3 queries"
run "score --top 0" 2 influence score --run a --queries q --out d --top 0 &&
  expect "--top range named" "$TMP/err" "--top 0 is out of range"
run "unknown verb" 2 influence explain && expect "unknown verb named" "$TMP/err" "unknown verb 'explain'"

# ---- runtime errors: exit 1, one line ---------------------------------------------------------
mkdir -p "$TMP/empty" "$TMP/norun"
run "run folder without checkpoints" 1 influence fit --run "$TMP/norun" --out "$TMP/f" &&
  { expect "empty run folder named" "$TMP/err" "norun holds no complete checkpoint" &&
    one_line "empty run folder"; }
run "missing run folder" 1 influence fit --run "$TMP/nope" --out "$TMP/f" &&
  { expect "missing run folder named" "$TMP/err" "cannot open run folder .*nope" &&
    one_line "missing run folder"; }

FMNIST=/usr/share/datasets/fashion-mnist
if [ ! -e "$FMNIST/train-images-idx3-ubyte.gz" ]; then
  echo "  (dataset-fashion-mnist not installed: end-to-end part skipped)" >&2
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
fi

# ---- end to end: a small MLP, factors on a slice, queries, scores ---------------------------------
NTRAIN=$(scaled 3000 600)
NFIT=$(scaled 2000 400)
CHUNK=$(scaled 500 100)
RUN=$TMP/run
run "train a small MLP" 0 vision train --model mlp --epochs 2 --limit "$NTRAIN" --seed 3 \
  --threads 2 --quiet --out "$RUN" || { echo "$passed passed, $failed failed"; exit 1; }

run "missing dataset" 1 influence fit --run "$RUN" --data-dir "$TMP/empty" --out "$TMP/f" &&
  { expect "missing dataset names the package" "$TMP/err" "apt-get install dataset-fashion-mnist" &&
    one_line "missing dataset"; }
run "unknown layer" 1 influence fit --run "$RUN" --layers fc1,conv9 --limit 100 --out "$TMP/f" &&
  { expect "unknown layer named with the model's layers" "$TMP/err" "conv9.*fc1.*fc2.*fc3" &&
    one_line "unknown layer"; }
[ ! -e "$TMP/f" ] && pass "failed fits write no factors" || fail "a failed fit wrote $TMP/f"

F=$TMP/factors.safetensors
if run "fit" 0 influence fit --run "$RUN" --limit "$NFIT" --threads 2 --quiet --json --out "$F"; then
  tail -n 1 "$TMP/out" >"$TMP/fit.json"
  check "fit --json: last epoch, every layer, the slice" '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["epoch"] == 2 and j["checkpoint"].endswith("epoch-002"), j["checkpoint"]
assert j["examples"] == int(sys.argv[2]), j["examples"]
names = [l["name"] for l in j["layers"]]
assert names == ["fc1", "fc2", "fc3"], names
for l in j["layers"]:
    assert l["damping"] > 0 and l["mean_eigenvalue"] > 0, l
    assert abs(l["damping"] - 0.1 * l["mean_eigenvalue"]) <= 1e-6 * l["damping"], l
assert [(l["in_features"], l["out_features"]) for l in j["layers"]] == [(784, 256), (256, 128), (128, 10)]
' "$TMP/fit.json" "$NFIT"
  [ -s "$F" ] && pass "factors file written" || fail "no factors file"
  check "factors provenance beside the file" '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["kind"] == "agora influence factors" and j["labels"] == "sampled" and j["epoch"] == 2, j
' "$TMP/factors.json"
fi

Q=$TMP/queries.safetensors
if run "query" 0 influence query --run "$RUN" --factors "$F" --test-index 0-7 --threads 2 \
  --out "$Q"; then
  [ "$(grep -c '^query ' "$TMP/out")" -eq 8 ] && pass "query prints a line per query" ||
    fail "query printed $(grep -c '^query ' "$TMP/out") query lines"
  expect "query ends with its summary" <(tail -n 1 "$TMP/out") "^queries .*queries.safetensors  count 8"
  check "queries provenance: indices, true labels, f = log p" '
import json, math, sys
j = json.load(open(sys.argv[1]))
qs = j["queries"]
assert [q["index"] for q in qs] == list(range(8)), qs
for q in qs:
    assert q["class"] == q["label"], q
    assert q["f"] <= 0 and q["measurement"] == "log p(%d | x)" % q["class"], q
    assert 0 < q["p_predicted"] <= 1, q
    lp = q["log_probs"]
    assert len(lp) == 10 and abs(sum(math.exp(v) for v in lp) - 1) < 1e-4, lp
    assert lp[q["class"]] == q["f"] and max(range(10), key=lambda c: lp[c]) == q["predicted"], q
' "$TMP/queries.json"
fi
# Target-class queries: test images 0..3, each measured at the class the
# model finds likeliest after the true one (the confusion an attack would use).
QT=$TMP/target.safetensors
labels=$("$PY" -c '
import json, sys
qs = json.load(open(sys.argv[1]))["queries"][:4]
runner_up = lambda q: max((c for c in range(10) if c != q["label"]), key=lambda c: q["log_probs"][c])
print(",".join(str(runner_up(q)) for q in qs))' "$TMP/queries.json")
run "query --target-class" 0 influence query --run "$RUN" --factors "$F" --test-index 0-3 \
  --target-class "$labels" --threads 2 --json --out "$QT" &&
  check "target queries measure log p(target)" '
import json, sys
j = json.loads(open(sys.argv[1]).read().splitlines()[-1])
want = [int(c) for c in sys.argv[2].split(",")]
assert [q["class"] for q in j["queries"]] == want, j["queries"]
assert all(q["class"] != q["label"] for q in j["queries"])
' "$TMP/out" "$labels"

run "query index out of range" 1 influence query --run "$RUN" --factors "$F" --test-index 3,10000 \
  --out "$TMP/q" && { expect "out-of-range index named" "$TMP/err" \
  "--test-index 10000 is outside the fashion-mnist test set \(10000 images: 0..9999\)" &&
  one_line "out-of-range index"; }
run "query class out of range" 1 influence query --run "$RUN" --factors "$F" --test-index 3 \
  --target-class 10 --out "$TMP/q" && { expect "out-of-range class named" "$TMP/err" \
  "--target-class 10: the model has 10 classes" && one_line "out-of-range class"; }
run "factors of another checkpoint" 1 influence query --run "$RUN" --epoch 1 --factors "$F" \
  --test-index 3 --out "$TMP/q" && one_line "factors of another checkpoint"
run "missing factors" 1 influence query --run "$RUN" --factors "$TMP/none.safetensors" \
  --test-index 3 --out "$TMP/q" && { expect "missing factors named" "$TMP/err" "none.safetensors" &&
  one_line "missing factors"; }
[ ! -e "$TMP/q" ] && pass "failed queries write nothing" || fail "a failed query wrote $TMP/q"

S=$TMP/scores
TOP=5
if run "score" 0 influence score --run "$RUN" --queries "$Q" --limit "$NFIT" --chunk "$CHUNK" \
  --top $TOP --threads 2 --json --out "$S"; then
  expect "score --json last line" <(tail -n 1 "$TMP/out") '^\{"out":.*"queries": ?8, ?"examples": ?'"$NFIT"
  check "top.jsonl: a line per query, top and bottom K, consistent with scores.npy" '
import json, sys
import numpy as np
S, k, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
scores = np.load(S + "/scores.npy")
assert scores.shape == (8, n) and scores.dtype == np.float32, (scores.shape, scores.dtype)
assert np.isfinite(scores).all()
lines = [json.loads(l) for l in open(S + "/top.jsonl")]
assert len(lines) == 8, len(lines)
for q, line in enumerate(lines):
    assert set(line) == {"query", "index", "label", "class", "measurement", "f", "top", "bottom"}, line.keys()
    assert line["query"] == q and line["index"] == q
    for side in ("top", "bottom"):
        assert len(line[side]) == k, (side, len(line[side]))
        for e in line[side]:
            assert set(e) == {"index", "label", "score"} and 0 <= e["index"] < n and 0 <= e["label"] < 10, e
            assert abs(e["score"] - scores[q, e["index"]]) <= 1e-6 * max(1.0, abs(e["score"])), e
    top = [e["score"] for e in line["top"]]
    bottom = [e["score"] for e in line["bottom"]]
    assert top == sorted(top, reverse=True) and bottom == sorted(bottom), (top, bottom)
    row = np.sort(scores[q])
    assert np.allclose(top, row[::-1][:k], rtol=1e-6) and np.allclose(bottom, row[:k], rtol=1e-6)
' "$S" $TOP "$NFIT"
  # The sign: for log p(true label), the training images with the largest
  # scores should mostly carry the query's label, the most negative ones far
  # less often.
  check "largest scores mostly share the measured class, most negative far less" '
import json, sys
for path in sys.argv[1:]:
    lines = [json.loads(l) for l in open(path)]
    same_top = sum(e["label"] == l["class"] for l in lines for e in l["top"])
    same_bottom = sum(e["label"] == l["class"] for l in lines for e in l["bottom"])
    total = sum(len(l["top"]) for l in lines)
    if not (same_top >= 0.6 * total and same_bottom <= 0.5 * same_top):
        print(path, "top share", same_top / total, "bottom share", same_bottom / total)
' "$S/top.jsonl"
  check "grid PNG: RGB, query row + top row + bottom row" '
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
w, h, depth, colour = struct.unpack(">IIBB", data[16:26])
k, tile, gap = int(sys.argv[2]), 28 * 3 + 2 * 2, 4
assert (w, h, depth, colour) == (gap + k * (tile + gap), gap + 3 * (tile + gap), 8, 2), (w, h, depth, colour)
' "$S/query-0.png" $TOP
  [ -s "$S/query-7.png" ] && pass "a grid per query" || fail "no query-7.png"

  # Rerun: every chunk is read back, none recomputed, same results.
  stamp() { stat -c '%n %i %Y.%y' "$S"/chunk-*.f32; }
  stamp >"$TMP/chunks.before"
  cp "$S/top.jsonl" "$TMP/top.before"
  nchunks=$(wc -l <"$TMP/chunks.before")
  [ "$nchunks" -eq $(((NFIT + CHUNK - 1) / CHUNK)) ] && pass "a file per chunk" ||
    fail "$nchunks chunk files for $NFIT examples in chunks of $CHUNK"
  SCORE=(influence score --run "$RUN" --queries "$Q" --limit "$NFIT" --chunk "$CHUNK" --top $TOP
    --threads 2 --json --out "$S")
  if run "rerun score" 0 "${SCORE[@]}"; then
    stamp | cmp -s - "$TMP/chunks.before" && pass "rerun recomputes no chunk" ||
      fail "rerun rewrote chunk files"
    expect "rerun reports the chunks it found" <(tail -n 1 "$TMP/out") "\"chunks_found\": ?$nchunks"
    cmp -s "$S/top.jsonl" "$TMP/top.before" && pass "rerun gives the same top.jsonl" ||
      fail "rerun changed top.jsonl"
  fi
  # A run killed after the first chunks: the later ones are missing.
  victim=$(sed -n 2p "$TMP/chunks.before" | cut -d' ' -f1)
  rm -f "$victim" "$S/top.jsonl" "$S/scores.npy"
  if run "resume after a kill" 0 "${SCORE[@]}"; then
    [ -s "$victim" ] && pass "the missing chunk is recomputed" || fail "$victim not recomputed"
    stamp | grep -v "^$victim " | cmp -s - <(grep -v "^$victim " "$TMP/chunks.before") &&
      pass "finished chunks are kept" || fail "resume rewrote finished chunks"
    cmp -s "$S/top.jsonl" "$TMP/top.before" && pass "resumed run gives the same top.jsonl" ||
      fail "resumed top.jsonl differs"
  fi
  run "scores of other queries in the same folder" 1 influence score --run "$RUN" --queries "$QT" \
    --limit "$NFIT" --chunk "$CHUNK" --out "$S" && one_line "foreign scores folder"
  run "score with another checkpoint" 1 influence score --checkpoint "$RUN/epoch-001" \
    --queries "$Q" --limit "$NFIT" --out "$TMP/s1" && one_line "queries of another checkpoint"
  [ ! -e "$TMP/s1/top.jsonl" ] && pass "refused scoring writes no results" ||
    fail "refused scoring wrote $TMP/s1/top.jsonl"
fi

# Runner-up targets: raising log p(C | x) for C other than x's label means
# moving away from the label: the most negative scores mostly carry the true
# label, and the target class is commoner at the top than at the bottom.
if run "score target queries" 0 influence score --run "$RUN" --queries "$QT" --limit "$NFIT" \
  --chunk "$CHUNK" --top $TOP --threads 2 --quiet --out "$TMP/target"; then
  check "target queries: true labels at the bottom, the target at the top" '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
share = lambda side, key: sum(e["label"] == l[key] for l in lines for e in l[side]) / sum(len(l[side]) for l in lines)
ok = share("bottom", "label") >= 0.5 and share("top", "label") < share("bottom", "label")
ok = ok and share("top", "class") > share("bottom", "class")
if not ok:
    print("true label: top", share("top", "label"), "bottom", share("bottom", "label"),
          "target: top", share("top", "class"), "bottom", share("bottom", "class"))
' "$TMP/target/top.jsonl"
fi
cp "$Q" "$TMP/lonely.safetensors"
run "queries without their .json" 1 influence score --run "$RUN" --queries "$TMP/lonely.safetensors" \
  --out "$TMP/s2" &&
  { expect "missing provenance named" "$TMP/err" "written beside it by .agora influence query" &&
    one_line "queries without provenance"; }

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
