#!/usr/bin/env bash
# `agora lm` on a GPT-2 GGUF file (tests/lm/gpt2_gguf_reference.py writes a
# tiny random one as llama.cpp's converter would, and the same weights as a
# Hugging Face folder): info names the architecture and the GGUF vocabulary,
# greedy generate gives the folder's text, tok encode gives its ids.
# Usage: test_lm_gpt2_gguf.sh path/to/agora   (run from the repository root)
set -u
AGORA=${1:?usage: test_lm_gpt2_gguf.sh path/to/agora}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/agora-cli-gpt2-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0

pass() { passed=$((passed + 1)); echo "ok   $1" >&2; }
fail() { failed=$((failed + 1)); echo "FAIL $1" >&2; }
same() {
  if [ "$2" == "$3" ]; then pass "$1"; else fail "$1: got '$2', expected '$3'"; fi
}

if ! /usr/bin/python3 tests/lm/gpt2_gguf_reference.py "$TMP" 268,83 2>"$TMP/err"; then
  echo "FAIL the reference files: $(cat "$TMP/err")" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
GGUF=$TMP/gpt2-f32.gguf

"$AGORA" lm info --model "$GGUF" --json >"$TMP/info" 2>"$TMP/err"
info=$(/usr/bin/python3 -c 'import json, sys
o = json.load(open(sys.argv[1]))
print(o["format"], o["arch"], o["vocab_size"], o["layers"], o["context_length"], o["tokenizer_vocab"], o["eos"])' "$TMP/info" 2>&1)
same "lm info: a GPT-2 GGUF with its vocabulary" "$info" "gguf gpt2 269 2 16 269 [268]"
"$AGORA" lm generate --model "$GGUF" --prompt "the cat" --max-tokens 12 --temperature 0 --ignore-eos >"$TMP/a" 2>"$TMP/err"
"$AGORA" lm generate --model "$TMP/hf" --prompt "the cat" --max-tokens 12 --temperature 0 --ignore-eos >"$TMP/b" 2>>"$TMP/err"
if [ -s "$TMP/a" ] && cmp -s "$TMP/a" "$TMP/b"; then pass "greedy text: GGUF = Hugging Face folder"; else
  fail "greedy texts differ: $(cat "$TMP/a" "$TMP/b" "$TMP/err")"
fi
same "tok encode with the GGUF vocabulary" "$("$AGORA" tok encode --tokenizer "$GGUF" <"$TMP/text-1.txt")" "$(cat "$TMP/ids-1.txt")"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
