/* Chat models: one interface over the local engine (a model rendered with
 * its chat template, replies generated in one batch, each conversation on
 * its own random stream), an OpenAI-compatible endpoint (chat_http.c) and a
 * function. */
#include "lm/chat_internal.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_TOKENS      256
#define DEFAULT_TIMEOUT_SECONDS 300.0
#define DEFAULT_CONNECT_SECONDS 10.0
#define DEFAULT_RETRIES         4
#define DEFAULT_BACKOFF_SECONDS 1.0
#define DEFAULT_CONCURRENCY     8
#define PLAIN_NEXT_TURN         "\nuser:"
#define PLAIN_NEXT_ASSISTANT    "\nassistant:" /* after a user turn the model writes */

typedef enum model_kind { KIND_LOCAL, KIND_ENDPOINT, KIND_FUNCTION } model_kind;

struct ag_chat_model {
  model_kind kind;
  char *name;
  ag_chat_model_options options;
  char *template_name; /* options.chat_template points here */
  /* local */
  ag_lm *lm;
  const ag_chat_template *chat_template;
  bool warn_fallback; /* plain_fallback replaced a template agora does not render */
  /* endpoint */
  ag_chat_http *http;
  /* function */
  ag_chat_fn fn;
  void *user;
};

ag_chat_params ag_chat_params_defaults(void) {
  return (ag_chat_params){.sampling = ag_sampling_defaults(), .max_tokens = DEFAULT_MAX_TOKENS};
}

ag_chat_model_options ag_chat_model_defaults(void) {
  return (ag_chat_model_options){.api_key_env = "AGORA_API_KEY",
                                 .timeout_seconds = DEFAULT_TIMEOUT_SECONDS,
                                 .connect_timeout_seconds = DEFAULT_CONNECT_SECONDS,
                                 .retries = DEFAULT_RETRIES,
                                 .backoff_seconds = DEFAULT_BACKOFF_SECONDS,
                                 .concurrency = DEFAULT_CONCURRENCY};
}

void ag_chat_reply_clear(ag_chat_reply *r, int64_t n) {
  for (int64_t i = 0; r && i < n; i++) {
    free(r[i].content);
    memset(&r[i], 0, sizeof r[i]);
  }
}

bool ag_chat_model_is_endpoint(const char *spec) {
  return spec && (!strncmp(spec, "http://", 7) || !strncmp(spec, "https://", 8));
}

static char *copy_string(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s);
  char *c = malloc(n + 1);
  if (c) memcpy(c, s, n + 1);
  return c;
}

/* ---- rendering ------------------------------------------------------------------------ */

/* A template that refuses a system message gets it at the start of the
 * first user message: *view points at a copy with the system message gone
 * (and *owned is the merged text to free), or at messages unchanged. */
static ag_status fold_system(const ag_chat_template *t, const ag_chat_message *messages, int n,
                             ag_chat_message **view, char **owned) {
  *view = NULL;
  *owned = NULL;
  if (ag_chat_template_family(t) != AG_CHAT_GEMMA || n < 1 || !messages[0].role ||
      strcmp(messages[0].role, "system") || !messages[0].content)
    return AG_OK;
  ag_chat_message *v = malloc((size_t)n * sizeof *v);
  if (!v) return ag_error_set(AG_ERR_NOMEM, "chat model: out of memory");
  const char *system = messages[0].content;
  if (n >= 2 && messages[1].role && !strcmp(messages[1].role, "user") && messages[1].content) {
    size_t a = strlen(system), b = strlen(messages[1].content);
    char *merged = malloc(a + b + 3);
    if (!merged) {
      free(v);
      return ag_error_set(AG_ERR_NOMEM, "chat model: out of memory");
    }
    memcpy(merged, system, a);
    memcpy(merged + a, "\n\n", 2);
    memcpy(merged + a + 2, messages[1].content, b + 1);
    v[0] = messages[1];
    v[0].content = merged;
    memcpy(v + 1, messages + 2, (size_t)(n - 2) * sizeof *v);
    *owned = merged;
    *view = v;
    return AG_OK;
  }
  /* No user message to join: the system text becomes one. */
  memcpy(v, messages, (size_t)n * sizeof *v);
  v[0].role = "user";
  *view = v;
  return AG_OK;
}

/* True for NULL and "assistant": the turn a generation prompt opens. */
static bool assistant_role(const char *role) { return !role || !strcmp(role, "assistant"); }

/* A turn of another role (the model writing the next user turn) is opened
 * by rendering an empty message of that role and cutting the text where its
 * content would begin: the same header the template gives that role's
 * turns everywhere else, whatever the family. */
static ag_status render_open_turn(const ag_chat_template *t, const ag_chat_message *messages, int n,
                                  const ag_chat_render_options *r, const char *role, char **out) {
  ag_chat_message *all = malloc((size_t)(n + 1) * sizeof *all);
  ag_chat_span *spans = malloc((size_t)(n + 1) * sizeof *spans);
  ag_status st = all && spans ? AG_OK : ag_error_set(AG_ERR_NOMEM, "chat model: out of memory");
  if (!st) {
    if (n > 0) memcpy(all, messages, (size_t)n * sizeof *all);
    all[n] = (ag_chat_message){role, "", NULL};
    ag_chat_render_options plain = *r;
    plain.add_generation_prompt = false;
    st = ag_chat_render_spans(t, all, n + 1, &plain, out, spans);
  }
  if (!st && spans[n].begin < 0) {
    free(*out);
    *out = NULL;
    st = ag_error_set(AG_ERR_UNSUPPORTED, "chat template %s renders no turn of role '%s'",
                      ag_chat_template_name(t), role);
  }
  if (!st) (*out)[spans[n].begin] = '\0';
  free(all);
  free(spans);
  return st;
}

static ag_status render_with(const ag_chat_template *t, const ag_chat_message *messages, int n,
                             const ag_chat_render_options *r, const char *role, char **out) {
  ag_chat_message *view = NULL;
  char *owned = NULL;
  ag_status st = fold_system(t, messages, n, &view, &owned);
  if (!st) {
    int count = view && owned ? n - 1 : n;
    const ag_chat_message *m = view ? view : messages;
    st = assistant_role(role) ? ag_chat_render(t, m, count, r, out)
                              : render_open_turn(t, m, count, r, role, out);
  }
  free(view);
  free(owned);
  return st;
}

/* A generation prompt that ends in a space ("assistant: " of the plain
 * template) is cut before it: byte-level BPE trains the reply's first word
 * with its leading space (" Let"), so a prompt ending in a lone " " token
 * asks the model for a token sequence it never saw. The model then writes
 * the space itself, and the reply leaves it out. */
static void trim_prompt_space(char *text) {
  size_t len = strlen(text);
  if (len > 0 && text[len - 1] == ' ') text[len - 1] = '\0';
}

static bool prompt_space_as(const ag_chat_template *t, const char *role) {
  ag_chat_message probe = {"user", "", NULL};
  char *text = NULL;
  ag_chat_render_options r = {.add_generation_prompt = true};
  bool space = !render_with(t, &probe, 1, &r, role, &text) && text && text[0] &&
               text[strlen(text) - 1] == ' ';
  free(text);
  return space;
}

bool ag_chat_local_prompt_space(const ag_chat_template *t) { return prompt_space_as(t, NULL); }

ag_status ag_chat_model_render(const ag_chat_template *t, const ag_chat_message *messages, int n,
                               char **out) {
  if (!out) return ag_error_set(AG_ERR_INVALID, "chat model render: NULL output");
  *out = NULL;
  ag_chat_render_options r = {.add_generation_prompt = true};
  ag_status st = render_with(t, messages, n, &r, NULL, out);
  if (!st) trim_prompt_space(*out);
  return st;
}

/* ag_chat_local_text opening a turn of `role` (NULL: assistant). */
static ag_status local_text_as(const ag_lm *lm, const ag_chat_template *t,
                               const ag_chat_message *messages, int n, const char *role,
                               char **out) {
  ag_chat_render_options r = {.add_generation_prompt = true};
  if (ag_chat_template_family(t) == AG_CHAT_PLAIN) {
    /* The model's own EOS closes plain turns (BOS is added at encoding). */
    int32_t eos = ag_tok_special_id(lm->tokenizer, AG_TOK_EOS);
    if (eos < 0 && lm->eos_count > 0) eos = lm->eos_ids[0];
    size_t bytes = 0;
    const char *text = eos >= 0 ? ag_tok_token_text(lm->tokenizer, eos, &bytes) : NULL;
    if (text) r.eos_token = text;
  }
  ag_status st = render_with(t, messages, n, &r, role, out);
  if (!st) trim_prompt_space(*out);
  return st;
}

ag_status ag_chat_local_text(const ag_lm *lm, const ag_chat_template *t,
                             const ag_chat_message *messages, int n, char **out) {
  return local_text_as(lm, t, messages, n, NULL, out);
}

static ag_status encode_text(const ag_lm *lm, const char *text, ag_tok_ids *out) {
  out->count = 0;
  ag_status st = ag_tok_encode(lm->tokenizer, text, strlen(text), 0, out);
  if (st || !lm->add_bos || lm->bos_id < 0 || (out->count > 0 && out->ids[0] == lm->bos_id))
    return st;
  st = ag_tok_ids_push(out, lm->bos_id); /* then rotate it to the front */
  if (st) return st;
  memmove(out->ids + 1, out->ids, (size_t)(out->count - 1) * sizeof(int32_t));
  out->ids[0] = lm->bos_id;
  return AG_OK;
}

/* ag_chat_local_ids, and *dropped (may be NULL): the tokens the dropped
 * messages took (the whole conversation's ids less those kept). */
static ag_status local_ids(const ag_lm *lm, const ag_chat_template *t,
                           const ag_chat_message *messages, int n, const char *role,
                           bool drop_oldest, int64_t room, ag_tok_ids *out, int64_t *dropped) {
  int first = n > 0 && messages[0].role && !strcmp(messages[0].role, "system") ? 1 : 0;
  ag_chat_message *view = malloc((size_t)(n > 0 ? n : 1) * sizeof *view);
  if (!view) return ag_error_set(AG_ERR_NOMEM, "chat model: out of memory");
  int start = first; /* messages[start..n) follow the system message */
  int64_t whole = -1;
  ag_status st = AG_OK;
  for (;;) {
    int count = 0;
    if (first) view[count++] = messages[0];
    for (int i = start; i < n; i++) view[count++] = messages[i];
    char *text = NULL;
    st = local_text_as(lm, t, view, count, role, &text);
    if (!st) st = encode_text(lm, text, out);
    free(text);
    if (whole < 0) whole = out->count;
    if (st || !drop_oldest || out->count + room <= lm->context_length || start >= n - 1) break;
    /* Forget the oldest message, and a reply that would then lead. */
    start++;
    while (start < n - 1 && messages[start].role && strcmp(messages[start].role, "user")) start++;
  }
  free(view);
  if (dropped) *dropped = !st && whole > out->count ? whole - out->count : 0;
  return st;
}

ag_status ag_chat_local_ids(const ag_lm *lm, const ag_chat_template *t,
                            const ag_chat_message *messages, int n, bool drop_oldest, int64_t room,
                            ag_tok_ids *out) {
  return local_ids(lm, t, messages, n, NULL, drop_oldest, room, out, NULL);
}

ag_status ag_chat_local_options(const ag_lm *lm, const ag_chat_template *t, const ag_chat_params *p,
                                ag_generate_options *o) {
  *o = ag_generate_defaults();
  if (p->max_tokens < 0)
    return ag_error_set(AG_ERR_INVALID, "chat model: max_tokens %lld is negative",
                        (long long)p->max_tokens);
  if (p->stop_count < 0 || p->stop_count > AG_GENERATE_MAX_STOPS)
    return ag_error_set(AG_ERR_INVALID, "chat model: %d stop strings (at most %d)", p->stop_count,
                        AG_GENERATE_MAX_STOPS);
  o->sampling = p->sampling;
  o->max_new_tokens = p->max_tokens;
  o->seed = p->seed;
  o->ignore_eos = p->ignore_eos;
  for (int i = 0; i < p->stop_count; i++) o->stop[o->stop_count++] = p->stop[i];
  if (p->ignore_eos) return AG_OK; /* the end of turn does not end the reply either */
  const char *marker = ag_chat_template_end_of_turn(t);
  if (!marker) {
    /* Plain turns end with EOS; a model that does not write it would go on
     * to write the next user turn. */
    if (o->stop_count < AG_GENERATE_MAX_STOPS)
      o->stop[o->stop_count++] =
          assistant_role(p->reply_role) ? PLAIN_NEXT_TURN : PLAIN_NEXT_ASSISTANT;
  } else {
    int32_t id = ag_tok_find(lm->tokenizer, marker, strlen(marker));
    if (id >= 0) {
      o->stop_ids[o->stop_id_count++] = id;
    } else if (o->stop_count < AG_GENERATE_MAX_STOPS) {
      o->stop[o->stop_count++] = marker; /* a vocabulary without the token writes it out */
    }
  }
  return AG_OK;
}

/* ---- opening ------------------------------------------------------------------------ */

static ag_status new_model(model_kind kind, const char *name, const ag_chat_model_options *options,
                           ag_chat_model **out) {
  ag_chat_model *m = calloc(1, sizeof *m);
  if (!m) return ag_error_set(AG_ERR_NOMEM, "chat model: out of memory");
  m->kind = kind;
  m->options = options ? *options : ag_chat_model_defaults();
  m->name = copy_string(name);
  if (m->options.chat_template) {
    m->template_name = copy_string(m->options.chat_template);
    m->options.chat_template = m->template_name;
  }
  m->options.api_key_env = NULL; /* the client keeps its own copy */
  if (!m->name || (options && options->chat_template && !m->template_name)) {
    ag_chat_model_close(m);
    return ag_error_set(AG_ERR_NOMEM, "chat model: out of memory");
  }
  *out = m;
  return AG_OK;
}

/* The folder's or file's base name. */
static char *base_name(const char *path) {
  size_t end = strlen(path);
  while (end > 1 && path[end - 1] == '/') end--;
  size_t begin = end;
  while (begin > 0 && path[begin - 1] != '/') begin--;
  char *name = malloc(end - begin + 1);
  if (name) {
    memcpy(name, path + begin, end - begin);
    name[end - begin] = '\0';
  }
  return name;
}

static ag_status open_endpoint(const char *spec, const ag_chat_model_options *options,
                               ag_chat_model **out) {
  const char *hash = strchr(spec, '#');
  if (!hash || !hash[1])
    return ag_error_set(AG_ERR_INVALID,
                        "chat model %s: an endpoint needs the model name after '#', as in "
                        "http://127.0.0.1:8080/v1#qwen2.5-0.5b",
                        spec);
  size_t url_bytes = (size_t)(hash - spec);
  char *url = malloc(url_bytes + 1);
  if (!url) return ag_error_set(AG_ERR_NOMEM, "chat model: out of memory");
  memcpy(url, spec, url_bytes);
  url[url_bytes] = '\0';
  ag_chat_model *m = NULL;
  ag_status st = new_model(KIND_ENDPOINT, hash + 1, options, &m);
  if (!st) st = ag_chat_http_open(url, hash + 1, options, &m->http);
  free(url);
  if (st) {
    ag_chat_model_close(m);
    return st;
  }
  *out = m;
  return AG_OK;
}

static ag_status open_local(const char *path, const ag_chat_model_options *options,
                            ag_chat_model **out) {
  const ag_chat_template *t = NULL;
  if (options && options->chat_template) {
    ag_status st = ag_chat_template_by_name(options->chat_template, &t);
    if (st) return ag_error_wrap(st, "chat model %s", path);
  }
  char *name = base_name(path);
  if (!name) return ag_error_set(AG_ERR_NOMEM, "chat model: out of memory");
  ag_chat_model *m = NULL;
  ag_status st = new_model(KIND_LOCAL, name, options, &m);
  free(name);
  if (!st) st = ag_lm_open(path, &m->lm);
  if (!st && !t) t = m->lm->chat_template;
  if (!st && !t && m->options.plain_fallback) {
    ag_chat_template_by_family(AG_CHAT_PLAIN, &t);
    m->warn_fallback = m->lm->chat_template_note[0] != '\0';
  }
  if (!st && !t)
    st = ag_error_set(AG_ERR_INVALID,
                      "chat model %s: the model has no chat template agora renders%s%s%s; choose "
                      "one with the chat_template option (--chat-template NAME: %s)",
                      path, m->lm->chat_template_note[0] ? " (" : "", m->lm->chat_template_note,
                      m->lm->chat_template_note[0] ? ")" : "", ag_chat_template_supported());
  if (st) {
    ag_chat_model_close(m);
    return st;
  }
  m->chat_template = t;
  *out = m;
  return AG_OK;
}

ag_status ag_chat_model_open(const char *spec, const ag_chat_model_options *options,
                             ag_chat_model **out) {
  if (!out) return ag_error_set(AG_ERR_INVALID, "chat model: NULL output");
  *out = NULL;
  if (!spec || !spec[0]) return ag_error_set(AG_ERR_INVALID, "chat model: empty MODEL argument");
  if (options && options->max_batch < 0)
    return ag_error_set(AG_ERR_INVALID, "chat model %s: max_batch %lld is negative", spec,
                        (long long)options->max_batch);
  return ag_chat_model_is_endpoint(spec) ? open_endpoint(spec, options, out)
                                         : open_local(spec, options, out);
}

ag_status ag_chat_model_custom(const char *name, ag_chat_fn fn, void *user, ag_chat_model **out) {
  if (!out) return ag_error_set(AG_ERR_INVALID, "chat model: NULL output");
  *out = NULL;
  if (!name || !fn)
    return ag_error_set(AG_ERR_INVALID, "chat model: a custom model needs a name "
                                        "and a function");
  ag_status st = new_model(KIND_FUNCTION, name, NULL, out);
  if (st) return st;
  (*out)->fn = fn;
  (*out)->user = user;
  return AG_OK;
}

const char *ag_chat_model_name(const ag_chat_model *m) { return m ? m->name : NULL; }

ag_lm *ag_chat_model_lm(ag_chat_model *m) { return m && m->kind == KIND_LOCAL ? m->lm : NULL; }

void ag_chat_model_close(ag_chat_model *m) {
  if (!m) return;
  ag_lm_close(m->lm);
  ag_chat_http_close(m->http);
  free(m->template_name);
  free(m->name);
  free(m);
}

ag_status ag_chat_model_prompt(const ag_chat_model *m, const ag_chat_message *messages, int n,
                               char **out) {
  if (!out) return ag_error_set(AG_ERR_INVALID, "chat model prompt: NULL output");
  *out = NULL;
  if (!m || m->kind != KIND_LOCAL)
    return ag_error_set(AG_ERR_INVALID, "chat model %s: only a local model has a prompt text",
                        m ? m->name : "(null)");
  return ag_chat_local_text(m->lm, m->chat_template, messages, n, out);
}

/* ---- replies ------------------------------------------------------------------------ */

/* Streaming through ag_generate: a reply's first piece loses the space the
 * prompt left for the model to write, as its content does. */
typedef struct reply_stream {
  const ag_chat_params *params;
  bool strip_space;
  bool *started; /* per conversation: a non-empty piece went out */
} reply_stream;

static void stream_piece(void *user, int64_t index, const char *text, size_t bytes) {
  reply_stream *s = user;
  if (!s->started[index] && bytes > 0) {
    s->started[index] = true;
    if (s->strip_space && text[0] == ' ') text++, bytes--;
  }
  if (bytes > 0) s->params->on_text(s->params->user, index, text, bytes);
}

static ag_status local_reply(ag_chat_model *m, const ag_chat_conversation *convs, int64_t n,
                             const ag_chat_params *p, ag_chat_reply *out) {
  ag_generate_options o;
  ag_status st = ag_chat_local_options(m->lm, m->chat_template, p, &o);
  if (st) return ag_error_wrap(st, "chat model %s", m->name);
  if (m->warn_fallback) {
    ag_warn("the model's chat template is not one agora renders (%s); using the plain template",
            m->lm->chat_template_note);
    m->warn_fallback = false;
  }
  o.truncate = m->options.truncate;
  o.max_batch = m->options.max_batch;
  int64_t ctx = m->lm->context_length;
  int64_t room = p->max_tokens < ctx / 2 ? p->max_tokens : ctx / 2;
  ag_tok_ids *ids = calloc((size_t)n, sizeof *ids);
  uint64_t *streams = malloc((size_t)n * sizeof *streams);
  int64_t *dropped = calloc((size_t)n, sizeof *dropped);
  bool *started = calloc((size_t)n, sizeof *started);
  ag_generation *g = calloc((size_t)n, sizeof *g);
  if (!ids || !streams || !dropped || !started || !g)
    st = ag_error_set(AG_ERR_NOMEM, "chat model: out of memory");
  for (int64_t i = 0; !st && i < n; i++) {
    streams[i] = convs[i].stream;
    st = local_ids(m->lm, m->chat_template, convs[i].messages, convs[i].count, p->reply_role,
                   m->options.truncate, room, &ids[i], &dropped[i]);
    if (st) st = ag_error_wrap(st, "chat model %s: conversation %lld", m->name, (long long)i);
  }
  o.streams = streams;
  bool prompt_space = prompt_space_as(m->chat_template, p->reply_role);
  reply_stream stream = {.params = p, .strip_space = prompt_space, .started = started};
  if (p->on_text) {
    o.on_text = stream_piece;
    o.user = &stream;
  }
  if (!st) {
    st = ag_generate_ids(m->lm, ids, n, &o, g);
    if (st) st = ag_error_wrap(st, "chat model %s", m->name);
  }
  for (int64_t i = 0; !st && i < n; i++) {
    size_t skip = prompt_space && g[i].text.size > 0 && g[i].text.data[0] == ' ' ? 1 : 0;
    size_t size = g[i].text.size - skip;
    out[i].content = malloc(size + 1);
    if (!out[i].content) {
      st = ag_error_set(AG_ERR_NOMEM, "chat model: out of memory");
      break;
    }
    if (size) memcpy(out[i].content, g[i].text.data + skip, size);
    out[i].content[size] = '\0';
    out[i].finish = g[i].finish;
    out[i].prompt_tokens = g[i].prompt_tokens;
    out[i].completion_tokens = g[i].tokens.count;
    out[i].dropped_tokens = dropped[i] + g[i].dropped_tokens;
  }
  if (g) ag_generation_free(g, n);
  for (int64_t i = 0; ids && i < n; i++) ag_tok_ids_free(&ids[i]);
  free(ids);
  free(streams);
  free(dropped);
  free(started);
  free(g);
  return st;
}

/* An endpoint's or a function's replies, streamed whole once all are in. */
static void stream_whole(const ag_chat_params *p, const ag_chat_reply *out, int64_t n) {
  for (int64_t i = 0; p->on_text && i < n; i++)
    if (out[i].content && out[i].content[0])
      p->on_text(p->user, i, out[i].content, strlen(out[i].content));
}

static ag_status check_conversations(const ag_chat_model *m, const ag_chat_conversation *convs,
                                     int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    if (!convs[i].messages || convs[i].count < 1)
      return ag_error_set(AG_ERR_INVALID, "chat model %s: conversation %lld has no messages",
                          m->name, (long long)i);
    for (int j = 0; j < convs[i].count; j++)
      if (!convs[i].messages[j].role || !convs[i].messages[j].content)
        return ag_error_set(AG_ERR_INVALID,
                            "chat model %s: conversation %lld, message %d has no %s", m->name,
                            (long long)i, j, convs[i].messages[j].role ? "content" : "role");
  }
  return AG_OK;
}

ag_status ag_chat_model_reply(ag_chat_model *m, const ag_chat_conversation *convs, int64_t n,
                              const ag_chat_params *params, ag_chat_reply *out) {
  if (out && n > 0) memset(out, 0, (size_t)n * sizeof *out);
  if (!m || !params || !out || n < 0 || (n > 0 && !convs))
    return ag_error_set(AG_ERR_INVALID, "chat model reply: bad arguments");
  if (n == 0) return AG_OK;
  ag_status st = check_conversations(m, convs, n);
  if (!st) st = ag_sampling_check(&params->sampling);
  if (st) return ag_error_wrap(st, "chat model %s", m->name);
  if (params->max_tokens < 0 || params->stop_count < 0 ||
      params->stop_count > AG_GENERATE_MAX_STOPS)
    return ag_error_set(AG_ERR_INVALID,
                        "chat model %s: max_tokens %lld or %d stop strings out of range", m->name,
                        (long long)params->max_tokens, params->stop_count);
  for (int i = 0; i < params->stop_count; i++)
    if (!params->stop[i] || !params->stop[i][0])
      return ag_error_set(AG_ERR_INVALID, "chat model %s: stop string %d is empty", m->name, i);
  switch (m->kind) {
  case KIND_LOCAL: return local_reply(m, convs, n, params, out);
  case KIND_ENDPOINT:
    /* chat-completions writes assistant messages only. */
    if (!assistant_role(params->reply_role))
      return ag_error_set(AG_ERR_UNSUPPORTED,
                          "chat model %s: an endpoint writes assistant turns only, not '%s' "
                          "(use a local model)",
                          m->name, params->reply_role);
    st = ag_chat_http_reply(m->http, convs, n, params, out);
    if (!st) stream_whole(params, out, n);
    return st;
  case KIND_FUNCTION: {
    /* The function streams nothing itself: its replies go out whole below. */
    ag_chat_params quiet = *params;
    quiet.on_text = NULL;
    quiet.user = NULL;
    st = m->fn(m->user, convs, n, &quiet, out);
    if (st) return ag_error_wrap(st, "chat model %s", m->name);
    for (int64_t i = 0; i < n; i++)
      if (!out[i].content)
        return ag_error_set(AG_ERR_INTERNAL, "chat model %s: reply %lld has no content", m->name,
                            (long long)i);
    stream_whole(params, out, n);
    return AG_OK;
  }
  }
  return ag_error_set(AG_ERR_INTERNAL, "chat model: bad kind");
}
