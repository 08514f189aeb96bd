/* docs/serve.md: serve a local model over the OpenAI HTTP API on a free
 * port, ask it through agora's own endpoint client, and stop. What
 * `agora serve MODEL --port 0 --chat-template plain` does, in-process.
 * Usage: example_serve [MODEL] (default: stories260K in
 * ../shared/data/models, when it is there). */
#include "agora/serve.h"

#include "agora/chat_model.h"

#include <stdio.h>

#define DEFAULT_MODEL "../shared/data/models/stories260K"

static int fail(void) {
  fprintf(stderr, "error: %s\n", ag_error_message());
  return 1;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : DEFAULT_MODEL;
  if (argc < 2 && !ag_file_exists(path)) {
    printf("note: %s is not here; pass a model folder or GGUF file\n", path);
    return 0;
  }
  ag_lm *lm;
  if (ag_lm_open(path, &lm)) return fail();
  ag_server_options o = ag_server_defaults(); /* 127.0.0.1 */
  o.port = 0;                                 /* any free port */
  o.model_name = "stories";
  o.chat_template = "plain"; /* stories260K has none of its own */
  ag_server *server;
  if (ag_server_start(lm, &o, &server)) return fail();
  char spec[96];
  snprintf(spec, sizeof spec, "http://127.0.0.1:%d/v1#stories", ag_server_port(server));
  printf("listening: %s\n", spec);

  /* Any OpenAI client works; here agora's own. */
  ag_chat_model_options c = ag_chat_model_defaults();
  c.timeout_seconds = 30;
  ag_chat_model *m;
  if (ag_chat_model_open(spec, &c, &m)) return fail();
  const ag_chat_message msgs[] = {{"user", "Tell me about a cat.", NULL}};
  ag_chat_conversation conv = {msgs, 1, 0};
  ag_chat_params p = ag_chat_params_defaults();
  p.sampling.temperature = 0; /* greedy: the local engine's text exactly */
  p.max_tokens = 30;
  ag_chat_reply r;
  ag_status st = ag_chat_model_reply(m, &conv, 1, &p, &r);
  if (st)
    fprintf(stderr, "error: %s\n", ag_error_message());
  else
    printf("reply (%s, %lld prompt + %lld completion tokens): %s\n",
           ag_finish_reason_name(r.finish), (long long)r.prompt_tokens,
           (long long)r.completion_tokens, r.content);
  ag_chat_reply_clear(&r, 1);
  ag_chat_model_close(m);
  ag_server_stop(server);
  ag_lm_close(lm);
  return st ? 1 : 0;
}
