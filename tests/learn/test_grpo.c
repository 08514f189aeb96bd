/* GRPO's pieces (agora/grpo.h): turn-discounted rewards and group advantages
 * on hand-worked groups, the loss mask over message names (teacher tokens
 * get exactly zero gradient; with the teacher trained on too, they do not),
 * per-row weights, one update in each direction, and the KL penalty. */
#include "agora/grpo.h"
#include "agora/ops.h"
#include "test.h"

#include <math.h>

/* A heap tensor with uniform values in [lo, hi). */
static ag_tensor *random_tensor(ag_rng *rng, int64_t rows, int64_t cols, float lo, float hi) {
  ag_tensor *x = NULL;
  if (ag_tensor_create(2, (int64_t[]){rows, cols}, &x) != AG_OK) return NULL;
  for (int64_t i = 0; i < x->numel; i++) x->data[i] = lo + (hi - lo) * ag_rng_uniform(rng);
  x->requires_grad = true;
  return x;
}

static const char CORPUS[] =
    "the cat sat on the mat. the dog sat on the log. what is 3 plus 4? answer: 7.\n"
    "that is not correct, try again. the teacher asked a question and the student answered.\n";

static ag_tokenizer *tokenizer(void) {
  static const char *const specials[] = {"<|endoftext|>"};
  ag_tok_train_config c = ag_tok_train_defaults();
  c.vocab_size = 300;
  c.special_tokens = specials;
  c.n_special = 1;
  ag_tok_trainer *tr = NULL;
  ag_tokenizer *tok = NULL;
  if (ag_tok_trainer_create(&c, &tr) || ag_tok_trainer_feed(tr, CORPUS, strlen(CORPUS)) ||
      ag_tok_trainer_finish(tr, &tok))
    fprintf(stderr, "tokenizer: %s\n", ag_error_message());
  ag_tok_trainer_free(tr);
  return tok;
}

/* A dialogue: system, teacher problem, wrong student answer, teacher
 * feedback, right answer. */
static const ag_chat_message DIALOGUE[] = {
    {"system", "you answer questions.", NULL},
    {"user", "what is 3 plus 4? give a line answer: N.", "teacher"},
    {"assistant", "answer: 8", "student"},
    {"user", "that is not correct, the dog sat lower.", "teacher"},
    {"assistant", "answer: 7", "student"},
};

static ag_lm_data_options options(const char *const *names, int n) {
  ag_lm_data_options o = {.seq_len = 256, .format = AG_LM_DATA_CHAT};
  for (int i = 0; i < n; i++) o.train_names[i] = names[i];
  o.n_train_names = n;
  return o;
}

/* The text of the counted targets of a batch, in order. */
static char *counted_text(const ag_tokenizer *tok, const ag_grpo_batch *b) {
  int32_t *ids = malloc((size_t)(b->rows * b->T) * sizeof *ids);
  int64_t n = 0;
  for (int64_t i = 0; i < b->rows * b->T; i++)
    if (b->targets[i] >= 0) ids[n++] = b->targets[i];
  ag_tok_text text = {0};
  char *out = NULL;
  if (!ag_tok_decode(tok, ids, n, 0, &text)) {
    out = malloc(text.size + 1);
    memcpy(out, text.data, text.size);
    out[text.size] = '\0';
  }
  ag_tok_text_free(&text);
  free(ids);
  return out;
}

TEST(turn_discounted_rewards) {
  CHECK_NEAR(ag_grpo_turn_reward(true, 1, 0.7), 1.0, 1e-12);
  CHECK_NEAR(ag_grpo_turn_reward(true, 2, 0.7), 0.7, 1e-12);
  CHECK_NEAR(ag_grpo_turn_reward(true, 4, 0.7), 0.343, 1e-12);
  CHECK(ag_grpo_turn_reward(false, 3, 0.7) == 0.0);
  CHECK(ag_grpo_turn_reward(true, 0, 0.7) == 0.0);
  CHECK_NEAR(ag_grpo_turn_reward(true, 3, 1.0), 1.0, 1e-12);
}

TEST(group_advantages_on_hand_worked_groups) {
  /* Group 1: {1, 0, 0, 0}: mean 1/4, sample std sqrt((9/16 + 3/16) / 3) = 1/2.
   * Group 2: {1, 0.7, 0.49, 0} (solved at turns 1, 2, 3, unsolved).
   * Group 3: all equal (0.7 each): zero. Group 4: all zero: zero. */
  double r[16] = {1, 0, 0, 0, 1, 0.7, 0.49, 0, 0.7, 0.7, 0.7, 0.7, 0, 0, 0, 0};
  double a[16];
  CHECK_OK(ag_grpo_advantages(r, 16, 4, 0.0, a));
  CHECK_NEAR(a[0], 1.5, 1e-12);
  CHECK_NEAR(a[1], -0.5, 1e-12);
  CHECK_NEAR(a[3], -0.5, 1e-12);
  double mean = (1 + 0.7 + 0.49) / 4, ss = 0;
  for (int i = 4; i < 8; i++) ss += (r[i] - mean) * (r[i] - mean);
  double sd = sqrt(ss / 3);
  CHECK_NEAR(a[4], (1 - mean) / sd, 1e-12);
  CHECK_NEAR(a[6], (0.49 - mean) / sd, 1e-12);
  CHECK_NEAR(a[4] + a[5] + a[6] + a[7], 0.0, 1e-12);
  for (int i = 8; i < 16; i++) CHECK(a[i] == 0.0 && !isnan(a[i]));
  /* eps shrinks them a little. */
  CHECK_OK(ag_grpo_advantages(r, 4, 4, 1e-4, a));
  CHECK_NEAR(a[0], 0.75 / (0.5 + 1e-4), 1e-12);
  /* Groups of one learn nothing; a count that does not split is an error. */
  CHECK_OK(ag_grpo_advantages(r, 3, 1, 1e-4, a));
  CHECK(a[0] == 0 && a[1] == 0 && a[2] == 0);
  CHECK(ag_grpo_advantages(r, 6, 4, 1e-4, a) != AG_OK);
  ag_error_clear();
}

/* Gradient of the weighted token loss w.r.t. logits (rows, T, V) built from
 * the batch; returns the gradient (malloc'd). */
static float *logit_grads(const ag_grpo_batch *b, int64_t V, const float *weights) {
  ag_rng rng;
  ag_rng_seed(&rng, 3);
  int64_t N = b->rows * b->T;
  ag_tensor *x = random_tensor(&rng, N, V, -1, 1);
  ag_tape *t = ag_tape_create();
  ag_tensor *l = ag_grpo_token_loss(t, x, b->targets, weights, 1.0f / (float)b->tokens);
  float *g = NULL;
  if (l && !ag_backward(t, l)) {
    g = malloc((size_t)(N * V) * sizeof *g);
    float *gx = ag_tape_grad(t, x);
    memcpy(g, gx, (size_t)(N * V) * sizeof *g);
  }
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
  return g;
}

static bool row_zero(const float *g, int64_t row, int64_t V) {
  for (int64_t c = 0; c < V; c++)
    if (g[row * V + c] != 0.0f) return false;
  return true;
}

TEST(teacher_tokens_get_exactly_zero_gradient_unless_trained_on) {
  ag_tokenizer *tok = tokenizer();
  if (!tok) return;
  int64_t V = ag_tok_vocab_size(tok);
  ag_grpo_sequence seq = {DIALOGUE, 5, 1.0f};
  static const char *const student[] = {"student"}, *const both[] = {"student", "teacher"};
  ag_lm_data_options o = options(student, 1);
  ag_grpo_batch b;
  CHECK_OK(ag_grpo_batch_build(tok, &o, &seq, 1, &b));
  CHECK(b.rows == 1 && b.tokens > 0 && b.skipped == 0);
  /* What is trained on: both answers, none of the teacher's or system text. */
  char *text = counted_text(tok, &b);
  CHECK_MSG(text && strstr(text, "answer: 8") && strstr(text, "answer: 7"), "%s", text);
  CHECK_MSG(text && !strstr(text, "dog") && !strstr(text, "plus") && !strstr(text, "you answer"),
            "%s", text);
  free(text);
  float *g = logit_grads(&b, V, b.weights);
  int64_t zero_rows = 0, counted_rows = 0;
  for (int64_t i = 0; g && i < b.T; i++) {
    if (b.targets[i] < 0) {
      CHECK(row_zero(g, i, V));
      zero_rows++;
    } else {
      CHECK(!row_zero(g, i, V));
      counted_rows++;
    }
  }
  CHECK(zero_rows > counted_rows && counted_rows == b.tokens);
  free(g);
  /* Feedback prediction: the teacher's turns are trained on too. */
  ag_lm_data_options o2 = options(both, 2);
  ag_grpo_batch b2;
  CHECK_OK(ag_grpo_batch_build(tok, &o2, &seq, 1, &b2));
  CHECK(b2.tokens > b.tokens && b2.T == b.T);
  text = counted_text(tok, &b2);
  CHECK_MSG(text && strstr(text, "dog") && strstr(text, "plus") && !strstr(text, "you answer"),
            "%s", text);
  free(text);
  float *g2 = logit_grads(&b2, V, b2.weights);
  int64_t newly = 0;
  for (int64_t i = 0; g2 && i < b.T; i++)
    if (b.targets[i] < 0 && b2.targets[i] >= 0) {
      CHECK(!row_zero(g2, i, V)); /* masked before, trained on now */
      newly++;
    }
  CHECK(newly == b2.tokens - b.tokens);
  free(g2);
  ag_grpo_batch_clear(&b);
  ag_grpo_batch_clear(&b2);
  ag_tok_free(tok);
}

TEST(row_weights_scale_and_flip_the_gradient) {
  ag_tokenizer *tok = tokenizer();
  if (!tok) return;
  int64_t V = ag_tok_vocab_size(tok);
  static const char *const student[] = {"student"};
  ag_lm_data_options o = options(student, 1);
  ag_grpo_sequence seqs[3] = {{DIALOGUE, 5, 1.0f}, {DIALOGUE, 5, -2.0f}, {DIALOGUE, 5, 0.0f}};
  ag_grpo_batch b;
  CHECK_OK(ag_grpo_batch_build(tok, &o, seqs, 3, &b));
  CHECK(b.rows == 3 && b.source[1] == 1);
  float *g = logit_grads(&b, V, b.weights);
  /* Same logits would give row 1 = -2 x row 0; the logits differ per row,
   * so compare the target entries' signs and zero rows instead. */
  int64_t T = b.T, checked = 0;
  for (int64_t t = 0; g && t < T; t++) {
    if (b.targets[t] < 0) continue;
    int32_t y = b.targets[t];
    CHECK(g[t * V + y] < 0);          /* weight 1: raise the target */
    CHECK(g[(T + t) * V + y] > 0);    /* weight -2: lower it */
    CHECK(row_zero(g, 2 * T + t, V)); /* weight 0: nothing */
    checked++;
  }
  CHECK(checked == b.tokens / 3);
  free(g);
  ag_grpo_batch_clear(&b);
  ag_tok_free(tok);
}

static ag_transformer *tiny_model(const ag_tokenizer *tok, uint64_t seed) {
  ag_transformer_config c = ag_transformer_llama_config(ag_tok_vocab_size(tok), 32, 2, 4, 2, 256);
  ag_transformer *m = NULL;
  CHECK_OK(ag_transformer_create(&c, &m));
  if (m) ag_transformer_init(m, seed);
  return m;
}

/* Mean NLL of the batch's counted tokens. */
static double batch_nll(ag_transformer *m, const ag_grpo_batch *b) {
  ag_tape *t = ag_tape_create();
  ag_tape_set_grad_enabled(t, false);
  ag_tensor *logits = ag_transformer_forward(t, m, b->ids, b->rows, b->T);
  logits = ag_reshape(t, logits, 2, (int64_t[]){b->rows * b->T, logits ? logits->shape[2] : 1});
  ag_tensor *l = ag_cross_entropy(t, logits, b->targets, NULL, -1, false);
  double v = l ? l->data[0] : NAN;
  ag_tape_destroy(t);
  return v;
}

TEST(an_update_follows_the_sign_of_the_advantage) {
  ag_tokenizer *tok = tokenizer();
  if (!tok) return;
  static const char *const student[] = {"student"};
  ag_lm_data_options o = options(student, 1);
  for (int sign = -1; sign <= 1; sign += 2) {
    ag_transformer *m = tiny_model(tok, 5);
    if (!m) break;
    ag_grpo_sequence seq = {DIALOGUE, 5, (float)sign};
    ag_grpo_batch b;
    CHECK_OK(ag_grpo_batch_build(tok, &o, &seq, 1, &b));
    ag_optim *opt = NULL;
    ag_optim_config oc = ag_optim_adamw_defaults(1e-2f);
    CHECK_OK(ag_optim_create(ag_transformer_params(m), &oc, &opt));
    double before = batch_nll(m, &b);
    ag_grpo_update_options uo = {.micro_batch = 1, .lr = 1e-2f, .clip_norm = 1.0f};
    ag_grpo_update_stats s;
    for (int i = 0; i < 3; i++)
      CHECK_OK(ag_grpo_update(m, ag_transformer_params(m), opt, &b, &uo, &s));
    double after = batch_nll(m, &b);
    CHECK(s.tokens == b.tokens && s.grad_norm > 0);
    CHECK_NEAR(s.loss, sign * s.nll, 1e-4); /* weight +-1: loss = +-mean NLL */
    if (sign > 0)
      CHECK_MSG(after < before - 0.05, "nll %.4f -> %.4f", before, after);
    else
      CHECK_MSG(after > before + 0.05, "nll %.4f -> %.4f", before, after);
    /* The optimizer state round-trips. */
    char path[700];
    snprintf(path, sizeof path, "%s/optim-%d.safetensors", test_tmpdir(), sign + 1);
    CHECK_OK(ag_optim_save(path, opt));
    ag_optim *back = NULL;
    CHECK_OK(ag_optim_create(ag_transformer_params(m), &oc, &back));
    CHECK_OK(ag_optim_load(path, back));
    CHECK(back && back->step == 3 &&
          !memcmp(back->state2, opt->state2, (size_t)ag_transformer_params(m)->total * 4));
    ag_optim_destroy(back);
    ag_optim_destroy(opt);
    ag_grpo_batch_clear(&b);
    ag_transformer_destroy(m);
  }
  ag_tok_free(tok);
}

TEST(the_kl_penalty_needs_a_reference_and_is_zero_against_itself) {
  ag_tokenizer *tok = tokenizer();
  if (!tok) return;
  static const char *const student[] = {"student"};
  ag_lm_data_options o = options(student, 1);
  ag_transformer *m = tiny_model(tok, 5), *ref = tiny_model(tok, 5), *other = tiny_model(tok, 9);
  ag_grpo_sequence seq = {DIALOGUE, 5, 0.0f};
  ag_grpo_batch b;
  CHECK_OK(ag_grpo_batch_build(tok, &o, &seq, 1, &b));
  ag_optim_config oc = ag_optim_adamw_defaults(1e-2f);
  ag_optim *opt = NULL;
  CHECK_OK(ag_optim_create(ag_transformer_params(m), &oc, &opt));
  ag_grpo_update_options uo = {.lr = 1e-2f, .kl_beta = 0.1f};
  ag_grpo_update_stats s;
  CHECK(ag_grpo_update(m, ag_transformer_params(m), opt, &b, &uo, &s) != AG_OK);
  CHECK(strstr(ag_error_message(), "reference"));
  ag_error_clear();
  /* Against an identical model: KL 0, and with advantage 0 no gradient. */
  uo.reference = ref;
  CHECK_OK(ag_grpo_update(m, ag_transformer_params(m), opt, &b, &uo, &s));
  CHECK_NEAR(s.kl, 0.0, 1e-5);
  CHECK(s.grad_norm < 1e-4);
  /* Against another model the penalty pulls: nonzero KL estimate and gradient. */
  uo.reference = other;
  CHECK_OK(ag_grpo_update(m, ag_transformer_params(m), opt, &b, &uo, &s));
  CHECK(fabs(s.kl) > 1e-3 && s.grad_norm > 1e-4);
  ag_optim_destroy(opt);
  ag_grpo_batch_clear(&b);
  ag_transformer_destroy(m);
  ag_transformer_destroy(ref);
  ag_transformer_destroy(other);
  ag_tok_free(tok);
}

int main(void) {
  ag_log_set_level(AG_LOG_WARN);
  RUN(turn_discounted_rewards);
  RUN(group_advantages_on_hand_worked_groups);
  RUN(teacher_tokens_get_exactly_zero_gradient_unless_trained_on);
  RUN(row_weights_scale_and_flip_the_gradient);
  RUN(an_update_follows_the_sign_of_the_advantage);
  RUN(the_kl_penalty_needs_a_reference_and_is_zero_against_itself);
  TEST_MAIN_END();
}
