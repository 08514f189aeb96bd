#!/usr/bin/env bash
# `agora sml pretrain`: a tiny run from nothing writes the data, the
# tokenizer and a Hugging Face model folder with the plain chat template,
# prints the acc@1 table (and the JSON line with --json), and --resume of the
# finished run reports the same; the evaluation is at level 1 unless told; an
# unknown family, --steps with --minutes, an unknown size and a level above a
# family's highest are clear errors before any work.
# Usage: test_sml.sh path/to/agora   (run from the repository root)
set -u
AGORA=${1:?usage: test_sml.sh path/to/agora}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/agora-cli-sml-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
PY=/usr/bin/python3

pass() { passed=$((passed + 1)); echo "ok   $1" >&2; }
fail() { failed=$((failed + 1)); echo "FAIL $1" >&2; }

# status NAME WANT ARGS...: agora's exit status; stdout in $TMP/out, stderr in $TMP/err.
status() {
  local name=$1 want=$2
  shift 2
  "$AGORA" "$@" </dev/null >"$TMP/out" 2>"$TMP/err"
  local got=$?
  if [ "$got" -eq "$want" ]; then pass "$name"; else
    fail "$name (exit $got, expected $want)"
    sed 's/^/    /' "$TMP/err" >&2
  fi
}

# check NAME PYTHON-EXPRESSION FILE: the expression (over `lines`, the file's
# lines, and `last`, its last line parsed) is true.
check() {
  local got
  got=$($PY -c '
import json, sys
lines = open(sys.argv[2]).read().splitlines()
last = json.loads(lines[-1]) if lines else None
print(bool('"$2"'))' "$1" "$3" 2>&1)
  if [ "$got" == "True" ]; then pass "$1"; else fail "$1: $got"; fi
}

RUN=(sml pretrain --size tiny --families arith,code --steps 4 --examples 8 --eval-tasks 2 --seed 3)

# ---- a tiny run ----------------------------------------------------------------------------------
status "a tiny pretrain" 0 "${RUN[@]}" --out "$TMP/run" --json
check "--json: acc@1 per family, parameters and seconds on the last line" '
set(last["acc_at_1"]) == {"arith", "code"} and all(0 <= a <= 1 for a in last["acc_at_1"].values())
and last["params"] > 0 and last["seconds"] > 0 and last["steps"] == 4 and last["eval_tasks"] == 2' \
  "$TMP/out"
if grep -q "acc@1" "$TMP/out" && grep -q "^arith " "$TMP/out"; then pass "an acc@1 table on stdout"; else
  fail "no table: $(cat "$TMP/out")"
fi
for f in config.json model.safetensors tokenizer.json tokenizer_config.json generation_config.json \
  pretrain.json metrics.jsonl data/train.jsonl eval/arith/transcripts.jsonl eval/code/metrics.json; do
  if [ -s "$TMP/run/$f" ]; then pass "wrote $f"; else fail "no $f"; fi
done
check "the data: 16 chat records, solutions as the student turns" '
len(lines) == 16 and all(r["messages"][-1]["role"] == "assistant"
    and r["messages"][-1]["name"] == "student" and "Answer:" in r["messages"][-1]["content"]
    and r["meta"]["family"] in ("arith", "code") for r in map(json.loads, lines))' \
  "$TMP/run/data/train.jsonl"
if $PY -c '
import json, sys
c = json.load(open(sys.argv[1]))
sys.exit(0 if "message[\x27role\x27]" in c.get("chat_template", "") else 1)' "$TMP/run/tokenizer_config.json"; then
  pass "tokenizer_config.json carries the plain chat template"
else
  fail "tokenizer_config.json has no plain chat template"
fi
check "evaluation dialogues are single-turn with held-out tasks" '
len(lines) == 2 and all(r["meta"]["turns"] == 1 and r["meta"]["level"] == 1
                        and r["meta"]["task_id"].startswith("arith/1/1000/") for r in map(json.loads, lines))' \
  "$TMP/run/eval/arith/transcripts.jsonl"
status "the folder answers as a chat model (teach eval)" 0 teach eval --student "$TMP/run" --tasks arith \
  --n 2 --turns 1 --max-tokens 16 --out "$TMP/teach"

# ---- resume --------------------------------------------------------------------------------------
status "--resume of the finished run" 0 "${RUN[@]}" --out "$TMP/run" --resume --json
check "--resume: the same run, nothing retrained" 'last["resumed"] is True and last["steps"] == 4' "$TMP/out"
status "a fresh run into a used folder" 1 "${RUN[@]}" --out "$TMP/run"
if grep -q "resume" "$TMP/err"; then pass "the error points to --resume"; else fail "used folder: $(cat "$TMP/err")"; fi

# ---- errors --------------------------------------------------------------------------------------
status "unknown family" 2 sml pretrain --size tiny --families arith,frobnicate --out "$TMP/unknown"
if grep -q "frobnicate" "$TMP/err" && grep -q "puzzle" "$TMP/err"; then
  pass "the error names the family and lists the known ones"
else
  fail "unknown family: $(cat "$TMP/err")"
fi
if [ ! -e "$TMP/unknown" ]; then pass "no work before the error"; else fail "the output folder was created"; fi
status "a data set family" 2 sml pretrain --size tiny --families gsm8k --out "$TMP/unknown"
status "--steps with --minutes" 2 sml pretrain --size tiny --steps 3 --minutes 1 --out "$TMP/unknown"
status "unknown size" 2 sml pretrain --size huge --out "$TMP/unknown"
status "a level above a family's highest" 2 sml pretrain --size tiny --level 9 --out "$TMP/unknown"
if grep -q "levels 1.." "$TMP/err"; then pass "the error gives the family's levels"; else
  fail "--level 9: $(cat "$TMP/err")"
fi
status "no --out" 2 sml pretrain --size tiny
status "help" 0 sml pretrain --help
status "unknown verb" 2 sml frobnicate

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
