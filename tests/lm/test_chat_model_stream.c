/* Chat models, what `agora lm chat` and `lm generate --chat` rely on:
 * streamed replies (pieces that make up each reply, without the space the
 * plain prompt leaves to the model; a function streams each reply whole),
 * ignore_eos (past EOS and the end of turn), the plain template's stop
 * before a next user turn, the plain fallback for models without a
 * template (or with one agora does not render), and the tokens that
 * truncation drops. On stories260K, and on copies of it whose EOS is "."
 * or whose template is unknown. */
#include "agora/chat_model.h"
#include "lm/chat_internal.h"
#include "test.h"

#define STORIES_DIR "../shared/data/models/stories260K"
#define DOT_ID      426 /* "." in stories260K's vocabulary */

static bool stories_present(void) {
  static bool warned = false;
  if (ag_file_exists(STORIES_DIR "/model.safetensors")) return true;
  if (!warned) fprintf(stderr, "  note: %s not found; skipped\n", STORIES_DIR);
  warned = true;
  return false;
}

static ag_chat_model *open_model(const char *path, const char *chat_template, bool fallback,
                                 bool truncate) {
  ag_chat_model_options o = ag_chat_model_defaults();
  o.chat_template = chat_template;
  o.plain_fallback = fallback;
  o.truncate = truncate;
  ag_chat_model *m = NULL;
  CHECK_OK(ag_chat_model_open(path, &o, &m));
  return m;
}

/* A copy of stories260K in the scratch folder, with generation_config.json
 * and tokenizer_config.json replaced where given. */
static const char *stories_copy(const char *name, const char *generation_config,
                                const char *tokenizer_config) {
  static char dir[3][600];
  static int next = 0;
  char *d = dir[next++ % 3];
  snprintf(d, 600, "%s/%s", test_tmpdir(), name);
  if (ag_mkdir_p(d)) return NULL;
  const char *files[] = {"config.json", "model.safetensors", "tokenizer.json",
                         "tokenizer_config.json", "generation_config.json"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char from[700], to[700];
    snprintf(from, sizeof from, "%s/%s", STORIES_DIR, files[i]);
    snprintf(to, sizeof to, "%s/%s", d, files[i]);
    const char *own = !strcmp(files[i], "generation_config.json")  ? generation_config
                      : !strcmp(files[i], "tokenizer_config.json") ? tokenizer_config
                                                                   : NULL;
    char *data = NULL;
    size_t n = 0;
    if (own) {
      CHECK_OK(ag_atomic_write(to, own, strlen(own)));
      continue;
    }
    CHECK_OK(ag_read_file(from, &data, &n));
    if (data) CHECK_OK(ag_atomic_write(to, data, n));
    free(data);
  }
  return d;
}

static const ag_chat_message CAT[] = {{"user", "Tell me about a cat.", NULL}};
static const ag_chat_message DOG[] = {{"system", "You tell short stories.", NULL},
                                      {"user", "Once upon a time there was a dog.", NULL}};

/* ---- streaming ---------------------------------------------------------------------- */

#define MAX_REPLIES 4
typedef struct pieces {
  ag_tok_text text[MAX_REPLIES]; /* what came for each index */
  int calls[MAX_REPLIES];
  bool bad_index;
} pieces;

static void collect(void *user, int64_t index, const char *text, size_t bytes) {
  pieces *p = user;
  if (index < 0 || index >= MAX_REPLIES || bytes == 0) {
    p->bad_index = true;
    return;
  }
  ag_tok_text *t = &p->text[index];
  char *grown = realloc(t->data, t->size + bytes + 1);
  if (!grown) return;
  t->data = grown;
  memcpy(t->data + t->size, text, bytes);
  t->size += bytes;
  t->data[t->size] = '\0';
  p->calls[index]++;
}

static void pieces_free(pieces *p) {
  for (int i = 0; i < MAX_REPLIES; i++) free(p->text[i].data);
}

static bool same_text(const ag_tok_text *t, const char *s) {
  return t->size == strlen(s) && (t->size == 0 || !memcmp(t->data, s, t->size));
}

TEST(streamed_pieces_make_up_each_reply_without_the_prompts_final_space) {
  if (!stories_present()) return;
  ag_chat_model *m = open_model(STORIES_DIR, "plain", false, false);
  if (!m) return;
  ag_chat_conversation convs[3] = {{CAT, 1, 0}, {DOG, 2, 5}, {CAT, 1, 9}};
  ag_chat_params p = ag_chat_params_defaults();
  p.max_tokens = 40;
  p.seed = 4;
  pieces got = {0};
  p.on_text = collect;
  p.user = &got;
  ag_chat_reply r[3] = {{0}}, quiet[3] = {{0}};
  CHECK_OK(ag_chat_model_reply(m, convs, 3, &p, r));
  CHECK(!got.bad_index);
  for (int i = 0; i < 3; i++) {
    CHECK_MSG(r[i].content && same_text(&got.text[i], r[i].content),
              "reply %d: streamed '%s', content '%s'", i, got.text[i].data ? got.text[i].data : "",
              r[i].content ? r[i].content : "");
    CHECK_MSG(got.calls[i] >= 2, "reply %d came in %d pieces", i, got.calls[i]);
  }
  /* streaming changes nothing about the replies */
  p.on_text = NULL;
  CHECK_OK(ag_chat_model_reply(m, convs, 3, &p, quiet));
  for (int i = 0; i < 3; i++)
    CHECK(r[i].content && quiet[i].content && !strcmp(r[i].content, quiet[i].content));
  ag_chat_reply_clear(r, 3);
  ag_chat_reply_clear(quiet, 3);
  pieces_free(&got);

  /* Greedy: the model writes the space the prompt left out ("assistant:"
   * then " Annags..."), and neither the content nor the stream has it. */
  char *prompt = NULL;
  CHECK_OK(ag_chat_model_prompt(m, CAT, 1, &prompt));
  ag_generate_options o = ag_generate_defaults();
  o.sampling.temperature = 0;
  o.max_new_tokens = 20;
  ag_generation g = {0};
  const char *prompts[] = {prompt};
  CHECK_OK(ag_generate(ag_chat_model_lm(m), prompts, 1, &o, &g));
  CHECK_MSG(g.text.size > 1 && g.text.data[0] == ' ', "raw text '%s'",
            g.text.data ? g.text.data : "");
  pieces one = {0};
  p = ag_chat_params_defaults();
  p.sampling.temperature = 0;
  p.max_tokens = 20;
  p.on_text = collect;
  p.user = &one;
  CHECK_OK(ag_chat_model_reply(m, convs, 1, &p, r));
  CHECK(g.text.size > 1 && same_text(&one.text[0], g.text.data + 1));
  CHECK(r[0].content && !strcmp(r[0].content, g.text.data + 1));
  ag_chat_reply_clear(r, 1);
  ag_generation_free(&g, 1);
  pieces_free(&one);
  free(prompt);
  ag_chat_model_close(m);
}

/* A scripted agent that says which conversation it answers, and whether
 * a streaming callback reached it. */
static ag_status scripted(void *user, const ag_chat_conversation *convs, int64_t n,
                          const ag_chat_params *params, ag_chat_reply *out) {
  *(bool *)user |= params->on_text != NULL;
  for (int64_t i = 0; i < n; i++) {
    out[i].content = malloc(32);
    if (!out[i].content) return ag_error_set(AG_ERR_NOMEM, "scripted: out of memory");
    snprintf(out[i].content, 32, "reply %lld", (long long)convs[i].stream);
  }
  if (n == 3) out[2].content[0] = '\0'; /* an empty reply streams nothing */
  return AG_OK;
}

TEST(a_function_streams_each_reply_whole_once_the_call_succeeds) {
  bool saw_callback = false;
  ag_chat_model *m = NULL;
  CHECK_OK(ag_chat_model_custom("scripted", scripted, &saw_callback, &m));
  if (!m) return;
  ag_chat_conversation convs[3] = {{CAT, 1, 7}, {DOG, 2, 8}, {CAT, 1, 9}};
  ag_chat_params p = ag_chat_params_defaults();
  pieces got = {0};
  p.on_text = collect;
  p.user = &got;
  ag_chat_reply r[3] = {{0}};
  CHECK_OK(ag_chat_model_reply(m, convs, 3, &p, r));
  CHECK(!saw_callback && !got.bad_index);
  CHECK(got.calls[0] == 1 && same_text(&got.text[0], "reply 7"));
  CHECK(got.calls[1] == 1 && same_text(&got.text[1], "reply 8"));
  CHECK(got.calls[2] == 0);
  ag_chat_reply_clear(r, 3);
  pieces_free(&got);
  ag_chat_model_close(m);
}

/* ---- ignore_eos, stops -------------------------------------------------------------- */

TEST(ignore_eos_goes_past_eos_to_max_tokens) {
  if (!stories_present()) return;
  /* EOS is "." as well as </s>: replies end at their first full stop */
  const char *dir =
      stories_copy("dot-eos", "{\"bos_token_id\": 1, \"eos_token_id\": [2, 426]}", NULL);
  ag_chat_model *m = dir ? open_model(dir, "plain", false, false) : NULL;
  if (!m) return;
  ag_lm *lm = ag_chat_model_lm(m);
  CHECK(ag_lm_is_eos(lm, DOT_ID));
  ag_chat_conversation c = {CAT, 1, 0};
  ag_chat_params p = ag_chat_params_defaults();
  p.sampling.temperature = 0;
  p.max_tokens = 60;
  ag_chat_reply stopped = {0}, full = {0};
  CHECK_OK(ag_chat_model_reply(m, &c, 1, &p, &stopped));
  CHECK_MSG(stopped.finish == AG_FINISH_EOS && stopped.completion_tokens < 60,
            "finish %d after %lld tokens", (int)stopped.finish,
            (long long)stopped.completion_tokens);
  p.ignore_eos = true;
  CHECK_OK(ag_chat_model_reply(m, &c, 1, &p, &full));
  CHECK(full.finish == AG_FINISH_LENGTH && full.completion_tokens == 60);
  /* the same text up to the first stop, then more */
  CHECK_MSG(stopped.content && full.content &&
                !strncmp(full.content, stopped.content, strlen(stopped.content)) &&
                strlen(full.content) > strlen(stopped.content) + 1,
            "stopped '%s'\n  full '%s'", stopped.content ? stopped.content : "",
            full.content ? full.content : "");
  ag_chat_reply_clear(&stopped, 1);
  ag_chat_reply_clear(&full, 1);
  ag_chat_model_close(m);
}

TEST(reply_options_stop_at_the_end_of_turn_or_before_a_next_plain_user_turn) {
  if (!stories_present()) return;
  ag_chat_model *m = open_model(STORIES_DIR, "plain", false, false);
  if (!m) return;
  ag_lm *lm = ag_chat_model_lm(m);
  const ag_chat_template *plain = NULL, *chatml = NULL;
  CHECK_OK(ag_chat_template_by_name("plain", &plain));
  CHECK_OK(ag_chat_template_by_name("chatml", &chatml));
  ag_chat_params p = ag_chat_params_defaults();
  p.stop[p.stop_count++] = "THE END";
  ag_generate_options o;
  CHECK_OK(ag_chat_local_options(lm, plain, &p, &o));
  CHECK(o.stop_count == 2 && !strcmp(o.stop[0], "THE END") && !strcmp(o.stop[1], "\nuser:"));
  CHECK(o.stop_id_count == 0 && !o.ignore_eos && o.on_text == NULL);
  /* stories260K has no <|im_end|> token: the marker is a stop string */
  CHECK_OK(ag_chat_local_options(lm, chatml, &p, &o));
  CHECK(o.stop_count == 2 && !strcmp(o.stop[1], "<|im_end|>") && o.stop_id_count == 0);
  /* ignore_eos: the caller's stops only */
  p.ignore_eos = true;
  CHECK_OK(ag_chat_local_options(lm, plain, &p, &o));
  CHECK(o.ignore_eos && o.stop_count == 1 && o.stop_id_count == 0);
  CHECK_OK(ag_chat_local_options(lm, chatml, &p, &o));
  CHECK(o.ignore_eos && o.stop_count == 1 && o.stop_id_count == 0);
  /* sixteen stops of the caller's leave no room, and no overflow */
  p = ag_chat_params_defaults();
  for (int i = 0; i < AG_GENERATE_MAX_STOPS; i++) p.stop[p.stop_count++] = "x";
  CHECK_OK(ag_chat_local_options(lm, plain, &p, &o));
  CHECK(o.stop_count == AG_GENERATE_MAX_STOPS);
  ag_chat_model_close(m);
}

/* ---- the plain fallback ------------------------------------------------------------- */

TEST(plain_fallback_opens_a_model_without_a_template_it_renders) {
  if (!stories_present()) return;
  ag_chat_model *m = NULL;
  ag_chat_model_options o = ag_chat_model_defaults();
  CHECK(ag_chat_model_open(STORIES_DIR, &o, &m) == AG_ERR_INVALID && !m);
  m = open_model(STORIES_DIR, NULL, true, false);
  ag_chat_model *plain = open_model(STORIES_DIR, "plain", false, false);
  if (!m || !plain) {
    ag_chat_model_close(m);
    ag_chat_model_close(plain);
    return;
  }
  char *a = NULL, *b = NULL;
  CHECK_OK(ag_chat_model_prompt(m, DOG, 2, &a));
  CHECK_OK(ag_chat_model_prompt(plain, DOG, 2, &b));
  CHECK(a && b && !strcmp(a, b) && strstr(a, "assistant:"));
  free(a);
  free(b);
  ag_chat_conversation c = {DOG, 2, 3};
  ag_chat_params p = ag_chat_params_defaults();
  p.max_tokens = 16;
  ag_chat_reply ra = {0}, rb = {0};
  CHECK_OK(ag_chat_model_reply(m, &c, 1, &p, &ra));
  CHECK_OK(ag_chat_model_reply(plain, &c, 1, &p, &rb));
  CHECK(ra.content && rb.content && !strcmp(ra.content, rb.content));
  ag_chat_reply_clear(&ra, 1);
  ag_chat_reply_clear(&rb, 1);
  ag_chat_model_close(plain);
  ag_chat_model_close(m);
  /* a template agora does not render: the fallback still chats (with a
   * warning), a named template wins over the fallback */
  const char *dir =
      stories_copy("odd-template", NULL,
                   "{\"add_bos_token\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\", "
                   "\"chat_template\": \"{% for m in messages %}[{{ m.content }}]{% endfor %}\"}");
  if (!dir) return;
  CHECK(ag_chat_model_open(dir, NULL, &m) == AG_ERR_INVALID && !m);
  m = open_model(dir, NULL, true, false);
  if (!m) return;
  CHECK(ag_chat_model_lm(m)->chat_template == NULL && ag_chat_model_lm(m)->chat_template_note[0]);
  CHECK_OK(ag_chat_model_reply(m, &c, 1, &p, &ra));
  CHECK(ra.content && ra.completion_tokens > 0);
  ag_chat_reply_clear(&ra, 1);
  ag_chat_model_close(m);
  m = open_model(dir, "chatml", true, false);
  CHECK_OK(ag_chat_model_prompt(m, CAT, 1, &a));
  CHECK_MSG(a && strstr(a, "<|im_start|>user\nTell me about a cat.<|im_end|>\n"
                           "<|im_start|>assistant\n"),
            "got '%s'", a ? a : "(null)");
  free(a);
  ag_chat_model_close(m);
}

/* ---- truncation --------------------------------------------------------------------- */

TEST(dropped_tokens_count_what_truncation_left_out) {
  if (!stories_present()) return;
  ag_chat_model *m = open_model(STORIES_DIR, "plain", false, true);
  if (!m) return;
  enum { TURNS = 41 };
  ag_chat_message chat[TURNS];
  chat[0] = (ag_chat_message){"system", "Be kind.", NULL};
  for (int i = 1; i < TURNS; i++)
    chat[i] = (ag_chat_message){i % 2 ? "user" : "assistant",
                                i % 4 == 1 ? "The little dog ran to the park and played with a red "
                                             "ball all day long."
                                           : "Lily and Tom went to see the big tree by the lake.",
                                NULL};
  /* the whole conversation's prompt, as the model would read it */
  char *text = NULL;
  CHECK_OK(ag_chat_model_prompt(m, chat, TURNS, &text));
  ag_tok_ids whole = {0};
  ag_lm *lm = ag_chat_model_lm(m);
  if (text) CHECK_OK(ag_lm_encode_prompt(lm, text, strlen(text), &whole));
  free(text);
  CHECK(whole.count > lm->context_length);
  ag_chat_conversation c = {chat, TURNS, 0};
  ag_chat_params p = ag_chat_params_defaults();
  p.sampling.temperature = 0;
  p.max_tokens = 20;
  ag_chat_reply r = {0};
  CHECK_OK(ag_chat_model_reply(m, &c, 1, &p, &r));
  CHECK_MSG(r.dropped_tokens > 0 && r.prompt_tokens + r.dropped_tokens == whole.count &&
                r.prompt_tokens + 20 <= lm->context_length,
            "prompt %lld + dropped %lld tokens; whole %lld", (long long)r.prompt_tokens,
            (long long)r.dropped_tokens, (long long)whole.count);
  ag_chat_reply_clear(&r, 1);
  /* a conversation that fits drops nothing */
  c.count = 3;
  CHECK_OK(ag_chat_model_reply(m, &c, 1, &p, &r));
  CHECK(r.dropped_tokens == 0 && r.prompt_tokens > 0);
  ag_chat_reply_clear(&r, 1);
  ag_tok_ids_free(&whole);
  ag_chat_model_close(m);
}

int main(void) {
  RUN(streamed_pieces_make_up_each_reply_without_the_prompts_final_space);
  RUN(a_function_streams_each_reply_whole_once_the_call_succeeds);
  RUN(ignore_eos_goes_past_eos_to_max_tokens);
  RUN(reply_options_stop_at_the_end_of_turn_or_before_a_next_plain_user_turn);
  RUN(plain_fallback_opens_a_model_without_a_template_it_renders);
  RUN(dropped_tokens_count_what_truncation_left_out);
  TEST_MAIN_END();
}
