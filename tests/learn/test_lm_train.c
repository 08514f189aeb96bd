/* Language-model training: windows cover the text stream, chat loss masks
 * select exactly the trained messages' tokens, the masked loss is the one
 * computed by hand, gradient accumulation equals one big batch, a resumed
 * run repeats the uninterrupted one bit for bit, a tiny model overfits a
 * tiny corpus, and a LoRA fine-tune of stories260K lowers its loss and
 * merges into the base. */
#include "agora/hf_model.h"
#include "agora/json.h"
#include "agora/lm_train.h"
#include "test.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORIES_DIR "../shared/data/models/stories260K"

static const char CORPUS[] =
    "the cat sat on the mat. the dog sat on the log. a bird sang in the tree.\n"
    "hello there, how are you today? i am fine, thank you. what a nice day it is.\n"
    "the teacher asked a question and the student gave an answer.\n";

static ag_tokenizer *train_tokenizer(const char *const *specials, int n) {
  ag_tok_train_config c = ag_tok_train_defaults();
  c.vocab_size = 300;
  c.special_tokens = specials;
  c.n_special = n;
  ag_tok_trainer *tr = NULL;
  ag_tokenizer *tok = NULL;
  if (ag_tok_trainer_create(&c, &tr) || ag_tok_trainer_feed(tr, CORPUS, strlen(CORPUS)) ||
      ag_tok_trainer_finish(tr, &tok))
    fprintf(stderr, "tokenizer: %s\n", ag_error_message());
  ag_tok_trainer_free(tr);
  return tok;
}

static const char *const PLAIN_SPECIALS[] = {"<|endoftext|>"};
static const char *const CHATML_SPECIALS[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

static ag_lm_data *text_data(const ag_tokenizer *tok, int64_t T, int copies) {
  ag_lm_data_options o = {.seq_len = T};
  ag_lm_data *d = NULL;
  CHECK_OK(ag_lm_data_create(tok, &o, &d));
  for (int i = 0; d && i < copies; i++) CHECK_OK(ag_lm_data_add_text(d, CORPUS, strlen(CORPUS)));
  return d;
}

static ag_transformer *tiny_llama(const ag_tokenizer *tok, uint64_t seed) {
  ag_transformer_config c = ag_transformer_llama_config(ag_tok_vocab_size(tok), 32, 2, 4, 2, 64);
  ag_transformer *m = NULL;
  CHECK_OK(ag_transformer_create(&c, &m));
  if (m) ag_transformer_init(m, seed);
  return m;
}

/* ---- data ---------------------------------------------------------------------------- */

TEST(text_windows_predict_every_stream_token_once) {
  ag_tokenizer *tok = train_tokenizer(PLAIN_SPECIALS, 1);
  if (!tok) return;
  ag_tok_ids doc = {0};
  CHECK_OK(ag_tok_encode(tok, CORPUS, strlen(CORPUS), AG_TOK_ADD_SPECIAL, &doc));
  int32_t eos = ag_tok_special_id(tok, AG_TOK_EOS);
  CHECK(eos >= 0);
  const int64_t T = 16;
  ag_lm_data *d = text_data(tok, T, 2);
  /* the stream: doc EOS doc EOS */
  int64_t n = 2 * (doc.count + 1);
  int32_t *stream = malloc((size_t)n * sizeof(int32_t));
  for (int c = 0; c < 2; c++) {
    memcpy(stream + c * (doc.count + 1), doc.ids, (size_t)doc.count * sizeof(int32_t));
    stream[c * (doc.count + 1) + doc.count] = eos;
  }
  int64_t windows = ag_lm_data_windows(d);
  CHECK(windows == (n - 2) / T + 1);
  CHECK(ag_lm_data_target_tokens(d) == n - 1);
  int32_t ids[16], targets[16];
  int64_t predicted = 0;
  for (int64_t w = 0; w < windows; w++) {
    int64_t inputs = -1;
    int64_t counted = ag_lm_data_window(d, w, ids, targets, &inputs);
    for (int64_t j = 0; j < T; j++) {
      int64_t at = w * T + j; /* stream position of ids[j] */
      if (at + 1 < n) {
        CHECK(ids[j] == stream[at] && targets[j] == stream[at + 1]);
      } else {
        CHECK(targets[j] == -1);
      }
    }
    CHECK(counted == inputs);
    predicted += counted;
  }
  CHECK(predicted == n - 1);
  free(stream);
  ag_tok_ids_free(&doc);
  ag_lm_data_free(d);
  ag_tok_free(tok);
}

/* Byte offsets of each token in the decoded text (byte-level BPE decodes
 * to the exact concatenation of its pieces). */
static void token_offsets(const ag_tokenizer *tok, const int32_t *ids, int64_t n, int64_t *off) {
  off[0] = 0;
  for (int64_t i = 0; i < n; i++) {
    size_t bytes = 0;
    ag_tok_piece(tok, ids[i], &bytes);
    off[i + 1] = off[i] + (int64_t)bytes;
  }
}

/* The hand-made mask: token j is trained when its bytes overlap a trained
 * message's content and end-of-turn marker, [begin, turn_end), where begin
 * takes in the space before the content when the template's generation
 * prompt ends in one (plain's "assistant: ": chat models leave it for the
 * model to write). */
static void hand_mask(const ag_tokenizer *tok, const ag_chat_template *tpl,
                      const ag_chat_message *m, int n, const bool *trained, const int32_t *ids,
                      int64_t count, bool *mask) {
  ag_chat_span spans[8];
  char *text = NULL;
  int32_t bos_id = ag_tok_special_id(tok, AG_TOK_BOS), eos_id = ag_tok_special_id(tok, AG_TOK_EOS);
  size_t eb = 0;
  const char *eos = eos_id >= 0 ? ag_tok_token_text(tok, eos_id, &eb) : NULL;
  char eos_text[64] = "";
  if (eos) snprintf(eos_text, sizeof eos_text, "%.*s", (int)eb, eos);
  (void)bos_id;
  ag_chat_render_options ro = {.eos_token = eos ? eos_text : NULL, .bos_token = ""};
  CHECK_OK(ag_chat_render_spans(tpl, m, n, &ro, &text, spans));
  int64_t *off = malloc((size_t)(count + 1) * sizeof(int64_t));
  token_offsets(tok, ids, count, off);
  CHECK(text && off[count] == (int64_t)strlen(text)); /* the window is the whole chat */
  ag_chat_message probe = {"user", "", NULL};
  ag_chat_render_options gp = {.add_generation_prompt = true};
  char *prompt = NULL;
  CHECK_OK(ag_chat_render(tpl, &probe, 1, &gp, &prompt));
  bool space = prompt && prompt[0] && prompt[strlen(prompt) - 1] == ' ';
  free(prompt);
  for (int64_t j = 0; j < count; j++) {
    mask[j] = false;
    for (int i = 0; i < n; i++) {
      int64_t begin = spans[i].begin;
      if (space && begin > 0 && text[begin - 1] == ' ') begin--;
      if (trained[i] && off[j + 1] > begin && off[j] < spans[i].turn_end) mask[j] = true;
    }
  }
  free(off);
  free(text);
}

/* Renders m through the corpus code and checks the window's targets are
 * exactly the hand mask's tokens. */
static void check_chat_mask(const char *const *specials, int n_specials, const char *template_name,
                            const ag_chat_message *m, int n, const char *const *names,
                            int n_names) {
  ag_tokenizer *tok = train_tokenizer(specials, n_specials);
  if (!tok) return;
  const ag_chat_template *tpl = NULL;
  CHECK_OK(ag_chat_template_by_name(template_name, &tpl));
  ag_lm_data_options o = {.seq_len = 256, .chat_template = tpl, .n_train_names = n_names};
  for (int i = 0; i < n_names; i++) o.train_names[i] = names[i];
  ag_lm_data *d = NULL;
  CHECK_OK(ag_lm_data_create(tok, &o, &d));
  CHECK_OK(ag_lm_data_add_chat(d, m, n));
  CHECK(ag_lm_data_windows(d) == 1);
  int32_t ids[256], targets[256];
  int64_t inputs = 0;
  int64_t counted = ag_lm_data_window(d, 0, ids, targets, &inputs);

  /* the conversation's tokens, encoded here */
  char *text = NULL;
  ag_chat_render_options ro = {.eos_token = "<|endoftext|>", .bos_token = ""};
  CHECK_OK(ag_chat_render(tpl, m, n, &ro, &text));
  ag_tok_ids full = {0};
  CHECK_OK(ag_tok_encode(tok, text, strlen(text), 0, &full));
  free(text);
  CHECK(full.count == inputs + 1 && full.count <= 256);
  for (int64_t j = 0; j < inputs; j++) CHECK(ids[j] == full.ids[j]);

  bool trained[8], mask[257];
  for (int i = 0; i < n; i++) {
    trained[i] = false;
    if (n_names == 0) trained[i] = !strcmp(m[i].role, "assistant");
    for (int k = 0; k < n_names; k++)
      if (m[i].name && !strcmp(m[i].name, names[k])) trained[i] = true;
  }
  hand_mask(tok, tpl, m, n, trained, full.ids, full.count, mask);
  int64_t expected = 0;
  for (int64_t j = 0; j < inputs; j++) {
    CHECK_MSG((targets[j] >= 0) == mask[j + 1], "target %lld", (long long)j);
    if (targets[j] >= 0) CHECK(targets[j] == full.ids[j + 1]);
    expected += mask[j + 1];
  }
  CHECK(counted == expected && counted > 0);
  /* each run of trained targets decodes to a trained message's content and
   * its end-of-turn marker (with the space the template puts before the
   * content when the tokenizer joins it to the first word) */
  const char *marker =
      ag_chat_template_end_of_turn(tpl) ? ag_chat_template_end_of_turn(tpl) : "<|endoftext|>";
  int next_message = 0;
  ag_tok_text run = {0};
  for (int64_t j = 0; j < inputs; j++) {
    if (targets[j] < 0) continue;
    int64_t k = j;
    while (k < inputs && targets[k] >= 0) k++;
    run.size = 0;
    CHECK_OK(ag_tok_decode(tok, &targets[j], k - j, 0, &run));
    while (next_message < n && !trained[next_message]) next_message++;
    char want[512] = "";
    if (next_message < n) snprintf(want, sizeof want, "%s%s", m[next_message].content, marker);
    const char *got = run.data && run.data[0] == ' ' ? run.data + 1 : run.data;
    CHECK_MSG(got && !strcmp(got, want), "trained run \"%s\", expected \"%s\"",
              run.data ? run.data : "", want);
    next_message++;
    j = k;
  }
  while (next_message < n && !trained[next_message]) next_message++;
  CHECK(next_message == n); /* every trained message had its run */
  ag_tok_text_free(&run);
  ag_tok_ids_free(&full);
  ag_lm_data_free(d);
  ag_tok_free(tok);
}

static const ag_chat_message CHAT[] = {
    {"system", "be kind.", NULL},
    {"user", "hello there, how are you?", NULL},
    {"assistant", "i am fine, thank you.", NULL},
    {"user", "what a nice day.", NULL},
    {"assistant", "the bird sang in the tree.", NULL},
};

TEST(plain_chat_mask_is_the_assistant_turns) {
  /* plain: "role: content<|endoftext|>\n" */
  check_chat_mask(PLAIN_SPECIALS, 1, "plain", CHAT, 5, NULL, 0);
}

TEST(chatml_chat_mask_is_the_assistant_turns) {
  /* chatml: "<|im_start|>assistant\ncontent<|im_end|>\n" */
  check_chat_mask(CHATML_SPECIALS, 3, "chatml", CHAT, 5, NULL, 0);
}

TEST(named_messages_are_trained_when_names_are_chosen) {
  ag_chat_message m[] = {{"user", "the teacher asked a question.", "teacher"},
                         {"assistant", "the student gave an answer.", "student"},
                         {"user", "how are you?", "student"},
                         {"assistant", "fine, thank you.", "teacher"}};
  const char *names[] = {"student"};
  check_chat_mask(PLAIN_SPECIALS, 1, "plain", m, 4, names, 1);
}

TEST(conversations_without_trained_messages_are_skipped) {
  ag_tokenizer *tok = train_tokenizer(PLAIN_SPECIALS, 1);
  ag_lm_data_options o = {.seq_len = 64};
  ag_lm_data *d = NULL;
  CHECK_OK(ag_lm_data_create(tok, &o, &d));
  ag_chat_message m[] = {{"user", "hello", NULL}};
  CHECK_OK(ag_lm_data_add_chat(d, m, 1));
  CHECK(ag_lm_data_windows(d) == 0 && ag_lm_data_skipped(d) == 1);
  ag_lm_data_free(d);
  ag_tok_free(tok);
}

TEST(jsonl_files_mix_text_and_chat_and_bad_lines_name_the_line) {
  ag_tokenizer *tok = train_tokenizer(PLAIN_SPECIALS, 1);
  char path[600];
  snprintf(path, sizeof path, "%s/data.jsonl", test_tmpdir());
  FILE *f = fopen(path, "w");
  fprintf(f, "{\"text\": \"the cat sat on the mat.\"}\n"
             "{\"messages\": [{\"role\": \"user\", \"content\": \"hello\"}, "
             "{\"role\": \"assistant\", \"content\": \"hi there\"}]}\n");
  fclose(f);
  ag_lm_data_options o = {.seq_len = 64};
  ag_lm_data *d = NULL;
  CHECK_OK(ag_lm_data_create(tok, &o, &d));
  CHECK_OK(ag_lm_data_add_file(d, path));
  CHECK(ag_lm_data_windows(d) == 2); /* one text window, one conversation */
  f = fopen(path, "a");
  fprintf(f, "{\"title\": \"no text\"}\n");
  fclose(f);
  CHECK(ag_lm_data_add_file(d, path) == AG_ERR_FORMAT);
  CHECK(strstr(ag_error_message(), "data.jsonl:3") && strstr(ag_error_message(), "\"text\""));
  unlink(path);
  ag_lm_data_free(d);
  ag_tok_free(tok);
}

TEST(held_out_windows_are_the_last_ones) {
  ag_tokenizer *tok = train_tokenizer(PLAIN_SPECIALS, 1);
  const int64_t T = 8;
  ag_lm_data *d = text_data(tok, T, 2), *whole = text_data(tok, T, 2);
  if (!d || !whole) return;
  ag_chat_message chat[] = {{"user", "hello", NULL}, {"assistant", "hi there", NULL}};
  CHECK_OK(ag_lm_data_add_chat(d, chat, 2));
  CHECK_OK(ag_lm_data_add_chat(whole, chat, 2));
  int64_t n = ag_lm_data_windows(d);
  ag_lm_data *held = NULL;
  CHECK(ag_lm_data_split(d, n, &held) == AG_ERR_INVALID); /* one must stay */
  CHECK_OK(ag_lm_data_split(d, 3, &held));
  if (!held) return;
  CHECK(ag_lm_data_windows(d) == n - 3 && ag_lm_data_windows(held) == 3);
  CHECK(ag_lm_data_target_tokens(d) + ag_lm_data_target_tokens(held) ==
        ag_lm_data_target_tokens(whole));
  int32_t a[8], at[8], b[8], bt[8];
  for (int64_t w = 0; w < n; w++) { /* text windows, then the conversation */
    ag_lm_data_window(whole, w, a, at, NULL);
    /* held out: the last two text windows and the conversation */
    int64_t texts = n - 1, i = w < texts - 2 ? w : w - (texts - 2);
    const ag_lm_data *part = w < texts - 2 ? d : held;
    ag_lm_data_window(part, i, b, bt, NULL);
    CHECK_MSG(!memcmp(a, b, sizeof a) && !memcmp(at, bt, sizeof at), "window %lld", (long long)w);
  }
  ag_lm_data_free(held);
  ag_lm_data_free(whole);
  ag_lm_data_free(d);
  ag_tok_free(tok);
}

/* ---- loss ------------------------------------------------------------------------------ */

TEST(masked_loss_equals_the_loss_computed_by_hand) {
  ag_tokenizer *tok = train_tokenizer(PLAIN_SPECIALS, 1);
  ag_transformer *m = tiny_llama(tok, 3);
  if (!tok || !m) return;
  const int64_t T = 64;
  ag_lm_data_options o = {.seq_len = T};
  ag_lm_data *d = NULL;
  CHECK_OK(ag_lm_data_create(tok, &o, &d));
  CHECK_OK(ag_lm_data_add_chat(d, CHAT, 5));
  CHECK_OK(ag_lm_data_add_chat(d, CHAT + 1, 2));
  CHECK(ag_lm_data_windows(d) == 2);
  double loss = 0;
  CHECK_OK(ag_lm_evaluate(m, d, 2, 0, &loss));

  /* by hand: every position's NLL from the logits, averaged over the
   * assistant positions only (the hand mask of the decoded text) */
  int32_t ids[2 * 64], targets[2 * 64];
  int64_t inputs[2];
  ag_lm_data_window(d, 0, ids, targets, &inputs[0]);
  ag_lm_data_window(d, 1, ids + T, targets + T, &inputs[1]);
  ag_tape *t = ag_tape_create();
  ag_tape_set_grad_enabled(t, false);
  ag_tensor *logits = ag_transformer_forward(t, m, ids, 2, T);
  CHECK(logits != NULL);
  int64_t V = ag_transformer_config_of(m)->vocab_size;
  double sum = 0, all_sum = 0;
  int64_t count = 0, all_count = 0;
  for (int64_t r = 0; logits && r < 2 * T; r++) {
    const float *row = logits->data + r * V;
    int32_t next = -1; /* the next token, trained or not */
    if (targets[r] >= 0)
      next = targets[r];
    else if ((r % T) + 1 < inputs[r / T])
      next = ids[r + 1];
    if (next < 0) continue;
    double mx = row[0], z = 0;
    for (int64_t v = 1; v < V; v++) mx = fmax(mx, row[v]);
    for (int64_t v = 0; v < V; v++) z += exp((double)row[v] - mx);
    double nll = log(z) + mx - (double)row[next];
    all_sum += nll;
    all_count++;
    if (targets[r] >= 0) {
      sum += nll;
      count++;
    }
  }
  CHECK(count > 0 && count < all_count);
  CHECK_NEAR(loss, sum / count, 1e-5);
  CHECK(fabs(loss - all_sum / all_count) > 1e-3); /* the mask matters */
  ag_tape_destroy(t);
  ag_lm_data_free(d);
  ag_transformer_destroy(m);
  ag_tok_free(tok);
}

/* ---- training ---------------------------------------------------------------------------- */

typedef struct curve {
  double loss[256];
  int64_t n;
} curve;

static void record(void *user, const ag_lm_train_step *s) {
  curve *c = user;
  if (c->n < 256) c->loss[c->n++] = s->loss;
}

static ag_lm_train_config small_config(int64_t steps) {
  ag_lm_train_config c = ag_lm_train_defaults();
  c.batch_size = 4;
  c.steps = steps;
  c.lr = 1e-2f;
  c.warmup_steps = 2;
  c.seed = 5;
  return c;
}

TEST(a_tiny_model_overfits_a_tiny_corpus) {
  ag_tokenizer *tok = train_tokenizer(PLAIN_SPECIALS, 1);
  ag_transformer *m = tiny_llama(tok, 1);
  ag_lm_data *d = text_data(tok, 32, 4);
  if (!m || !d) return;
  ag_lm_train_config c = small_config(150); /* fast even under sanitizers */
  curve seen = {0};
  ag_lm_train_run run = {.eval_batches = 0, .on_step = record, .user = &seen};
  ag_lm_train_result r;
  double start = ag_time_seconds();
  CHECK_OK(ag_lm_train(m, &c, d, NULL, &run, &r));
  double seconds = ag_time_seconds() - start;
  CHECK(r.steps == c.steps && seen.n == c.steps);
  CHECK_MSG(r.eval_loss < 0.25 * seen.loss[0], "loss %.3f -> eval %.3f in %.1fs", seen.loss[0],
            r.eval_loss, seconds);
  CHECK(r.tokens > 0);
  fprintf(stderr, "  loss %.3f -> eval %.3f in %.1fs\n", seen.loss[0], r.eval_loss, seconds);
  ag_lm_data_free(d);
  ag_transformer_destroy(m);
  ag_tok_free(tok);
}

static bool params_equal(ag_transformer *a, ag_transformer *b) {
  ag_params *pa = ag_transformer_params(a), *pb = ag_transformer_params(b);
  return pa->total == pb->total &&
         memcmp(pa->data, pb->data, (size_t)pa->total * sizeof(float)) == 0;
}

TEST(two_accumulated_micro_batches_equal_one_batch_of_twice_the_size) {
  ag_tokenizer *tok = train_tokenizer(PLAIN_SPECIALS, 1);
  ag_lm_data *d = text_data(tok, 16, 3);
  ag_transformer *one = tiny_llama(tok, 2), *two = tiny_llama(tok, 2);
  if (!d || !one || !two) return;
  ag_lm_train_config c = small_config(4);
  curve a = {0}, b = {0};
  ag_lm_train_run run = {.on_step = record, .user = &a};
  ag_lm_train_result r;
  CHECK_OK(ag_lm_train(one, &c, d, NULL, &run, &r));
  c.batch_size = 2;
  c.grad_accum = 2;
  run.user = &b;
  CHECK_OK(ag_lm_train(two, &c, d, NULL, &run, &r));
  CHECK(a.n == 4 && b.n == 4);
  for (int i = 0; i < 4; i++) CHECK_NEAR(a.loss[i], b.loss[i], 1e-5);
  ag_params *pa = ag_transformer_params(one), *pb = ag_transformer_params(two);
  double diff = 0;
  for (int64_t i = 0; i < pa->total; i++) diff = fmax(diff, fabs(pa->data[i] - pb->data[i]));
  CHECK_MSG(diff < 1e-5, "weights differ by %g", diff);
  ag_transformer_destroy(one);
  ag_transformer_destroy(two);
  ag_lm_data_free(d);
  ag_tok_free(tok);
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

/* The "loss" column of out/metrics.jsonl. */
static int metrics_losses(const char *out, double *loss, int max) {
  char path[1024];
  snprintf(path, sizeof path, "%s/metrics.jsonl", out);
  ag_jsonl_reader *r = NULL;
  if (ag_jsonl_open(path, &r)) return -1;
  json_t *o;
  int n = 0;
  while (!ag_jsonl_next(r, &o) && o) {
    if (n < max) loss[n++] = json_number_value(json_object_get(o, "loss"));
    json_decref(o);
  }
  ag_jsonl_close(r);
  return n;
}

/* An uninterrupted run against one stopped at `stop` and resumed: the same
 * losses and weights, bit for bit. */
static void check_resume(int lora_rank) {
  ag_threads_set(1);
  ag_tokenizer *tok = train_tokenizer(PLAIN_SPECIALS, 1);
  ag_lm_data *d = text_data(tok, 16, 3);
  ag_transformer *whole = tiny_llama(tok, 4), *parts = tiny_llama(tok, 4);
  if (!d || !whole || !parts) return;
  char out_whole[600], out_parts[600];
  snprintf(out_whole, sizeof out_whole, "%s/whole-%d", test_tmpdir(), lora_rank);
  snprintf(out_parts, sizeof out_parts, "%s/parts-%d", test_tmpdir(), lora_rank);
  ag_lm_train_config c = small_config(8);
  c.grad_accum = 2;
  c.batch_size = 2;
  if (lora_rank) {
    c.lora = ag_lora_defaults();
    c.lora.rank = lora_rank;
    c.lora.dropout = 0.1f; /* exercises the reseeded dropout stream */
  }
  curve a = {0}, b = {0};
  ag_lm_train_run run = {.out_dir = out_whole,
                         .save_every = 3,
                         .eval_every = 2,
                         .log_every = 1,
                         .tokenizer = tok,
                         .on_step = record,
                         .user = &a};
  ag_lm_train_result r;
  CHECK_OK(ag_lm_train(whole, &c, d, NULL, &run, &r));
  CHECK(r.steps == 8 && !r.resumed);

  run.out_dir = out_parts;
  run.user = &b;
  run.stop_after = 5;
  CHECK_OK(ag_lm_train(parts, &c, d, NULL, &run, &r));
  CHECK(r.steps == 5);
  /* a fresh run may not reuse the folder */
  run.stop_after = 0;
  CHECK(ag_lm_train(parts, &c, d, NULL, &run, &r) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "--resume") != NULL);
  /* nor may a resumed one change the arithmetic */
  run.resume = true;
  ag_lm_train_config other = c;
  other.lr = 2e-2f;
  CHECK(ag_lm_train(parts, &other, d, NULL, &run, &r) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "lr") != NULL);
  /* a new process would start from the initial weights: so does this one */
  ag_transformer_destroy(parts);
  parts = tiny_llama(tok, 4);
  CHECK_OK(ag_lm_train(parts, &c, d, NULL, &run, &r));
  CHECK(r.resumed && r.start_step == 5 && r.steps == 8);
  CHECK(a.n == 8 && b.n == 8);
  for (int i = 0; i < 8 && a.n == 8 && b.n == 8; i++)
    CHECK_MSG(a.loss[i] == b.loss[i], "step %d: %.9g vs %.9g", i + 1, a.loss[i], b.loss[i]);
  if (!lora_rank) CHECK(params_equal(whole, parts));
  double la[16], lb[16];
  int na = metrics_losses(out_whole, la, 16), nb = metrics_losses(out_parts, lb, 16);
  CHECK(na == 8 && nb == 8);
  for (int i = 0; i < na && na == nb; i++) CHECK(la[i] == lb[i]);

  /* the final folders hold the same model or adapter, byte for byte */
  const char *file = lora_rank ? "adapter_model.safetensors" : "model.safetensors";
  char pa[700], pb[700];
  snprintf(pa, sizeof pa, "%s/%s", out_whole, file);
  snprintf(pb, sizeof pb, "%s/%s", out_parts, file);
  char *da = NULL, *db = NULL;
  size_t ba = 0, bb = 0;
  CHECK_OK(ag_read_file(pa, &da, &ba));
  CHECK_OK(ag_read_file(pb, &db, &bb));
  CHECK(da && db && ba == bb && memcmp(da, db, ba) == 0);
  free(da);
  free(db);
  /* checkpoints: kept at 3, 6 and the end */
  char ck[700];
  ag_lm_checkpoint_path(out_whole, 6, ck, sizeof ck);
  CHECK(ag_file_exists(ck));
  snprintf(pa, sizeof pa, "%s/tokenizer.json", out_whole);
  CHECK(ag_file_exists(pa));
  remove_tree(out_whole);
  remove_tree(out_parts);
  ag_transformer_destroy(whole);
  ag_transformer_destroy(parts);
  ag_lm_data_free(d);
  ag_tok_free(tok);
}

TEST(a_resumed_run_repeats_the_uninterrupted_one_bitwise) { check_resume(0); }
TEST(a_resumed_lora_run_repeats_the_uninterrupted_one_bitwise) { check_resume(4); }

TEST(the_final_folder_loads_as_a_hugging_face_model) {
  ag_tokenizer *tok = train_tokenizer(PLAIN_SPECIALS, 1);
  ag_lm_data *d = text_data(tok, 16, 2);
  ag_transformer *m = tiny_llama(tok, 6);
  if (!d || !m) return;
  char out[600];
  snprintf(out, sizeof out, "%s/final", test_tmpdir());
  ag_lm_train_config c = small_config(3);
  ag_lm_train_run run = {.out_dir = out, .tokenizer = tok};
  ag_lm_train_result r;
  CHECK_OK(ag_lm_train(m, &c, d, NULL, &run, &r));
  ag_transformer *loaded = NULL;
  CHECK_OK(ag_hf_load(out, AG_HF_LOAD_MAPPED, &loaded, NULL));
  ag_tokenizer *tok2 = NULL;
  CHECK_OK(ag_tok_load(out, &tok2));
  if (loaded && tok2) {
    double loss = 0;
    CHECK_OK(ag_lm_evaluate(loaded, d, 4, 0, &loss));
    CHECK(loss == r.eval_loss);
    CHECK(ag_tok_vocab_size(tok2) == ag_tok_vocab_size(tok));
  }
  ag_tok_free(tok2);
  ag_transformer_destroy(loaded);
  remove_tree(out);
  ag_transformer_destroy(m);
  ag_lm_data_free(d);
  ag_tok_free(tok);
}

/* ---- LoRA on a real checkpoint -------------------------------------------------------------- */

static const char STORY[] =
    "Once upon a time, there was a little cat named Tom. Tom liked to play with a red ball in "
    "the garden. One day, the ball rolled into the pond. Tom was sad. His friend the duck swam "
    "to the ball and pushed it back. Tom was happy and said thank you to the duck.";

TEST(lora_fine_tune_of_stories260k_lowers_its_loss_and_merges) {
  if (!ag_file_exists(STORIES_DIR "/config.json")) {
    fprintf(stderr, "  skipped: %s not found\n", STORIES_DIR);
    return;
  }
  ag_transformer *m = NULL;
  ag_tokenizer *tok = NULL;
  CHECK_OK(ag_hf_load(STORIES_DIR, AG_HF_LOAD_MAPPED, &m, NULL));
  CHECK_OK(ag_tok_load(STORIES_DIR, &tok));
  if (!m || !tok) return;
  ag_lm_data_options o = {.seq_len = 32};
  ag_lm_data *d = NULL;
  CHECK_OK(ag_lm_data_create(tok, &o, &d));
  for (int i = 0; d && i < 4; i++) CHECK_OK(ag_lm_data_add_text(d, STORY, strlen(STORY)));
  double before = 0;
  CHECK_OK(ag_lm_evaluate(m, d, 8, 0, &before));
  char out[600];
  snprintf(out, sizeof out, "%s/stories-lora", test_tmpdir());
  ag_lm_train_config c = small_config(test_scaled(12, 6));
  c.lr = 5e-3f;
  c.weight_decay = 0.0f;
  c.lora = ag_lora_defaults();
  c.lora.rank = 8;
  snprintf(c.lora.base_model_name_or_path, sizeof c.lora.base_model_name_or_path, "%s",
           STORIES_DIR);
  ag_lm_train_run run = {.out_dir = out, .tokenizer_path = STORIES_DIR, .tokenizer = tok};
  ag_lm_train_result r;
  CHECK_OK(ag_lm_train(m, &c, d, NULL, &run, &r));
  CHECK_MSG(r.eval_loss < before - 0.05, "loss %.4f -> %.4f", before, r.eval_loss);
  double after_base = 0; /* the adapters were detached: the base is untouched */
  CHECK_OK(ag_lm_evaluate(m, d, 8, 0, &after_base));
  CHECK(after_base == before);

  /* merged into a trainable copy of the base, it scores what it scored */
  ag_transformer *base = NULL;
  ag_lora *lora = NULL;
  CHECK_OK(ag_hf_load(STORIES_DIR, AG_HF_LOAD_TRAINABLE, &base, NULL));
  CHECK_OK(ag_lora_load(out, base, &lora));
  if (base && lora) {
    CHECK(ag_lora_module_count(lora) == 2 * 5);
    CHECK(!strcmp(ag_lora_config_of(lora)->base_model_name_or_path, STORIES_DIR));
    double adapted = 0, merged = 0; /* batches of 4, as training evaluated */
    CHECK_OK(ag_lm_evaluate(base, d, 4, 0, &adapted));
    CHECK(adapted == r.eval_loss);
    CHECK(ag_lora_merge(lora, m) == AG_ERR_INVALID); /* memory-mapped: read-only */
    CHECK_OK(ag_lora_merge(lora, base));
    CHECK_OK(ag_lm_evaluate(base, d, 4, 0, &merged));
    CHECK_NEAR(merged, adapted, 1e-4);
  }
  char tj[700];
  snprintf(tj, sizeof tj, "%s/tokenizer_config.json", out);
  CHECK(ag_file_exists(tj));
  ag_lora_destroy(lora);
  ag_transformer_destroy(base);
  remove_tree(out);
  ag_lm_data_free(d);
  ag_tok_free(tok);
  ag_transformer_destroy(m);
}

int main(void) {
  ag_threads_set(1);
  ag_log_set_level(AG_LOG_WARN);
  RUN(text_windows_predict_every_stream_token_once);
  RUN(plain_chat_mask_is_the_assistant_turns);
  RUN(chatml_chat_mask_is_the_assistant_turns);
  RUN(named_messages_are_trained_when_names_are_chosen);
  RUN(conversations_without_trained_messages_are_skipped);
  RUN(jsonl_files_mix_text_and_chat_and_bad_lines_name_the_line);
  RUN(held_out_windows_are_the_last_ones);
  RUN(masked_loss_equals_the_loss_computed_by_hand);
  RUN(a_tiny_model_overfits_a_tiny_corpus);
  RUN(two_accumulated_micro_batches_equal_one_batch_of_twice_the_size);
  RUN(a_resumed_run_repeats_the_uninterrupted_one_bitwise);
  RUN(a_resumed_lora_run_repeats_the_uninterrupted_one_bitwise);
  RUN(the_final_folder_loads_as_a_hugging_face_model);
  RUN(lora_fine_tune_of_stories260k_lowers_its_loss_and_merges);
  TEST_MAIN_END();
}
