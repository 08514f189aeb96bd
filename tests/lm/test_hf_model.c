/* Hugging Face model folders: save -> load round trips (both families, both
 * load modes, sharded, F16/BF16), malformed folders failing with clear
 * errors, and the real stories260K checkpoint against an independent numpy
 * implementation of the Llama forward pass (logits and 200 greedy tokens). */
#include "agora/hf_model.h"
#include "agora/json.h"
#include "agora/optim.h"
#include "agora/tokenizer.h"
#include "test.h"

#include <sys/stat.h>
#include <unistd.h>

#define STORIES_DIR "../shared/data/models/stories260K"

static ag_transformer *small_model(ag_transformer_arch arch, bool qkv_bias, bool tied) {
  ag_transformer_config c = arch == AG_ARCH_GPT2 ? ag_transformer_gpt2_config(37, 16, 2, 4, 32)
                                                 : ag_transformer_llama_config(37, 16, 2, 4, 2, 32);
  c.intermediate_size = 24;
  c.qkv_bias = qkv_bias;
  if (arch == AG_ARCH_LLAMA) c.tie_embeddings = tied;
  ag_transformer *m = NULL;
  if (ag_transformer_create(&c, &m)) return NULL;
  ag_transformer_init(m, 5);
  /* biases and norms away from 0 and 1, so a mix-up would show */
  ag_params *p = ag_transformer_params(m);
  ag_rng rng;
  ag_rng_seed(&rng, 9);
  for (int i = 0; i < p->count; i++)
    if (p->tensors[i]->ndim == 1)
      for (int64_t j = 0; j < p->tensors[i]->numel; j++)
        p->tensors[i]->data[j] += 0.1f * ag_rng_normal(&rng);
  return m;
}

static const int32_t probe_ids[] = {3, 17, 0, 36, 5, 5, 12, 30, 1, 2};
#define PROBE_B 2
#define PROBE_T 5

/* Logits (B, T, V) of the probe ids into out (malloc'd). */
static float *probe_logits(ag_transformer *m) {
  ag_tape *t = ag_tape_create();
  ag_tape_set_grad_enabled(t, false);
  ag_tensor *y = ag_transformer_forward(t, m, probe_ids, PROBE_B, PROBE_T);
  float *out = NULL;
  if (y) {
    out = malloc((size_t)y->numel * sizeof(float));
    memcpy(out, y->data, (size_t)y->numel * sizeof(float));
  } else {
    fprintf(stderr, "forward: %s\n", ag_tape_error(t));
  }
  ag_tape_destroy(t);
  return out;
}

static double logits_diff(const float *a, const float *b, int64_t V) {
  if (!a || !b) return 1e30;
  double d = 0;
  for (int64_t i = 0; i < PROBE_B * PROBE_T * V; i++) d = fmax(d, fabs(a[i] - b[i]));
  return d;
}

static const char *fresh_dir(const char *name) {
  static char path[4][512];
  static int next = 0;
  char *p = path[next++ % 4];
  snprintf(p, 512, "%s/%s", test_tmpdir(), name);
  return p;
}

static void round_trip(ag_transformer_arch arch, bool qkv_bias, bool tied, const char *name,
                       const char *model_type) {
  ag_transformer *m = small_model(arch, qkv_bias, tied);
  CHECK(m != NULL);
  if (!m) return;
  const char *dir = fresh_dir(name);
  ag_hf_info info = {
      .bos_token_id = 1, .pad_token_id = -1, .eos_token_ids = {2, 7}, .eos_count = 2};
  CHECK_OK(ag_hf_save(dir, m, &info, AG_DTYPE_F32));
  float *want = probe_logits(m);
  int64_t V = ag_transformer_config_of(m)->vocab_size;
  for (int mode = 0; mode < 2; mode++) {
    ag_transformer *loaded = NULL;
    ag_hf_info got;
    CHECK_OK(ag_hf_load(dir, (ag_hf_load_mode)mode, &loaded, &got));
    if (!loaded) continue;
    CHECK(strcmp(got.model_type, model_type) == 0);
    CHECK(got.bos_token_id == 1 && got.eos_count == 2 && got.eos_token_ids[1] == 7);
    CHECK(ag_transformer_trainable(loaded) == (mode == AG_HF_LOAD_TRAINABLE));
    float *have = probe_logits(loaded);
    CHECK_MSG(logits_diff(want, have, V) == 0.0, "%s mode %d: logits differ by %g", name, mode,
              logits_diff(want, have, V));
    free(have);
    ag_transformer_destroy(loaded);
  }
  free(want);
  ag_transformer_destroy(m);
}

TEST(llama_saves_and_loads_identically) {
  round_trip(AG_ARCH_LLAMA, false, true, "llama", "llama");
}
TEST(qwen2_saves_and_loads_identically) {
  round_trip(AG_ARCH_LLAMA, true, false, "qwen2", "qwen2");
}
TEST(gpt2_saves_and_loads_identically) { round_trip(AG_ARCH_GPT2, false, true, "gpt2", "gpt2"); }

TEST(saved_files_are_what_transformers_reads) {
  ag_transformer *m = small_model(AG_ARCH_GPT2, false, true);
  if (!m) return;
  const char *dir = fresh_dir("gpt2-files");
  CHECK_OK(ag_hf_save(dir, m, NULL, AG_DTYPE_F32));
  char path[600];
  json_t *cfg = NULL;
  snprintf(path, sizeof path, "%s/config.json", dir);
  CHECK_OK(ag_json_load(path, &cfg));
  if (cfg) {
    CHECK(!strcmp(json_string_value(json_array_get(json_object_get(cfg, "architectures"), 0)),
                  "GPT2LMHeadModel"));
    CHECK(json_integer_value(json_object_get(cfg, "n_embd")) == 16);
    CHECK(!strcmp(json_string_value(json_object_get(cfg, "activation_function")), "gelu_new"));
    CHECK(json_real_value(json_object_get(cfg, "layer_norm_epsilon")) == 1e-5);
  }
  json_decref(cfg);
  snprintf(path, sizeof path, "%s/generation_config.json", dir);
  CHECK(ag_file_exists(path));
  /* Conv1D weights are stored (in, out), lm_head is tied (absent), metadata says pt */
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  ag_safetensors *f = NULL;
  CHECK_OK(ag_safetensors_open(path, &f));
  if (f) {
    const ag_st_entry *e = ag_safetensors_find(f, "transformer.h.0.attn.c_attn.weight");
    CHECK(e && e->shape[0] == 16 && e->shape[1] == 48);
    e = ag_safetensors_find(f, "transformer.h.1.mlp.c_fc.weight");
    CHECK(e && e->shape[0] == 16 && e->shape[1] == 24);
    CHECK(ag_safetensors_find(f, "lm_head.weight") == NULL);
    CHECK(f->metadata_json && strstr(f->metadata_json, "\"pt\""));
    /* the file's (in, out) element [i][o] is our (out, in) weight [o][i] */
    const ag_tensor *w =
        ag_params_find(ag_transformer_params(m), "transformer.h.0.attn.c_attn.weight");
    float v[16 * 48];
    if (e && w) {
      CHECK_OK(
          ag_safetensors_read_f32(ag_safetensors_find(f, "transformer.h.0.attn.c_attn.weight"), v));
      CHECK(v[3 * 48 + 40] == w->data[40 * 16 + 3]);
    }
  }
  ag_safetensors_close(f);
  /* a llama config states its biases and rope */
  ag_transformer *l = small_model(AG_ARCH_LLAMA, false, false);
  const char *ldir = fresh_dir("llama-files");
  CHECK_OK(ag_hf_save(ldir, l, NULL, AG_DTYPE_F32));
  snprintf(path, sizeof path, "%s/config.json", ldir);
  CHECK_OK(ag_json_load(path, &cfg));
  if (cfg) {
    CHECK(json_is_false(json_object_get(cfg, "attention_bias")));
    CHECK(json_is_false(json_object_get(cfg, "tie_word_embeddings")));
    CHECK(json_real_value(json_object_get(cfg, "rope_theta")) == 10000.0);
    CHECK(json_integer_value(json_object_get(cfg, "num_key_value_heads")) == 2);
  }
  json_decref(cfg);
  ag_transformer_destroy(l);
  ag_transformer_destroy(m);
}

TEST(mapped_f32_weights_are_used_in_place) {
  ag_transformer *m = small_model(AG_ARCH_LLAMA, false, false);
  if (!m) return;
  const char *dir = fresh_dir("mapped");
  CHECK_OK(ag_hf_save(dir, m, NULL, AG_DTYPE_F32));
  ag_transformer_destroy(m);
  ag_transformer *loaded = NULL;
  CHECK_OK(ag_hf_load(dir, AG_HF_LOAD_MAPPED, &loaded, NULL));
  if (!loaded) return;
  char path[600];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  ag_safetensors *f = NULL;
  CHECK_OK(ag_safetensors_open(path, &f));
  /* Distances between tensors equal their distances in the file: they are
   * views of one mapping, not copies. */
  ag_params *p = ag_transformer_params(loaded);
  const char *a = "model.layers.0.mlp.up_proj.weight", *b = "model.norm.weight";
  const ag_st_entry *ea = f ? ag_safetensors_find(f, a) : NULL;
  const ag_st_entry *eb = f ? ag_safetensors_find(f, b) : NULL;
  ag_tensor *ta = ag_params_find(p, a), *tb = ag_params_find(p, b);
  CHECK(ea && eb && ta && tb);
  if (ea && eb && ta && tb)
    CHECK((const char *)tb->data - (const char *)ta->data ==
          (const char *)eb->data - (const char *)ea->data);
  CHECK(p->data == NULL && p->grad == NULL); /* no flat copy, no gradient memory */
  ag_optim *opt = NULL;
  ag_optim_config oc = ag_optim_adamw_defaults(1e-3f);
  CHECK(ag_optim_create(p, &oc, &opt) != AG_OK); /* read-only weights cannot be trained */
  ag_safetensors_close(f);
  ag_transformer_destroy(loaded);
}

/* bf16 rounding of every parameter, in place. */
static void round_to_bf16(ag_transformer *m) {
  ag_params *p = ag_transformer_params(m);
  for (int64_t i = 0; i < p->total; i++) p->data[i] = ag_bf16_to_f32(ag_f32_to_bf16(p->data[i]));
}

TEST(bf16_weights_load_converted) {
  ag_transformer *m = small_model(AG_ARCH_GPT2, false, true);
  if (!m) return;
  const char *dir = fresh_dir("bf16");
  CHECK_OK(ag_hf_save(dir, m, NULL, AG_DTYPE_BF16));
  round_to_bf16(m);
  float *want = probe_logits(m);
  for (int mode = 0; mode < 2; mode++) {
    ag_transformer *loaded = NULL;
    ag_hf_info info;
    CHECK_OK(ag_hf_load(dir, (ag_hf_load_mode)mode, &loaded, &info));
    if (!loaded) continue;
    CHECK(!strcmp(info.torch_dtype, "bfloat16"));
    float *have = probe_logits(loaded);
    CHECK(logits_diff(want, have, 37) == 0.0);
    free(have);
    ag_transformer_destroy(loaded);
  }
  free(want);
  ag_transformer_destroy(m);
}

/* Writes params as F16 safetensors by hand (agora writes F32/BF16 only). */
static void write_f16(const char *path, ag_params *p, int first, int last) {
  json_t *header = json_object();
  size_t offset = 0;
  for (int i = first; i < last; i++) {
    const ag_tensor *t = p->tensors[i];
    json_t *e = json_object(), *shape = json_array();
    for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
    json_object_set_new(e, "dtype", json_string("F16"));
    json_object_set_new(e, "shape", shape);
    json_t *off = json_array();
    json_array_append_new(off, json_integer((json_int_t)offset));
    offset += (size_t)t->numel * 2;
    json_array_append_new(off, json_integer((json_int_t)offset));
    json_object_set_new(e, "data_offsets", off);
    json_object_set_new(header, t->name, e);
  }
  char *text = json_dumps(header, JSON_COMPACT);
  size_t n = strlen(text), padded = (n + 7) / 8 * 8;
  FILE *f = fopen(path, "wb");
  unsigned char len[8];
  for (int k = 0; k < 8; k++) len[k] = (unsigned char)((uint64_t)padded >> (8 * k));
  fwrite(len, 1, 8, f);
  fwrite(text, 1, n, f);
  for (size_t k = n; k < padded; k++) fputc(' ', f);
  for (int i = first; i < last; i++)
    for (int64_t j = 0; j < p->tensors[i]->numel; j++) {
      uint16_t h = ag_f32_to_f16(p->tensors[i]->data[j]);
      fputc(h & 0xff, f);
      fputc(h >> 8, f);
    }
  fclose(f);
  free(text);
  json_decref(header);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

TEST(sharded_f16_checkpoint_loads) {
  ag_transformer *m = small_model(AG_ARCH_LLAMA, true, false);
  if (!m) return;
  const char *dir = fresh_dir("sharded");
  CHECK_OK(ag_hf_save(dir, m, NULL, AG_DTYPE_F32));
  char path[600];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  unlink(path);
  ag_params *p = ag_transformer_params(m);
  int half = p->count / 2;
  snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
  write_f16(path, p, 0, half);
  snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
  write_f16(path, p, half, p->count);
  json_t *index = json_object(), *map = json_object();
  for (int i = 0; i < p->count; i++)
    json_object_set_new(map, p->tensors[i]->name,
                        json_string(i < half ? "model-00001-of-00002.safetensors"
                                             : "model-00002-of-00002.safetensors"));
  json_object_set_new(index, "metadata", json_object());
  json_object_set_new(index, "weight_map", map);
  snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
  CHECK_OK(ag_json_save(path, index));
  json_decref(index);
  for (int64_t i = 0; i < p->total; i++) p->data[i] = ag_f16_to_f32(ag_f32_to_f16(p->data[i]));
  float *want = probe_logits(m);
  ag_transformer *loaded = NULL;
  CHECK_OK(ag_hf_load(dir, AG_HF_LOAD_MAPPED, &loaded, NULL));
  float *have = loaded ? probe_logits(loaded) : NULL;
  CHECK(logits_diff(want, have, 37) == 0.0);
  free(have);
  ag_transformer_destroy(loaded);
  /* an index naming a shard that is not there */
  snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
  unlink(path);
  CHECK(ag_hf_load(dir, AG_HF_LOAD_TRAINABLE, &loaded, NULL) != AG_OK);
  CHECK(strstr(ag_error_message(), "model-00002-of-00002.safetensors") != NULL);
  CHECK(loaded == NULL);
  free(want);
  ag_transformer_destroy(m);
}

/* Loads dir expecting failure with `code` and every `needles` in the message. */
static void expect_failure(const char *dir, ag_status code, const char *needle1,
                           const char *needle2) {
  for (int mode = 0; mode < 2; mode++) {
    ag_transformer *m = NULL;
    ag_status st = ag_hf_load(dir, (ag_hf_load_mode)mode, &m, NULL);
    CHECK_MSG(st == code, "status %d, want %d: %s", (int)st, (int)code, ag_error_message());
    CHECK(m == NULL);
    CHECK_MSG(!needle1 || strstr(ag_error_message(), needle1), "message lacks '%s': %s", needle1,
              ag_error_message());
    CHECK_MSG(!needle2 || strstr(ag_error_message(), needle2), "message lacks '%s': %s", needle2,
              ag_error_message());
    ag_transformer_destroy(m);
  }
}

static const char *LLAMA_CONFIG =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 37,"
    " \"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 2,"
    " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"tie_word_embeddings\": %s%s}";

static void write_config(const char *dir, const char *tied, const char *extra) {
  char text[1024], path[600];
  snprintf(text, sizeof text, LLAMA_CONFIG, tied, extra);
  snprintf(path, sizeof path, "%s/config.json", dir);
  write_text(path, text);
}

TEST(malformed_folders_fail_with_clear_errors) {
  ag_transformer *m = small_model(AG_ARCH_LLAMA, false, true);
  if (!m) return;
  const char *dir = fresh_dir("broken");
  CHECK_OK(ag_hf_save(dir, m, NULL, AG_DTYPE_F32));
  ag_transformer_destroy(m);
  char path[600], weights[600];
  snprintf(weights, sizeof weights, "%s/model.safetensors", dir);
  write_config(dir, "true", "");
  ag_transformer *ok = NULL;
  CHECK_OK(ag_hf_load(dir, AG_HF_LOAD_MAPPED, &ok, NULL));
  ag_transformer_destroy(ok);

  /* config.json problems */
  write_config(dir, "true", ", \"model_type\": \"phi3\"");
  expect_failure(dir, AG_ERR_UNSUPPORTED, "phi3", "LlamaForCausalLM");
  snprintf(path, sizeof path, "%s/config.json", dir);
  write_text(path, "{\"architectures\": [\"PhiForCausalLM\"], \"hidden_size\": 16}");
  expect_failure(dir, AG_ERR_UNSUPPORTED, "architectures", "GPT2LMHeadModel");
  write_config(dir, "true", ", \"hidden_size\": \"16\"");
  expect_failure(dir, AG_ERR_FORMAT, "hidden_size", "integer");
  write_text(path, "{\"model_type\": \"llama\", \"vocab_size\": 37}");
  expect_failure(dir, AG_ERR_FORMAT, "hidden_size", "missing");
  write_config(dir, "true", ", \"num_key_value_heads\": 3");
  expect_failure(dir, AG_ERR_INVALID, "num_kv_heads", NULL);
  write_config(dir, "true", ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}");
  expect_failure(dir, AG_ERR_UNSUPPORTED, "yarn", "llama3");
  write_config(dir, "true", ", \"hidden_act\": \"gelu\"");
  expect_failure(dir, AG_ERR_UNSUPPORTED, "hidden_act", NULL);
  write_text(path, "{\"model_type\": \"llama\", ");
  expect_failure(dir, AG_ERR_FORMAT, "config.json", NULL);

  /* weights that do not fit the config */
  write_config(dir, "false", "");
  expect_failure(dir, AG_ERR_NOT_FOUND, "lm_head.weight", "missing");
  write_config(dir, "true", ", \"intermediate_size\": 20");
  expect_failure(dir, AG_ERR_SHAPE, "mlp", "(20, 16)");
  write_config(dir, "true", "");

  /* truncated and corrupt weight files: an error, never a crash */
  FILE *f = fopen(weights, "rb");
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *bytes = malloc((size_t)size);
  CHECK(fread(bytes, 1, (size_t)size, f) == (size_t)size);
  fclose(f);
  const long cuts[] = {0, 5, 8, 40, 200, size / 2, size - 4};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    f = fopen(weights, "wb");
    fwrite(bytes, 1, (size_t)cuts[i], f);
    fclose(f);
    expect_failure(dir, AG_ERR_FORMAT, "model.safetensors", NULL);
  }
  unsigned char *garbage = malloc((size_t)size);
  memcpy(garbage, bytes, (size_t)size);
  for (int k = 0; k < 8; k++) garbage[k] = 0xff; /* an absurd header length */
  f = fopen(weights, "wb");
  fwrite(garbage, 1, (size_t)size, f);
  fclose(f);
  expect_failure(dir, AG_ERR_FORMAT, "model.safetensors", NULL);
  free(garbage);
  free(bytes);
  unlink(weights);
  expect_failure(dir, AG_ERR_NOT_FOUND, "model.safetensors", NULL);
  expect_failure(fresh_dir("no-such-folder"), AG_ERR_NOT_FOUND, "config.json", NULL);
}

TEST(configs_of_real_families_parse) {
  const char *dir = fresh_dir("configs");
  mkdir(dir, 0755);
  char path[600];
  snprintf(path, sizeof path, "%s/config.json", dir);
  /* Llama 3.2 1B's config.json (abridged) */
  write_text(path,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"bos_token_id\": 128000,"
             " \"eos_token_id\": [128001, 128008, 128009], \"head_dim\": 64,"
             " \"hidden_act\": \"silu\", \"hidden_size\": 2048, \"intermediate_size\": 8192,"
             " \"max_position_embeddings\": 131072, \"mlp_bias\": false, \"model_type\": \"llama\","
             " \"num_attention_heads\": 32, \"num_hidden_layers\": 16, \"num_key_value_heads\": 8,"
             " \"rms_norm_eps\": 1e-05, \"rope_scaling\": {\"factor\": 32.0, \"high_freq_factor\":"
             " 4.0, \"low_freq_factor\": 1.0, \"original_max_position_embeddings\": 8192,"
             " \"rope_type\": \"llama3\"}, \"rope_theta\": 500000.0, \"tie_word_embeddings\": true,"
             " \"torch_dtype\": \"bfloat16\", \"vocab_size\": 128256}");
  ag_transformer_config c;
  ag_hf_info info;
  CHECK_OK(ag_hf_read_config(dir, &c, &info));
  CHECK(c.arch == AG_ARCH_LLAMA && c.num_kv_heads == 8 && c.head_dim == 64);
  CHECK(c.rope.scaling == AG_ROPE_LLAMA3 && c.rope.factor == 32.0f &&
        c.rope.original_max_positions == 8192 && c.rope.theta == 500000.0f);
  CHECK(info.eos_count == 3 && info.eos_token_ids[2] == 128009 && info.bos_token_id == 128000);
  CHECK(!strcmp(info.torch_dtype, "bfloat16") && c.tie_embeddings);
  /* Qwen2.5 0.5B's (abridged): biases on q, k, v */
  write_text(path,
             "{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 896,"
             " \"intermediate_size\": 4864, \"max_position_embeddings\": 32768,"
             " \"model_type\": \"qwen2\", \"num_attention_heads\": 14, \"num_hidden_layers\": 24,"
             " \"num_key_value_heads\": 2, \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0,"
             " \"sliding_window\": 32768, \"tie_word_embeddings\": true, \"use_sliding_window\":"
             " false, \"vocab_size\": 151936, \"eos_token_id\": 151643}");
  CHECK_OK(ag_hf_read_config(dir, &c, &info));
  CHECK(c.qkv_bias && !c.o_bias && c.head_dim == 64 && c.rope.theta == 1e6f);
  CHECK(!strcmp(info.architecture, "Qwen2ForCausalLM") && info.bos_token_id == -1);
  /* GPT-2's: no n_inner, eps and positions from their own names */
  write_text(path, "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\","
                   " \"n_ctx\": 1024, \"n_embd\": 768, \"n_head\": 12, \"n_layer\": 12,"
                   " \"n_positions\": 1024, \"vocab_size\": 50257, \"activation_function\":"
                   " \"gelu_new\", \"layer_norm_epsilon\": 1e-05, \"bos_token_id\": 50256,"
                   " \"eos_token_id\": 50256}");
  CHECK_OK(ag_hf_read_config(dir, &c, &info));
  CHECK(c.arch == AG_ARCH_GPT2 && c.intermediate_size == 3072 && c.max_positions == 1024);
  CHECK(c.head_dim == 64 && info.eos_token_ids[0] == 50256);
}

/* ---- stories260K against numpy ------------------------------------------------------ */

/* The Hugging Face Llama forward in numpy, float64, written from the
 * modelling code's definitions, not from agora's. Prints nothing; writes
 * logits.bin for the given ids and greedy.txt for `steps` tokens from BOS. */
static const char *NUMPY_LLAMA =
    "import json, struct, sys\n"
    "import numpy as np\n"
    "d, out, ids, steps = sys.argv[1], sys.argv[2], [int(x) for x in sys.argv[3].split(',')],"
    " int(sys.argv[4])\n"
    "cfg = json.load(open(d + '/config.json'))\n"
    "raw = open(d + '/model.safetensors', 'rb').read()\n"
    "(n,) = struct.unpack('<Q', raw[:8])\n"
    "hdr = json.loads(raw[8:8 + n]); hdr.pop('__metadata__', None)\n"
    "W = {}\n"
    "for k, e in hdr.items():\n"
    "    b, f = e['data_offsets']; assert e['dtype'] == 'F32'\n"
    "    W[k] = np.frombuffer(raw[8 + n + b:8 + n + f], dtype='<f4').reshape(e['shape'])"
    ".astype(np.float64)\n"
    "C, L, H = cfg['hidden_size'], cfg['num_hidden_layers'], cfg['num_attention_heads']\n"
    "KV = cfg.get('num_key_value_heads', H); D = C // H; eps = cfg['rms_norm_eps']\n"
    "inv = 1.0 / cfg.get('rope_theta', 10000.0) ** (np.arange(0, D, 2) / D)\n"
    "def rms(x, w): return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w\n"
    "def rope(x, pos):\n"
    "    a = pos[:, None] * inv[None, :]\n"
    "    c, s = np.cos(a)[:, None, :], np.sin(a)[:, None, :]\n"
    "    x1, x2 = x[..., :D // 2], x[..., D // 2:]\n"
    "    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], -1)\n"
    "def forward(ids, cache=None):  # cache: per layer (K, V) of earlier tokens\n"
    "    P = cache[0][0].shape[0] if cache and cache[0] else 0; T = len(ids)\n"
    "    x = W['model.embed_tokens.weight'][ids]; pos = np.arange(P, P + T) * 1.0\n"
    "    mask = np.triu(np.full((T, P + T), -np.inf), P + 1)\n"
    "    for l in range(L):\n"
    "        p = 'model.layers.%d.' % l\n"
    "        h = rms(x, W[p + 'input_layernorm.weight'])\n"
    "        q = rope((h @ W[p + 'self_attn.q_proj.weight'].T).reshape(T, H, D), pos)\n"
    "        k = rope((h @ W[p + 'self_attn.k_proj.weight'].T).reshape(T, KV, D), pos)\n"
    "        v = (h @ W[p + 'self_attn.v_proj.weight'].T).reshape(T, KV, D)\n"
    "        if cache is not None:\n"
    "            if P: k, v = np.concatenate([cache[l][0], k]), np.concatenate([cache[l][1], v])\n"
    "            cache[l] = (k, v)\n"
    "        k, v = np.repeat(k, H // KV, 1), np.repeat(v, H // KV, 1)\n"
    "        q, k, v = q.transpose(1, 0, 2), k.transpose(1, 2, 0), v.transpose(1, 0, 2)\n"
    "        a = q @ k / np.sqrt(D) + mask  # (H, T, P + T)\n"
    "        a = np.exp(a - a.max(-1, keepdims=True)); a /= a.sum(-1, keepdims=True)\n"
    "        o = (a @ v).transpose(1, 0, 2).reshape(T, C)\n"
    "        x = x + o @ W[p + 'self_attn.o_proj.weight'].T\n"
    "        h = rms(x, W[p + 'post_attention_layernorm.weight'])\n"
    "        g, u = h @ W[p + 'mlp.gate_proj.weight'].T, h @ W[p + 'mlp.up_proj.weight'].T\n"
    "        x = x + (g / (1 + np.exp(-g)) * u) @ W[p + 'mlp.down_proj.weight'].T\n"
    "    head = W.get('lm_head.weight', W['model.embed_tokens.weight'])\n"
    "    return rms(x, W['model.norm.weight']) @ head.T\n"
    "forward(ids).astype('<f4').tofile(out + '/logits.bin')\n"
    "seq, cache = [1], [None] * L\n"
    "for _ in range(steps): seq.append(int(np.argmax(forward(seq[-1:], cache)[-1])))\n"
    "open(out + '/greedy.txt', 'w').write(' '.join(map(str, seq[1:])))\n";

static const int32_t STORIES_IDS[] = {1, 403, 407, 261, 378, 430, 324, 268, 300, 412, 11, 260};
#define STORIES_T    ((int64_t)(sizeof STORIES_IDS / sizeof STORIES_IDS[0]))
#define GREEDY_STEPS 200

static bool stories_present(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/model.safetensors", STORIES_DIR);
  if (ag_file_exists(path)) return true;
  fprintf(stderr, "  note: %s not found; skipped\n", STORIES_DIR);
  return false;
}

/* Runs the numpy reference once; false if it could not. */
static bool numpy_reference(float *logits, int64_t count, int32_t *greedy) {
  static bool done = false, ok = false;
  static float cached_logits[STORIES_T * 512];
  static int32_t cached_greedy[GREEDY_STEPS];
  if (!done) {
    done = true;
    char script[600], cmd[2048], ids[256] = "";
    snprintf(script, sizeof script, "%s/numpy_llama.py", test_tmpdir());
    write_text(script, NUMPY_LLAMA);
    for (int64_t i = 0; i < STORIES_T; i++)
      snprintf(ids + strlen(ids), sizeof ids - strlen(ids), i ? ",%d" : "%d", (int)STORIES_IDS[i]);
    snprintf(cmd, sizeof cmd,
             "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 '%s' '%s' '%s' %s %d",
             script, STORIES_DIR, test_tmpdir(), ids, GREEDY_STEPS);
    if (system(cmd) != 0) {
      fprintf(stderr, "numpy reference failed: %s\n", cmd);
      return false;
    }
    char path[600];
    snprintf(path, sizeof path, "%s/logits.bin", test_tmpdir());
    FILE *f = fopen(path, "rb");
    bool read_ok = f && fread(cached_logits, sizeof(float), (size_t)(STORIES_T * 512), f) ==
                            (size_t)(STORIES_T * 512);
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s/greedy.txt", test_tmpdir());
    f = fopen(path, "r");
    for (int i = 0; read_ok && f && i < GREEDY_STEPS; i++)
      read_ok = fscanf(f, "%d", &cached_greedy[i]) == 1;
    if (f) fclose(f);
    ok = read_ok && f;
  }
  if (ok) {
    memcpy(logits, cached_logits, (size_t)count * sizeof(float));
    memcpy(greedy, cached_greedy, sizeof cached_greedy);
  }
  return ok;
}

/* A Llama that agora saved (grouped-query attention, untied head, norms away
 * from 1) read by the reference forward above, which follows transformers'
 * names, layouts and config keys: its logits are agora's. */
TEST(a_saved_llama_runs_in_the_reference_forward) {
  ag_transformer *m = small_model(AG_ARCH_LLAMA, false, false);
  CHECK(m != NULL);
  if (!m) return;
  const char *dir = fresh_dir("llama-for-numpy");
  CHECK_OK(ag_hf_save(dir, m, NULL, AG_DTYPE_F32));
  char script[600], out[600], cmd[2048], path[700];
  snprintf(script, sizeof script, "%s/numpy_llama_saved.py", test_tmpdir());
  snprintf(out, sizeof out, "%s/numpy-out", test_tmpdir());
  mkdir(out, 0755);
  write_text(script, NUMPY_LLAMA);
  snprintf(cmd, sizeof cmd,
           "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 '%s' '%s' '%s' "
           "%d,%d,%d,%d,%d 0",
           script, dir, out, probe_ids[0], probe_ids[1], probe_ids[2], probe_ids[3], probe_ids[4]);
  CHECK_MSG(system(cmd) == 0, "%s", cmd);
  int64_t V = ag_transformer_config_of(m)->vocab_size;
  float want[PROBE_T * 37];
  CHECK(V == 37);
  snprintf(path, sizeof path, "%s/logits.bin", out);
  FILE *f = fopen(path, "rb");
  CHECK(f && fread(want, sizeof(float), (size_t)(PROBE_T * V), f) == (size_t)(PROBE_T * V));
  if (f) fclose(f);
  ag_tape *t = ag_tape_create();
  ag_tape_set_grad_enabled(t, false);
  ag_tensor *y = ag_transformer_forward(t, m, probe_ids, 1, PROBE_T);
  CHECK(y != NULL);
  double d = 0;
  for (int64_t i = 0; y && i < PROBE_T * V; i++) d = fmax(d, fabs(y->data[i] - want[i]));
  CHECK_MSG(d < 1e-4, "the saved model's logits differ from the reference's by %g", d);
  ag_tape_destroy(t);
  ag_transformer_destroy(m);
}

TEST(stories260k_logits_match_numpy) {
  if (!stories_present()) return;
  static float want[STORIES_T * 512];
  int32_t greedy[GREEDY_STEPS];
  CHECK(numpy_reference(want, STORIES_T * 512, greedy));
  for (int mode = 0; mode < 2; mode++) {
    ag_transformer *m = NULL;
    ag_hf_info info;
    CHECK_OK(ag_hf_load(STORIES_DIR, (ag_hf_load_mode)mode, &m, &info));
    if (!m) return;
    const ag_transformer_config *c = ag_transformer_config_of(m);
    CHECK(c->hidden_size == 64 && c->num_layers == 5 && c->num_heads == 8 && c->num_kv_heads == 4 &&
          c->vocab_size == 512 && c->tie_embeddings);
    CHECK(info.bos_token_id == 1 && info.eos_count == 1 && info.eos_token_ids[0] == 2);
    ag_tape *t = ag_tape_create();
    ag_tape_set_grad_enabled(t, false);
    ag_tensor *y = ag_transformer_forward(t, m, STORIES_IDS, 1, STORIES_T);
    CHECK(y != NULL);
    double d = 0;
    for (int64_t i = 0; y && i < STORIES_T * 512; i++) d = fmax(d, fabs(y->data[i] - want[i]));
    CHECK_MSG(d < 1e-3, "mode %d: logits differ from numpy's by %g", mode, d);
    ag_tape_destroy(t);
    ag_transformer_destroy(m);
  }
}

TEST(stories260k_greedy_decoding_matches_numpy_and_llama2c) {
  if (!stories_present()) return;
  static float logits_ref[STORIES_T * 512];
  int32_t want[GREEDY_STEPS];
  bool have_reference = numpy_reference(logits_ref, STORIES_T * 512, want);
  CHECK(have_reference);
  ag_transformer *m = NULL;
  CHECK_OK(ag_hf_load(STORIES_DIR, AG_HF_LOAD_MAPPED, &m, NULL));
  if (!m) return;
  ag_kv_cache *cache = NULL;
  CHECK_OK(ag_kv_cache_create(m, 1, GREEDY_STEPS + 1, &cache));
  int32_t tokens[GREEDY_STEPS + 1] = {1};
  int32_t token = 1;
  for (int i = 0; cache && i < GREEDY_STEPS; i++) {
    const float *logits = NULL;
    if (ag_transformer_decode(m, cache, &token, 1, NULL, AG_LOGITS_LAST, &logits)) {
      CHECK_MSG(0, "decode: %s", ag_error_message());
      break;
    }
    int32_t best = 0;
    for (int32_t v = 1; v < 512; v++)
      if (logits[v] > logits[best]) best = v;
    token = tokens[i + 1] = best;
  }
  int first_difference = -1;
  for (int i = 0; have_reference && i < GREEDY_STEPS && first_difference < 0; i++)
    if (tokens[i + 1] != want[i]) first_difference = i;
  CHECK_MSG(first_difference < 0, "greedy token %d: agora %d, numpy %d", first_difference,
            first_difference >= 0 ? tokens[first_difference + 1] : 0,
            first_difference >= 0 ? want[first_difference] : 0);
  /* The text, once a tokenizer can decode stories260K's tokenizer.json. */
  ag_tokenizer *tok = NULL;
  if (ag_tok_load(STORIES_DIR, &tok) == AG_OK) {
    CHECK_OK(ag_transformer_check_vocab(m, ag_tok_vocab_size(tok)));
    ag_tok_text text = {0};
    CHECK_OK(ag_tok_decode(tok, tokens + 1, GREEDY_STEPS, 0, &text));
    char *expected = NULL;
    size_t bytes = 0;
    CHECK_OK(ag_read_file(STORIES_DIR "/expected-greedy-200.txt", &expected, &bytes));
    CHECK_MSG(expected && text.data && text.size == bytes &&
                  memcmp(text.data, expected, bytes) == 0,
              "decoded text differs from llama2.c's:\n%s", text.data ? text.data : "");
    free(expected);
    ag_tok_text_free(&text);
    ag_tok_free(tok);
  } else {
    fprintf(stderr, "  note: no tokenizer for %s yet (%s); text not compared\n", STORIES_DIR,
            ag_error_message());
  }
  ag_kv_cache_destroy(cache);
  ag_transformer_destroy(m);
}

int main(void) {
  RUN(llama_saves_and_loads_identically);
  RUN(qwen2_saves_and_loads_identically);
  RUN(gpt2_saves_and_loads_identically);
  RUN(saved_files_are_what_transformers_reads);
  RUN(mapped_f32_weights_are_used_in_place);
  RUN(bf16_weights_load_converted);
  RUN(sharded_f16_checkpoint_loads);
  RUN(malformed_folders_fail_with_clear_errors);
  RUN(configs_of_real_families_parse);
  RUN(a_saved_llama_runs_in_the_reference_forward);
  RUN(stories260k_logits_match_numpy);
  RUN(stories260k_greedy_decoding_matches_numpy_and_llama2c);
  TEST_MAIN_END();
}
