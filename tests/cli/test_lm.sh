#!/usr/bin/env bash
# `agora lm`: generate (stories260K's greedy text byte for byte, only the
# continuation on stdout, reproducible greedy and seeded sampling, top-k 1 =
# greedy, stop strings, JSONL batches = single prompts, context overflow and
# --truncate), chat through a pipe, eval, info, GGUF models, and errors
# (exit 2 naming an unknown flag, exit 1 with one `agora: error:` line).
# Usage: test_lm.sh path/to/agora   (run from the repository root)
set -u
AGORA=${1:?usage: test_lm.sh path/to/agora}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/agora-cli-lm-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
STORIES=../shared/data/models/stories260K
TINY=../shared/data/models/llama-2-tiny-random.gguf

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

# one_error_line NAME: stderr is exactly one `agora: error:` line.
one_error_line() {
  if [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^agora: error: ' "$TMP/err"; then pass "$1"; else
    fail "$1: $(cat "$TMP/err")"
  fi
}

gen() { "$AGORA" lm generate --model $STORIES "$@" 2>/dev/null; }

if [ ! -f $STORIES/model.safetensors ]; then
  echo "note: $STORIES not found; skipped" >&2
  echo "0 passed, 0 failed"
  exit 0
fi

# ---- generate: the interface other checks rely on -------------------------------------
status "stories260K greedy 200" 0 lm generate --model $STORIES --prompt "" --max-tokens 200 --temperature 0
if cmp -s "$TMP/out" $STORIES/expected-greedy-200.txt; then pass "byte for byte = expected-greedy-200.txt"; else
  fail "greedy text differs: $(head -c 120 "$TMP/out")"
fi
same "greedy is reproducible" "$(gen --prompt "The cat" --max-tokens 50 --temperature 0)" \
  "$(gen --prompt "The cat" --max-tokens 50 --temperature 0)"
cont=$(gen --prompt "Once upon a time" --max-tokens 10 --temperature 0)
same "only the continuation is printed" "${cont:0:7}" ", there"
same "--prompt= is the empty prompt" "$(gen --prompt= --max-tokens 30 --temperature 0)" \
  "$(gen --prompt "" --max-tokens 30 --temperature 0)"

# ---- sampling ----------------------------------------------------------------------------
a=$(gen --prompt "Tom" --max-tokens 40 --seed 11 --top-p 0.9 --repetition-penalty 1.2)
b=$(gen --prompt "Tom" --max-tokens 40 --seed 11 --top-p 0.9 --repetition-penalty 1.2)
c=$(gen --prompt "Tom" --max-tokens 40 --seed 12 --top-p 0.9 --repetition-penalty 1.2)
same "same seed, same text" "$a" "$b"
if [ "$a" != "$c" ]; then pass "another seed, another text"; else fail "seeds 11 and 12 gave '$a'"; fi
same "top-k 1 is greedy" "$(gen --prompt "Tom" --max-tokens 40 --top-k 1 --temperature 1.5 --seed 4)" \
  "$(gen --prompt "Tom" --max-tokens 40 --temperature 0)"
status "min-p and temperature" 0 lm generate --model $STORIES --prompt "Sue" --max-tokens 20 --min-p 0.1 --temperature 0.8

# ---- stop strings --------------------------------------------------------------------------
want=$(head -c 1000 $STORIES/expected-greedy-200.txt)
same "stop string ends the text before it" "$(gen --prompt "" --temperature 0 --stop Lily)" "${want%%Lily*}"
same "several stop strings: the first found wins" \
  "$(gen --prompt "" --temperature 0 --stop "red ball" --stop "\n")" "${want%%red ball*}"

# ---- JSONL prompts: a batch equals single runs -------------------------------------------------
printf '%s\n' '{"prompt": "Once upon a time, in a small town, there lived a boy", "id": "a"}' \
  '{"prompt": "Tom"}' '{"prompt": "The sun was shining and the birds"}' >"$TMP/prompts.jsonl"
status "--prompts JSONL" 0 lm generate --model $STORIES --prompts "$TMP/prompts.jsonl" --max-tokens 30 --temperature 0 --batch-size 3
same "one line per prompt" "$(wc -l <"$TMP/out" | tr -d ' ')" "3"
got=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[1])["text"], end="")' "$TMP/out")
same "batched = alone (prompt 2 of 3)" "$got" "$(gen --prompt "Tom" --max-tokens 30 --temperature 0)"
got=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["text"], end="")' "$TMP/out")
same "batched = alone (prompt 1 of 3)" "$got" \
  "$(gen --prompt "Once upon a time, in a small town, there lived a boy" --max-tokens 30 --temperature 0)"
if grep -q '"id":"a"' "$TMP/out" && grep -q '"finish_reason":"length"' "$TMP/out"; then pass "ids and finish reasons"; else
  fail "JSONL output: $(head -1 "$TMP/out")"
fi
"$AGORA" lm generate --model $STORIES --prompts "$TMP/prompts.jsonl" --max-tokens 30 --seed 3 --batch-size 1 >"$TMP/one" 2>/dev/null
"$AGORA" lm generate --model $STORIES --prompts "$TMP/prompts.jsonl" --max-tokens 30 --seed 3 --batch-size 2 >"$TMP/two" 2>/dev/null
if cmp -s "$TMP/one" "$TMP/two"; then pass "sampled text does not depend on --batch-size"; else fail "--batch-size changed sampled text"; fi

# ---- context ----------------------------------------------------------------------------------
long=$(for i in $(seq 300); do printf ' dog'; done)
status "a prompt longer than the context" 1 lm generate --model $STORIES --prompt "$long" --max-tokens 5
one_error_line "overflow is one error line"
if grep -q "context" "$TMP/err"; then pass "the error says context"; else fail "overflow: $(cat "$TMP/err")"; fi
status "--truncate makes room" 0 lm generate --model $STORIES --prompt "$long" --max-tokens 5 --truncate --json
if grep -q '"generated_tokens":5' "$TMP/out"; then pass "--truncate generates"; else fail "--truncate: $(cat "$TMP/out")"; fi

# ---- chat through a pipe --------------------------------------------------------------------------
printf 'Hello\n\nTell me about the sun\n' | "$AGORA" lm chat --model $STORIES --max-tokens 12 --temperature 0 >"$TMP/chat1" 2>"$TMP/err"
rc=$?
printf 'Hello\n\nTell me about the sun\n' | "$AGORA" lm chat --model $STORIES --max-tokens 12 --temperature 0 >"$TMP/chat2" 2>/dev/null
if [ $rc -eq 0 ] && [ -s "$TMP/chat1" ] && cmp -s "$TMP/chat1" "$TMP/chat2"; then pass "chat replies through a pipe, reproducibly"; else
  fail "chat (exit $rc): $(cat "$TMP/chat1" "$TMP/err")"
fi
printf 'Hi\n' | "$AGORA" lm chat --model $TINY --max-tokens 8 --seed 2 >"$TMP/chat3" 2>"$TMP/err"
if [ $? -eq 0 ] && [ -s "$TMP/chat3" ]; then pass "chat with a GGUF model"; else fail "GGUF chat: $(cat "$TMP/err")"; fi

# ---- eval ---------------------------------------------------------------------------------------
printf 'Once upon a time, there was a little girl named Lily. She loved to play outside.' >"$TMP/story.txt"
status "eval a text file" 0 lm eval --model $STORIES --data "$TMP/story.txt" --json
ok=$(/usr/bin/python3 -c '
import json, math, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(r["documents"] == 1 and r["tokens"] > 10 and abs(math.exp(r["loss"]) - r["perplexity"]) < 1e-3 * r["perplexity"] and 1 < r["perplexity"] < 20)' "$TMP/out")
same "eval reports tokens, loss and perplexity = exp(loss)" "$ok" "True"
printf '%s\n' '{"text": "Tom had a red ball."}' '{"text": "The dog ran in the park."}' >"$TMP/corpus.jsonl"
status "eval a JSONL corpus" 0 lm eval --model $STORIES --data "$TMP/corpus.jsonl"
if grep -q '^documents *2$' "$TMP/out" && grep -q '^perplexity' "$TMP/out"; then pass "eval counts documents"; else fail "eval: $(cat "$TMP/out")"; fi

# ---- GGUF and info ------------------------------------------------------------------------------
status "generate with a GGUF file" 0 lm generate --model $TINY --prompt "Hello" --max-tokens 8 --temperature 0
if [ -s "$TMP/out" ]; then pass "GGUF text"; else fail "GGUF generated nothing"; fi
status "info" 0 lm info --model $TINY --json
if grep -q '"format":"gguf"' "$TMP/out" && grep -q '"vocab_size":32000' "$TMP/out"; then pass "info describes the GGUF"; else
  fail "info: $(cat "$TMP/out")"
fi

# ---- errors -----------------------------------------------------------------------------------
status "unknown flag" 2 lm generate --model $STORIES --prompt x --frobnicate 3
if grep -q -- "--frobnicate" "$TMP/err"; then pass "usage error names the flag"; else fail "unknown flag: $(cat "$TMP/err")"; fi
status "no verb" 2 lm
status "unknown verb" 2 lm frobnicate
status "neither --prompt nor --prompts" 2 lm generate --model $STORIES
status "bad --top-p" 2 lm generate --model $STORIES --prompt x --top-p 1.5
status "help" 0 lm generate --help
status "missing model" 1 lm generate --model "$TMP/nope" --prompt x
one_error_line "missing model is one error line"
head -c 100000 $TINY >"$TMP/truncated.gguf"
status "truncated GGUF" 1 lm generate --model "$TMP/truncated.gguf" --prompt x
one_error_line "truncated GGUF is one error line"
printf 'not a model' >"$TMP/junk.bin"
status "not a model file" 1 lm generate --model "$TMP/junk.bin" --prompt x
one_error_line "junk is one error line"
mkdir -p "$TMP/emptydir"
status "a folder without config.json" 1 lm generate --model "$TMP/emptydir" --prompt x
one_error_line "empty folder is one error line"
printf '{"prompt": 3}\n' >"$TMP/bad.jsonl"
status "a JSONL line without a prompt" 1 lm generate --model $STORIES --prompts "$TMP/bad.jsonl"
if grep -q "bad.jsonl:1" "$TMP/err"; then pass "names the file and line"; else fail "bad JSONL: $(cat "$TMP/err")"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
