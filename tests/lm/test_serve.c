/* agora's server and HTTP client together: a real server on a free port
 * serving stories260K, the endpoint client against it (the same text as the
 * local engine, concurrent requests), raw requests through libcurl (the
 * OpenAI response and error shapes, 400 / 404 / 405 / 413), and the
 * client's retries: nothing listening, a server that never answers, a 503
 * with Retry-After, and a 4xx that is not retried; what the client sends
 * (API key, fields) and its concurrency bound. */
#include "agora/chat_model.h"
#include "agora/serve.h"
#include "test.h"

#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STORIES_DIR "../shared/data/models/stories260K"
/* Every raw request gives up after this: a test never hangs. */
#define HTTP_TIMEOUT_SECONDS 30L
#define SMALL_BODY_LIMIT     (64 * 1024)

static ag_lm *lm;
static ag_server *server;    /* plain template, 64 KiB bodies */
static ag_server *bare;      /* no chat template */
static ag_chat_model *local; /* the local engine on the same model */
static char base_url[128];   /* http://127.0.0.1:PORT */

/* ---- raw HTTP -------------------------------------------------------------------------- */

typedef struct http_result {
  long status;
  char *body;
  size_t size;
  json_t *json; /* the body parsed, or NULL */
} http_result;

static size_t collect(char *bytes, size_t size, size_t count, void *user) {
  http_result *r = user;
  size_t n = size * count;
  char *grown = realloc(r->body, r->size + n + 1);
  if (!grown) return 0;
  r->body = grown;
  memcpy(r->body + r->size, bytes, n);
  r->size += n;
  r->body[r->size] = '\0';
  return n;
}

/* One request to base + path; body NULL: GET. chunked: no Content-Length. */
static http_result request(const char *base, const char *method, const char *path, const char *body,
                           size_t body_bytes, bool chunked) {
  http_result r = {0};
  char url[256];
  snprintf(url, sizeof url, "%s%s", base, path);
  CURL *e = curl_easy_init();
  struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
  if (chunked) headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  if (body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    if (!chunked) curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_bytes);
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, HTTP_TIMEOUT_SECONDS);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(e);
  CHECK_MSG(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r.status);
  if (r.body) r.json = json_loadb(r.body, r.size, 0, NULL);
  curl_slist_free_all(headers);
  curl_easy_cleanup(e);
  return r;
}

static http_result post(const char *path, const char *body) {
  return request(base_url, "POST", path, body, strlen(body), false);
}

static void result_free(http_result *r) {
  free(r->body);
  json_decref(r->json);
  memset(r, 0, sizeof *r);
}

/* status and the OpenAI error shape: {"error":{"message","type","param","code"}}. */
static void check_error(const http_result *r, long status, const char *param, const char *words,
                        int line) {
  json_t *error = json_object_get(r->json, "error");
  const char *message = json_string_value(json_object_get(error, "message"));
  const char *type = json_string_value(json_object_get(error, "type"));
  json_t *p = json_object_get(error, "param");
  bool ok = r->status == status && message && type && json_object_get(error, "code") && p &&
            (param ? json_is_string(p) && !strcmp(json_string_value(p), param) : json_is_null(p)) &&
            (!words || strstr(message, words)) &&
            !strcmp(type, status >= 500 ? "server_error" : "invalid_request_error");
  CHECK_MSG(ok, "line %d: HTTP %ld (want %ld, param %s, '%s'): %s", line, r->status, status,
            param ? param : "null", words ? words : "", r->body ? r->body : "(no body)");
}
#define CHECK_ERROR(r, status, param, words) check_error(&(r), status, param, words, __LINE__)

/* ---- setup ----------------------------------------------------------------------------- */

static bool start(void) {
  if (!ag_file_exists(STORIES_DIR "/model.safetensors")) {
    fprintf(stderr, "  note: %s not found; skipped\n", STORIES_DIR);
    return false;
  }
  if (ag_lm_open(STORIES_DIR, &lm)) {
    fprintf(stderr, "%s\n", ag_error_message());
    return false;
  }
  ag_server_options o = ag_server_defaults();
  o.port = 0;
  o.chat_template = "plain";
  o.max_body_bytes = SMALL_BODY_LIMIT;
  o.model_name = "stories";
  ag_server_options b = ag_server_defaults();
  b.port = 0;
  ag_chat_model_options c = ag_chat_model_defaults();
  c.chat_template = "plain";
  if (ag_server_start(lm, &o, &server) || ag_server_start(lm, &b, &bare) ||
      ag_chat_model_open(STORIES_DIR, &c, &local)) {
    fprintf(stderr, "%s\n", ag_error_message());
    return false;
  }
  snprintf(base_url, sizeof base_url, "http://127.0.0.1:%d", ag_server_port(server));
  return true;
}

static ag_chat_model *client(const char *url_and_name, int retries, double backoff) {
  ag_chat_model_options o = ag_chat_model_defaults();
  o.retries = retries;
  o.backoff_seconds = backoff;
  o.timeout_seconds = HTTP_TIMEOUT_SECONDS;
  ag_chat_model *m = NULL;
  CHECK_OK(ag_chat_model_open(url_and_name, &o, &m));
  return m;
}

static ag_chat_model *agora_client(void) {
  char spec[160];
  snprintf(spec, sizeof spec, "%s/v1#stories", base_url);
  return client(spec, 2, 0.05);
}

static const ag_chat_message STORY[] = {
    {"system", "You tell short stories.", NULL},
    {"user", "Tell me about a cat.", "kim"},
};

/* ---- the client against the server ------------------------------------------------------ */

TEST(the_client_gets_the_local_engines_reply_greedy_and_sampled) {
  ag_chat_model *m = agora_client();
  ag_chat_conversation c = {STORY, 2, 0};
  ag_chat_params p = ag_chat_params_defaults();
  p.sampling.temperature = 0;
  p.max_tokens = 40;
  for (int sampled = 0; sampled < 2; sampled++) {
    if (sampled) { /* stream 0 sends the seed itself: the server samples alike */
      p.sampling.temperature = 1;
      p.sampling.top_k = 40;
      p.seed = 5;
    }
    ag_chat_reply remote = {0}, mine = {0};
    CHECK_OK(ag_chat_model_reply(m, &c, 1, &p, &remote));
    CHECK_OK(ag_chat_model_reply(local, &c, 1, &p, &mine));
    CHECK_MSG(remote.content && mine.content && !strcmp(remote.content, mine.content),
              "sampled %d: remote '%s' local '%s'", sampled, remote.content, mine.content);
    CHECK(remote.prompt_tokens == mine.prompt_tokens &&
          remote.completion_tokens == mine.completion_tokens);
    CHECK(remote.finish == (mine.finish == AG_FINISH_LENGTH ? AG_FINISH_LENGTH : AG_FINISH_EOS));
    ag_chat_reply_clear(&remote, 1);
    ag_chat_reply_clear(&mine, 1);
  }
  ag_chat_model_close(m);
}

TEST(eight_concurrent_requests_are_all_answered_with_their_own_text) {
  ag_chat_model *m = agora_client();
  enum { N = 8 };
  static const char *const subjects[N] = {"a cat",  "a dog",   "a bird", "a fish",
                                          "a tree", "the sun", "a boat", "a cake"};
  ag_chat_message msgs[N][1];
  char texts[N][64];
  ag_chat_conversation convs[N];
  for (int i = 0; i < N; i++) {
    snprintf(texts[i], sizeof texts[i], "Tell me about %s.", subjects[i]);
    msgs[i][0] = (ag_chat_message){"user", texts[i], NULL};
    convs[i] = (ag_chat_conversation){msgs[i], 1, 0};
  }
  ag_chat_params p = ag_chat_params_defaults();
  p.sampling.temperature = 0;
  p.max_tokens = 30;
  ag_chat_reply remote[N] = {{0}}, mine[N] = {{0}};
  double t0 = ag_time_seconds();
  CHECK_OK(ag_chat_model_reply(m, convs, N, &p, remote));
  double seconds = ag_time_seconds() - t0;
  CHECK_OK(ag_chat_model_reply(local, convs, N, &p, mine));
  for (int i = 0; i < N; i++)
    CHECK_MSG(remote[i].content && mine[i].content && !strcmp(remote[i].content, mine[i].content),
              "conversation %d: remote '%s' local '%s'", i, remote[i].content, mine[i].content);
  fprintf(stderr, "  8 concurrent chat requests: %.3f s\n", seconds);
  ag_chat_reply_clear(remote, N);
  ag_chat_reply_clear(mine, N);
  ag_chat_model_close(m);
}

/* ---- raw requests ------------------------------------------------------------------------ */

TEST(completions_equal_ag_generate_for_a_string_and_a_list) {
  http_result r = post("/v1/completions", "{\"model\":\"x\",\"prompt\":[\"Once upon a time\",\"The "
                                          "cat\"],\"temperature\":0,\"max_tokens\":20}");
  const char *prompts[] = {"Once upon a time", "The cat"};
  ag_generate_options o = ag_generate_defaults();
  o.sampling.temperature = 0;
  o.max_new_tokens = 20;
  ag_generation g[2] = {0};
  CHECK_OK(ag_generate(lm, prompts, 2, &o, g));
  json_t *choices = json_object_get(r.json, "choices");
  CHECK_MSG(r.status == 200 && json_array_size(choices) == 2, "%ld %s", r.status, r.body);
  CHECK(!strcmp(json_string_value(json_object_get(r.json, "object")), "text_completion"));
  CHECK(!strcmp(json_string_value(json_object_get(r.json, "model")), "stories"));
  int64_t prompt_tokens = 0, completion_tokens = 0;
  for (size_t i = 0; i < 2 && i < json_array_size(choices); i++) {
    json_t *c = json_array_get(choices, i);
    const char *text = json_string_value(json_object_get(c, "text"));
    CHECK_MSG(text && g[i].text.data && !strcmp(text, g[i].text.data), "'%s' vs '%s'", text,
              g[i].text.data);
    CHECK(json_integer_value(json_object_get(c, "index")) == (json_int_t)i);
    const char *finish = json_string_value(json_object_get(c, "finish_reason"));
    CHECK(finish && !strcmp(finish, g[i].finish == AG_FINISH_LENGTH ? "length" : "stop"));
    prompt_tokens += g[i].prompt_tokens;
    completion_tokens += g[i].tokens.count;
  }
  json_t *usage = json_object_get(r.json, "usage");
  CHECK(json_integer_value(json_object_get(usage, "prompt_tokens")) == prompt_tokens);
  CHECK(json_integer_value(json_object_get(usage, "completion_tokens")) == completion_tokens);
  CHECK(json_integer_value(json_object_get(usage, "total_tokens")) ==
        prompt_tokens + completion_tokens);
  result_free(&r);
  /* a single string is the first prompt alone */
  r = post("/v1/completions",
           "{\"prompt\":\"Once upon a time\",\"temperature\":0,\"max_tokens\":20}");
  const char *text = json_string_value(
      json_object_get(json_array_get(json_object_get(r.json, "choices"), 0), "text"));
  CHECK(r.status == 200 && text && g[0].text.data && !strcmp(text, g[0].text.data));
  result_free(&r);
  /* a stop string ends the text before it, finish "stop" */
  r = post("/v1/completions",
           "{\"prompt\":\"Once upon a time\",\"temperature\":0,\"max_tokens\":20,"
           "\"stop\":\"there\"}");
  json_t *c0 = json_array_get(json_object_get(r.json, "choices"), 0);
  text = json_string_value(json_object_get(c0, "text"));
  CHECK_MSG(r.status == 200 && text && !strstr(text, "there") &&
                !strcmp(json_string_value(json_object_get(c0, "finish_reason")), "stop"),
            "%s", r.body);
  result_free(&r);
  ag_generation_free(g, 2);
}

TEST(chat_responses_have_the_openai_shape_and_n_choices_differ) {
  http_result r = post("/v1/chat/completions",
                       "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                       "\"text\",\"text\":\"Hi\"}]}],\"max_tokens\":12,\"n\":3,\"seed\":4}");
  CHECK_MSG(r.status == 200, "%ld %s", r.status, r.body);
  CHECK(!strcmp(json_string_value(json_object_get(r.json, "object")), "chat.completion"));
  const char *id = json_string_value(json_object_get(r.json, "id"));
  CHECK(id && !strncmp(id, "chatcmpl-", 9));
  json_t *choices = json_object_get(r.json, "choices");
  CHECK(json_array_size(choices) == 3);
  const char *texts[3] = {0};
  for (size_t i = 0; i < 3 && i < json_array_size(choices); i++) {
    json_t *message = json_object_get(json_array_get(choices, i), "message");
    CHECK(!strcmp(json_string_value(json_object_get(message, "role")), "assistant"));
    texts[i] = json_string_value(json_object_get(message, "content"));
    CHECK(texts[i] != NULL);
  }
  CHECK(texts[0] && texts[1] && texts[2] &&
        (strcmp(texts[0], texts[1]) || strcmp(texts[1], texts[2])));
  /* choice 0 is the local engine's stream 0 at the same seed */
  ag_chat_message hi[] = {{"user", "Hi", NULL}};
  ag_chat_conversation c = {hi, 1, 0};
  ag_chat_params p = ag_chat_params_defaults();
  p.max_tokens = 12;
  p.seed = 4;
  ag_chat_reply mine = {0};
  CHECK_OK(ag_chat_model_reply(local, &c, 1, &p, &mine));
  CHECK_MSG(texts[0] && mine.content && !strcmp(texts[0], mine.content), "'%s' vs '%s'", texts[0],
            mine.content);
  ag_chat_reply_clear(&mine, 1);
  result_free(&r);
}

TEST(models_and_health_answer_get) {
  http_result r = request(base_url, "GET", "/health", NULL, 0, false);
  CHECK(r.status == 200 && !strcmp(json_string_value(json_object_get(r.json, "status")), "ok"));
  result_free(&r);
  r = request(base_url, "GET", "/v1/models", NULL, 0, false);
  json_t *first = json_array_get(json_object_get(r.json, "data"), 0);
  CHECK_MSG(r.status == 200 &&
                !strcmp(json_string_value(json_object_get(r.json, "object")), "list") &&
                !strcmp(json_string_value(json_object_get(first, "id")), "stories") &&
                !strcmp(json_string_value(json_object_get(first, "object")), "model"),
            "%s", r.body);
  result_free(&r);
}

TEST(bad_requests_get_400_404_405_with_the_error_body) {
  http_result r = post("/v1/chat/completions", "{\"messages\": [");
  CHECK_ERROR(r, 400, NULL, "not valid JSON");
  result_free(&r);
  r = post("/v1/chat/completions", "[1, 2]");
  CHECK_ERROR(r, 400, NULL, "JSON object");
  result_free(&r);
  r = post("/v1/chat/completions", "{}");
  CHECK_ERROR(r, 400, "messages", "required");
  result_free(&r);
  r = post("/v1/chat/completions", "{\"messages\": \"hello\"}");
  CHECK_ERROR(r, 400, "messages", NULL);
  result_free(&r);
  r = post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}");
  CHECK_ERROR(r, 400, "messages", "content");
  result_free(&r);
  r = post("/v1/chat/completions",
           "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"temperature\": \"hot\"}");
  CHECK_ERROR(r, 400, "temperature", "number");
  result_free(&r);
  r = post("/v1/chat/completions",
           "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": -5}");
  CHECK_ERROR(r, 400, "max_tokens", "-5");
  result_free(&r);
  r = post("/v1/chat/completions",
           "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 100000}");
  CHECK_ERROR(r, 400, "max_tokens", "512");
  result_free(&r);
  r = post("/v1/chat/completions",
           "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"top_p\": 0}");
  CHECK_ERROR(r, 400, "top_p", NULL);
  result_free(&r);
  r = post("/v1/chat/completions",
           "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"stream\": true}");
  CHECK_ERROR(r, 400, "stream", NULL);
  result_free(&r);
  r = post("/v1/chat/completions", "{\"messages\": [{\"role\": \"tool\", \"content\": \"hi\"}]}");
  CHECK_ERROR(r, 400, "messages", "tool");
  result_free(&r);
  r = post("/v1/completions", "{\"prompt\": 42}");
  CHECK_ERROR(r, 400, "prompt", NULL);
  result_free(&r);
  /* a prompt longer than the context (512 tokens) */
  size_t n = 6000;
  char *body = malloc(n + 64);
  int at = snprintf(body, n + 64, "{\"prompt\": \"");
  for (size_t i = 0; i < n / 2; i++) at += snprintf(body + at, n + 64 - (size_t)at, "a ");
  snprintf(body + at, n + 64 - (size_t)at, "\"}");
  r = post("/v1/completions", body);
  CHECK_ERROR(r, 400, "prompt", "context length");
  CHECK(!strcmp(json_string_value(json_object_get(json_object_get(r.json, "error"), "code")),
                "context_length_exceeded"));
  result_free(&r);
  free(body);
  r = request(base_url, "GET", "/v1/nothing", NULL, 0, false);
  CHECK_ERROR(r, 404, NULL, "/v1/nothing");
  result_free(&r);
  r = request(base_url, "GET", "/v1/chat/completions", NULL, 0, false);
  CHECK_ERROR(r, 405, NULL, "POST");
  result_free(&r);
  r = post("/v1/models", "{}");
  CHECK_ERROR(r, 405, NULL, "GET");
  result_free(&r);
  /* chat on a model with no template and no --chat-template */
  char bare_url[64];
  snprintf(bare_url, sizeof bare_url, "http://127.0.0.1:%d", ag_server_port(bare));
  const char *chat = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}";
  r = request(bare_url, "POST", "/v1/chat/completions", chat, strlen(chat), false);
  CHECK_ERROR(r, 400, NULL, "--chat-template");
  result_free(&r);
  /* ... whose completions still work */
  const char *completion = "{\"prompt\": \"The cat\", \"max_tokens\": 5}";
  r = request(bare_url, "POST", "/v1/completions", completion, strlen(completion), false);
  CHECK_MSG(r.status == 200, "%ld %s", r.status, r.body);
  result_free(&r);
}

TEST(an_oversized_body_gets_413_and_the_server_goes_on) {
  size_t n = SMALL_BODY_LIMIT * 4;
  char *body = malloc(n + 1);
  memset(body, ' ', n);
  body[0] = '{';
  body[n - 1] = '}';
  body[n] = '\0';
  for (int chunked = 0; chunked < 2; chunked++) {
    http_result r = request(base_url, "POST", "/v1/chat/completions", body, n, chunked);
    CHECK_ERROR(r, 413, NULL, "limit");
    result_free(&r);
  }
  /* one byte under the limit is read (and is then just an empty request) */
  body[SMALL_BODY_LIMIT - 1] = '}';
  http_result r = request(base_url, "POST", "/v1/chat/completions", body, SMALL_BODY_LIMIT, false);
  CHECK_ERROR(r, 400, "messages", NULL);
  result_free(&r);
  free(body);
  r = request(base_url, "GET", "/health", NULL, 0, false);
  CHECK(r.status == 200);
  result_free(&r);
}

/* ---- the client's failures and retries ------------------------------------------------------ */

/* A local port with nothing listening (bound, then closed). */
static int unused_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(fd, (struct sockaddr *)&a, sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  close(fd);
  return ntohs(a.sin_port);
}

TEST(nothing_listening_is_an_error_after_the_retries_naming_the_url) {
  char spec[128];
  int port = unused_port();
  snprintf(spec, sizeof spec, "http://127.0.0.1:%d/v1#m", port);
  ag_chat_model *m = client(spec, 3, 0.01);
  ag_chat_conversation c = {STORY, 2, 0};
  ag_chat_params p = ag_chat_params_defaults();
  ag_chat_reply r[2] = {{0}};
  ag_chat_conversation two[2] = {c, c};
  double t0 = ag_time_seconds();
  CHECK(ag_chat_model_reply(m, two, 2, &p, r) == AG_ERR_IO);
  double seconds = ag_time_seconds() - t0;
  char url[96];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", port);
  CHECK_MSG(strstr(ag_error_message(), url) && strstr(ag_error_message(), "4 tries") &&
                strstr(ag_error_message(), "refused"),
            "%s", ag_error_message());
  /* 0.01 + 0.02 + 0.04 s of backoff */
  CHECK_MSG(seconds >= 0.07 && seconds < 5, "%.3f s", seconds);
  ag_chat_reply_clear(r, 2);
  ag_chat_model_close(m);
}

TEST(a_server_that_never_answers_times_out) {
  /* listening, never accepting: the connection opens and no reply comes */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(fd, (struct sockaddr *)&a, sizeof a);
  listen(fd, 8);
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  char spec[128];
  snprintf(spec, sizeof spec, "http://127.0.0.1:%d/v1#m", ntohs(a.sin_port));
  ag_chat_model_options o = ag_chat_model_defaults();
  o.timeout_seconds = 0.3;
  o.retries = 1;
  o.backoff_seconds = 0.01;
  ag_chat_model *m = NULL;
  CHECK_OK(ag_chat_model_open(spec, &o, &m));
  ag_chat_conversation c = {STORY, 2, 0};
  ag_chat_params p = ag_chat_params_defaults();
  ag_chat_reply r = {0};
  double t0 = ag_time_seconds();
  CHECK(ag_chat_model_reply(m, &c, 1, &p, &r) == AG_ERR_IO);
  double seconds = ag_time_seconds() - t0;
  CHECK_MSG(strstr(ag_error_message(), "timed out") && strstr(ag_error_message(), "127.0.0.1"),
            "%s", ag_error_message());
  CHECK_MSG(seconds >= 0.55 && seconds < 5, "%.3f s", seconds);
  ag_chat_reply_clear(&r, 1);
  ag_chat_model_close(m);
  close(fd);
}

/* A server that answers 503 (Retry-After: 1) to its first request, then a
 * canned chat completion; it counts requests. */
static int flaky_hits;
static enum MHD_Result flaky(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **state) {
  if (!*state) {
    *state = &flaky_hits;
    return MHD_YES;
  }
  if (*upload_size) {
    *upload_size = 0;
    return MHD_YES;
  }
  int hit = __atomic_add_fetch(&flaky_hits, 1, __ATOMIC_SEQ_CST);
  static const char busy[] = "{\"error\":{\"message\":\"busy\",\"type\":\"server_error\"}}";
  static const char ok[] = "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                           "\"content\":\"fine\"},\"finish_reason\":\"length\"}],\"usage\":{"
                           "\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}";
  const char *text = hit == 1 ? busy : ok;
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
  if (hit == 1) MHD_add_response_header(r, "Retry-After", "1");
  enum MHD_Result result = MHD_queue_response(c, hit == 1 ? 503 : 200, r);
  MHD_destroy_response(r);
  return result;
}

TEST(a_503_is_retried_after_the_servers_retry_after) {
  flaky_hits = 0;
  struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL,
                                          NULL, flaky, NULL, MHD_OPTION_END);
  CHECK(d != NULL);
  if (!d) return;
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  char spec[128];
  snprintf(spec, sizeof spec, "http://127.0.0.1:%u/v1/#m", (unsigned)info->port);
  ag_chat_model *m = client(spec, 2, 0.01);
  ag_chat_conversation c = {STORY, 2, 0};
  ag_chat_params p = ag_chat_params_defaults();
  ag_chat_reply r = {0};
  double t0 = ag_time_seconds();
  CHECK_OK(ag_chat_model_reply(m, &c, 1, &p, &r));
  double seconds = ag_time_seconds() - t0;
  CHECK(flaky_hits == 2);
  CHECK(r.content && !strcmp(r.content, "fine") && r.finish == AG_FINISH_LENGTH);
  CHECK(r.prompt_tokens == 3 && r.completion_tokens == 1);
  CHECK_MSG(seconds >= 0.9 && seconds < 10, "%.3f s: Retry-After 1 s should win over 0.01 s",
            seconds);
  ag_chat_reply_clear(&r, 1);
  /* with no retries left the 503 is the error, quoting the server */
  ag_chat_model_close(m);
  flaky_hits = 0;
  m = client(spec, 0, 0.01);
  CHECK(ag_chat_model_reply(m, &c, 1, &p, &r) == AG_ERR_IO);
  CHECK_MSG(strstr(ag_error_message(), "503") && strstr(ag_error_message(), "busy") &&
                strstr(ag_error_message(), "/v1/chat/completions"),
            "%s", ag_error_message());
  CHECK(flaky_hits == 1);
  ag_chat_reply_clear(&r, 1);
  ag_chat_model_close(m);
  MHD_stop_daemon(d);
}

TEST(a_4xx_is_not_retried_and_its_message_is_reported) {
  char spec[128];
  snprintf(spec, sizeof spec, "http://127.0.0.1:%d/v1#bare", ag_server_port(bare));
  ag_chat_model *m = client(spec, 3, 1.0); /* a retry would take a second at least */
  ag_chat_conversation c = {STORY, 2, 0};
  ag_chat_params p = ag_chat_params_defaults();
  ag_chat_reply r = {0};
  double t0 = ag_time_seconds();
  CHECK(ag_chat_model_reply(m, &c, 1, &p, &r) == AG_ERR_INVALID);
  double seconds = ag_time_seconds() - t0;
  CHECK_MSG(strstr(ag_error_message(), "HTTP 400") &&
                strstr(ag_error_message(), "no chat template") &&
                strstr(ag_error_message(), "127.0.0.1"),
            "%s", ag_error_message());
  CHECK_MSG(seconds < 0.9, "%.3f s", seconds);
  ag_chat_reply_clear(&r, 1);
  ag_chat_model_close(m);
}

/* A server that records what the client sends: each request's Authorization
 * header and JSON body, and how many requests were in flight at most. It
 * answers with the last message's content, after a short pause so that
 * requests overlap. */
enum { CAPTURE_MAX = 16 };
static struct {
  pthread_mutex_t lock;
  int count, in_flight, most_in_flight;
  json_t *bodies[CAPTURE_MAX];
  char authorization[CAPTURE_MAX][64];
} capture = {.lock = PTHREAD_MUTEX_INITIALIZER};

typedef struct capture_request {
  char *body;
  size_t size;
  char authorization[64];
} capture_request;

static enum MHD_Result capturing(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **state) {
  capture_request *q = *state;
  if (!q) {
    q = calloc(1, sizeof *q);
    if (!q) return MHD_NO;
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    snprintf(q->authorization, sizeof q->authorization, "%s", a ? a : "");
    *state = q;
    return MHD_YES;
  }
  if (*upload_size) {
    char *grown = realloc(q->body, q->size + *upload_size + 1);
    if (!grown) return MHD_NO;
    q->body = grown;
    memcpy(q->body + q->size, upload, *upload_size);
    q->size += *upload_size;
    *upload_size = 0;
    return MHD_YES;
  }
  json_t *body = json_loadb(q->body ? q->body : "", q->size, 0, NULL);
  pthread_mutex_lock(&capture.lock);
  if (capture.count < CAPTURE_MAX) {
    capture.bodies[capture.count] = json_incref(body);
    memcpy(capture.authorization[capture.count], q->authorization, sizeof q->authorization);
    capture.count++;
  }
  if (++capture.in_flight > capture.most_in_flight) capture.most_in_flight = capture.in_flight;
  pthread_mutex_unlock(&capture.lock);
  nanosleep(&(struct timespec){0, 60 * 1000 * 1000}, NULL);
  pthread_mutex_lock(&capture.lock);
  capture.in_flight--;
  pthread_mutex_unlock(&capture.lock);
  json_t *messages = json_object_get(body, "messages");
  json_t *last = json_array_get(messages, json_array_size(messages) - 1);
  json_t *answer =
      json_pack("{s:[{s:I, s:{s:s, s:O}, s:s}], s:{s:I, s:I, s:I}}", "choices", "index",
                (json_int_t)0, "message", "role", "assistant", "content",
                json_object_get(last, "content"), "finish_reason", "stop", "usage", "prompt_tokens",
                (json_int_t)2, "completion_tokens", (json_int_t)1, "total_tokens", (json_int_t)3);
  char *text = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
  json_decref(answer);
  json_decref(body);
  if (!text) return MHD_NO;
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
  enum MHD_Result result = MHD_queue_response(c, 200, r);
  MHD_destroy_response(r);
  return result;
}

static void capture_done(void *cls, struct MHD_Connection *c, void **state,
                         enum MHD_RequestTerminationCode code) {
  capture_request *q = *state;
  if (q) free(q->body);
  free(q);
  *state = NULL;
}

static void capture_reset(void) {
  for (int i = 0; i < capture.count; i++) json_decref(capture.bodies[i]);
  capture.count = capture.in_flight = capture.most_in_flight = 0;
}

static double number_field(json_t *body, const char *field) {
  return json_number_value(json_object_get(body, field));
}

TEST(requests_carry_the_key_and_the_fields_at_most_concurrency_at_once) {
  capture_reset();
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
      capturing, NULL, MHD_OPTION_NOTIFY_COMPLETED, capture_done, NULL, MHD_OPTION_END);
  CHECK(d != NULL);
  if (!d) return;
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  char spec[128];
  snprintf(spec, sizeof spec, "http://127.0.0.1:%u/v1#tiny-model", (unsigned)info->port);
  setenv("AGORA_TEST_SERVE_KEY", "sk-test-123", 1);
  ag_chat_model_options o = ag_chat_model_defaults();
  o.api_key_env = "AGORA_TEST_SERVE_KEY";
  o.concurrency = 2;
  o.retries = 0;
  o.timeout_seconds = HTTP_TIMEOUT_SECONDS;
  ag_chat_model *m = NULL;
  CHECK_OK(ag_chat_model_open(spec, &o, &m));
  unsetenv("AGORA_TEST_SERVE_KEY"); /* read once, at opening */
  enum { N = 5 };
  ag_chat_message msgs[N][2];
  char texts[N][32];
  ag_chat_conversation convs[N];
  for (int i = 0; i < N; i++) {
    snprintf(texts[i], sizeof texts[i], "question %d", i);
    msgs[i][0] = (ag_chat_message){"system", "Be brief.", NULL};
    msgs[i][1] = (ag_chat_message){"user", texts[i], "kim"};
    convs[i] = (ag_chat_conversation){msgs[i], 2, (uint64_t)i};
  }
  ag_chat_params p = ag_chat_params_defaults();
  p.sampling.temperature = 0.5f;
  p.sampling.top_p = 0.9f;
  p.max_tokens = 7;
  p.seed = 3;
  p.stop[p.stop_count++] = "END";
  ag_chat_reply r[N] = {{0}};
  CHECK_OK(ag_chat_model_reply(m, convs, N, &p, r));
  for (int i = 0; i < N; i++) /* each reply belongs to its own conversation */
    CHECK_MSG(r[i].content && !strcmp(r[i].content, texts[i]), "%d: '%s'", i, r[i].content);
  CHECK(r[0].finish == AG_FINISH_EOS && r[0].prompt_tokens == 2 && r[0].completion_tokens == 1);
  ag_chat_reply_clear(r, N);
  CHECK_MSG(capture.count == N && capture.most_in_flight >= 1 && capture.most_in_flight <= 2,
            "%d requests, %d in flight at most", capture.count, capture.most_in_flight);
  fprintf(stderr, "  concurrency 2: %d requests in flight at most\n", capture.most_in_flight);
  bool stream0_seen = false;
  for (int i = 0; i < capture.count; i++) {
    json_t *b = capture.bodies[i];
    CHECK_MSG(!strcmp(capture.authorization[i], "Bearer sk-test-123"), "'%s'",
              capture.authorization[i]);
    CHECK(!strcmp(json_string_value(json_object_get(b, "model")), "tiny-model"));
    json_t *messages = json_object_get(b, "messages");
    json_t *user = json_array_get(messages, 1);
    CHECK(json_array_size(messages) == 2 &&
          !strcmp(json_string_value(json_object_get(json_array_get(messages, 0), "role")),
                  "system") &&
          !strcmp(json_string_value(json_object_get(user, "name")), "kim") &&
          !json_object_get(json_array_get(messages, 0), "name"));
    CHECK(number_field(b, "temperature") == 0.5 && number_field(b, "top_p") == 0.9);
    CHECK(json_integer_value(json_object_get(b, "max_tokens")) == 7);
    json_t *stop = json_object_get(b, "stop");
    CHECK(json_array_size(stop) == 1 && !strcmp(json_string_value(json_array_get(stop, 0)), "END"));
    CHECK(!json_object_get(b, "top_k") && !json_object_get(b, "min_p") &&
          !json_object_get(b, "repetition_penalty"));
    /* stream 0 sends the seed itself; the other streams others */
    const char *content = json_string_value(json_object_get(user, "content"));
    json_int_t seed = json_integer_value(json_object_get(b, "seed"));
    if (content && !strcmp(content, "question 0")) {
      stream0_seen = true;
      CHECK(seed == 3);
    } else {
      CHECK(json_is_integer(json_object_get(b, "seed")) && seed != 3 && seed >= 0);
    }
  }
  CHECK(stream0_seen);
  ag_chat_model_close(m);

  /* non-default top_k, min_p and repetition penalty are sent; no key: no header */
  capture_reset();
  o.api_key_env = "AGORA_TEST_SERVE_KEY_UNSET";
  CHECK_OK(ag_chat_model_open(spec, &o, &m));
  p = ag_chat_params_defaults();
  p.sampling.top_k = 5;
  p.sampling.min_p = 0.25f;
  p.sampling.repetition_penalty = 1.5f;
  CHECK_OK(ag_chat_model_reply(m, convs, 1, &p, r));
  ag_chat_reply_clear(r, 1);
  CHECK(capture.count == 1);
  if (capture.count == 1) {
    json_t *b = capture.bodies[0];
    CHECK(json_integer_value(json_object_get(b, "top_k")) == 5 &&
          number_field(b, "min_p") == 0.25 && number_field(b, "repetition_penalty") == 1.5);
    CHECK(!json_object_get(b, "stop") && capture.authorization[0][0] == '\0');
  }
  capture_reset();
  ag_chat_model_close(m);
  MHD_stop_daemon(d);
}

typedef struct in_flight {
  ag_chat_model *m;
  ag_status status;
  ag_chat_reply replies[4];
  char error[512]; /* error messages are per thread */
} in_flight;

static void *reply_in_background(void *arg) {
  in_flight *f = arg;
  ag_chat_message msgs[] = {{"user", "Tell me a long story.", NULL}};
  ag_chat_conversation c[4] = {{msgs, 1, 0}, {msgs, 1, 1}, {msgs, 1, 2}, {msgs, 1, 3}};
  ag_chat_params p = ag_chat_params_defaults();
  p.max_tokens = 400;
  f->status = ag_chat_model_reply(f->m, c, 4, &p, f->replies);
  snprintf(f->error, sizeof f->error, "%s", f->status ? ag_error_message() : "");
  return NULL;
}

TEST(stopping_the_server_during_requests_neither_hangs_nor_crashes) {
  ag_server_options o = ag_server_defaults();
  o.chat_template = "plain";
  ag_server *s = NULL;
  CHECK_OK(ag_server_start(lm, &o, &s));
  if (!s) return;
  char spec[128];
  snprintf(spec, sizeof spec, "http://127.0.0.1:%d/v1#m", ag_server_port(s));
  in_flight f = {.m = client(spec, 0, 0.01)};
  pthread_t thread;
  CHECK(pthread_create(&thread, NULL, reply_in_background, &f) == 0);
  nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL); /* the requests are in */
  double t0 = ag_time_seconds();
  ag_server_stop(s);
  double seconds = ag_time_seconds() - t0;
  pthread_join(thread, NULL);
  /* finished replies, or an error saying the server went away */
  CHECK_MSG(f.status == AG_OK || strstr(f.error, "127.0.0.1"), "%s", f.error);
  CHECK_MSG(seconds < 20, "stop took %.3f s", seconds);
  fprintf(stderr, "  stopped in %.3f s; the client's call: %s\n", seconds,
          f.status ? f.error : "answered");
  ag_chat_reply_clear(f.replies, 4);
  ag_chat_model_close(f.m);
}

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (start()) {
    RUN(the_client_gets_the_local_engines_reply_greedy_and_sampled);
    RUN(eight_concurrent_requests_are_all_answered_with_their_own_text);
    RUN(completions_equal_ag_generate_for_a_string_and_a_list);
    RUN(chat_responses_have_the_openai_shape_and_n_choices_differ);
    RUN(models_and_health_answer_get);
    RUN(bad_requests_get_400_404_405_with_the_error_body);
    RUN(an_oversized_body_gets_413_and_the_server_goes_on);
    RUN(a_4xx_is_not_retried_and_its_message_is_reported);
    RUN(stopping_the_server_during_requests_neither_hangs_nor_crashes);
  }
  RUN(nothing_listening_is_an_error_after_the_retries_naming_the_url);
  RUN(a_server_that_never_answers_times_out);
  RUN(a_503_is_retried_after_the_servers_retry_after);
  RUN(requests_carry_the_key_and_the_fields_at_most_concurrency_at_once);
  ag_server_stop(server);
  ag_server_stop(bare);
  ag_chat_model_close(local);
  ag_lm_close(lm);
  curl_global_cleanup();
  TEST_MAIN_END();
}
