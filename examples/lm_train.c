/* docs/lm-training.md: next-token training with agora/lm_train.h.
 *
 *   1. A tiny Llama learns a small corpus from scratch: the run is stopped
 *      halfway, resumed from its checkpoint, and ends with exactly the loss
 *      of an uninterrupted run.
 *   2. Chat data: only the assistant's tokens are targets.
 *   3. If the stories260K checkpoint is around, LoRA adapters are trained on
 *      it, saved in the PEFT layout and merged into the base weights. */
#include "agora/lm_train.h"

#include "agora/hf_model.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORIES_DIR "../shared/data/models/stories260K"

static const char CORPUS[] =
    "the cat sat on the mat. the dog sat on the log. the bird sat in the tree.\n"
    "the cat saw the dog. the dog saw the bird. the bird saw the cat.\n";

static int fail(const char *what) {
  fprintf(stderr, "error: %s: %s\n", what, ag_error_message());
  return 1;
}

static void remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char path[1024];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat s;
    if (stat(path, &s) == 0 && S_ISDIR(s.st_mode))
      remove_tree(path);
    else
      unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

/* A byte-level BPE tokenizer trained on the corpus, with an EOS token. */
static ag_tokenizer *corpus_tokenizer(void) {
  static const char *const specials[] = {"<|endoftext|>"};
  ag_tok_train_config c = ag_tok_train_defaults();
  c.vocab_size = 300;
  c.special_tokens = specials;
  c.n_special = 1;
  ag_tok_trainer *tr = NULL;
  ag_tokenizer *tok = NULL;
  if (ag_tok_trainer_create(&c, &tr) == AG_OK &&
      ag_tok_trainer_feed(tr, CORPUS, strlen(CORPUS)) == AG_OK)
    ag_tok_trainer_finish(tr, &tok);
  ag_tok_trainer_free(tr);
  return tok;
}

/* Trains a new model for `steps` updates (stopping after stop_after when
 * > 0) in out; returns the result. */
static ag_status train(const ag_tokenizer *tok, const ag_lm_data *data, const char *out,
                       bool resume, int64_t stop_after, ag_lm_train_result *r) {
  ag_transformer_config mc = ag_transformer_llama_config(ag_tok_vocab_size(tok), 32, 2, 4, 2, 64);
  ag_transformer *model = NULL;
  ag_status st = ag_transformer_create(&mc, &model);
  if (st) return st;
  ag_transformer_init(model, 1);
  ag_lm_train_config c = ag_lm_train_defaults();
  c.batch_size = 4;
  c.grad_accum = 2; /* updates of 8 windows, two forwards each */
  c.steps = 100;
  c.lr = 1e-2f;
  c.seed = 1;
  ag_lm_train_run run = {.out_dir = out,
                         .resume = resume,
                         .save_every = 25,
                         .eval_every = 50,
                         .log_every = 5,
                         .stop_after = stop_after,
                         .tokenizer = tok};
  st = ag_lm_train(model, &c, data, NULL, &run, r);
  ag_transformer_destroy(model);
  return st;
}

static int from_scratch(void) {
  ag_tokenizer *tok = corpus_tokenizer();
  if (!tok) return fail("tokenizer");
  ag_lm_data_options o = {.seq_len = 32};
  ag_lm_data *data = NULL;
  if (ag_lm_data_create(tok, &o, &data)) return fail("data");
  for (int i = 0; i < 8; i++)
    if (ag_lm_data_add_text(data, CORPUS, strlen(CORPUS))) return fail("data");
  printf("corpus: %lld windows of 32 tokens\n", (long long)ag_lm_data_windows(data));

  char whole[] = "/tmp/agora-lm-train-XXXXXX", parts[] = "/tmp/agora-lm-train-XXXXXX";
  if (!mkdtemp(whole) || !mkdtemp(parts)) return fail("mkdtemp");
  ag_lm_train_result a, b;
  if (train(tok, data, whole, false, 0, &a)) return fail("training");
  if (train(tok, data, parts, false, 50, &b)) return fail("training (first half)");
  printf("interrupted after %lld updates\n", (long long)b.steps);
  if (train(tok, data, parts, true, 0, &b)) return fail("training (resumed)");
  printf("uninterrupted: eval_loss %.6f\nresumed:       eval_loss %.6f (from update %lld)\n",
         a.eval_loss, b.eval_loss, (long long)b.start_step);
  int ok = a.eval_loss == b.eval_loss && a.eval_loss < 1.0;

  /* The run folder is a Hugging Face model folder. */
  ag_transformer *loaded = NULL;
  if (ag_hf_load(whole, AG_HF_LOAD_MAPPED, &loaded, NULL)) return fail("loading the result");
  ag_transformer_destroy(loaded);
  remove_tree(whole);
  remove_tree(parts);
  ag_lm_data_free(data);
  ag_tok_free(tok);
  return ok ? 0 : 1;
}

static int chat_mask(void) {
  ag_tokenizer *tok = corpus_tokenizer();
  if (!tok) return fail("tokenizer");
  ag_lm_data_options o = {.seq_len = 64}; /* the plain template */
  ag_lm_data *data = NULL;
  ag_chat_message chat[] = {{"user", "what did the cat see?", NULL},
                            {"assistant", "the cat saw the dog.", NULL}};
  if (ag_lm_data_create(tok, &o, &data) || ag_lm_data_add_chat(data, chat, 2))
    return fail("chat data");
  int32_t ids[64], targets[64];
  ag_lm_data_window(data, 0, ids, targets, NULL);
  ag_tok_text text = {0};
  for (int j = 0; j < 64; j++)
    if (targets[j] >= 0) ag_tok_decode(tok, &targets[j], 1, 0, &text);
  printf("chat targets: \"%s\"\n", text.data);
  int ok = text.data && strcmp(text.data, " the cat saw the dog.<|endoftext|>") == 0;
  ag_tok_text_free(&text);
  ag_lm_data_free(data);
  ag_tok_free(tok);
  return ok ? 0 : 1;
}

static int lora_stories(void) {
  if (!ag_file_exists(STORIES_DIR "/config.json")) return 0;
  ag_transformer *model = NULL;
  ag_tokenizer *tok = NULL;
  if (ag_hf_load(STORIES_DIR, AG_HF_LOAD_MAPPED, &model, NULL) || ag_tok_load(STORIES_DIR, &tok))
    return fail("stories260K");
  const char *story = "Once upon a time, there was a little cat named Tom. Tom liked to play "
                      "with a red ball in the garden.";
  ag_lm_data_options o = {.seq_len = 32};
  ag_lm_data *data = NULL;
  if (ag_lm_data_create(tok, &o, &data)) return fail("data");
  for (int i = 0; i < 4; i++) ag_lm_data_add_text(data, story, strlen(story));
  double before = 0;
  ag_lm_evaluate(model, data, 4, 0, &before);

  ag_lm_train_config c = ag_lm_train_defaults();
  c.batch_size = 4;
  c.steps = 10;
  c.lr = 5e-3f;
  c.weight_decay = 0.0f;
  c.lora = ag_lora_defaults(); /* rank 8, alpha 16, q_proj and v_proj */
  snprintf(c.lora.base_model_name_or_path, sizeof c.lora.base_model_name_or_path, "%s",
           STORIES_DIR);
  char out[] = "/tmp/agora-lm-lora-XXXXXX";
  if (!mkdtemp(out)) return fail("mkdtemp");
  ag_lm_train_run run = {.out_dir = out, .tokenizer_path = STORIES_DIR};
  ag_lm_train_result r;
  if (ag_lm_train(model, &c, data, NULL, &run, &r)) return fail("LoRA training");
  printf("stories260K + LoRA: loss %.4f -> %.4f\n", before, r.eval_loss);

  /* out/ holds adapter_config.json + adapter_model.safetensors: merge them. */
  char merged[64];
  snprintf(merged, sizeof merged, "%s/merged", out);
  if (ag_lm_merge_adapter(STORIES_DIR, out, merged)) return fail("merge");
  ag_transformer *m2 = NULL;
  double after = 0;
  if (ag_hf_load(merged, AG_HF_LOAD_MAPPED, &m2, NULL) || ag_lm_evaluate(m2, data, 4, 0, &after))
    return fail("merged model");
  printf("merged model:       loss %.4f\n", after);
  int ok = r.eval_loss < before && fabs(after - r.eval_loss) < 1e-3;
  ag_transformer_destroy(m2);
  remove_tree(out);
  ag_lm_data_free(data);
  ag_tok_free(tok);
  ag_transformer_destroy(model);
  return ok ? 0 : 1;
}

int main(void) {
  ag_threads_set(1); /* tiny models: one thread is fastest, and runs are reproducible */
  ag_log_set_level(AG_LOG_WARN);
  return from_scratch() || chat_mask() || lora_stories();
}
