/* The OpenAI-compatible chat-completions client: one POST per conversation
 * to BASE/chat/completions through a libcurl multi handle, at most
 * `concurrency` in flight; 429, 5xx, timeouts and refused connections are
 * retried after backoff x 2^try (or the server's Retry-After); any other
 * failure ends the call with a message naming the URL and the cause. */
#include "lm/chat_internal.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A reply larger than this is refused: a chat reply is text, not a download. */
#define MAX_RESPONSE_BYTES ((size_t)64 << 20)
/* A Retry-After longer than this is shortened: a run should fail, not sleep
 * for hours. */
#define MAX_RETRY_AFTER_SECONDS 300.0
/* How long one poll waits at most, so that scheduled retries start on time. */
#define POLL_MILLISECONDS 200
/* Server messages quoted in errors at most. */
#define QUOTE_BYTES 300

struct ag_chat_http {
  char *url; /* BASE/chat/completions */
  char *model;
  char *authorization; /* "Authorization: Bearer KEY", or NULL */
  char *api_key_env;
  double timeout_seconds, connect_timeout_seconds, backoff_seconds;
  int retries, concurrency;
  CURLM *multi; /* kept across calls: its connections are reused */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_status;
static void curl_init(void) { curl_init_status = curl_global_init(CURL_GLOBAL_DEFAULT); }

static char *copy_string(const char *s) {
  size_t n = strlen(s);
  char *c = malloc(n + 1);
  if (c) memcpy(c, s, n + 1);
  return c;
}

uint64_t ag_chat_http_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed;
  if (stream != 0) { /* splitmix64 of both */
    z = seed ^ (stream * 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
  }
  return z & 0x7FFFFFFFFFFFFFFFull;
}

void ag_chat_http_close(ag_chat_http *h) {
  if (!h) return;
  if (h->multi) curl_multi_cleanup(h->multi);
  free(h->url);
  free(h->model);
  free(h->authorization);
  free(h->api_key_env);
  free(h);
}

ag_status ag_chat_http_open(const char *url, const char *model, const ag_chat_model_options *o,
                            ag_chat_http **out) {
  *out = NULL;
  ag_chat_model_options d = ag_chat_model_defaults();
  if (!o) o = &d;
  if (o->retries < 0 || o->backoff_seconds < 0 || o->concurrency < 0 || o->timeout_seconds < 0 ||
      o->connect_timeout_seconds < 0)
    return ag_error_set(AG_ERR_INVALID,
                        "endpoint %s: retries %d, backoff %g s, concurrency %d or timeouts %g s / "
                        "%g s out of range",
                        url, o->retries, o->backoff_seconds, o->concurrency, o->timeout_seconds,
                        o->connect_timeout_seconds);
  pthread_once(&curl_once, curl_init);
  if (curl_init_status != CURLE_OK)
    return ag_error_set(AG_ERR_INTERNAL, "endpoint %s: libcurl failed to start: %s", url,
                        curl_easy_strerror(curl_init_status));
  ag_chat_http *h = calloc(1, sizeof *h);
  if (!h) return ag_error_set(AG_ERR_NOMEM, "endpoint: out of memory");
  size_t n = strlen(url);
  while (n > 0 && url[n - 1] == '/') n--;
  static const char PATH[] = "/chat/completions";
  h->url = malloc(n + sizeof PATH);
  if (h->url) {
    memcpy(h->url, url, n);
    memcpy(h->url + n, PATH, sizeof PATH);
  }
  h->model = copy_string(model);
  h->api_key_env = copy_string(o->api_key_env ? o->api_key_env : d.api_key_env);
  /* Zero means "the default": a zeroed options struct must not mean "wait forever". */
  h->timeout_seconds = o->timeout_seconds > 0 ? o->timeout_seconds : d.timeout_seconds;
  h->connect_timeout_seconds =
      o->connect_timeout_seconds > 0 ? o->connect_timeout_seconds : d.connect_timeout_seconds;
  h->backoff_seconds = o->backoff_seconds;
  h->retries = o->retries;
  h->concurrency = o->concurrency > 0 ? o->concurrency : d.concurrency;
  h->multi = curl_multi_init();
  bool ok = h->url && h->model && h->api_key_env && h->multi;
  const char *key = ok ? getenv(h->api_key_env) : NULL;
  if (ok && key && key[0]) {
    static const char PREFIX[] = "Authorization: Bearer ";
    h->authorization = malloc(sizeof PREFIX + strlen(key));
    ok = h->authorization != NULL;
    if (ok) {
      memcpy(h->authorization, PREFIX, sizeof PREFIX - 1);
      memcpy(h->authorization + sizeof PREFIX - 1, key, strlen(key) + 1);
    }
  }
  if (!ok) {
    ag_chat_http_close(h);
    return ag_error_set(AG_ERR_NOMEM, "endpoint %s: out of memory", url);
  }
  *out = h;
  return AG_OK;
}

/* ---- request bodies ----------------------------------------------------------------- */

/* A float as the short decimal it was written as (0.7f sends 0.7). */
static json_t *json_float(float x) {
  char text[32];
  snprintf(text, sizeof text, "%.7g", (double)x);
  return json_real(strtod(text, NULL));
}

static char *request_body(const ag_chat_http *h, const ag_chat_conversation *c,
                          const ag_chat_params *p) {
  json_t *root = json_object(), *messages = json_array();
  if (!root || !messages) {
    json_decref(root);
    json_decref(messages);
    return NULL;
  }
  /* json_string is NULL for text that is not UTF-8: then setting fails. */
  bool ok = !json_object_set_new(root, "model", json_string(h->model));
  for (int i = 0; ok && i < c->count; i++) {
    const ag_chat_message *m = &c->messages[i];
    json_t *item = json_object();
    ok = item && !json_object_set_new(item, "role", json_string(m->role)) &&
         !json_object_set_new(item, "content", json_string(m->content)) &&
         (!m->name || !json_object_set_new(item, "name", json_string(m->name)));
    ok = !json_array_append_new(messages, item) && ok;
  }
  ok = !json_object_set_new(root, "messages", messages) && ok;
  if (ok && p->stop_count > 0) {
    json_t *stop = json_array();
    for (int i = 0; ok && i < p->stop_count; i++)
      ok = !json_array_append_new(stop, json_string(p->stop[i]));
    ok = !json_object_set_new(root, "stop", stop) && ok;
  }
  if (!ok) {
    json_decref(root);
    return NULL;
  }
  const ag_sampling *s = &p->sampling;
  json_object_set_new(root, "temperature", json_float(s->temperature));
  json_object_set_new(root, "top_p", json_float(s->top_p));
  json_object_set_new(root, "max_tokens", json_integer((json_int_t)p->max_tokens));
  json_object_set_new(root, "seed",
                      json_integer((json_int_t)ag_chat_http_seed(p->seed, c->stream)));
  /* Not in OpenAI's API: sent only when they change something (vLLM,
   * llama.cpp and agora serve read them). */
  if (s->top_k != 0) json_object_set_new(root, "top_k", json_integer(s->top_k));
  if (s->min_p != 0) json_object_set_new(root, "min_p", json_float(s->min_p));
  if (s->repetition_penalty != 1)
    json_object_set_new(root, "repetition_penalty", json_float(s->repetition_penalty));
  char *body = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  return body;
}

/* ---- one request --------------------------------------------------------------------- */

typedef enum request_state { WAITING, RUNNING, DONE } request_state;

typedef struct request {
  CURL *easy;
  char *body; /* NULL when the JSON could not be built (strings not UTF-8) */
  char *data; /* the response */
  size_t size, capacity;
  bool too_large;
  double retry_after_seconds; /* the last response's Retry-After, -1: none */
  int tries;
  double start_at; /* monotonic seconds: not before */
  request_state state;
  char curl_error[CURL_ERROR_SIZE];
} request;

static size_t on_body(char *bytes, size_t size, size_t count, void *user) {
  request *r = user;
  size_t n = size * count;
  if (r->size + n + 1 > MAX_RESPONSE_BYTES) {
    r->too_large = true;
    return 0; /* ends the transfer with CURLE_WRITE_ERROR */
  }
  if (r->size + n + 1 > r->capacity) {
    size_t cap = r->capacity ? r->capacity : 4096;
    while (cap < r->size + n + 1) cap *= 2;
    char *grown = realloc(r->data, cap);
    if (!grown) return 0;
    r->data = grown;
    r->capacity = cap;
  }
  memcpy(r->data + r->size, bytes, n);
  r->size += n;
  r->data[r->size] = '\0';
  return n;
}

static size_t on_header(char *bytes, size_t size, size_t count, void *user) {
  request *r = user;
  size_t n = size * count;
  static const char NAME[] = "retry-after:";
  if (n > sizeof NAME - 1) {
    bool match = true;
    for (size_t i = 0; i < sizeof NAME - 1 && match; i++)
      match = tolower((unsigned char)bytes[i]) == NAME[i];
    if (match) { /* delta-seconds; an HTTP-date falls back to our backoff */
      char value[64];
      size_t k =
          n - (sizeof NAME - 1) < sizeof value - 1 ? n - (sizeof NAME - 1) : sizeof value - 1;
      memcpy(value, bytes + sizeof NAME - 1, k);
      value[k] = '\0';
      char *end = NULL;
      double seconds = strtod(value, &end);
      while (end && (*end == ' ' || *end == '\r' || *end == '\n')) end++;
      if (end && end != value && !*end && seconds >= 0)
        r->retry_after_seconds =
            seconds < MAX_RETRY_AFTER_SECONDS ? seconds : MAX_RETRY_AFTER_SECONDS;
    }
  }
  return n;
}

static ag_status prepare(const ag_chat_http *h, request *r, struct curl_slist *headers) {
  r->easy = curl_easy_init();
  if (!r->easy) return ag_error_set(AG_ERR_NOMEM, "endpoint %s: out of memory", h->url);
  CURL *e = r->easy;
  curl_easy_setopt(e, CURLOPT_URL, h->url);
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(r->body));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->curl_error);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM: we may run on any thread */
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(h->timeout_seconds * 1000));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(h->connect_timeout_seconds * 1000));
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  return AG_OK;
}

/* The server's own words from an error body: OpenAI's error.message, a
 * plain "error" string, or the start of the body. */
static void server_message(const request *r, char *out, size_t size) {
  out[0] = '\0';
  if (!r->data || !r->size) return;
  json_t *root = json_loadb(r->data, r->size, 0, NULL);
  json_t *error = json_object_get(root, "error");
  const char *text = json_is_string(error) ? json_string_value(error)
                                           : json_string_value(json_object_get(error, "message"));
  if (!text) text = json_string_value(json_object_get(root, "message"));
  if (text) {
    snprintf(out, size, "%.*s", QUOTE_BYTES, text);
  } else {
    snprintf(out, size, "%.*s", (int)(r->size < QUOTE_BYTES ? r->size : QUOTE_BYTES), r->data);
  }
  json_decref(root);
  for (char *c = out; *c; c++)
    if (*c == '\n' || *c == '\r') *c = ' ';
}

static ag_status parse_reply(const ag_chat_http *h, const request *r, ag_chat_reply *out) {
  json_error_t err;
  json_t *root = json_loadb(r->data ? r->data : "", r->size, 0, &err);
  json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
  json_t *content = json_object_get(json_object_get(choice, "message"), "content");
  ag_status st = AG_OK;
  if (!root) {
    st = ag_error_set(AG_ERR_FORMAT, "endpoint %s: the reply is not JSON (%s): %.*s", h->url,
                      err.text, (int)(r->size < 200 ? r->size : 200), r->data ? r->data : "");
  } else if (!choice || !(json_is_string(content) || json_is_null(content))) {
    st = ag_error_set(AG_ERR_FORMAT,
                      "endpoint %s: the reply has no choices[0].message.content string", h->url);
  } else {
    const char *text = json_is_string(content) ? json_string_value(content) : "";
    size_t bytes = json_is_string(content) ? json_string_length(content) : 0;
    out->content = malloc(bytes + 1);
    if (!out->content) {
      st = ag_error_set(AG_ERR_NOMEM, "endpoint: out of memory");
    } else {
      memcpy(out->content, text, bytes);
      out->content[bytes] = '\0';
      const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
      out->finish = finish && !strcmp(finish, "length") ? AG_FINISH_LENGTH : AG_FINISH_EOS;
      json_t *usage = json_object_get(root, "usage");
      out->prompt_tokens = json_integer_value(json_object_get(usage, "prompt_tokens"));
      out->completion_tokens = json_integer_value(json_object_get(usage, "completion_tokens"));
    }
  }
  json_decref(root);
  return st;
}

static bool retryable_transfer(CURLcode c) {
  return c == CURLE_COULDNT_CONNECT || c == CURLE_OPERATION_TIMEDOUT || c == CURLE_GOT_NOTHING ||
         c == CURLE_RECV_ERROR || c == CURLE_SEND_ERROR || c == CURLE_PARTIAL_FILE;
}

static const char *transfer_words(CURLcode c) {
  switch (c) {
  case CURLE_COULDNT_CONNECT: return "connection refused or unreachable";
  case CURLE_OPERATION_TIMEDOUT: return "timed out";
  case CURLE_GOT_NOTHING: return "the server closed the connection without a reply";
  case CURLE_COULDNT_RESOLVE_HOST: return "unknown host";
  default: return "transfer failed";
  }
}

static const char *tries_word(const request *r) { return r->tries == 1 ? "try" : "tries"; }

/* What a finished transfer means: AG_OK with out filled, AG_OK with
 * *retry set (try again), or an error. */
static ag_status finish(const ag_chat_http *h, request *r, CURLcode code, int64_t index,
                        ag_chat_reply *out, bool *retry) {
  *retry = false;
  bool last = r->tries > h->retries;
  char detail[QUOTE_BYTES + 64];
  if (code == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) return parse_reply(h, r, out);
    server_message(r, detail, sizeof detail);
    if ((status == 429 || status >= 500) && !last) {
      *retry = true;
      return AG_OK;
    }
    if (status == 429 || status >= 500)
      return ag_error_set(AG_ERR_IO, "endpoint %s: HTTP %ld after %d %s (conversation %lld): %s",
                          h->url, status, r->tries, tries_word(r), (long long)index, detail);
    const char *hint = status == 401 || status == 403 ? " (check the API key in $" : "";
    return ag_error_set(AG_ERR_INVALID, "endpoint %s: HTTP %ld (conversation %lld): %s%s%s%s",
                        h->url, status, (long long)index, detail, hint,
                        hint[0] ? h->api_key_env : "", hint[0] ? ")" : "");
  }
  if (r->too_large)
    return ag_error_set(AG_ERR_FORMAT, "endpoint %s: the reply is larger than %zu MiB", h->url,
                        MAX_RESPONSE_BYTES >> 20);
  if (retryable_transfer(code) && !last) {
    *retry = true;
    return AG_OK;
  }
  if (code == CURLE_OPERATION_TIMEDOUT)
    return ag_error_set(AG_ERR_IO, "endpoint %s: timed out after %g s, %d %s (%s)", h->url,
                        h->timeout_seconds, r->tries, tries_word(r),
                        r->curl_error[0] ? r->curl_error : curl_easy_strerror(code));
  return ag_error_set(AG_ERR_IO, "endpoint %s: %s after %d %s (%s)", h->url, transfer_words(code),
                      r->tries, tries_word(r),
                      r->curl_error[0] ? r->curl_error : curl_easy_strerror(code));
}

/* ---- the calls ----------------------------------------------------------------------- */

static double backoff_for(const ag_chat_http *h, const request *r) {
  if (r->retry_after_seconds >= 0) return r->retry_after_seconds;
  double wait = h->backoff_seconds;
  for (int i = 1; i < r->tries; i++) wait *= 2;
  return wait;
}

/* Starts (or restarts) the transfer of r. */
static ag_status launch(ag_chat_http *h, request *r) {
  r->size = 0;
  r->too_large = false;
  r->retry_after_seconds = -1;
  r->curl_error[0] = '\0';
  r->tries++;
  r->state = RUNNING;
  CURLMcode mc = curl_multi_add_handle(h->multi, r->easy);
  if (mc != CURLM_OK)
    return ag_error_set(AG_ERR_INTERNAL, "endpoint %s: %s", h->url, curl_multi_strerror(mc));
  return AG_OK;
}

ag_status ag_chat_http_reply(ag_chat_http *h, const ag_chat_conversation *convs, int64_t n,
                             const ag_chat_params *params, ag_chat_reply *out) {
  request *reqs = calloc((size_t)n, sizeof *reqs);
  struct curl_slist *headers = NULL, *grown;
  ag_status st = reqs ? AG_OK : ag_error_set(AG_ERR_NOMEM, "endpoint: out of memory");
  const char *header_lines[] = {"Content-Type: application/json", "Accept: application/json",
                                "Expect:", h->authorization};
  for (size_t i = 0; !st && i < sizeof header_lines / sizeof *header_lines; i++) {
    if (!header_lines[i]) continue;
    grown = curl_slist_append(headers, header_lines[i]);
    if (!grown) st = ag_error_set(AG_ERR_NOMEM, "endpoint: out of memory");
    headers = grown ? grown : headers;
  }
  for (int64_t i = 0; !st && i < n; i++) {
    reqs[i].body = request_body(h, &convs[i], params);
    if (!reqs[i].body)
      st = ag_error_set(AG_ERR_INVALID,
                        "endpoint %s: conversation %lld cannot be sent as JSON (is its text "
                        "UTF-8?)",
                        h->url, (long long)i);
    if (!st) st = prepare(h, &reqs[i], headers);
  }
  int64_t done = 0, running = 0;
  while (!st && done < n) {
    double now = ag_time_seconds(), next_start = -1;
    for (int64_t i = 0; !st && i < n && running < h->concurrency; i++) {
      if (reqs[i].state != WAITING) continue;
      if (reqs[i].start_at <= now) {
        st = launch(h, &reqs[i]);
        running++;
      }
    }
    for (int64_t i = 0; i < n; i++)
      if (reqs[i].state == WAITING && reqs[i].start_at > now &&
          (next_start < 0 || reqs[i].start_at < next_start))
        next_start = reqs[i].start_at;
    if (st) break;
    int still = 0;
    CURLMcode mc = curl_multi_perform(h->multi, &still);
    if (mc != CURLM_OK) {
      st = ag_error_set(AG_ERR_INTERNAL, "endpoint %s: %s", h->url, curl_multi_strerror(mc));
      break;
    }
    CURLMsg *msg;
    int left;
    while (!st && (msg = curl_multi_info_read(h->multi, &left))) {
      if (msg->msg != CURLMSG_DONE) continue;
      char *private_data = NULL;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &private_data);
      request *r = (request *)(void *)private_data;
      CURLcode code = msg->data.result;
      curl_multi_remove_handle(h->multi, r->easy);
      running--;
      int64_t index = r - reqs;
      bool retry = false;
      st = finish(h, r, code, index, &out[index], &retry);
      if (!st && retry) {
        r->state = WAITING;
        r->start_at = ag_time_seconds() + backoff_for(h, r);
        ag_debug("endpoint %s: conversation %lld: try %d failed; retrying", h->url,
                 (long long)index, r->tries);
      } else {
        r->state = DONE;
        done++;
      }
    }
    if (st || done == n) break;
    int wait_ms = POLL_MILLISECONDS;
    if (next_start >= 0) {
      double until = (next_start - ag_time_seconds()) * 1000;
      if (until < wait_ms) wait_ms = until > 0 ? (int)until + 1 : 0;
    }
    if (running > 0 || wait_ms > 0) curl_multi_poll(h->multi, NULL, 0, wait_ms, NULL);
  }
  for (int64_t i = 0; reqs && i < n; i++) {
    if (reqs[i].state == RUNNING) curl_multi_remove_handle(h->multi, reqs[i].easy);
    if (reqs[i].easy) curl_easy_cleanup(reqs[i].easy);
    free(reqs[i].body);
    free(reqs[i].data);
  }
  curl_slist_free_all(headers);
  free(reqs);
  return st;
}
