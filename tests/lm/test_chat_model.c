/* Chat models: the local engine on stories260K with the plain template
 * (its prompt text, greedy replies = ag_generate on that text, sampled
 * replies that depend on (seed, stream) and not on the batch), per-prompt
 * streams in ag_generate, Gemma's system folding, context truncation,
 * custom (function) models, and the errors of opening and replying. */
#include "agora/chat_model.h"
#include "test.h"

#define STORIES_DIR "../shared/data/models/stories260K"

static ag_chat_model *stories_chat(bool truncate) {
  static bool warned = false;
  if (!ag_file_exists(STORIES_DIR "/model.safetensors")) {
    if (!warned) fprintf(stderr, "  note: %s not found; skipped\n", STORIES_DIR);
    warned = true;
    return NULL;
  }
  ag_chat_model_options o = ag_chat_model_defaults();
  o.chat_template = "plain";
  o.truncate = truncate;
  ag_chat_model *m = NULL;
  CHECK_OK(ag_chat_model_open(STORIES_DIR, &o, &m));
  return m;
}

static ag_chat_params greedy(int64_t tokens) {
  ag_chat_params p = ag_chat_params_defaults();
  p.sampling.temperature = 0;
  p.max_tokens = tokens;
  return p;
}

static const ag_chat_message STORY[] = {
    {"system", "You tell short stories.", NULL},
    {"user", "Tell me about a cat.", NULL},
};

TEST(the_prompt_is_the_plain_template_with_the_models_eos_and_a_generation_prompt) {
  ag_chat_model *m = stories_chat(false);
  if (!m) return;
  CHECK(!strcmp(ag_chat_model_name(m), "stories260K"));
  CHECK(ag_chat_model_lm(m) != NULL);
  char *text = NULL;
  CHECK_OK(ag_chat_model_prompt(m, STORY, 2, &text));
  const char *want =
      "system: You tell short stories.</s>\nuser: Tell me about a cat.</s>\nassistant:";
  CHECK_MSG(text && !strcmp(text, want), "got '%s'", text ? text : "(null)");
  free(text);
  /* ag_chat_model_render uses the family's own EOS text; the generation
   * prompt's final space is left for the model to write */
  const ag_chat_template *plain = NULL;
  CHECK_OK(ag_chat_template_by_name("plain", &plain));
  CHECK_OK(ag_chat_model_render(plain, STORY + 1, 1, &text));
  CHECK(text && !strcmp(text, "user: Tell me about a cat.<|endoftext|>\nassistant:"));
  free(text);
  ag_chat_model_close(m);
}

TEST(greedy_replies_are_deterministic_and_equal_ag_generate_on_the_prompt) {
  ag_chat_model *m = stories_chat(false);
  if (!m) return;
  ag_chat_conversation c = {STORY, 2, 0};
  ag_chat_params p = greedy(40);
  ag_chat_reply a = {0}, b = {0};
  CHECK_OK(ag_chat_model_reply(m, &c, 1, &p, &a));
  CHECK_OK(ag_chat_model_reply(m, &c, 1, &p, &b));
  CHECK(a.content && b.content && !strcmp(a.content, b.content));
  CHECK(a.completion_tokens > 0 && a.completion_tokens <= 40);
  /* the same text through ag_generate: BOS + the prompt text, EOS ends it */
  char *prompt = NULL;
  CHECK_OK(ag_chat_model_prompt(m, STORY, 2, &prompt));
  ag_generate_options o = ag_generate_defaults();
  o.sampling.temperature = 0;
  o.max_new_tokens = 40;
  ag_generation g = {0};
  const char *prompts[] = {prompt};
  CHECK_OK(ag_generate(ag_chat_model_lm(m), prompts, 1, &o, &g));
  /* the model writes the space the prompt left out; the reply skips it */
  const char *gen = g.text.data ? g.text.data : "";
  if (gen[0] == ' ') gen++;
  CHECK_MSG(a.content && !strcmp(a.content, gen), "reply '%s'\n  gen '%s'",
            a.content ? a.content : "", g.text.data ? g.text.data : "");
  CHECK(a.prompt_tokens == g.prompt_tokens && a.completion_tokens == g.tokens.count);
  CHECK(a.finish == g.finish);
  fprintf(stderr, "  reply (%lld prompt tokens): %.60s...\n", (long long)a.prompt_tokens,
          a.content ? a.content : "");
  ag_generation_free(&g, 1);
  free(prompt);
  ag_chat_reply_clear(&a, 1);
  ag_chat_reply_clear(&b, 1);
  CHECK(a.content == NULL && a.completion_tokens == 0);
  ag_chat_model_close(m);
}

/* reply_role "user": the model writes the next user turn (a student writing
 * its teacher's critique) from the same rendering, opened with "user:". */
TEST(a_user_role_reply_continues_the_rendering_with_a_user_turn) {
  ag_chat_model *m = stories_chat(false);
  if (!m) return;
  static const ag_chat_message answered[] = {
      {"system", "You tell short stories.", NULL},
      {"user", "Tell me about a cat.", NULL},
      {"assistant", "Once upon a time there was a cat.", NULL},
  };
  ag_chat_conversation c = {answered, 3, 0};
  ag_chat_params p = greedy(30);
  p.reply_role = "user";
  ag_chat_reply a = {0};
  CHECK_OK(ag_chat_model_reply(m, &c, 1, &p, &a));
  const char *prompt = "system: You tell short stories.</s>\nuser: Tell me about a cat.</s>\n"
                       "assistant: Once upon a time there was a cat.</s>\nuser:";
  ag_generate_options o = ag_generate_defaults();
  o.sampling.temperature = 0;
  o.max_new_tokens = 30;
  o.stop[o.stop_count++] = "\nassistant:";
  ag_generation g = {0};
  CHECK_OK(ag_generate(ag_chat_model_lm(m), &prompt, 1, &o, &g));
  const char *gen = g.text.data ? g.text.data : "";
  if (gen[0] == ' ') gen++;
  CHECK_MSG(a.content && !strcmp(a.content, gen), "reply '%s'\n  gen '%s'",
            a.content ? a.content : "", gen);
  CHECK(a.prompt_tokens == g.prompt_tokens);
  ag_generation_free(&g, 1);
  ag_chat_reply_clear(&a, 1);
  ag_chat_model_close(m);
}

TEST(sampled_replies_depend_on_seed_and_stream_not_on_the_batch) {
  ag_chat_model *m = stories_chat(false);
  if (!m) return;
  const ag_chat_message other[] = {{"user", "Once upon a time there was a dog.", NULL}};
  ag_chat_conversation convs[4] = {{STORY, 2, 7}, {other, 1, 3}, {STORY, 2, 3}, {STORY, 2, 7}};
  ag_chat_params p = ag_chat_params_defaults();
  p.max_tokens = 30;
  p.seed = 11;
  ag_chat_reply batch[4] = {{0}}, alone[4] = {{0}};
  CHECK_OK(ag_chat_model_reply(m, convs, 4, &p, batch));
  for (int i = 0; i < 4; i++) CHECK_OK(ag_chat_model_reply(m, &convs[i], 1, &p, &alone[i]));
  for (int i = 0; i < 4; i++)
    CHECK_MSG(batch[i].content && alone[i].content && !strcmp(batch[i].content, alone[i].content),
              "conversation %d: batch '%s' alone '%s'", i, batch[i].content, alone[i].content);
  /* same conversation and stream: same text; another stream: another text */
  CHECK(!strcmp(batch[0].content, batch[3].content));
  CHECK(strcmp(batch[0].content, batch[2].content) != 0);
  /* batches of one conversation at a time give the same too */
  ag_chat_model_close(m);
  ag_chat_model_options o = ag_chat_model_defaults();
  o.chat_template = "plain";
  o.max_batch = 1;
  CHECK_OK(ag_chat_model_open(STORIES_DIR, &o, &m));
  ag_chat_reply ones[4] = {{0}};
  CHECK_OK(ag_chat_model_reply(m, convs, 4, &p, ones));
  for (int i = 0; i < 4; i++) CHECK(ones[i].content && !strcmp(ones[i].content, batch[i].content));
  /* another seed changes the text */
  p.seed = 12;
  ag_chat_reply reseeded = {0};
  CHECK_OK(ag_chat_model_reply(m, &convs[0], 1, &p, &reseeded));
  CHECK(reseeded.content && strcmp(reseeded.content, batch[0].content) != 0);
  ag_chat_reply_clear(&reseeded, 1);
  ag_chat_reply_clear(ones, 4);
  ag_chat_reply_clear(batch, 4);
  ag_chat_reply_clear(alone, 4);
  ag_chat_model_close(m);
}

TEST(generate_streams_pick_each_prompts_random_stream) {
  ag_chat_model *m = stories_chat(false);
  if (!m) return;
  ag_lm *lm = ag_chat_model_lm(m);
  ag_generate_options o = ag_generate_defaults();
  o.max_new_tokens = 25;
  o.seed = 3;
  const char *prompts[] = {"The dog", "A girl"};
  /* streams {9, 4} in one call = index_base 9 for the first, 4 for the second */
  uint64_t streams[] = {9, 4};
  o.streams = streams;
  ag_generation both[2] = {0};
  CHECK_OK(ag_generate(lm, prompts, 2, &o, both));
  o.streams = NULL;
  ag_generation first = {0}, second = {0};
  o.index_base = 9;
  CHECK_OK(ag_generate(lm, &prompts[0], 1, &o, &first));
  o.index_base = 4;
  CHECK_OK(ag_generate(lm, &prompts[1], 1, &o, &second));
  CHECK(both[0].text.data && first.text.data && !strcmp(both[0].text.data, first.text.data));
  CHECK(both[1].text.data && second.text.data && !strcmp(both[1].text.data, second.text.data));
  /* and the stream matters: index_base 0 gives the first prompt other text */
  ag_generation plain = {0};
  o.index_base = 0;
  CHECK_OK(ag_generate(lm, &prompts[0], 1, &o, &plain));
  CHECK(plain.text.data && strcmp(plain.text.data, first.text.data) != 0);
  ag_generation_free(both, 2);
  ag_generation_free(&first, 1);
  ag_generation_free(&second, 1);
  ag_generation_free(&plain, 1);
  ag_chat_model_close(m);
}

TEST(gemma_gets_the_system_message_folded_into_the_first_user_message) {
  const ag_chat_template *gemma = NULL;
  CHECK_OK(ag_chat_template_by_name("gemma", &gemma));
  char *text = NULL;
  CHECK_OK(ag_chat_model_render(gemma, STORY, 2, &text));
  CHECK_MSG(text && !strcmp(text, "<bos><start_of_turn>user\nYou tell short stories.\n\nTell me "
                                  "about a cat.<end_of_turn>\n<start_of_turn>model\n"),
            "got '%s'", text ? text : "(null)");
  free(text);
  /* a system message alone becomes the user message */
  CHECK_OK(ag_chat_model_render(gemma, STORY, 1, &text));
  CHECK(text && !strcmp(text, "<bos><start_of_turn>user\nYou tell short stories.<end_of_turn>\n"
                              "<start_of_turn>model\n"));
  free(text);
  /* other templates keep it as it is */
  const ag_chat_template *chatml = NULL;
  CHECK_OK(ag_chat_template_by_name("chatml", &chatml));
  CHECK_OK(ag_chat_model_render(chatml, STORY, 2, &text));
  CHECK(text && strstr(text, "<|im_start|>system\nYou tell short stories.<|im_end|>"));
  free(text);
  /* Gemma's own refusals still come through */
  const ag_chat_message bad[] = {{"user", "a", NULL}, {"user", "b", NULL}};
  CHECK(ag_chat_model_render(gemma, bad, 2, &text) == AG_ERR_INVALID);
  CHECK(text == NULL && strstr(ag_error_message(), "alternate"));
}

TEST(a_conversation_too_long_for_the_context_fails_or_drops_its_oldest_turns) {
  ag_chat_model *m = stories_chat(false);
  if (!m) return;
  enum { TURNS = 41 };
  ag_chat_message long_chat[TURNS];
  long_chat[0] = (ag_chat_message){"system", "Be kind.", NULL};
  for (int i = 1; i < TURNS; i++)
    long_chat[i] = (ag_chat_message){i % 2 ? "user" : "assistant",
                                     "The little dog ran to the park and played with a red ball "
                                     "all day long.",
                                     NULL};
  ag_chat_conversation c = {long_chat, TURNS, 0};
  ag_chat_params p = greedy(20);
  ag_chat_reply r = {0};
  CHECK(ag_chat_model_reply(m, &c, 1, &p, &r) == AG_ERR_INVALID);
  CHECK_MSG(strstr(ag_error_message(), "stories260K") && strstr(ag_error_message(), "context"),
            "%s", ag_error_message());
  ag_chat_reply_clear(&r, 1);
  ag_chat_model_close(m);
  m = stories_chat(true);
  CHECK_OK(ag_chat_model_reply(m, &c, 1, &p, &r));
  CHECK(r.content && r.prompt_tokens > 0 && r.prompt_tokens + 20 <= 512);
  /* the kept conversation still starts with the system message and a user turn */
  ag_chat_reply_clear(&r, 1);
  ag_chat_model_close(m);
}

/* A scripted agent: replies "echo N: <last message>" and counts calls. */
static ag_status echo(void *user, const ag_chat_conversation *convs, int64_t n,
                      const ag_chat_params *params, ag_chat_reply *out) {
  int *calls = user;
  ++*calls;
  for (int64_t i = 0; i < n; i++) {
    const char *last = convs[i].messages[convs[i].count - 1].content;
    size_t bytes = strlen(last) + 32;
    out[i].content = malloc(bytes);
    if (!out[i].content) return ag_error_set(AG_ERR_NOMEM, "echo: out of memory");
    snprintf(out[i].content, bytes, "echo %lld: %s", (long long)params->max_tokens, last);
    out[i].finish = AG_FINISH_EOS;
  }
  return AG_OK;
}

static ag_status broken(void *user, const ag_chat_conversation *convs, int64_t n,
                        const ag_chat_params *params, ag_chat_reply *out) {
  return ag_error_set(AG_ERR_IO, "the script ran out of lines");
}

TEST(a_custom_model_is_a_function) {
  int calls = 0;
  ag_chat_model *m = NULL;
  CHECK_OK(ag_chat_model_custom("scripted", echo, &calls, &m));
  CHECK(!strcmp(ag_chat_model_name(m), "scripted") && ag_chat_model_lm(m) == NULL);
  ag_chat_conversation convs[2] = {{STORY, 2, 0}, {STORY, 1, 1}};
  ag_chat_params p = greedy(5);
  ag_chat_reply r[2] = {{0}};
  CHECK_OK(ag_chat_model_reply(m, convs, 2, &p, r));
  CHECK(calls == 1);
  CHECK(r[0].content && !strcmp(r[0].content, "echo 5: Tell me about a cat."));
  CHECK(r[1].content && !strcmp(r[1].content, "echo 5: You tell short stories."));
  ag_chat_reply_clear(r, 2);
  char *text = NULL;
  CHECK(ag_chat_model_prompt(m, STORY, 2, &text) == AG_ERR_INVALID && text == NULL);
  ag_chat_model_close(m);
  CHECK_OK(ag_chat_model_custom("broken", broken, NULL, &m));
  CHECK(ag_chat_model_reply(m, convs, 1, &p, r) == AG_ERR_IO);
  CHECK(strstr(ag_error_message(), "broken") && strstr(ag_error_message(), "out of lines"));
  ag_chat_reply_clear(r, 1);
  ag_chat_model_close(m);
}

TEST(opening_and_replying_refuse_what_cannot_work_with_one_clear_message) {
  CHECK(ag_chat_model_is_endpoint("http://127.0.0.1:8080/v1#m"));
  CHECK(ag_chat_model_is_endpoint("https://api.example.com/v1#m"));
  CHECK(!ag_chat_model_is_endpoint("models/stories260K") && !ag_chat_model_is_endpoint(NULL));
  ag_chat_model *m = NULL;
  CHECK(ag_chat_model_open("http://127.0.0.1:8080/v1", NULL, &m) == AG_ERR_INVALID && !m);
  CHECK(strstr(ag_error_message(), "#"));
  CHECK(ag_chat_model_open("/nonexistent/model", NULL, &m) != AG_OK && !m);
  CHECK(strstr(ag_error_message(), "/nonexistent/model"));
  /* an endpoint opens without contacting anything */
  CHECK_OK(ag_chat_model_open("http://127.0.0.1:9/v1#tiny", NULL, &m));
  CHECK(m && !strcmp(ag_chat_model_name(m), "tiny") && ag_chat_model_lm(m) == NULL);
  {
    /* chat-completions writes assistant turns only: refused before any request */
    ag_chat_conversation one = {STORY, 2, 0};
    ag_chat_params up = greedy(5);
    up.reply_role = "user";
    ag_chat_reply none = {0};
    CHECK(ag_chat_model_reply(m, &one, 1, &up, &none) == AG_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(ag_error_message(), "assistant turns only"), "%s", ag_error_message());
    ag_chat_reply_clear(&none, 1);
  }
  ag_chat_model_close(m);
  if (!ag_file_exists(STORIES_DIR "/model.safetensors")) return;
  /* stories260K has no chat template of its own */
  CHECK(ag_chat_model_open(STORIES_DIR, NULL, &m) == AG_ERR_INVALID && !m);
  CHECK_MSG(strstr(ag_error_message(), "chat template") &&
                strstr(ag_error_message(), "chat_template"),
            "%s", ag_error_message());
  ag_chat_model_options o = ag_chat_model_defaults();
  o.chat_template = "klingon";
  CHECK(ag_chat_model_open(STORIES_DIR, &o, &m) != AG_OK && strstr(ag_error_message(), "plain"));
  m = stories_chat(false);
  ag_chat_conversation c = {STORY, 2, 0};
  ag_chat_reply r = {0};
  ag_chat_params p = greedy(-1);
  CHECK(ag_chat_model_reply(m, &c, 1, &p, &r) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "max_tokens"));
  p = greedy(10);
  p.sampling.top_p = 0;
  CHECK(ag_chat_model_reply(m, &c, 1, &p, &r) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "top_p"));
  p = greedy(0); /* no tokens: an empty reply */
  CHECK_OK(ag_chat_model_reply(m, &c, 1, &p, &r));
  CHECK(r.content && r.content[0] == '\0' && r.finish == AG_FINISH_LENGTH);
  ag_chat_reply_clear(&r, 1);
  ag_chat_message nocontent[] = {{"user", NULL, NULL}};
  ag_chat_conversation bad = {nocontent, 1, 0};
  p = greedy(5);
  CHECK(ag_chat_model_reply(m, &bad, 1, &p, &r) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "content"));
  ag_chat_model_close(m);
}

int main(void) {
  RUN(the_prompt_is_the_plain_template_with_the_models_eos_and_a_generation_prompt);
  RUN(greedy_replies_are_deterministic_and_equal_ag_generate_on_the_prompt);
  RUN(a_user_role_reply_continues_the_rendering_with_a_user_turn);
  RUN(sampled_replies_depend_on_seed_and_stream_not_on_the_batch);
  RUN(generate_streams_pick_each_prompts_random_stream);
  RUN(gemma_gets_the_system_message_folded_into_the_first_user_message);
  RUN(a_conversation_too_long_for_the_context_fails_or_drops_its_oldest_turns);
  RUN(a_custom_model_is_a_function);
  RUN(opening_and_replying_refuse_what_cannot_work_with_one_clear_message);
  TEST_MAIN_END();
}
