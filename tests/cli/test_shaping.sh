#!/usr/bin/env bash
# `agora shape run`: a small run writes curve.csv (steps + 1 rows),
# curve.jsonl and plot.gp (plot.svg when gnuplot is installed), prints each
# player's final value and, with --json, a last line with welfare, returns
# and cooperation_rate; the same seed gives the same result; --seats and its
# older name --learners; fixed seats give their closed-form values; an ES
# seat is trained first (es_training.csv, shaper.json). A seat list that does
# not match --players, an unknown game, a payoff file with a bad entry and n
# outside the family's range or 2..8 are errors naming the problem, before
# any work. `agora shape sweep`: a tiny grid writes its summary, a second run
# skips every cell, bad lists are refused.
# Usage: test_shaping.sh path/to/agora   (run from the repository root)
set -u
AGORA=${1:?usage: test_shaping.sh path/to/agora}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/agora-cli-shaping-XXXXXX")
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
# mentions NAME TEXT: stderr names TEXT.
mentions() {
  if grep -q -- "$2" "$TMP/err"; then pass "$1"; else
    fail "$1 (stderr lacks '$2')"
    sed 's/^/    /' "$TMP/err" >&2
  fi
}

status "run" 0 shape run --game ipd --players 3 --learners lola,naive,naive --steps 20 \
  --seed 4 --out "$TMP/a" --json
cp "$TMP/out" "$TMP/out_a"
if [ "$(wc -l <"$TMP/a/curve.csv")" -eq 22 ] && [ "$(wc -l <"$TMP/a/curve.jsonl")" -eq 21 ]; then
  pass "curves have steps + 1 records"
else fail "curves have steps + 1 records"; fi
if grep -q "player 2 (naive): value" "$TMP/out_a"; then pass "final values printed"; else
  fail "final values printed"; fi
if tail -1 "$TMP/out_a" | $PY -c '
import json, sys
d = json.loads(sys.stdin.read())
assert len(d["returns"]) == 3 and 0 <= d["cooperation_rate"] <= 1
assert abs(d["welfare"] - sum(r * 0.04 for r in d["returns"]) / 3) < 1e-6
'; then pass "json last line"; else fail "json last line"; fi
status "same seed" 0 shape run --game ipd --players 3 --learners lola,naive,naive --steps 20 \
  --seed 4 --out "$TMP/b" --json
if cmp -s "$TMP/a/curve.csv" "$TMP/b/curve.csv"; then pass "same seed, same curves"; else
  fail "same seed, same curves"; fi

status "seat count" 1 shape run --game sd --players 4 --learners lola,naive --out "$TMP/c"
mentions "seat count message" "2 learners listed for 4 players"
status "unknown game" 1 shape run --game nope --players 3 --learners naive,naive,naive \
  --out "$TMP/c"
mentions "unknown game message" "nope"
status "family size" 1 shape run --game tc --players 6 --learners naive,naive,naive,naive,naive,naive \
  --out "$TMP/c"
mentions "family size message" "2..5"
printf '{"players": 2, "payoff": [[-1, null], [-3, "x"], [null, -2]]}\n' >"$TMP/bad.json"
status "bad payoff file" 1 shape run --game "$TMP/bad.json" --players 2 --learners lola,lola \
  --out "$TMP/c"
mentions "bad payoff message" "payoff\[1\]\[1\]"
printf '{"players": 2, "payoff": [[-1, null], [-3, 0], [null, -2]]}\n' >"$TMP/ok.json"
status "payoff file" 0 shape run --game "$TMP/ok.json" --players 2 --learners lola,lola \
  --steps 5 --out "$TMP/d"
if [ -e "$TMP/c/curve.csv" ]; then fail "no output after bad input"; else
  pass "no output after bad input"; fi

status "seats flag" 0 shape run --game ipd --players 3 --seats lola,naive,naive --steps 20 \
  --seed 4 --out "$TMP/e" --json
if cmp -s "$TMP/a/curve.csv" "$TMP/e/curve.csv"; then pass "--seats = --learners"; else
  fail "--seats = --learners"; fi
if [ -s "$TMP/e/plot.gp" ]; then pass "plot script"; else fail "plot script"; fi
if command -v gnuplot >/dev/null; then
  if grep -q "<svg" "$TMP/e/plot.svg" 2>/dev/null; then pass "plot.svg rendered"; else
    fail "plot.svg rendered"; fi
fi
status "both seat flags" 2 shape run --players 2 --seats lola,lola --learners lola,lola \
  --out "$TMP/c"
status "no seats" 2 shape run --players 2 --out "$TMP/c"
status "players above 8" 2 shape run --game "$TMP/ok.json" --players 9 \
  --seats naive,naive,naive,naive,naive,naive,naive,naive,naive --out "$TMP/c"
status "players below 2" 2 shape run --players 1 --seats naive --out "$TMP/c"

# tft against two alld, gamma 0.9: 0 + 0.9/0.1 = 9; each alld 3 + 9 = 12.
status "fixed seats" 0 shape run --game ipd --players 3 --seats tft,alld,alld --gamma 0.9 \
  --steps 3 --out "$TMP/f" --json
if tail -1 "$TMP/out" | $PY -c '
import json, sys
d = json.loads(sys.stdin.read())
r = d["returns"]
assert abs(r[0] - 9) < 1e-6 and abs(r[1] - 12) < 1e-6 and abs(r[2] - 12) < 1e-6, r
'; then pass "fixed seats' closed-form values"; else fail "fixed seats' closed-form values"; fi

status "es seat" 0 shape run --game sh --players 3 --seats es,naive,tft-maj --steps 5 \
  --es-generations 2 --es-population 4 --hidden 4 --seed 2 --out "$TMP/g" --json
if [ "$(wc -l <"$TMP/g/es_training.csv")" -eq 3 ] && [ -s "$TMP/g/shaper.json" ] &&
  tail -1 "$TMP/out" | $PY -c '
import json, sys
d = json.loads(sys.stdin.read())
assert len(d["es_training_fitness"]) == 1 and d["seats"] == ["es", "naive", "tft-maj"]
assert len(d["returns"]) == 3 and 0 <= d["cooperation_rate"] <= 1
'; then pass "es training output"; else fail "es training output"; fi
status "bad seat kind" 1 shape run --players 3 --seats es,naive,bogus --out "$TMP/c"
mentions "bad seat message" "'bogus' is not a seat kind"
status "ppo seat in the exact mode" 1 shape run --players 3 --seats ppo,naive,alld --out "$TMP/c"
mentions "ppo seat message" "--mode sampled"

# ---- the sampled mode: PPO learners --------------------------------------------------------------
status "sampled run" 0 shape run --mode sampled --game ipd --players 2 --seats ppo,alld --steps 15 \
  --ppo-episodes 8 --ppo-steps 30 --seed 1 --out "$TMP/s" --json
if [ "$(wc -l <"$TMP/s/curve.csv")" -eq 17 ] && [ -s "$TMP/s/plot.gp" ] &&
  tail -1 "$TMP/out" | $PY -c '
import json, sys
d = json.loads(sys.stdin.read())
assert d["mode"] == "sampled" and d["seats"] == ["ppo", "alld"] and len(d["returns"]) == 2
assert d["cooperation"][0] < 0.3, d  # the best response to always-defect
' && head -1 "$TMP/s/curve.jsonl" | $PY -c '
import json, sys
r = json.loads(sys.stdin.read())
assert "ppo_loss" in r and len(r["visitation"]) == 4 and abs(sum(r["visitation"]) - 1) < 1e-9
'
then pass "sampled curves and --json"; else fail "sampled curves and --json"; fi
status "sampled es shaper" 0 shape run --mode sampled --game ipd --players 2 --seats es,ppo \
  --steps 2 --ppo-episodes 4 --ppo-steps 10 --es-generations 2 --es-population 4 --hidden 4 \
  --seed 1 --out "$TMP/se" --json
if [ "$(wc -l <"$TMP/se/es_training.csv")" -eq 3 ] && [ -s "$TMP/se/shaper.json" ] &&
  tail -1 "$TMP/out" | $PY -c '
import json, sys
d = json.loads(sys.stdin.read())
assert d["seats"] == ["es", "ppo"] and len(d["es_training_fitness"]) == 1, d
'; then pass "sampled es training output"; else fail "sampled es training output"; fi
status "sampled mode refuses naive" 1 shape run --mode sampled --players 2 --seats ppo,naive \
  --out "$TMP/s2"
mentions "sampled refusal message" "seat 1 is 'naive'"

status "sweep" 0 shape sweep --games ipd --players 3 --seeds 2 --evaluations 1 --steps 5 \
  --es-generations 1 --es-population 2 --hidden 4 --out "$TMP/sw" --json --threads 1
if tail -1 "$TMP/out" | $PY -c '
import json, sys
d = json.loads(sys.stdin.read())
assert d["cells"] == 5 and d["jobs_run"] == 10 and d["jobs_skipped"] == 0, d
' && [ "$(wc -l <"$TMP/sw/results.jsonl")" -eq 10 ] && grep -q "| ipd | 3 | lola | 2 |" "$TMP/out"
then pass "sweep results and table"; else fail "sweep results and table"; fi
status "sweep resumed" 0 shape sweep --games ipd --players 3 --seeds 2 --evaluations 1 --steps 5 \
  --es-generations 1 --es-population 2 --hidden 4 --out "$TMP/sw" --json --threads 1
if tail -1 "$TMP/out" | $PY -c '
import json, sys
d = json.loads(sys.stdin.read())
assert d["jobs_run"] == 0 and d["jobs_skipped"] == 10, d
'; then pass "sweep skips done cells"; else fail "sweep skips done cells"; fi
status "sweep other settings" 1 shape sweep --games ipd --players 3 --seeds 2 --evaluations 1 \
  --steps 6 --es-generations 1 --es-population 2 --hidden 4 --out "$TMP/sw"
mentions "sweep other settings message" "steps"
status "sweep players" 2 shape sweep --players 3,9 --out "$TMP/sw2"
status "sweep shapers" 2 shape sweep --shapers lola,ppo --out "$TMP/sw2"
status "sweep game" 1 shape sweep --games ipd,nope --out "$TMP/sw2"
mentions "sweep game message" "nope"
if [ -e "$TMP/sw2" ]; then fail "no sweep output after bad input"; else
  pass "no sweep output after bad input"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
