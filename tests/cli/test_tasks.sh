#!/usr/bin/env bash
# `agora tasks`: list, generate (deterministic per seed, JSONL on stdout or
# a file), load + verify on the real GSM8K and HumanEval files, `check` on
# the real data sets (`verified N/M` as the last stdout line, N = M = the
# file's record count), and bad input: a malformed JSONL line reported as
# FILE:LINE, unknown data sets and families, missing flags.
# Usage: test_tasks.sh path/to/agora   (run from the repository root)
set -u
AGORA=${1:?usage: test_tasks.sh path/to/agora}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/agora-cli-tasks-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
GSM8K=../shared/data/gsm8k/train.jsonl
HUMANEVAL=../shared/data/humaneval/HumanEval.jsonl.gz

pass() { passed=$((passed + 1)); echo "ok   $1" >&2; }
fail() { failed=$((failed + 1)); echo "FAIL $1" >&2; }

# same NAME GOT WANT: two strings are equal.
same() {
  if [ "$2" == "$3" ]; then pass "$1"; else fail "$1: got '$2', expected '$3'"; fi
}

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

# err_has NAME TEXT: the last command's stderr contains TEXT.
err_has() {
  if grep -qF -- "$2" "$TMP/err"; then pass "$1"; else fail "$1: stderr: $(cat "$TMP/err")"; fi
}

# ---- list ---------------------------------------------------------------------------
status "list" 0 tasks list
for family in arith algebra maze code puzzle gsm8k math humaneval; do
  grep -q "^$family " "$TMP/out" && pass "list shows $family" || fail "list lacks $family"
done
same "data sets have no levels" "$(grep '^gsm8k ' "$TMP/out" | grep -c 'data set')" 1
status "list --json" 0 tasks list --json
same "list --json is one object" "$(/usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["families"]))' <"$TMP/out")" 8

# ---- generate -----------------------------------------------------------------------
status "generate to stdout" 0 tasks generate --family arith:1 --n 5 --seed 3
same "five JSONL lines" "$(wc -l <"$TMP/out")" 5
cp "$TMP/out" "$TMP/a.jsonl"
"$AGORA" tasks generate --family arith:1 --n 5 --seed 3 >"$TMP/b.jsonl" 2>/dev/null
"$AGORA" tasks generate --family arith:1 --n 5 --seed 4 >"$TMP/c.jsonl" 2>/dev/null
cmp -s "$TMP/a.jsonl" "$TMP/b.jsonl" && pass "same seed, same tasks" || fail "same seed differs"
cmp -s "$TMP/a.jsonl" "$TMP/c.jsonl" && fail "another seed gives the same tasks" || pass "another seed, other tasks"
status "generate --out --sharded" 0 tasks generate --family arith:2,maze --n 4 --seed 1 --sharded --out "$TMP/gen.jsonl"
same "generate --out writes the file" "$(wc -l <"$TMP/gen.jsonl")" 4
same "sharded tasks carry shards" "$(grep -c '"shards"' "$TMP/gen.jsonl")" 4
same "families in turn" "$(/usr/bin/python3 -c 'import json,sys; print(" ".join(json.loads(l)["family"] for l in sys.stdin))' <"$TMP/gen.jsonl")" \
  "arith maze arith maze"
status "generate: unknown family" 2 tasks generate --family nosuch --n 2
err_has "unknown family is named" "nosuch"
status "generate: a data set is not a generator" 2 tasks generate --family gsm8k --n 2
err_has "data set hint" "tasks load --dataset gsm8k"
status "generate: level out of range" 2 tasks generate --family arith:99 --n 2
status "generate: missing --family" 2 tasks generate --n 2

# ---- load + verify on the real files -------------------------------------------------
status "load gsm8k" 0 tasks load --dataset gsm8k --limit 3 --sharded --out "$TMP/gsm8k.jsonl" "$GSM8K"
same "three tasks loaded" "$(wc -l <"$TMP/gsm8k.jsonl")" 3
status "verify a right answer" 0 tasks verify --task-file "$TMP/gsm8k.jsonl" --id gsm8k/1 --answer 72
same "right answer is correct" "$(head -1 "$TMP/out")" "gsm8k/1: correct"
status "verify a wrong answer" 0 tasks verify --task-file "$TMP/gsm8k.jsonl" --id gsm8k/1 --answer 80 \
  --feedback directional --json
same "wrong answer verdict" "$(/usr/bin/python3 -c 'import json,sys; d=json.loads(sys.stdin.read().splitlines()[-1]); print(d["correct"], d["diagnostics"]["direction"], "72" in d["feedback"])' <"$TMP/out")" \
  "False too_high False"
status "verify: unknown id" 1 tasks verify --task-file "$TMP/gsm8k.jsonl" --id gsm8k/999 --answer 1
err_has "unknown id is named" "gsm8k/999"
status "verify: no answer" 2 tasks verify --task-file "$TMP/gsm8k.jsonl" --id gsm8k/1

status "load humaneval" 0 tasks load --dataset humaneval --limit 2 --out "$TMP/he.jsonl" "$HUMANEVAL"
cat >"$TMP/he0.py" <<'EOF'
def has_close_elements(numbers, threshold):
    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])
EOF
status "verify a program" 0 tasks verify --task-file "$TMP/he.jsonl" --id humaneval/0 --answer-file "$TMP/he0.py"
same "the program is correct" "$(head -1 "$TMP/out")" "humaneval/0: correct"
sed -i 's/< threshold/> threshold/' "$TMP/he0.py"
"$AGORA" tasks verify --task-file "$TMP/he.jsonl" --id humaneval/0 --answer-file - --feedback localised \
  <"$TMP/he0.py" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc -eq 0 ] && grep -q '"kind":"failing_test"' "$TMP/out" && grep -q '^feedback: .*assert candidate(' "$TMP/out" &&
  pass "a wrong program from stdin: failing test quoted" || fail "wrong program (exit $rc): $(cat "$TMP/out" "$TMP/err")"

# ---- check --------------------------------------------------------------------------
records=$(grep -c . "$GSM8K")
status "check gsm8k" 0 tasks check --dataset gsm8k "$GSM8K"
same "gsm8k: every record verified" "$(tail -1 "$TMP/out")" "verified $records/$records"
status "check gsm8k --limit" 0 tasks check --dataset gsm8k --limit 10 "$GSM8K"
same "check --limit" "$(tail -1 "$TMP/out")" "verified 10/10"
he_records=$(gzip -dc "$HUMANEVAL" | grep -c .)
start=$(date +%s%N)
status "check humaneval" 0 tasks check --dataset humaneval "$HUMANEVAL"
echo "     humaneval check: $((($(date +%s%N) - start) / 1000000)) ms" >&2
same "humaneval: every canonical solution passes" "$(tail -1 "$TMP/out")" "verified $he_records/$he_records"
same "progress and failures stay off stdout" "$(wc -l <"$TMP/out")" 1
# A corrupted canonical solution makes the check fail, and says which.
gzip -dc "$HUMANEVAL" | head -3 | sed '1s/return True/return False/g' >"$TMP/he-bad.jsonl"
status "check a corrupted file" 1 tasks check --dataset humaneval "$TMP/he-bad.jsonl"
same "one of three fails" "$(tail -1 "$TMP/out")" "verified 2/3"
err_has "the failing task is named" "humaneval/0: not verified: failing_test: assert candidate("

# ---- bad input ----------------------------------------------------------------------
head -3 "$GSM8K" >"$TMP/bad.jsonl"
echo '{"question": "Q?", "answer": "#### 1"' >>"$TMP/bad.jsonl"
status "malformed line" 1 tasks check --dataset gsm8k "$TMP/bad.jsonl"
err_has "reported with file and line" "$TMP/bad.jsonl:4:"
if [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^agora: error: ' "$TMP/err"; then pass "one error line"; else
  fail "error output: $(cat "$TMP/err")"
fi
status "malformed line on load" 1 tasks load --dataset gsm8k "$TMP/bad.jsonl"
err_has "load reports file and line" "$TMP/bad.jsonl:4:"
echo '{"family": "arith", "level": 1}' >"$TMP/badtask.jsonl"
status "malformed task file" 1 tasks verify --task-file "$TMP/badtask.jsonl" --id x --answer 1
err_has "task file error names the line" "$TMP/badtask.jsonl:1"
status "unknown data set" 2 tasks check --dataset mmlu "$GSM8K"
err_has "unknown data set is named" "mmlu"
status "missing file" 1 tasks check --dataset gsm8k "$TMP/nonexistent.jsonl"
err_has "missing file is named" "nonexistent.jsonl"
status "no file" 2 tasks check --dataset gsm8k
status "unknown verb" 2 tasks frobnicate
status "help" 0 tasks --help
status "verb help" 0 tasks check --help

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
