#!/usr/bin/env bash
# `agora lm chat` and `agora lm generate --chat` through the library's chat
# model: one reply is the same text either way (greedy and sampled: turn t
# of lm chat and prompt t of --prompts sample from stream t), a JSONL
# "messages" line equals the same --chat prompt, the plain prompt's final
# space is not printed, --ignore-eos goes past EOS, models with a template
# agora does not render fall back to plain with one warning, a chat that
# outgrows the context drops its oldest turns (one warning), --truncate,
# eval of "messages" (one BOS, as lm train renders them), --template and
# --system, and errors.
# Usage: test_lm_chat.sh path/to/agora   (run from the repository root)
set -u
AGORA=${1:?usage: test_lm_chat.sh path/to/agora}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/agora-cli-lm-chat-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
STORIES=../shared/data/models/stories260K

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

# json FIELD FILE [LINE]: a field of a JSON line, printed by python's json.
json() {
  /usr/bin/python3 -c 'import json, sys
line = open(sys.argv[2]).read().splitlines()[int(sys.argv[3])]
print(json.dumps(json.loads(line)[sys.argv[1]]))' "$1" "$2" "${3:-0}"
}

if [ ! -f $STORIES/model.safetensors ]; then
  echo "note: $STORIES not found; skipped" >&2
  echo "0 passed, 0 failed"
  exit 0
fi

# ---- one reply, either way ------------------------------------------------------------------
printf 'Tell me about a cat.\n' | "$AGORA" lm chat --model $STORIES --max-tokens 24 --temperature 0 >"$TMP/chat" 2>"$TMP/err"
"$AGORA" lm generate --model $STORIES --chat --prompt "Tell me about a cat." --max-tokens 24 --temperature 0 >"$TMP/gen" 2>/dev/null
printf '\n' >>"$TMP/gen"
if [ -s "$TMP/chat" ] && cmp -s "$TMP/chat" "$TMP/gen"; then pass "greedy: lm chat replies as lm generate --chat"; else
  fail "greedy chat '$(cat "$TMP/chat")' vs generate '$(cat "$TMP/gen")' $(cat "$TMP/err")"
fi
if [ "$(head -c 1 "$TMP/gen")" != " " ]; then pass "the plain prompt's final space is not printed"; else
  fail "the reply starts with a space: '$(cat "$TMP/gen")'"
fi
# sampled: the first turn is stream 0, as a single --prompt is
printf 'Hello there\n' | "$AGORA" lm chat --model $STORIES --max-tokens 20 --temperature 0.9 --seed 7 >"$TMP/chat" 2>/dev/null
"$AGORA" lm generate --model $STORIES --chat --prompt "Hello there" --max-tokens 20 --temperature 0.9 --seed 7 >"$TMP/gen" 2>/dev/null
printf '\n' >>"$TMP/gen"
if [ -s "$TMP/chat" ] && cmp -s "$TMP/chat" "$TMP/gen"; then pass "sampled: the same reply from the same seed and stream"; else
  fail "sampled chat '$(cat "$TMP/chat")' vs generate '$(cat "$TMP/gen")'"
fi
"$AGORA" lm generate --model $STORIES --chat --prompt "Hello there" --max-tokens 20 --temperature 0.9 --seed 8 >"$TMP/other" 2>/dev/null
printf '\n' >>"$TMP/other"
if ! cmp -s "$TMP/other" "$TMP/gen"; then pass "another seed, another reply"; else fail "--seed changes nothing"; fi

# ---- JSONL: "messages" lines and --chat prompts -----------------------------------------------
cat >"$TMP/prompts.jsonl" <<'EOF'
{"messages": [{"role": "user", "content": "Hello there"}], "id": "m"}
{"prompt": "Once upon a time"}
{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}
EOF
status "--prompts with messages and prompts" 0 lm generate --model $STORIES --prompts "$TMP/prompts.jsonl" --max-tokens 20 --temperature 0.9 --seed 7 --batch-size 2
cp "$TMP/out" "$TMP/mixed"
"$AGORA" lm generate --model $STORIES --chat --prompt "Hello there" --max-tokens 20 --temperature 0.9 --seed 7 --json >"$TMP/one" 2>/dev/null
same "a messages line = the same --chat prompt (stream 0)" "$(json text "$TMP/mixed" 0)" "$(json text "$TMP/one")"
same "the id comes back" "$(json id "$TMP/mixed" 0)" '"m"'
"$AGORA" lm generate --model $STORIES --prompts "$TMP/prompts.jsonl" --max-tokens 20 --temperature 0.9 --seed 7 --batch-size 1 >"$TMP/ones" 2>/dev/null
if cmp -s "$TMP/mixed" "$TMP/ones"; then pass "batches of one give the same lines"; else fail "batch size changes the results"; fi
# a plain prompt line is continued, not chatted: its text equals --prompt without --chat
"$AGORA" lm generate --model $STORIES --prompts <(sed -n 2p "$TMP/prompts.jsonl") --max-tokens 20 --temperature 0 >"$TMP/a" 2>/dev/null
"$AGORA" lm generate --model $STORIES --prompt "Once upon a time" --max-tokens 20 --temperature 0 --json >"$TMP/b" 2>/dev/null
same "a prompt line without --chat is continued" "$(json text "$TMP/a")" "$(json text "$TMP/b")"
echo '{"prompt": "Hello there"}' >"$TMP/p1.jsonl"
"$AGORA" lm generate --model $STORIES --prompts "$TMP/p1.jsonl" --chat --max-tokens 20 --temperature 0.9 --seed 7 >"$TMP/c" 2>/dev/null
same "a prompt line under --chat is a user message" "$(json text "$TMP/c")" "$(json text "$TMP/one")"
echo '{"messages": [{"role": "tool", "content": "x"}]}' >"$TMP/bad.jsonl"
status "a role the template refuses" 1 lm generate --model $STORIES --prompts "$TMP/bad.jsonl" --max-tokens 5
if grep -q 'bad.jsonl:1' "$TMP/err" && [ "$(wc -l <"$TMP/err")" -eq 1 ]; then pass "names the file and line"; else
  fail "error: $(cat "$TMP/err")"
fi

# ---- --ignore-eos, on a copy of stories260K whose EOS is also "." ----------------------------
mkdir -p "$TMP/dot"
cp $STORIES/config.json $STORIES/model.safetensors $STORIES/tokenizer.json $STORIES/tokenizer_config.json "$TMP/dot/"
echo '{"bos_token_id": 1, "eos_token_id": [2, 426]}' >"$TMP/dot/generation_config.json"
status "--chat stops at EOS" 0 lm generate --model "$TMP/dot" --chat --prompt "Tell me about a cat." --max-tokens 40 --temperature 0 --json
same "finished by eos" "$(json finish_reason "$TMP/out")" '"eos"'
status "--chat --ignore-eos" 0 lm generate --model "$TMP/dot" --chat --prompt "Tell me about a cat." --max-tokens 40 --temperature 0 --json --ignore-eos
same "--ignore-eos: all 40 tokens" "$(json generated_tokens "$TMP/out")" 40

# ---- a template agora does not render ------------------------------------------------------------
mkdir -p "$TMP/odd"
cp $STORIES/config.json $STORIES/model.safetensors $STORIES/tokenizer.json $STORIES/generation_config.json "$TMP/odd/"
echo '{"add_bos_token": true, "bos_token": "<s>", "eos_token": "</s>", "chat_template": "{{ odd }}"}' >"$TMP/odd/tokenizer_config.json"
printf 'Hi\nAnd then?\n' | "$AGORA" lm chat --model "$TMP/odd" --max-tokens 8 --seed 1 >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ $rc -eq 0 ] && [ -s "$TMP/out" ] && [ "$(grep -c 'not one agora renders' "$TMP/err")" -eq 1 ]; then
  pass "an unknown template: plain, with one warning"
else fail "unknown template (exit $rc): $(cat "$TMP/err")"; fi
status "no warning when nothing is chatted" 0 lm generate --model "$TMP/odd" --prompt "Hi" --max-tokens 4
if ! grep -q 'not one agora renders' "$TMP/err"; then pass "plain generation says nothing of templates"; else
  fail "warned: $(cat "$TMP/err")"
fi

# ---- context ---------------------------------------------------------------------------------------
long_line="The little dog ran to the park and played with a red ball all day long, and then he went home to sleep in his bed."
for i in $(seq 1 5); do echo "$long_line $long_line $long_line"; done >"$TMP/long.txt"
"$AGORA" lm chat --model $STORIES --max-tokens 8 --temperature 0 <"$TMP/long.txt" >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ $rc -eq 0 ] && [ "$(grep -c 'outgrew the context' "$TMP/err")" -eq 1 ]; then
  pass "a long chat drops its oldest turns, warning once"
else fail "long chat (exit $rc): $(cat "$TMP/err")"; fi
long=$(printf 'word %.0s' $(seq 1 600))
status "--chat: a prompt longer than the context" 1 lm generate --model $STORIES --chat --prompt "$long" --max-tokens 5
status "--chat --truncate makes room" 0 lm generate --model $STORIES --chat --prompt "$long" --max-tokens 5 --truncate --json
if grep -q 'lost its first' "$TMP/err" && [ "$(json generated_tokens "$TMP/out")" = 5 ]; then
  pass "--truncate says what it dropped"
else fail "--truncate: $(cat "$TMP/out" "$TMP/err")"; fi

# ---- eval scores a conversation as lm train renders it: one BOS ------------------------------
echo '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}' >"$TMP/chat.jsonl"
printf '{"text": "user: Hi</s>\\nassistant: Hello</s>\\n"}\n' >"$TMP/text.jsonl"
"$AGORA" lm eval --model $STORIES --data "$TMP/chat.jsonl" --json >"$TMP/a" 2>/dev/null
"$AGORA" lm eval --model $STORIES --data "$TMP/text.jsonl" --json >"$TMP/b" 2>/dev/null
same "eval: messages = their rendered text (tokens)" "$(json tokens "$TMP/a")" "$(json tokens "$TMP/b")"
same "eval: messages = their rendered text (loss)" "$(json loss "$TMP/a")" "$(json loss "$TMP/b")"

# ---- --template, --system, errors ---------------------------------------------------------------
printf 'Hi\n' | "$AGORA" lm chat --model $STORIES --template chatml --system "Be kind." --max-tokens 8 --seed 2 >"$TMP/out" 2>"$TMP/err"
if [ $? -eq 0 ] && [ -s "$TMP/out" ]; then pass "--template chatml --system"; else fail "chatml: $(cat "$TMP/err")"; fi
status "an unknown --template" 1 lm chat --model $STORIES --template klingon
if grep -q 'klingon' "$TMP/err" && [ "$(wc -l <"$TMP/err")" -eq 1 ]; then pass "one error line naming it"; else
  fail "error: $(cat "$TMP/err")"
fi
status "a missing model" 1 lm chat --model "$TMP/nope"
status "an endpoint is not a model file" 1 lm chat --model "http://127.0.0.1:9/v1#x"
status "help" 0 lm chat --help

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
