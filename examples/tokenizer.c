/* docs/tokenizers.md: load a tokenizer, encode a text, decode it back, and
 * train a small byte-level BPE tokenizer. Usage: example_tokenizer [PATH]
 * (default: the stories260K model folder in ../shared/data/models). */
#include "agora/tokenizer.h"

#include <stdio.h>
#include <string.h>

#define DEFAULT_TOKENIZER "../shared/data/models/stories260K"

static int fail(void) {
  fprintf(stderr, "error: %s\n", ag_error_message());
  return 1;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : DEFAULT_TOKENIZER;
  ag_tokenizer *t;
  if (ag_tok_load(path, &t)) return fail();
  printf("%s: %s, %d tokens, pre-tokenizer %s\n", path, ag_tok_model_name(t), ag_tok_vocab_size(t),
         ag_tok_pre_name(t));

  const char *text = "Once upon a time, a little robot said \"h\xc3\xa9llo\".";
  ag_tok_ids ids = {0};
  if (ag_tok_encode(t, text, strlen(text), AG_TOK_ADD_SPECIAL, &ids)) return fail();
  printf("%lld ids:", (long long)ids.count);
  for (int64_t i = 0; i < ids.count; i++) {
    size_t n;
    const char *s = ag_tok_token_text(t, ids.ids[i], &n);
    printf(" %d(%.*s)", ids.ids[i], (int)n, s);
  }
  printf("\n");

  ag_tok_text back = {0};
  if (ag_tok_decode(t, ids.ids, ids.count, AG_TOK_SKIP_SPECIAL, &back)) return fail();
  printf("decoded: %s\n", back.data);
  int same = back.size == strlen(text) && memcmp(back.data, text, back.size) == 0;
  ag_tok_text_free(&back);
  ag_tok_ids_free(&ids);
  ag_tok_free(t);

  /* Training: feed documents, merge, use (or ag_tok_save_json) the result. */
  ag_tok_train_config config = ag_tok_train_defaults();
  config.vocab_size = 300;
  config.min_frequency = 1;
  ag_tok_trainer *tr;
  ag_tokenizer *trained;
  if (ag_tok_trainer_create(&config, &tr)) return fail();
  for (int i = 0; i < 50; i++)
    if (ag_tok_trainer_feed(tr, text, strlen(text))) return fail();
  if (ag_tok_trainer_finish(tr, &trained)) return fail();
  ag_tok_trainer_free(tr);
  ag_tok_ids few = {0};
  if (ag_tok_encode(trained, text, strlen(text), 0, &few)) return fail();
  printf("trained: %d tokens, %lld merges; the text is %lld ids\n", ag_tok_vocab_size(trained),
         (long long)ag_tok_merge_count(trained), (long long)few.count);
  ag_tok_ids_free(&few);
  ag_tok_free(trained);
  return same ? 0 : 1;
}
