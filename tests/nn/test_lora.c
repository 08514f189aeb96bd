/* LoRA: a fresh adapter changes nothing, gradients reach A and B (and only
 * them), merging reproduces the adapted logits, and the PEFT files carry
 * the names and config peft expects. Llama and GPT-2 (whose fused c_attn
 * adapter is split across q, k and v). */
#include "agora/json.h"
#include "agora/lora.h"
#include "agora/optim.h"
#include "agora/safetensors.h"
#include "gradcheck.h"
#include "test.h"

#include <unistd.h>

/* Tiny models with wide random weights, so every path matters. */
static ag_transformer *tiny_model(ag_transformer_arch arch, uint64_t seed) {
  ag_transformer_config c = arch == AG_ARCH_GPT2 ? ag_transformer_gpt2_config(13, 8, 2, 2, 16)
                                                 : ag_transformer_llama_config(13, 8, 2, 2, 1, 16);
  c.intermediate_size = 12;
  ag_transformer *m = NULL;
  if (ag_transformer_create(&c, &m)) {
    fprintf(stderr, "create: %s\n", ag_error_message());
    return NULL;
  }
  ag_params *p = ag_transformer_params(m);
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  for (int64_t i = 0; i < p->total; i++) p->data[i] = ag_rng_uniform(&rng) - 0.5f;
  for (int i = 0; i < p->count; i++) /* norm scales near 1 */
    if (strstr(p->tensors[i]->name, "norm") || strstr(p->tensors[i]->name, "ln_"))
      if (strstr(p->tensors[i]->name, "weight"))
        for (int64_t j = 0; j < p->tensors[i]->numel; j++) p->tensors[i]->data[j] += 1.0f;
  return m;
}

static const int32_t IDS[] = {1, 5, 7, 2, 12, 0, 3, 3, 9, 4};
#define B 2
#define T 5
#define V 13

/* logits (B, T, V) into out. */
static bool logits_of(ag_transformer *m, float *out) {
  ag_tape *t = ag_tape_create();
  ag_tape_set_grad_enabled(t, false);
  ag_tape_set_training(t, false);
  ag_tensor *y = ag_transformer_forward(t, m, IDS, B, T);
  if (y)
    memcpy(out, y->data, (size_t)y->numel * sizeof(float));
  else
    fprintf(stderr, "forward: %s\n", ag_tape_error(t));
  ag_tape_destroy(t);
  return y != NULL;
}

static double max_diff(const float *a, const float *b, int64_t n) {
  double d = 0;
  for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - (double)b[i]));
  return d;
}

static ag_lora_config config_for(ag_transformer_arch arch, const char *targets) {
  ag_lora_config c = ag_lora_defaults();
  c.rank = 2;
  c.alpha = 3.0f;
  c.dropout = 0.0f;
  snprintf(c.target_modules, sizeof c.target_modules, "%s",
           targets                ? targets
           : arch == AG_ARCH_GPT2 ? "c_attn,c_fc"
                                  : "q_proj,v_proj,down_proj");
  snprintf(c.base_model_name_or_path, sizeof c.base_model_name_or_path, "tiny-%s",
           arch == AG_ARCH_GPT2 ? "gpt2" : "llama");
  return c;
}

/* Gives B random values (a trained adapter's stand-in). */
static void randomize_b(ag_lora *l, uint64_t seed) {
  ag_params *p = ag_lora_params(l);
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  for (int i = 0; i < p->count; i++)
    if (strstr(p->tensors[i]->name, "lora_B"))
      for (int64_t j = 0; j < p->tensors[i]->numel; j++)
        p->tensors[i]->data[j] = ag_rng_uniform(&rng) - 0.5f;
}

static void fresh_adapter_is_identity(ag_transformer_arch arch) {
  ag_transformer *m = tiny_model(arch, 3);
  float base[B * T * V], adapted[B * T * V];
  CHECK(m && logits_of(m, base));
  ag_lora_config c = config_for(arch, NULL);
  ag_lora *l = NULL;
  CHECK_OK(ag_lora_create(m, &c, 7, &l));
  if (!l) return;
  CHECK(ag_lora_module_count(l) == (arch == AG_ARCH_GPT2 ? 4 : 6));
  CHECK(logits_of(m, adapted));
  CHECK(memcmp(base, adapted, sizeof base) == 0);
  /* A is drawn, B is zero */
  ag_params *p = ag_lora_params(l);
  for (int i = 0; i < p->count; i++) {
    bool is_b = strstr(p->tensors[i]->name, "lora_B") != NULL;
    double norm = 0;
    for (int64_t j = 0; j < p->tensors[i]->numel; j++) norm += fabs(p->tensors[i]->data[j]);
    CHECK_MSG(is_b ? norm == 0 : norm > 0, "%s", p->tensors[i]->name);
  }
  ag_lora_destroy(l);
  ag_transformer_destroy(m);
}

TEST(fresh_adapter_leaves_llama_unchanged) { fresh_adapter_is_identity(AG_ARCH_LLAMA); }
TEST(fresh_adapter_leaves_gpt2_unchanged) { fresh_adapter_is_identity(AG_ARCH_GPT2); }

typedef struct grad_ctx {
  ag_transformer *m;
} grad_ctx;

static ag_tensor *f_forward(ag_tape *t, ag_tensor **in, void *ctx) {
  grad_ctx *c = ctx;
  return ag_transformer_forward(t, c->m, IDS, B, T);
}

static void adapter_gradients(ag_transformer_arch arch, const char *label) {
  ag_transformer *m = tiny_model(arch, 5);
  ag_lora_config c = config_for(arch, NULL);
  ag_lora *l = NULL;
  CHECK_OK(ag_lora_create(m, &c, 9, &l));
  if (!l) return;
  randomize_b(l, 11);
  ag_params *p = ag_lora_params(l);
  grad_ctx ctx = {m};
  CHECK(gradcheck(label, f_forward, p->tensors, p->count, &ctx, 3e-3, 3e-3, 3e-2) == 0);
  ag_lora_destroy(l);
  ag_transformer_destroy(m);
}

TEST(llama_adapter_gradients_match_finite_differences) {
  adapter_gradients(AG_ARCH_LLAMA, "lora llama");
}
TEST(gpt2_adapter_gradients_match_finite_differences) {
  adapter_gradients(AG_ARCH_GPT2, "lora gpt2");
}

/* The loss of IDS against targets, dropout off. */
static float eval_loss(ag_transformer *m, const int32_t *targets) {
  ag_tape *t = ag_tape_create();
  ag_tape_set_training(t, false);
  ag_tape_set_grad_enabled(t, false);
  ag_tensor *loss = ag_transformer_loss(t, m, IDS, targets, NULL, B, T);
  float v = loss ? loss->data[0] : NAN;
  ag_tape_destroy(t);
  return v;
}

/* A few AdamW steps on the adapters: the loss falls, the base weights do
 * not move and get no gradient, and detaching restores their flags. */
TEST(training_changes_only_the_adapters) {
  ag_transformer *m = tiny_model(AG_ARCH_LLAMA, 13);
  if (!m) return;
  ag_params *base = ag_transformer_params(m);
  float *before = malloc((size_t)base->total * sizeof(float));
  memcpy(before, base->data, (size_t)base->total * sizeof(float));
  memset(base->grad, 0, (size_t)base->total * sizeof(float));
  ag_lora_config c = config_for(AG_ARCH_LLAMA, "all-linear");
  c.dropout = 0.1f;
  ag_lora *l = NULL;
  CHECK_OK(ag_lora_create(m, &c, 1, &l));
  if (!l) return;
  CHECK(ag_lora_module_count(l) == 2 * 7);
  for (int i = 0; i < base->count; i++) CHECK(!base->tensors[i]->requires_grad);
  ag_optim_config oc = ag_optim_adamw_defaults(3e-2f);
  ag_optim *opt = NULL;
  CHECK_OK(ag_optim_create(ag_lora_params(l), &oc, &opt));
  int32_t targets[B * T];
  for (int i = 0; i < B * T; i++) targets[i] = (IDS[i] * 3 + 1) % V;
  ag_tape *t = ag_tape_create();
  float first = eval_loss(m, targets);
  for (int step = 0; step < 60; step++) {
    ag_tape_reset(t);
    ag_params_zero_grad(ag_lora_params(l));
    ag_tensor *loss = ag_transformer_loss(t, m, IDS, targets, NULL, B, T);
    CHECK(loss != NULL);
    if (!loss) break;
    CHECK_OK(ag_backward(t, loss));
    CHECK_OK(ag_optim_step(opt, 3e-2f));
  }
  float last = eval_loss(m, targets);
  CHECK_MSG(last < 0.5f * first, "loss %g -> %g", (double)first, (double)last);
  CHECK(memcmp(before, base->data, (size_t)base->total * sizeof(float)) == 0);
  double grad = 0;
  for (int64_t i = 0; i < base->total; i++) grad += fabs(base->grad[i]);
  CHECK(grad == 0);
  ag_lora_detach(l);
  for (int i = 0; i < base->count; i++) CHECK(base->tensors[i]->requires_grad);
  ag_tape_destroy(t);
  ag_optim_destroy(opt);
  ag_lora_destroy(l);
  free(before);
  ag_transformer_destroy(m);
}

static void merge_matches(ag_transformer_arch arch) {
  ag_transformer *m = tiny_model(arch, 17);
  ag_lora_config c = config_for(arch, NULL);
  c.dropout = 0.2f; /* evaluation ignores it */
  ag_lora *l = NULL;
  CHECK_OK(ag_lora_create(m, &c, 19, &l));
  if (!l) return;
  randomize_b(l, 23);
  float base[B * T * V], adapted[B * T * V], merged[B * T * V];
  ag_lora_detach(l);
  CHECK(logits_of(m, base));
  ag_lora_attach(l);
  CHECK(logits_of(m, adapted));
  CHECK(max_diff(base, adapted, B * T * V) > 1e-2); /* the adapter matters */
  CHECK_OK(ag_lora_merge(l, m));
  CHECK(!ag_lora_attached(l));
  CHECK(logits_of(m, merged));
  double d = max_diff(adapted, merged, B * T * V);
  CHECK_MSG(d < 2e-5, "merged logits differ by %g", d);
  ag_lora_destroy(l);
  ag_transformer_destroy(m);
}

TEST(merged_llama_equals_base_plus_adapter) { merge_matches(AG_ARCH_LLAMA); }
TEST(merged_gpt2_equals_base_plus_adapter) { merge_matches(AG_ARCH_GPT2); }

static void file_path(char *out, size_t n, const char *dir, const char *name) {
  snprintf(out, n, "%s/%s", dir, name);
}

TEST(peft_files_have_the_expected_names_and_config) {
  ag_transformer *m = tiny_model(AG_ARCH_LLAMA, 29);
  ag_lora_config c = config_for(AG_ARCH_LLAMA, "q_proj, v_proj");
  c.dropout = 0.05f;
  ag_lora *l = NULL;
  CHECK_OK(ag_lora_create(m, &c, 31, &l));
  if (!l) return;
  randomize_b(l, 37);
  char dir[600], path[700];
  snprintf(dir, sizeof dir, "%s/adapter", test_tmpdir());
  CHECK_OK(ag_lora_save(l, dir));

  json_t *config = NULL;
  file_path(path, sizeof path, dir, "adapter_config.json");
  CHECK_OK(ag_json_load(path, &config));
  if (config) {
    CHECK(!strcmp(json_string_value(json_object_get(config, "peft_type")), "LORA"));
    CHECK(!strcmp(json_string_value(json_object_get(config, "task_type")), "CAUSAL_LM"));
    CHECK(json_integer_value(json_object_get(config, "r")) == 2);
    CHECK(json_number_value(json_object_get(config, "lora_alpha")) == 3.0);
    CHECK_NEAR(json_number_value(json_object_get(config, "lora_dropout")), 0.05, 1e-7);
    CHECK(!strcmp(json_string_value(json_object_get(config, "base_model_name_or_path")),
                  "tiny-llama"));
    json_t *targets = json_object_get(config, "target_modules");
    CHECK(json_array_size(targets) == 2);
    CHECK(!strcmp(json_string_value(json_array_get(targets, 0)), "q_proj"));
    CHECK(!strcmp(json_string_value(json_array_get(targets, 1)), "v_proj"));
    json_decref(config);
  }

  ag_safetensors *f = NULL;
  file_path(path, sizeof path, dir, "adapter_model.safetensors");
  CHECK_OK(ag_safetensors_open(path, &f));
  if (f) {
    CHECK(f->count == 2 * 2 * 2); /* 2 layers x (q, v) x (A, B) */
    const ag_st_entry *a =
        ag_safetensors_find(f, "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight");
    const ag_st_entry *b =
        ag_safetensors_find(f, "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight");
    CHECK(a && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 8); /* (r, in) */
    CHECK(b && b->ndim == 2 && b->shape[0] == 4 && b->shape[1] == 2); /* (out = kv 1 x 4, r) */
    ag_safetensors_close(f);
  }

  /* Loaded onto a fresh copy of the base, it gives the same logits. */
  float adapted[B * T * V], reloaded[B * T * V];
  CHECK(logits_of(m, adapted));
  ag_transformer *m2 = tiny_model(AG_ARCH_LLAMA, 29);
  ag_lora *l2 = NULL;
  CHECK_OK(ag_lora_load(dir, m2, &l2));
  if (l2) {
    CHECK(ag_lora_module_count(l2) == 4);
    CHECK(ag_lora_scale(l2) == 1.5f);
    CHECK(logits_of(m2, reloaded));
    CHECK(memcmp(adapted, reloaded, sizeof adapted) == 0);
  }
  ag_lora_destroy(l2);
  ag_transformer_destroy(m2);

  /* A model without those modules refuses the file: another family, or a
   * Llama with one layer (layer 1's tensors adapt nothing). */
  ag_transformer *gpt2 = tiny_model(AG_ARCH_GPT2, 1);
  ag_lora *bad = NULL;
  CHECK(ag_lora_load(dir, gpt2, &bad) != AG_OK && bad == NULL);
  CHECK(strstr(ag_error_message(), "no projection") != NULL);
  ag_transformer_destroy(gpt2);
  ag_transformer_config one = ag_transformer_llama_config(13, 8, 1, 2, 1, 16);
  ag_transformer *shallow = NULL;
  CHECK_OK(ag_transformer_create(&one, &shallow));
  CHECK(ag_lora_load(dir, shallow, &bad) != AG_OK && bad == NULL);
  CHECK(strstr(ag_error_message(), "layers.1.self_attn.q_proj.lora_A.weight\" adapts no") != NULL);
  ag_transformer_destroy(shallow);

  file_path(path, sizeof path, dir, "adapter_config.json");
  unlink(path);
  file_path(path, sizeof path, dir, "adapter_model.safetensors");
  unlink(path);
  rmdir(dir);
  ag_lora_destroy(l);
  ag_transformer_destroy(m);
}

TEST(bad_configs_are_refused_with_a_reason) {
  ag_transformer *m = tiny_model(AG_ARCH_LLAMA, 41);
  ag_lora *l = NULL;
  ag_lora_config c = config_for(AG_ARCH_LLAMA, "c_attn");
  CHECK(ag_lora_create(m, &c, 1, &l) == AG_ERR_INVALID && l == NULL);
  CHECK(strstr(ag_error_message(), "model.layers.0.self_attn.q_proj") != NULL);
  c = config_for(AG_ARCH_LLAMA, "proj"); /* suffixes match whole name parts only */
  CHECK(ag_lora_create(m, &c, 1, &l) == AG_ERR_INVALID);
  c = config_for(AG_ARCH_LLAMA, NULL);
  c.rank = 0;
  CHECK(ag_lora_create(m, &c, 1, &l) == AG_ERR_INVALID);
  c = config_for(AG_ARCH_LLAMA, NULL);
  c.dropout = 1.0f;
  CHECK(ag_lora_create(m, &c, 1, &l) == AG_ERR_INVALID);
  ag_transformer_destroy(m);
}

int main(void) {
  (void)gradcheck_random;
  ag_threads_set(1);
  RUN(fresh_adapter_leaves_llama_unchanged);
  RUN(fresh_adapter_leaves_gpt2_unchanged);
  RUN(llama_adapter_gradients_match_finite_differences);
  RUN(gpt2_adapter_gradients_match_finite_differences);
  RUN(training_changes_only_the_adapters);
  RUN(merged_llama_equals_base_plus_adapter);
  RUN(merged_gpt2_equals_base_plus_adapter);
  RUN(peft_files_have_the_expected_names_and_config);
  RUN(bad_configs_are_refused_with_a_reason);
  TEST_MAIN_END();
}
