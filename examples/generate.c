/* docs/lm.md: open a model, continue a prompt greedily, sample three prompts
 * at once with a seed, stop at a string, and measure perplexity.
 * Usage: example_generate [MODEL] (a model folder or .gguf file; default:
 * stories260K in ../shared/data/models, when it is there). */
#include "agora/generate.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

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
  printf("%s: %lld-token context, BOS %s\n", path, (long long)lm->context_length,
         lm->add_bos ? "added" : "not added");

  /* Greedy: exactly reproducible. */
  ag_generate_options o = ag_generate_defaults();
  o.sampling.temperature = 0;
  o.max_new_tokens = 30;
  const char *prompt = "Once upon a time";
  ag_generation g;
  if (ag_generate(lm, &prompt, 1, &o, &g)) return fail();
  printf("greedy: %s|%s\n", prompt, g.text.data);
  ag_generation_free(&g, 1);

  /* Three prompts of different lengths through one KV cache, sampled:
   * nucleus 0.9, a mild repetition penalty, seed 42; each ends at "." */
  const char *prompts[] = {"Tom had a", "The little bird", "One day, Lily and her mom went to"};
  ag_generation out[3];
  o = ag_generate_defaults();
  o.sampling.temperature = 0.8f;
  o.sampling.top_p = 0.9f;
  o.sampling.repetition_penalty = 1.1f;
  o.max_new_tokens = 40;
  o.seed = 42;
  o.stop[o.stop_count++] = ".";
  if (ag_generate(lm, prompts, 3, &o, out)) return fail();
  for (int i = 0; i < 3; i++)
    printf("sampled: %s|%s (%s, %lld tokens)\n", prompts[i], out[i].text.data,
           ag_finish_reason_name(out[i].finish), (long long)out[i].tokens.count);
  ag_generation_free(out, 3);

  /* Perplexity of a sentence. */
  const char *text = "Once upon a time, there was a little girl named Lily.";
  ag_lm_score s = {0};
  if (ag_lm_score_text(lm, text, strlen(text), 0, &s)) return fail();
  printf("perplexity %.3f over %lld tokens\n", exp(s.nll_sum / (double)s.tokens),
         (long long)s.tokens);
  ag_lm_close(lm);
  return 0;
}
