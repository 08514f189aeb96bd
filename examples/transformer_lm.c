/* docs/models.md: a tiny Llama learns a sentence, is saved in the Hugging
 * Face layout, loaded back (memory-mapped) and continues a prompt through a
 * KV cache. Then, if the stories260K checkpoint is around, the same calls
 * run a real pretrained model. */
#include "agora/hf_model.h"
#include "agora/optim.h"
#include "agora/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STORIES_DIR "../shared/data/models/stories260K"

static const char TEXT[] = "the cat sat on the mat. ";
#define T 32 /* tokens per training window; ids are bytes (vocabulary 128) */

static int fail(const char *what) {
  fprintf(stderr, "error: %s: %s\n", what, ag_error_message());
  return 1;
}

/* Greedy continuation: the prompt goes in as one step, then one token per
 * step; each step appends to the cache and returns the last logits. */
static ag_status generate(ag_transformer *m, const int32_t *prompt, int n, int steps,
                          int32_t *out) {
  ag_kv_cache *cache = NULL;
  ag_status st = ag_kv_cache_create(m, 1, n + steps, &cache);
  const float *logits = NULL;
  if (!st) st = ag_transformer_decode(m, cache, prompt, n, NULL, AG_LOGITS_LAST, &logits);
  int64_t V = ag_transformer_config_of(m)->vocab_size;
  for (int i = 0; !st && i < steps; i++) {
    int32_t best = 0;
    for (int32_t v = 1; v < V; v++)
      if (logits[v] > logits[best]) best = v;
    out[i] = best;
    if (i + 1 < steps)
      st = ag_transformer_decode(m, cache, &best, 1, NULL, AG_LOGITS_LAST, &logits);
  }
  ag_kv_cache_destroy(cache);
  return st;
}

static int train_save_load_generate(void) {
  ag_transformer_config cfg = ag_transformer_llama_config(128, 32, 2, 4, 2, 64);
  ag_transformer *model = NULL;
  if (ag_transformer_create(&cfg, &model)) return fail("create");
  ag_transformer_init(model, 1);
  ag_optim_config oc = ag_optim_adamw_defaults(1e-2f);
  oc.weight_decay = 0.0f;
  ag_optim *adam = NULL;
  if (ag_optim_create(ag_transformer_params(model), &oc, &adam)) return fail("optimizer");
  int32_t ids[T], targets[T];
  int n = (int)strlen(TEXT);
  for (int i = 0; i < T; i++) {
    ids[i] = TEXT[i % n];
    targets[i] = TEXT[(i + 1) % n];
  }
  ag_tape *tape = ag_tape_create();
  float loss_value = 0;
  for (int step = 0; step < 150; step++) {
    ag_tape_reset(tape);
    ag_params_zero_grad(ag_transformer_params(model));
    ag_tensor *loss = ag_transformer_loss(tape, model, ids, targets, NULL, 1, T);
    if (!loss) return fail(ag_tape_error(tape));
    if (ag_backward(tape, loss) || ag_optim_step(adam, 1e-2f)) return fail("step");
    loss_value = loss->data[0];
  }
  printf("trained: loss %.4f\n", loss_value);

  char dir[] = "/tmp/agora-example-XXXXXX";
  if (!mkdtemp(dir)) return fail("mkdtemp");
  if (ag_hf_save(dir, model, NULL, AG_DTYPE_F32)) return fail("save");
  ag_transformer *loaded = NULL;
  if (ag_hf_load(dir, AG_HF_LOAD_MAPPED, &loaded, NULL)) return fail("load");

  const char *prompt_text = "the cat";
  int32_t prompt[8], out[16];
  int p = (int)strlen(prompt_text);
  for (int i = 0; i < p; i++) prompt[i] = prompt_text[i];
  if (generate(loaded, prompt, p, 16, out)) return fail("generate");
  char text[17];
  for (int i = 0; i < 16; i++) text[i] = (char)out[i];
  text[16] = '\0';
  printf("%s|%s\n", prompt_text, text);
  int ok = strcmp(text, " sat on the mat.") == 0;

  const char *files[] = {"config.json", "generation_config.json", "model.safetensors"};
  for (int i = 0; i < 3; i++) {
    char path[64];
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
  ag_transformer_destroy(loaded);
  ag_tape_destroy(tape);
  ag_optim_destroy(adam);
  ag_transformer_destroy(model);
  return ok ? 0 : 1;
}

/* A real checkpoint: 40 greedy tokens after BOS. */
static int run_stories260k(void) {
  if (!ag_file_exists(STORIES_DIR "/config.json")) return 0;
  ag_transformer *m = NULL;
  ag_tokenizer *tok = NULL;
  if (ag_hf_load(STORIES_DIR, AG_HF_LOAD_MAPPED, &m, NULL)) return fail("stories260K");
  if (ag_tok_load(STORIES_DIR, &tok) || ag_transformer_check_vocab(m, ag_tok_vocab_size(tok)))
    return fail("tokenizer");
  int32_t bos = 1, out[40];
  if (generate(m, &bos, 1, 40, out)) return fail("generate");
  ag_tok_text text = {0};
  if (ag_tok_decode(tok, out, 40, 0, &text)) return fail("decode");
  printf("stories260K: %s\n", text.data);
  ag_tok_text_free(&text);
  ag_tok_free(tok);
  ag_transformer_destroy(m);
  return 0;
}

int main(void) { return train_save_load_generate() || run_stories260k(); }
