#!/usr/bin/env bash
# `agora crafter eval|bench`: the --json contract (one object on the last
# line with the documented keys), the score recomputed from the rates,
# determinism per seed, and usage errors (exit 2).
# Usage: test_crafter.sh path/to/agora   (run from the repository root)
set -u
AGORA=${1:?usage: test_crafter.sh path/to/agora}
PY=/usr/bin/python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/agora-cli-crafter-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0

pass() { passed=$((passed + 1)); echo "ok   $1" >&2; }
fail() { failed=$((failed + 1)); echo "FAIL $1" >&2; }

# status NAME WANT ARGS...: agora's exit status, stderr kept in $TMP/err.
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

# ---- eval --json -----------------------------------------------------------------
status "eval --json runs" 0 crafter eval --agent random --episodes 6 --seed 3 --json
cp "$TMP/out" "$TMP/eval1"
if "$PY" - "$TMP/eval1" <<'PYEOF' 2>"$TMP/py"; then pass "eval --json object"; else fail "eval --json object: $(cat "$TMP/py")"; fi
import json, math, sys
lines = open(sys.argv[1]).read().splitlines()
o = json.loads(lines[-1])
for k in ("success_rates", "score", "mean_length", "mean_return"):
    assert k in o, k
r = o["success_rates"]
assert len(r) == 22, len(r)
assert "collect_wood" in r and "wake_up" in r and "make_iron_sword" in r
# 6 episodes: every rate is a multiple of 100/6.
for name, v in r.items():
    assert 0 <= v <= 100, (name, v)
    assert abs(v * 6 / 100 - round(v * 6 / 100)) < 1e-9, (name, v)
want = math.exp(sum(math.log(1 + v) for v in r.values()) / 22) - 1
assert abs(o["score"] - want) < 1e-9, (o["score"], want)
assert 0 < o["mean_length"] <= 10000, o["mean_length"]
assert any(v > 0 for v in r.values())
PYEOF

status "eval again, same seed" 0 crafter eval --agent random --episodes 6 --seed 3 --json
if cmp -s "$TMP/out" "$TMP/eval1"; then pass "eval deterministic per seed"; else fail "eval deterministic per seed"; fi
status "eval, another seed" 0 crafter eval --agent random --episodes 6 --seed 4 --json
if cmp -s "$TMP/out" "$TMP/eval1"; then fail "another seed, another result"; else pass "another seed, another result"; fi

status "eval table" 0 crafter eval --episodes 2 --seed 1
if grep -q "^score " "$TMP/out" && grep -q "collect_sapling" "$TMP/out"; then pass "eval table has the score and the achievements"; else fail "eval table"; fi

# ---- usage errors --------------------------------------------------------------
status "unknown agent" 2 crafter eval --agent telepathic --episodes 1
status "zero episodes" 2 crafter eval --episodes 0
status "bad seed" 2 crafter eval --episodes 1 --seed banana
status "bench with no time" 2 crafter bench --seconds 0

# ---- bench --json (tiny) ---------------------------------------------------------
status "bench --json runs" 0 crafter bench --seconds 0.05 --json
if "$PY" -c '
import json, sys
o = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert o["pixel_steps_per_s"] > 0 and o["semantic_steps_per_s"] > 0, o
' "$TMP/out" 2>"$TMP/py"; then pass "bench --json object"; else fail "bench --json object: $(cat "$TMP/py")"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
