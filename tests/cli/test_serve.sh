#!/usr/bin/env bash
# `agora serve`: starts on a free port (--port 0; the port is read from the
# "listening on" log line), answers /health, /v1/models, a chat request and
# a bad request, refuses chat without a template, and stops cleanly (exit 0)
# on SIGTERM and SIGINT. Uses the curl tool when present, else python3's
# urllib; installs nothing.
# Usage: test_serve.sh path/to/agora   (run from the repository root)
set -u
AGORA=${1:?usage: test_serve.sh path/to/agora}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/agora-cli-serve-XXXXXX")
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill -KILL "$SERVER" 2>/dev/null; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
passed=0
failed=0
STORIES=../shared/data/models/stories260K

pass() { passed=$((passed + 1)); echo "ok   $1" >&2; }
fail() { failed=$((failed + 1)); echo "FAIL $1" >&2; }

if [ ! -f "$STORIES/model.safetensors" ]; then
  echo "note: $STORIES not found; skipped" >&2
  echo "0 passed, 0 failed"
  exit 0
fi

# http METHOD URL [BODY]: prints the status code on the first line, then the
# body. Every request gives up after 20 s.
if command -v curl >/dev/null 2>&1; then
  http() {
    local out
    out=$(curl -s -m 20 -X "$1" -H 'Content-Type: application/json' ${3:+--data-binary "$3"} \
      -w '\n%{http_code}' "$2") || { echo 000; return; }
    printf '%s\n%s\n' "${out##*$'\n'}" "${out%$'\n'*}"
  }
else
  http() {
    /usr/bin/python3 - "$@" <<'EOF'
import sys, urllib.request, urllib.error
method, url = sys.argv[1], sys.argv[2]
data = sys.argv[3].encode() if len(sys.argv) > 3 else None
req = urllib.request.Request(url, data=data, method=method,
                             headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=20) as r:
        print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
except Exception as e:
    print("000"); print(e)
EOF
  }
fi

# json FIELD-EXPRESSION: evaluates a Python expression on the JSON body `j`.
json() { /usr/bin/python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }

# start_server ARGS...: starts agora serve in the background; sets SERVER
# and PORT once the log says where it listens (10 s at most).
start_server() {
  rm -f "$TMP/err" # not the last server's log: the new one may not have opened it yet
  "$AGORA" serve "$@" --port 0 --threads 1 >"$TMP/out" 2>"$TMP/err" &
  SERVER=$!
  PORT=
  for _ in $(seq 100); do
    PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$TMP/err" 2>/dev/null)
    [ -n "$PORT" ] && return 0
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.1
  done
  return 1
}

# stop_server SIGNAL NAME: the server exits 0 within 10 s of the signal.
stop_server() {
  kill "-$1" "$SERVER"
  local waited=0
  while kill -0 "$SERVER" 2>/dev/null && [ $waited -lt 100 ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  if kill -0 "$SERVER" 2>/dev/null; then
    fail "$2: still running 10 s after SIG$1"
    kill -KILL "$SERVER"
    wait "$SERVER" 2>/dev/null
  else
    wait "$SERVER"
    local rc=$?
    if [ $rc -eq 0 ] && grep -q 'agora: stopped' "$TMP/err"; then pass "$2"; else
      fail "$2 (exit $rc)"
      sed 's/^/    /' "$TMP/err" >&2
    fi
  fi
  SERVER=
}

if start_server "$STORIES" --chat-template plain --model-name tiny; then
  pass "serve starts and logs where it listens"
  BASE="http://127.0.0.1:$PORT"

  r=$(http GET "$BASE/health")
  if [ "$(head -1 <<<"$r")" = 200 ]; then pass "/health is 200"; else fail "/health: $r"; fi

  r=$(http GET "$BASE/v1/models")
  id=$(tail -n +2 <<<"$r" | json 'j["data"][0]["id"]' 2>/dev/null)
  if [ "$id" = tiny ]; then pass "/v1/models lists --model-name"; else fail "/v1/models: $r"; fi

  body='{"model":"tiny","messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":16,"temperature":0}'
  r=$(http POST "$BASE/v1/chat/completions" "$body")
  r2=$(http POST "$BASE/v1/chat/completions" "$body")
  shape=$(tail -n +2 <<<"$r" | json 'j["object"], j["choices"][0]["message"]["role"], j["usage"]["completion_tokens"] > 0' 2>/dev/null)
  if [ "$(head -1 <<<"$r")" = 200 ] && [ "$shape" = "chat.completion assistant True" ]; then
    pass "a chat request is answered"
  else fail "chat: $r"; fi
  a=$(tail -n +2 <<<"$r" | json 'j["choices"][0]["message"]["content"]' 2>/dev/null)
  b=$(tail -n +2 <<<"$r2" | json 'j["choices"][0]["message"]["content"]' 2>/dev/null)
  if [ -n "$a" ] && [ "$a" = "$b" ]; then pass "greedy chat is reproducible"; else
    fail "greedy chat differs: '$a' / '$b'"
  fi

  r=$(http POST "$BASE/v1/chat/completions" '{"messages": 3}')
  param=$(tail -n +2 <<<"$r" | json 'j["error"]["param"], j["error"]["type"]' 2>/dev/null)
  if [ "$(head -1 <<<"$r")" = 400 ] && [ "$param" = "messages invalid_request_error" ]; then
    pass "a bad request gets 400 and an error body"
  else fail "bad request: $r"; fi

  "$AGORA" serve "$STORIES" --port "$PORT" >"$TMP/out2" 2>"$TMP/err2"
  rc=$?
  if [ $rc -eq 1 ] && grep -q "^agora: error: .*port $PORT" "$TMP/err2"; then
    pass "a port in use is an error naming it, exit 1"
  else fail "port in use (exit $rc): $(cat "$TMP/err2")"; fi

  stop_server TERM "SIGTERM stops the server cleanly (exit 0)"
else
  fail "serve did not start: $(cat "$TMP/err")"
fi

# Without a chat template: chat is refused with 400, completions work; SIGINT stops it.
if start_server "$STORIES"; then
  BASE="http://127.0.0.1:$PORT"
  r=$(http POST "$BASE/v1/chat/completions" '{"messages":[{"role":"user","content":"hi"}]}')
  if [ "$(head -1 <<<"$r")" = 400 ] && grep -q -- '--chat-template' <<<"$r"; then
    pass "chat without a template is 400 naming --chat-template"
  else fail "chat without a template: $r"; fi
  r=$(http POST "$BASE/v1/completions" '{"prompt":"Once upon a time","max_tokens":8}')
  if [ "$(head -1 <<<"$r")" = 200 ]; then pass "completions work without a template"; else
    fail "completions: $r"
  fi
  stop_server INT "SIGINT stops the server cleanly (exit 0)"
else
  fail "serve did not start without a template: $(cat "$TMP/err")"
fi

# Errors: a missing model is one `agora: error:` line, exit 1.
"$AGORA" serve /nonexistent/model --port 0 >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ $rc -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^agora: error: ' "$TMP/err"; then
  pass "a missing model is one error line, exit 1"
else fail "missing model (exit $rc): $(cat "$TMP/err")"; fi
"$AGORA" serve >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ $rc -eq 2 ] && grep -q 'MODEL' "$TMP/err"; then pass "no MODEL is a usage error, exit 2"; else
  fail "no MODEL (exit $rc): $(cat "$TMP/err")"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
