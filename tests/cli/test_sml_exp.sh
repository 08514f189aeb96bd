#!/usr/bin/env bash
# `agora sml e1`, `e2` and `e3`: a tiny experiment from nothing pretrains a base student,
# runs SML, and writes the report folder (report.md, results.json with
# base.acc_at and sml.acc_at, the CSVs, plot.gp); the counts agree with the
# evaluation dialogues; a second fresh run refuses the folder, --resume
# reproduces the results, and bad flags are usage errors before any work.
# E2 from that base student evaluates each direction on the other families;
# E3 evaluates the base, SML and SML + priming students on sharded tasks;
# E4 three students with the teacher and self-teaching; E5 two students
# under binary, directional, localised and LLM-teacher feedback.
# Usage: test_sml_exp.sh path/to/agora   (run from the repository root)
set -u
AGORA=${1:?usage: test_sml_exp.sh path/to/agora}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/agora-cli-e1-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
PY=/usr/bin/python3

pass() { passed=$((passed + 1)); echo "ok   $1" >&2; }
fail() { failed=$((failed + 1)); echo "FAIL $1" >&2; }

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

# check NAME PYTHON-EXPRESSION: the expression (over `r`, results.json, and
# `d`, the report folder) is true.
check() {
  local got
  got=$($PY -c '
import json, os, sys
d = sys.argv[2]
r = json.load(open(os.path.join(d, "results.json")))
print(bool('"$2"'))' "$1" "$TMP/e1" 2>&1)
  if [ "$got" == "True" ]; then pass "$1"; else fail "$1: $got"; fi
}

E1=(sml e1 --size tiny --families arith,code --rounds 1 --tasks-per-round 4 --eval-tasks 3
  --eval-turns 3 --seed 2 --quiet)

status "a tiny E1 from nothing" 0 "${E1[@]}" --out "$TMP/e1" --json
check "results.json: acc@1..K of base and SML over 6 tasks" '
len(r["base"]["acc_at"]) == 3 and len(r["sml"]["acc_at"]) == 3 and r["tasks"] == 6
and r["base"]["tasks"] == 6 and r["sml"]["tasks"] == 6 and r["turns"] == 3
and all(0 <= a <= 1 for a in r["base"]["acc_at"] + r["sml"]["acc_at"])
and all(x <= y for x, y in zip(r["sml"]["acc_at"], r["sml"]["acc_at"][1:]))
and set(r["families"]) == {"arith", "code"}'
check "the counts agree with the evaluation dialogues" '
[json.loads(l)["meta"]["solved"] for f in ("arith", "code")
 for l in open(os.path.join(d, "sml/eval/base", f, "transcripts.jsonl"))].count(True)
 == round(r["base"]["acc_at"][-1] * 6)
and r["base_fails_at_1"]["base"]["tasks"] == 6 - round(r["base"]["acc_at"][0] * 6)'
check "report.md, the CSVs, plot.gp and the pretrained base student are written" '
all(os.path.exists(os.path.join(d, f)) for f in ("report.md", "acc_at.csv", "families.csv",
 "plot.gp", "experiment.json", "base/model.safetensors", "sml/rounds.jsonl"))
and len(open(os.path.join(d, "acc_at.csv")).read().splitlines()) == 4
and "| k | base | SML |" in open(os.path.join(d, "report.md")).read()'
if $PY -c 'import json,sys; l=json.loads(open(sys.argv[1]).read().splitlines()[-1]); sys.exit(0 if len(l["sml_acc_at"]) == 3 and l["tasks"] == 6 else 1)' "$TMP/out"; then
  pass "--json: the last line has the acc@k arrays"
else fail "--json: the last line has the acc@k arrays"; fi
cp "$TMP/e1/results.json" "$TMP/first.json"

status "a second fresh run refuses the folder" 1 "${E1[@]}" --out "$TMP/e1"
if grep -q "already holds an experiment" "$TMP/err"; then pass "... and says to --resume"; else
  fail "... and says to --resume"; fi
status "--resume of the finished experiment" 0 "${E1[@]}" --out "$TMP/e1" --resume
if $PY -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(0 if (a["base"], a["sml"]) == (b["base"], b["sml"]) else 1)' "$TMP/first.json" "$TMP/e1/results.json"; then
  pass "... gives the same results"
else fail "... gives the same results"; fi

# ---- E2 from the same base student ---------------------------------------------------------------
status "a tiny E2 from a given base student" 0 sml e2 --base "$TMP/e1/base" --out "$TMP/e2" \
  --rounds 1 --tasks-per-round 2 --eval-tasks 1 --eval-turns 2 --seed 2 --quiet
if $PY -c '
import json, sys
r = json.load(open(sys.argv[1] + "/results.json"))
d = {x["name"]: x for x in r["directions"]}
ok = (set(d) == {"math-to-others", "code-to-math"}
      and set(d["math-to-others"]["families"]) == {"code", "maze", "puzzle"}
      and set(d["code-to-math"]["families"]) == {"arith", "algebra"}
      and d["math-to-others"]["base"]["tasks"] == 3 and len(d["code-to-math"]["sml"]["acc_at"]) == 2)
sys.exit(0 if ok else 1)' "$TMP/e2"; then
  pass "E2: each direction evaluated on the families it did not train on"
else fail "E2: each direction evaluated on the families it did not train on"; fi
if [ -f "$TMP/e2/transfer.csv" ] && [ -f "$TMP/e2/report.md" ] && [ ! -e "$TMP/e2/base" ]; then
  pass "E2: transfer.csv and report.md, no second base student"
else fail "E2: transfer.csv and report.md, no second base student"; fi
status "E2 refuses --families" 2 sml e2 --base "$TMP/e1/base" --out "$TMP/bad" --families code

# ---- E3 from the same base student ---------------------------------------------------------------
status "a tiny E3 from a given base student" 0 sml e3 --base "$TMP/e1/base" --out "$TMP/e3" \
  --families arith,maze --rounds 1 --tasks-per-round 2 --eval-tasks 2 --eval-turns 3 --seed 2 --quiet
if $PY -c '
import json, os, sys
d = sys.argv[1]
r = json.load(open(d + "/results.json"))
s = r["students"]
ok = (set(s) == {"base", "sml", "sml-qp"} and r["tasks"] == 4
      and all(len(s[k]["acc_at"]) == 3 and 0 <= s[k]["premature_answer_rate"] <= 1
              and 0 <= s[k]["question_rate"] <= 1 for k in s)
      and os.path.exists(d + "/sml-qp/model.safetensors"))
# the dialogues are sharded: the teacher opens with the goal, not the whole problem
for l in open(d + "/eval/base/arith/transcripts.jsonl"):
    ok = ok and json.loads(l)["meta"]["sharded"]
sys.exit(0 if ok else 1)' "$TMP/e3"; then
  pass "E3: three students on sharded tasks with premature and question rates"
else fail "E3: three students on sharded tasks with premature and question rates"; fi
status "E3 refuses --lora-rank" 2 sml e3 --base "$TMP/e1/base" --out "$TMP/bad" --lora-rank 4

# ---- E4 and E5 from the same base student ----------------------------------------------------------
status "a tiny E4 from a given base student" 0 sml e4 --base "$TMP/e1/base" --out "$TMP/e4" \
  --families arith --rounds 1 --tasks-per-round 2 --eval-tasks 2 --eval-turns 2 --seed 2 --quiet
if $PY -c '
import json, os, sys
d = sys.argv[1]
r = json.load(open(d + "/results.json"))
cells = {(c["student"], c["condition"]): c for c in r["cells"]}
ok = (set(cells) == {(s, c) for s in ("base", "sml", "sml-fp") for c in ("teacher", "self-teach")}
      and all(c["tasks"] == 2 and len(c["acc_at"]) == 2 for c in cells.values())
      and json.load(open(d + "/sml-fp/state.json"))["settings"]["train_names"] == "student,teacher"
      and json.load(open(d + "/sml/state.json"))["settings"]["train_names"] == "student")
# self-teaching dialogues name the teacher "self"; the others the programmatic one
for (s, c) in cells:
    for l in open(os.path.join(d, "eval", s, c, "arith", "transcripts.jsonl")):
        ok = ok and json.loads(l)["meta"]["teacher"] == ("self" if c == "self-teach" else "programmatic")
sys.exit(0 if ok else 1)' "$TMP/e4"; then
  pass "E4: three students, with the teacher and self-teaching"
else fail "E4: three students, with the teacher and self-teaching"; fi
status "E4 refuses --train-names" 2 sml e4 --base "$TMP/e1/base" --out "$TMP/bad" --train-names student
status "a tiny E5 from a given base student" 0 sml e5 --base "$TMP/e1/base" --out "$TMP/e5" \
  --families arith --rounds 1 --tasks-per-round 2 --eval-tasks 2 --eval-turns 2 --seed 2 --quiet
if $PY -c '
import json, os, sys
d = sys.argv[1]
r = json.load(open(d + "/results.json"))
cells = {(c["student"], c["condition"]): c for c in r["cells"]}
conds = ("binary", "directional", "localised", "llm")
ok = (set(cells) == {(s, c) for s in ("base", "sml") for c in conds}
      and r["teacher_model"] == "the base student"
      and all(c["teacher_messages"] >= c["teacher_fallbacks"] >= 0 for c in cells.values())
      and len(open(d + "/acc_at.csv").read().splitlines()[0].split(",")) == 9)
for l in open(os.path.join(d, "eval/base/llm/arith/transcripts.jsonl")):
    ok = ok and json.loads(l)["meta"]["teacher"] == "base"
sys.exit(0 if ok else 1)' "$TMP/e5"; then
  pass "E5: two students under four teachers, the LLM teacher the base student"
else fail "E5: two students under four teachers, the LLM teacher the base student"; fi

status "an unknown family" 2 sml e1 --out "$TMP/bad" --families arith,bogus
status "--size with --base" 2 sml e1 --out "$TMP/bad" --base "$TMP/e1/base" --size tiny
status "--eval-tasks 0" 2 sml e1 --out "$TMP/bad" --eval-tasks 0
if [ ! -e "$TMP/bad" ]; then pass "no folder made by the refused runs"; else
  fail "no folder made by the refused runs"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
