#!/usr/bin/env bash
# `agora teach eval`: a short real run of stories260K as the student with the
# programmatic teacher writes transcripts.jsonl (chat-messages shape, names
# teacher/student, verdicts in meta) and metrics.json; --json puts the
# metrics on the last stdout line; --resume keeps the finished dialogues; an
# unreachable endpoint and an unknown family are clear errors (the latter
# before any work).
# Usage: test_teach.sh path/to/agora   (run from the repository root)
set -u
AGORA=${1:?usage: test_teach.sh path/to/agora}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/agora-cli-teach-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
STORIES=../shared/data/models/stories260K
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

if [ ! -f $STORIES/model.safetensors ]; then
  echo "note: $STORIES not found; skipped" >&2
  echo "0 passed, 0 failed"
  exit 0
fi

# One thread: the model is tiny, and OpenMP threads only wait on each other.
RUN=(teach eval --student $STORIES --chat-template plain --teacher programmatic --tasks arith:1
  --turns 3 --n 4 --max-tokens 32 --threads 1)

# ---- a real run ----------------------------------------------------------------------------------
status "a short run" 0 "${RUN[@]}" --out "$TMP/run" --json
check "transcripts.jsonl has 4 dialogues" 'len(lines) == 4' "$TMP/run/transcripts.jsonl"
check "chat-messages shape, named teacher and student" '
all(r["messages"][0]["role"] == "system"
    and all(m["role"] == ("user" if m["name"] == "teacher" else "assistant")
            and m["name"] in ("teacher", "student") and isinstance(m["content"], str)
            for m in r["messages"][1:])
    and r["messages"][1]["name"] == "teacher"
    for r in map(json.loads, lines))' "$TMP/run/transcripts.jsonl"
check "meta has the task, verdicts per student turn and the agents" '
all(set(["task_id", "family", "solved", "turns", "solved_at", "verdicts", "student", "teacher"])
        <= set(r["meta"])
    and len(r["meta"]["verdicts"]) == r["meta"]["turns"]
       == sum(m.get("name") == "student" for m in r["messages"])
    and all(set(["turn", "attempt", "correct", "premature", "diagnostics"]) <= set(v)
            for v in r["meta"]["verdicts"])
    and r["meta"]["teacher"] == "programmatic" and r["meta"]["student"] == "stories260K"
    for r in map(json.loads, lines))' "$TMP/run/transcripts.jsonl"
check "the task ids are distinct" 'len(set(json.loads(l)["meta"]["task_id"] for l in lines)) == 4' \
  "$TMP/run/transcripts.jsonl"
check "metrics.json has n, acc_at (3) and the rates" '
(lambda m: m["n"] == 4 and len(m["acc_at"]) == 3 and all(0 <= a <= 1 for a in m["acc_at"])
 and all(k in m for k in ["mean_turns_to_solve", "premature_answer_rate", "question_rate",
                          "feedback_uptake"]))(json.loads(open(sys.argv[2].replace("transcripts.jsonl", "metrics.json")).read()))' \
  "$TMP/run/transcripts.jsonl"
check "--json: the last stdout line is the metrics" 'last["n"] == 4 and len(last["acc_at"]) == 3' \
  "$TMP/out"
if grep -q "acc@k" "$TMP/out"; then pass "an acc@k table on stdout"; else fail "no table: $(cat "$TMP/out")"; fi

# ---- resume --------------------------------------------------------------------------------------
cp "$TMP/run/transcripts.jsonl" "$TMP/before.jsonl"
status "--resume of a finished run" 0 "${RUN[@]}" --out "$TMP/run" --resume --json
check "--resume keeps 4 lines" 'len(lines) == 4' "$TMP/run/transcripts.jsonl"
if cmp -s "$TMP/before.jsonl" "$TMP/run/transcripts.jsonl"; then pass "--resume runs nothing more"; else
  fail "--resume changed the transcripts"
fi
check "--resume reports the same metrics" 'last["n"] == 4' "$TMP/out"
head -c $(($(head -n 2 "$TMP/before.jsonl" | wc -c) + 40)) "$TMP/before.jsonl" >"$TMP/run/transcripts.jsonl"
status "--resume after a kill mid-line" 0 "${RUN[@]}" --out "$TMP/run" --resume --json
check "the partial line is dropped and the rest rerun" 'len(lines) == 4 and all(json.loads(l) for l in lines)' \
  "$TMP/run/transcripts.jsonl"
if [ "$(sort "$TMP/before.jsonl")" == "$(sort "$TMP/run/transcripts.jsonl")" ]; then
  pass "the resumed run wrote the same dialogues"
else
  fail "the resumed dialogues differ"
fi

# ---- sharded, binary feedback, training phrasings -------------------------------------------------
status "a sharded run" 0 "${RUN[@]}" --out "$TMP/sharded" --sharded --feedback binary --phrasing train --json
"$AGORA" tasks generate --family arith:1 --n 4 --sharded --seed 0 >"$TMP/tasks.jsonl" 2>/dev/null
check "sharded transcripts: the opening is the task's first shard" '
(lambda first: len(lines) == 4 and all(r["meta"]["sharded"] is True
    and r["messages"][1]["content"] == first[r["meta"]["task_id"]]
    and all("premature" in v for v in r["meta"]["verdicts"])
    for r in map(json.loads, lines)))({t["id"]: t["shards"][0]["text"]
                                      for t in map(json.loads, open(sys.argv[2].replace(
                                          "sharded/transcripts.jsonl", "tasks.jsonl")))})' \
  "$TMP/sharded/transcripts.jsonl"
check "--json: premature_answer_rate is a rate" '0 <= last["premature_answer_rate"] <= 1' "$TMP/out"

# ---- errors --------------------------------------------------------------------------------------
status "unreachable endpoint" 1 teach eval --student 'http://127.0.0.1:9/v1#x' --tasks arith:1 \
  --turns 2 --n 2 --out "$TMP/unreachable" --retries 0
if grep -q "127.0.0.1:9" "$TMP/err" && grep -q "^agora: error: " "$TMP/err"; then
  pass "the error names the URL"
else
  fail "unreachable: $(cat "$TMP/err")"
fi
status "unknown family" 1 teach eval --student $STORIES --tasks arith,frobnicate --n 2 --out "$TMP/unknown"
if grep -q "frobnicate" "$TMP/err" && grep -q "arith" "$TMP/err"; then pass "the error names the family and lists the known ones"; else
  fail "unknown family: $(cat "$TMP/err")"
fi
if [ ! -e "$TMP/unknown" ]; then pass "no work before the error"; else fail "the output folder was created"; fi
# ---- --self-teach: the student writes the teacher turns ------------------------------------------
status "a self-teaching run" 0 "${RUN[@]}" --out "$TMP/self" --self-teach --json
check "self-teaching transcripts: teacher 'self', a written turn between student turns" '
len(lines) == 4 and all(r["meta"]["teacher"] == "self"
                        and len(r["messages"]) == 2 * r["meta"]["turns"] + 1
                        for r in map(json.loads, lines))' "$TMP/self/transcripts.jsonl"
status "--self-teach with --sharded" 2 "${RUN[@]}" --out "$TMP/x" --self-teach --sharded
grep -q -- "--self-teach" "$TMP/err" && pass "the refusal names --self-teach" ||
  fail "the refusal names --self-teach: $(cat "$TMP/err")"

status "no --student" 2 teach eval --tasks arith --out "$TMP/x"
status "neither --tasks nor --task-file" 2 teach eval --student $STORIES --out "$TMP/x"
status "bad --feedback" 2 teach eval --student $STORIES --tasks arith --out "$TMP/x" --feedback loud
status "help" 0 teach eval --help
status "unknown verb" 2 teach frobnicate

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
