#!/usr/bin/env bash
# `agora crafter play|render --video|eval --agent scripted`: play refuses
# without a terminal and plays --actions/--script lists (achievements
# announced, the text observation), render --video writes one PNG per step
# that equal the single frames of render --out, the scripted agent beats the
# random one, and bad input (action ids, seeds, paths) gets a clear error.
# Usage: test_crafter_cli.sh path/to/agora   (run from the repository root)
set -u
AGORA=${1:?usage: test_crafter_cli.sh path/to/agora}
PY=/usr/bin/python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/agora-cli-crafter-play-XXXXXX")
trap 'chmod -R u+w "$TMP" 2>/dev/null; rm -rf "$TMP"' EXIT
passed=0
failed=0

pass() { passed=$((passed + 1)); echo "ok   $1" >&2; }
fail() { failed=$((failed + 1)); echo "FAIL $1" >&2; }

# status NAME WANT ARGS...: agora's exit status (stdin not a terminal), output in $TMP/out, $TMP/err.
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
has() { # has NAME FILE TEXT
  if grep -qF -- "$3" "$2"; then pass "$1"; else
    fail "$1: no '$3' in $2"
    sed 's/^/    /' "$2" | head -20 >&2
  fi
}

# ---- play ------------------------------------------------------------------------
status "play without a terminal is refused" 2 crafter play --seed 1
has "  ... saying why and what to do" "$TMP/err" "needs a terminal"
has "  ... pointing at --actions" "$TMP/err" "--actions"

# Seed 1: four steps east reach a tree; up and east face another.
WOOD="move_right move_right move_right move_right do move_up move_right do place_table"
status "play --actions" 0 crafter play --seed 1 --actions "$WOOD"
has "  ... announces collect_wood" "$TMP/out" "step 5: achievement unlocked: collect_wood"
has "  ... announces place_table" "$TMP/out" "step 9: achievement unlocked: place_table"
has "  ... ends with the screen" "$TMP/out" "achievements 2/22: collect_wood, place_table"
has "  ... facing the table" "$TMP/out" "facing  table"
cp "$TMP/out" "$TMP/play1"

status "play --actions with ids and commas" 0 crafter play --seed 1 --actions "2,2,2,2,5,3,2,5,8"
if cmp -s "$TMP/out" "$TMP/play1"; then pass "  ... ids play as the names"; else fail "  ... ids play as the names"; fi

printf '# a script\nmove_right move_right\nmove_right move_right  # east\ndo\n' >"$TMP/script.txt"
status "play --script FILE" 0 crafter play --seed 1 --script "$TMP/script.txt"
has "  ... collects wood" "$TMP/out" "achievement unlocked: collect_wood"
if "$AGORA" crafter play --seed 1 --script - --text <"$TMP/script.txt" >"$TMP/out" 2>"$TMP/err"; then
  pass "play --script - (stdin)"
else fail "play --script - (stdin)"; fi
has "  ... --text shows the text observation" "$TMP/out" "You face grass at your front."
has "  ... with the inventory" "$TMP/out" "- wood: 1"

status "play --frames" 0 crafter play --seed 1 --frames --actions "noop noop do"
n=$(grep -c "^-- step" "$TMP/out")
if [ "$n" -eq 3 ]; then pass "  ... one screen per action"; else fail "  ... one screen per action ($n)"; fi
status "play --color always" 0 crafter play --seed 1 --color always --actions "noop"
if grep -q $'\x1b\\[' "$TMP/out"; then pass "  ... colours"; else fail "  ... colours"; fi
status "play, colours off by default off a terminal" 0 crafter play --seed 1 --actions "noop"
if grep -q $'\x1b' "$TMP/out"; then fail "  ... no escapes"; else pass "  ... no escapes"; fi

status "play: action id 17" 2 crafter play --actions "noop 17"
has "  ... names the id and the range" "$TMP/err" "invalid action id 17"
status "play: action id -1" 2 crafter play --actions "-1"
status "play: an unknown action" 2 crafter play --actions "noop,jump"
has "  ... names it" "$TMP/err" "unknown action 'jump'"
status "play: bad seed" 2 crafter play --seed 12abc --actions noop
status "play: missing script" 1 crafter play --script "$TMP/nope.txt"
status "play: --actions and --script" 2 crafter play --actions noop --script -
status "play --help lists the keys" 0 crafter play --help
has "  ... tab = sleep" "$TMP/out" "tab = sleep"

# ---- render --video -----------------------------------------------------------------
status "render --video" 0 crafter render --seed 2 --video "$TMP/vid" --steps 5
n=$(ls "$TMP/vid" | grep -c '^frame-[0-9]\{6\}\.png$')
if [ "$n" -eq 6 ]; then pass "  ... 6 frames (reset + 5 steps)"; else fail "  ... 6 frames ($n)"; fi
if ls -a "$TMP/vid" | grep -q tmp; then fail "  ... no temporary files left"; else pass "  ... no temporary files left"; fi
status "render --out, step 0" 0 crafter render --seed 2 --out "$TMP/f0.png"
if cmp -s "$TMP/f0.png" "$TMP/vid/frame-000000.png"; then pass "  ... frame 0 = the reset frame"; else fail "  ... frame 0 = the reset frame"; fi
status "render --out, step 5" 0 crafter render --seed 2 --steps 5 --out "$TMP/f5.png"
if cmp -s "$TMP/f5.png" "$TMP/vid/frame-000005.png"; then pass "  ... frame 5 = render --steps 5"; else fail "  ... frame 5 = render --steps 5"; fi
if cmp -s "$TMP/vid/frame-000004.png" "$TMP/vid/frame-000005.png"; then fail "  ... frames differ"; else pass "  ... frames differ"; fi
if "$PY" - "$TMP/vid/frame-000003.png" <<'PYEOF' 2>"$TMP/py"; then pass "  ... a 64x64 RGB PNG"; else fail "  ... a 64x64 RGB PNG: $(cat "$TMP/py")"; fi
import struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n"
w, h, depth, ctype = struct.unpack(">IIBB", b[16:26])
assert (w, h, depth, ctype) == (64, 64, 8, 2), (w, h, depth, ctype)
PYEOF
status "render --video --agent scripted into a new nested dir" 0 crafter render --seed 1 --agent scripted --steps 3 --video "$TMP/a/b/c"
n=$(ls "$TMP/a/b/c" | wc -l)
if [ "$n" -eq 4 ]; then pass "  ... 4 frames"; else fail "  ... 4 frames ($n)"; fi
touch "$TMP/afile"
status "render --video onto a file" 1 crafter render --video "$TMP/afile" --steps 1
has "  ... says so" "$TMP/err" "not a directory"
status "render --out into a missing directory" 1 crafter render --out "$TMP/missing/dir/f.png"
has "  ... names the path" "$TMP/err" "$TMP/missing/dir/f.png"
if [ "$(id -u)" -ne 0 ]; then
  mkdir "$TMP/ro" && chmod a-w "$TMP/ro"
  status "render --video into a read-only directory" 1 crafter render --video "$TMP/ro" --steps 1
fi
status "render with neither --out nor --video" 2 crafter render --seed 1
status "render with both" 2 crafter render --out "$TMP/x.png" --video "$TMP/v2"
status "render: bad seed" 2 crafter render --seed banana --out "$TMP/x.png"
status "render: unknown agent" 2 crafter render --agent telepathic --out "$TMP/x.png"

# ---- eval --agent scripted ----------------------------------------------------------
status "eval --agent scripted" 0 crafter eval --agent scripted --episodes 4 --seed 1 --length 1000 --json
cp "$TMP/out" "$TMP/scripted.json"
status "eval --agent random, same settings" 0 crafter eval --agent random --episodes 4 --seed 1 --length 1000 --json
cp "$TMP/out" "$TMP/random.json"
if "$PY" - "$TMP/scripted.json" "$TMP/random.json" <<'PYEOF' 2>"$TMP/py"; then pass "  ... scripted beats random"; else fail "  ... scripted beats random: $(cat "$TMP/py")"; fi
import json, sys
s = json.loads(open(sys.argv[1]).read().splitlines()[-1])
r = json.loads(open(sys.argv[2]).read().splitlines()[-1])
assert s["agent"] == "scripted" and s["length"] == 1000, s
assert s["success_rates"]["collect_wood"] == 100, s["success_rates"]
assert s["success_rates"]["place_table"] >= 75, s["success_rates"]
assert s["score"] > 5 * max(r["score"], 1), (s["score"], r["score"])
assert 0 < s["mean_length"] <= 1000
PYEOF
status "eval scripted again" 0 crafter eval --agent scripted --episodes 4 --seed 1 --length 1000 --json
if cmp -s "$TMP/out" "$TMP/scripted.json"; then pass "  ... deterministic per seed"; else fail "  ... deterministic per seed"; fi
status "eval --length 0" 2 crafter eval --length 0

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
