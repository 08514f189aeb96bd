/* docs/chat-models.md: a local model as a chat model (the plain template,
 * two conversations answered in one batch), and a scripted agent that is a
 * function. The same calls work on an endpoint: pass
 * "http://HOST:PORT/v1#MODEL_NAME" as MODEL.
 * Usage: example_chat_model [MODEL] (default: stories260K in
 * ../shared/data/models, when it is there). */
#include "agora/chat_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MODEL "../shared/data/models/stories260K"

static int fail(void) {
  fprintf(stderr, "error: %s\n", ag_error_message());
  return 1;
}

/* A scripted agent: always answers with the length of the last message. */
static ag_status count_letters(void *user, const ag_chat_conversation *convs, int64_t n,
                               const ag_chat_params *params, ag_chat_reply *out) {
  (void)user;
  (void)params;
  for (int64_t i = 0; i < n; i++) {
    const char *last = convs[i].messages[convs[i].count - 1].content;
    out[i].content = malloc(64);
    if (!out[i].content) return ag_error_set(AG_ERR_NOMEM, "count_letters: out of memory");
    snprintf(out[i].content, 64, "That was %zu bytes.", strlen(last));
    out[i].finish = AG_FINISH_EOS;
  }
  return AG_OK;
}

int main(int argc, char **argv) {
  const char *spec = argc > 1 ? argv[1] : DEFAULT_MODEL;
  if (argc < 2 && !ag_file_exists(spec)) {
    printf("note: %s is not here; pass a model folder, GGUF file or endpoint\n", spec);
    return 0;
  }
  /* stories260K has no chat template of its own: name one. */
  ag_chat_model_options o = ag_chat_model_defaults();
  if (!ag_chat_model_is_endpoint(spec)) o.chat_template = "plain";
  ag_chat_model *m;
  if (ag_chat_model_open(spec, &o, &m)) return fail();

  const ag_chat_message story[] = {{"system", "You tell short stories.", NULL},
                                   {"user", "Tell me about a cat.", NULL}};
  const ag_chat_message dog[] = {{"user", "Once upon a time there was a dog.", NULL}};
  if (ag_chat_model_lm(m)) { /* what the local engine generates from */
    char *prompt;
    if (ag_chat_model_prompt(m, story, 2, &prompt)) return fail();
    printf("prompt: %s\n", prompt);
    free(prompt);
  }
  /* Two conversations in one call, sampled at seed 7; each on its own
   * stream, so its reply does not depend on the other. */
  ag_chat_conversation convs[] = {{story, 2, 0}, {dog, 1, 1}};
  ag_chat_params p = ag_chat_params_defaults();
  p.sampling.temperature = 0.8f;
  p.sampling.top_p = 0.95f;
  p.max_tokens = 40;
  p.seed = 7;
  ag_chat_reply r[2];
  if (ag_chat_model_reply(m, convs, 2, &p, r)) {
    ag_chat_reply_clear(r, 2);
    return fail();
  }
  for (int i = 0; i < 2; i++)
    printf("%s (%s, %lld + %lld tokens): %s\n", ag_chat_model_name(m),
           ag_finish_reason_name(r[i].finish), (long long)r[i].prompt_tokens,
           (long long)r[i].completion_tokens, r[i].content);
  ag_chat_reply_clear(r, 2);
  ag_chat_model_close(m);

  /* A function as a chat model: the same interface for scripted agents. */
  if (ag_chat_model_custom("counter", count_letters, NULL, &m)) return fail();
  if (ag_chat_model_reply(m, convs, 1, &p, r)) {
    ag_chat_reply_clear(r, 1);
    return fail();
  }
  printf("%s: %s\n", ag_chat_model_name(m), r[0].content);
  ag_chat_reply_clear(r, 1);
  ag_chat_model_close(m);
  return 0;
}
