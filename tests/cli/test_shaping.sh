#!/usr/bin/env bash
# `agora shape run`: a small run writes curve.csv (steps + 1 rows) and
# curve.jsonl, prints each player's final value and, with --json, a last line
# with welfare, returns and cooperation_rate; the same seed gives the same
# result. A seat list that does not match --players, an unknown game, a
# payoff file with a bad entry and n outside the family's range are errors
# naming the problem, before any work.
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

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
