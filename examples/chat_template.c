/* docs/chat.md: render a conversation with a chat template picked by name,
 * find the assistant's content in the text (the loss mask of "train on
 * assistant turns"), and pick a template from a model's Jinja template.
 * Usage: example_chat_template [MODEL_FOLDER | tokenizer_config.json | X.jinja]
 * (default: the published Gemma 2 template in ../shared/data). */
#include "agora/chat_template.h"

#include <stdio.h>
#include <stdlib.h>

#define DEFAULT_TEMPLATE "../shared/data/tokenizers/chat-templates/google-gemma-2-2b-it.jinja"

static int fail(void) {
  fprintf(stderr, "error: %s\n", ag_error_message());
  return 1;
}

int main(int argc, char **argv) {
  const ag_chat_message conversation[] = {
      {"system", "You are a patient maths teacher.", NULL},
      {"user", "What is 7 * 8?", NULL},
      {"assistant", "56.", NULL},
      {"user", "And 7 * 9?", NULL},
  };
  const int n = 4;

  /* By name, with a generation prompt: the text a model completes. */
  const ag_chat_template *chatml;
  if (ag_chat_template_by_name("chatml", &chatml)) return fail();
  ag_chat_render_options options = {.add_generation_prompt = true};
  char *text;
  if (ag_chat_render(chatml, conversation, n, &options, &text)) return fail();
  printf("--- %s, generation prompt, stop at %s\n%s\n", ag_chat_template_name(chatml),
         ag_chat_template_end_of_turn(chatml), text);
  free(text);

  /* Spans: where each message's content landed. An assistant turn's bytes
   * [begin, turn_end) are what training on assistant turns scores. */
  const ag_chat_template *llama3;
  if (ag_chat_template_by_name("llama3", &llama3)) return fail();
  ag_chat_span spans[4];
  if (ag_chat_render_spans(llama3, conversation, n, NULL, &text, spans)) return fail();
  printf("--- %s\n%s\n", ag_chat_template_name(llama3), text);
  for (int i = 0; i < n; i++)
    if (spans[i].begin >= 0)
      printf("message %d (%s): bytes [%lld, %lld) \"%.*s\", turn ends at %lld\n", i,
             conversation[i].role, (long long)spans[i].begin, (long long)spans[i].end,
             (int)(spans[i].end - spans[i].begin), text + spans[i].begin,
             (long long)spans[i].turn_end);
  free(text);

  /* From a model's own template: Gemma has no system role, and says so. */
  const char *path = argc > 1 ? argv[1] : DEFAULT_TEMPLATE;
  const ag_chat_template *detected;
  if (ag_chat_template_load(path, &detected)) return fail();
  printf("--- %s is the %s template\n", path, ag_chat_template_name(detected));
  ag_status st = ag_chat_render(detected, conversation, n, NULL, &text);
  if (st == AG_OK)
    free(text);
  else
    printf("with a system message: %s\n", ag_error_message());
  if (ag_chat_render(detected, conversation + 1, n - 1, &options, &text)) return fail();
  printf("without it:\n%s\n", text);
  free(text);
  return 0;
}
