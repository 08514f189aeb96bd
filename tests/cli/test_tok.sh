#!/usr/bin/env bash
# `agora tok`: encode/decode through every kind of tokenizer path (GGUF,
# tokenizer.json, model folder), the exact stdin/stdout contract (all bytes,
# final newline included; ids on one line; no BOS unless --add-special),
# llama.cpp's vectors through the command line, train -> encode -> decode,
# and errors (exit 2 for usage, 1 with one `agora: error:` line otherwise).
# Usage: test_tok.sh path/to/agora   (run from the repository root)
set -u
AGORA=${1:?usage: test_tok.sh path/to/agora}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/agora-cli-tok-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
VOCABS=../shared/data/tokenizers
STORIES=../shared/data/models/stories260K

pass() { passed=$((passed + 1)); echo "ok   $1" >&2; }
fail() { failed=$((failed + 1)); echo "FAIL $1" >&2; }

# same NAME GOT WANT: two strings are equal.
same() {
  if [ "$2" == "$3" ]; then pass "$1"; else fail "$1: got '$2', expected '$3'"; fi
}

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

# ---- encode: ids on one line, nothing added ---------------------------------------
same "gpt-2 encode" "$(printf 'Hello world' | "$AGORA" tok encode --tokenizer $VOCABS/ggml-vocab-gpt-2.gguf)" \
  "15496 995"
same "final newline is encoded" \
  "$(printf 'Hello world\n' | "$AGORA" tok encode --tokenizer $VOCABS/ggml-vocab-gpt-2.gguf)" "15496 995 198"
same "empty input is an empty line" \
  "$(printf '' | "$AGORA" tok encode --tokenizer $VOCABS/ggml-vocab-gpt-2.gguf | od -An -c | tr -d ' ')" '\n'
same "llama spm without BOS" \
  "$(printf 'Hello world' | "$AGORA" tok encode --tokenizer $VOCABS/ggml-vocab-llama-spm.gguf)" "15043 3186"
same "llama spm --add-special adds BOS" \
  "$(printf 'Hello world' | "$AGORA" tok encode --tokenizer $VOCABS/ggml-vocab-llama-spm.gguf --add-special)" \
  "1 15043 3186"
same "model folder and its tokenizer.json agree" \
  "$(printf 'Once upon a time' | "$AGORA" tok encode --tokenizer $STORIES)" \
  "$(printf 'Once upon a time' | "$AGORA" tok encode --tokenizer $STORIES/tokenizer.json)"
same "special text becomes the special token" \
  "$(printf 'a<|endoftext|>' | "$AGORA" tok encode --tokenizer $VOCABS/ggml-vocab-gpt-2.gguf)" "64 50256"
split=$(printf '<|endoftext|>' | "$AGORA" tok encode --tokenizer $VOCABS/ggml-vocab-gpt-2.gguf --split-special)
same "--split-special keeps it as text" \
  "$(printf '%s' "$split" | "$AGORA" tok decode --tokenizer $VOCABS/ggml-vocab-gpt-2.gguf)|$(echo "$split" | grep -c 50256)" \
  "<|endoftext|>|0"

# ---- llama.cpp's vectors, through the command line ----------------------------------
for name in gpt-2 falcon llama-spm; do
  vocab=$VOCABS/ggml-vocab-$name.gguf
  total=0
  bad=0
  # split .inp on the separator lines into files; the newline before each
  # separator is not part of the string
  rm -f "$TMP"/vec.*
  awk -v dir="$TMP" 'BEGIN { n = 0; f = sprintf("%s/vec.%04d", dir, n) }
    $0 == "__ggml_vocab_test__" { n++; f = sprintf("%s/vec.%04d", dir, n); next }
    { if (started[f]) printf "\n" >> f; printf "%s", $0 >> f; started[f] = 1 }
    END { }' "$vocab.inp"
  i=0
  while IFS= read -r line || [ -n "$line" ]; do
    f=$(printf '%s/vec.%04d' "$TMP" $i)
    [ -f "$f" ] || : >"$f"
    got=$("$AGORA" tok encode --tokenizer "$vocab" <"$f")
    want=$(echo "$line" | sed 's/^ *//; s/ *$//')
    total=$((total + 1))
    if [ "$got" != "$want" ]; then bad=$((bad + 1)); echo "    $name vector $i: got '$got' want '$want'" >&2; fi
    back=$(printf '%s' "$got" | "$AGORA" tok decode --tokenizer "$vocab" | od -An -tx1)
    if [ "$back" != "$(od -An -tx1 <"$f")" ]; then bad=$((bad + 1)); echo "    $name vector $i: decode differs" >&2; fi
    i=$((i + 1))
  done <"$vocab.out"
  if [ "$bad" -eq 0 ] && [ "$total" -gt 40 ]; then pass "$name: $total vectors encode and decode"; else
    fail "$name: $bad of $total vector checks failed"
  fi
done

# ---- decode: raw bytes back, invalid UTF-8 included -----------------------------------
head -c 3000 /dev/urandom >"$TMP/random.bin"
for tok in $VOCABS/ggml-vocab-gpt-2.gguf $VOCABS/ggml-vocab-llama-spm.gguf $STORIES; do
  # SentencePiece vocabularies drop the space they add in front, so start with a non-space
  { printf 'x'; cat "$TMP/random.bin"; } >"$TMP/in.bin"
  "$AGORA" tok encode --tokenizer "$tok" <"$TMP/in.bin" >"$TMP/ids"
  "$AGORA" tok decode --tokenizer "$tok" <"$TMP/ids" >"$TMP/back.bin"
  if cmp -s "$TMP/in.bin" "$TMP/back.bin"; then pass "random bytes round trip ($(basename "$tok"))"; else
    fail "random bytes round trip ($(basename "$tok"))"
  fi
done
same "decode --skip-special" \
  "$(echo '1 15043 3186 2' | "$AGORA" tok decode --tokenizer $VOCABS/ggml-vocab-llama-spm.gguf --skip-special)" \
  "Hello world"
same "decode keeps special tokens by default" \
  "$(echo '15043 2' | "$AGORA" tok decode --tokenizer $VOCABS/ggml-vocab-llama-spm.gguf)" "Hello</s>"

# ---- train -> encode -> decode ---------------------------------------------------------
for i in $(seq 1 200); do echo "the quick brown fox jumps over the lazy dog $i times"; done >"$TMP/corpus.txt"
printf '{"text": "a jsonl document about foxes"}\n{"messages": [{"role": "user", "content": "hi fox"}]}\n' >"$TMP/corpus.jsonl"
status "train" 0 tok train --out "$TMP/tok.json" --vocab-size 400 --special '<|endoftext|>,<|pad|>' \
  --quiet --json "$TMP/corpus.txt" "$TMP/corpus.jsonl"
# min-frequency 2 stops this small corpus short of 400 tokens
if grep -Eq '"vocab_size":3[0-9][0-9],"merges":[1-9]' "$TMP/out"; then pass "train reports the vocabulary size"; else
  fail "train output: $(cat "$TMP/out")"
fi
text='the quick brown fox, 42 times'
ids=$(printf '%s' "$text" | "$AGORA" tok encode --tokenizer "$TMP/tok.json")
same "trained tokenizer round trips" "$(printf '%s' "$ids" | "$AGORA" tok decode --tokenizer "$TMP/tok.json")" "$text"
if [ "$(echo "$ids" | wc -w)" -lt 15 ]; then pass "trained tokenizer merges words"; else fail "too many tokens: $ids"; fi
same "special tokens get the first ids" "$(printf '<|pad|>' | "$AGORA" tok encode --tokenizer "$TMP/tok.json")" "1"
mkdir -p "$TMP/model"
status "train into a folder" 0 tok train --out "$TMP/model" --vocab-size 300 --quiet "$TMP/corpus.txt"
[ -f "$TMP/model/tokenizer.json" ] && pass "folder gets tokenizer.json" || fail "no $TMP/model/tokenizer.json"
same "trained twice, same file" "$("$AGORA" tok train --out "$TMP/again.json" --vocab-size 400 \
  --special '<|endoftext|>,<|pad|>' --quiet "$TMP/corpus.txt" "$TMP/corpus.jsonl" >/dev/null && cmp -s "$TMP/again.json" "$TMP/tok.json" && echo same)" "same"

# ---- info ------------------------------------------------------------------------------
status "info" 0 tok info --tokenizer $VOCABS/ggml-vocab-falcon.gguf --json
if grep -q '"pre_tokenizer":"falcon"' "$TMP/out"; then pass "info names the pre-tokenizer"; else fail "info: $(cat "$TMP/out")"; fi

# ---- errors ------------------------------------------------------------------------------
status "no verb" 2 tok
status "unknown verb" 2 tok frobnicate
status "missing --tokenizer" 2 tok encode
if grep -q -- "--tokenizer" "$TMP/err"; then pass "usage error names the flag"; else fail "usage error: $(cat "$TMP/err")"; fi
status "help" 0 tok encode --help
status "missing file" 1 tok encode --tokenizer "$TMP/nonexistent.json"
head -c 5000 $STORIES/tokenizer.json >"$TMP/truncated.json"
status "truncated tokenizer.json" 1 tok encode --tokenizer "$TMP/truncated.json"
if [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^agora: error: ' "$TMP/err"; then pass "one error line"; else
  fail "error output: $(cat "$TMP/err")"
fi
head -c 100000 $VOCABS/ggml-vocab-gpt-2.gguf >"$TMP/truncated.gguf"
status "truncated GGUF" 1 tok encode --tokenizer "$TMP/truncated.gguf"
echo '1 2 999999' >"$TMP/badids"
"$AGORA" tok decode --tokenizer $VOCABS/ggml-vocab-gpt-2.gguf <"$TMP/badids" >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && grep -q "999999" "$TMP/err" && pass "out-of-range id" || fail "out-of-range id: $(cat "$TMP/err")"
echo '1 x2' | "$AGORA" tok decode --tokenizer $VOCABS/ggml-vocab-gpt-2.gguf >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && grep -q "x2" "$TMP/err" && pass "non-numeric id" || fail "non-numeric id: $(cat "$TMP/err")"
status "train without inputs" 2 tok train --out "$TMP/x.json"
status "train with a bad pre-tokenizer" 1 tok train --out "$TMP/x.json" --pre-tokenizer nope "$TMP/corpus.txt"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
