/* The Hugging Face model layout: config.json <-> ag_transformer_config, and
 * model.safetensors (single or sharded) <-> the transformer's parameters.
 * Names are the Hugging Face ones already; GPT-2's Conv1D weights are stored
 * (in, out) and transposed on the way in and out. */
#include "agora/hf_model.h"

#include "agora/json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_BYTES 4096
/* Floats are printed with the fewest digits that read back to the same
 * float32, so config.json says 1e-05, not 9.99999975e-06. */
#define FLOAT_DIGITS_MAX 9
#define JSON_FLAGS       (JSON_INDENT(2) | JSON_REAL_PRECISION(FLOAT_DIGITS_MAX))
/* transformers refuses safetensors files without this metadata. */
#define SAFETENSORS_FORMAT "pt"

typedef struct family {
  const char *model_type, *architecture;
  ag_transformer_arch arch;
} family;

static const family families[] = {{"llama", "LlamaForCausalLM", AG_ARCH_LLAMA},
                                  {"qwen2", "Qwen2ForCausalLM", AG_ARCH_LLAMA},
                                  {"mistral", "MistralForCausalLM", AG_ARCH_LLAMA},
                                  {"gpt2", "GPT2LMHeadModel", AG_ARCH_GPT2}};
#define FAMILY_COUNT (sizeof families / sizeof families[0])
#define SUPPORTED_TEXT                                                                             \
  "LlamaForCausalLM (llama), Qwen2ForCausalLM (qwen2), MistralForCausalLM (mistral), "             \
  "GPT2LMHeadModel (gpt2)"

static ag_status join_path(char *out, const char *dir, const char *name) {
  int n = snprintf(out, PATH_BYTES, "%s/%s", dir, name);
  if (n < 0 || n >= PATH_BYTES)
    return ag_error_set(AG_ERR_INVALID, "path too long: %s/%s", dir, name);
  return AG_OK;
}

static void copy_text(char *dst, size_t size, const char *src) {
  snprintf(dst, size, "%s", src ? src : "");
}

/* ---- reading config.json ------------------------------------------------------------ */

typedef struct config_reader {
  const char *path;
  json_t *root;
} config_reader;

static ag_status field_error(const config_reader *r, const char *key, const char *what) {
  return ag_error_set(AG_ERR_FORMAT, "%s: field \"%s\" %s", r->path, key, what);
}

/* An integer field; absent or null gives fallback, or an error if required. */
static ag_status get_int(const config_reader *r, const char *key, bool required, int64_t fallback,
                         int64_t *out) {
  json_t *v = json_object_get(r->root, key);
  if (!v || json_is_null(v)) {
    if (required) return field_error(r, key, "is missing");
    *out = fallback;
    return AG_OK;
  }
  if (json_is_real(v) && json_real_value(v) == (double)(int64_t)json_real_value(v)) {
    *out = (int64_t)json_real_value(v);
    return AG_OK;
  }
  if (!json_is_integer(v)) return field_error(r, key, "must be an integer");
  *out = (int64_t)json_integer_value(v);
  return AG_OK;
}

static ag_status get_float(const config_reader *r, const char *key, double fallback, float *out) {
  json_t *v = json_object_get(r->root, key);
  if (!v || json_is_null(v)) {
    *out = (float)fallback;
    return AG_OK;
  }
  if (!json_is_number(v)) return field_error(r, key, "must be a number");
  *out = (float)json_number_value(v);
  return AG_OK;
}

static ag_status get_bool(const config_reader *r, const char *key, bool fallback, bool *out) {
  json_t *v = json_object_get(r->root, key);
  if (!v || json_is_null(v)) {
    *out = fallback;
    return AG_OK;
  }
  if (!json_is_boolean(v)) return field_error(r, key, "must be true or false");
  *out = json_is_true(v);
  return AG_OK;
}

/* A string field or NULL when absent. */
static ag_status get_string(const config_reader *r, const char *key, const char **out) {
  json_t *v = json_object_get(r->root, key);
  *out = NULL;
  if (!v || json_is_null(v)) return AG_OK;
  if (!json_is_string(v)) return field_error(r, key, "must be a string");
  *out = json_string_value(v);
  return AG_OK;
}

static const family *family_by_type(const char *model_type) {
  for (size_t i = 0; model_type && i < FAMILY_COUNT; i++)
    if (!strcmp(families[i].model_type, model_type)) return &families[i];
  return NULL;
}

static const family *family_by_architecture(const char *architecture) {
  for (size_t i = 0; architecture && i < FAMILY_COUNT; i++)
    if (!strcmp(families[i].architecture, architecture)) return &families[i];
  return NULL;
}

/* model_type and architectures[0] must name the same supported family. */
static ag_status read_family(const config_reader *r, const family **out) {
  const char *model_type = NULL, *architecture = NULL;
  ag_status st = get_string(r, "model_type", &model_type);
  if (st) return st;
  json_t *archs = json_object_get(r->root, "architectures");
  if (archs && !json_is_null(archs)) {
    if (!json_is_array(archs) ||
        (json_array_size(archs) > 0 && !json_is_string(json_array_get(archs, 0))))
      return field_error(r, "architectures", "must be a list of strings");
    if (json_array_size(archs) > 0) architecture = json_string_value(json_array_get(archs, 0));
  }
  const family *by_type = family_by_type(model_type);
  const family *by_arch = family_by_architecture(architecture);
  if (!model_type && !architecture)
    return ag_error_set(AG_ERR_FORMAT,
                        "%s: neither \"model_type\" nor \"architectures\" says what model this "
                        "is (supported: " SUPPORTED_TEXT ")",
                        r->path);
  if ((model_type && !by_type) || (architecture && !by_arch))
    return ag_error_set(AG_ERR_UNSUPPORTED,
                        "%s: field \"%s\" is \"%s\", which agora does not support (supported "
                        "architectures/model_type: " SUPPORTED_TEXT ")",
                        r->path, architecture && !by_arch ? "architectures" : "model_type",
                        architecture && !by_arch ? architecture : model_type);
  if (by_type && by_arch && by_type != by_arch)
    return ag_error_set(AG_ERR_FORMAT,
                        "%s: \"model_type\" \"%s\" and \"architectures\" [\"%s\"] disagree",
                        r->path, model_type, architecture);
  *out = by_type ? by_type : by_arch;
  return AG_OK;
}

static ag_status read_rope_scaling(const config_reader *r, int64_t max_positions,
                                   ag_rope_config *rope) {
  json_t *s = json_object_get(r->root, "rope_scaling");
  if (!s || json_is_null(s)) return AG_OK;
  if (!json_is_object(s)) return field_error(r, "rope_scaling", "must be an object or null");
  config_reader sub = {r->path, s};
  const char *type = NULL;
  ag_status st = get_string(&sub, "rope_type", &type);
  if (!st && !type) st = get_string(&sub, "type", &type);
  if (st) return st;
  if (!type || !strcmp(type, "default")) return AG_OK;
  int64_t original = 0;
  st = get_float(&sub, "factor", 1.0, &rope->factor);
  if (!st) st = get_float(&sub, "low_freq_factor", 1.0, &rope->low_freq_factor);
  if (!st) st = get_float(&sub, "high_freq_factor", 4.0, &rope->high_freq_factor);
  if (!st) st = get_int(&sub, "original_max_position_embeddings", false, max_positions, &original);
  if (st) return ag_error_wrap(st, "rope_scaling");
  rope->original_max_positions = original;
  if (!strcmp(type, "linear")) {
    rope->scaling = AG_ROPE_LINEAR;
  } else if (!strcmp(type, "dynamic")) {
    rope->scaling = AG_ROPE_DYNAMIC;
  } else if (!strcmp(type, "llama3")) {
    rope->scaling = AG_ROPE_LLAMA3;
  } else {
    return ag_error_set(AG_ERR_UNSUPPORTED,
                        "%s: rope_scaling type \"%s\" is not supported (supported: default, "
                        "linear, dynamic, llama3)",
                        r->path, type);
  }
  return AG_OK;
}

static ag_status read_llama(const config_reader *r, const family *f, ag_transformer_config *c) {
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
  const char *act = NULL;
  bool attention_bias = false;
  ag_status st = get_int(r, "vocab_size", true, 0, &c->vocab_size);
  if (!st) st = get_int(r, "hidden_size", true, 0, &c->hidden_size);
  if (!st) st = get_int(r, "intermediate_size", true, 0, &c->intermediate_size);
  if (!st) st = get_int(r, "num_hidden_layers", true, 0, &c->num_layers);
  if (!st) st = get_int(r, "num_attention_heads", true, 0, &heads);
  if (!st) st = get_int(r, "num_key_value_heads", false, heads, &kv_heads);
  if (!st && heads <= 0) st = field_error(r, "num_attention_heads", "must be positive");
  if (!st) st = get_int(r, "head_dim", false, heads > 0 ? c->hidden_size / heads : 0, &head_dim);
  if (!st) st = get_int(r, "max_position_embeddings", false, 2048, &c->max_positions);
  if (!st) st = get_float(r, "rms_norm_eps", 1e-6, &c->norm_eps);
  if (!st) st = get_float(r, "rope_theta", 10000.0, &c->rope.theta);
  if (!st) st = get_bool(r, "tie_word_embeddings", false, &c->tie_embeddings);
  if (!st) st = get_bool(r, "attention_bias", false, &attention_bias);
  if (!st) st = get_bool(r, "mlp_bias", false, &c->mlp_bias);
  if (!st) st = get_string(r, "hidden_act", &act);
  if (!st) st = read_rope_scaling(r, c->max_positions, &c->rope);
  if (st) return st;
  if (act && strcmp(act, "silu"))
    return ag_error_set(AG_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" is not supported (silu)",
                        r->path, act);
  c->arch = AG_ARCH_LLAMA;
  c->num_heads = heads;
  c->num_kv_heads = kv_heads;
  c->head_dim = head_dim;
  if (!strcmp(f->model_type, "qwen2")) { /* Qwen2: biases on q, k, v only */
    c->qkv_bias = true;
    c->o_bias = false;
  } else {
    c->qkv_bias = c->o_bias = attention_bias;
  }
  return AG_OK;
}

static ag_status read_gpt2(const config_reader *r, ag_transformer_config *c) {
  int64_t heads = 0, inner = 0, n_ctx = 0;
  const char *act = NULL;
  ag_status st = get_int(r, "vocab_size", true, 0, &c->vocab_size);
  if (!st) st = get_int(r, "n_embd", true, 0, &c->hidden_size);
  if (!st) st = get_int(r, "n_layer", true, 0, &c->num_layers);
  if (!st) st = get_int(r, "n_head", true, 0, &heads);
  if (!st) st = get_int(r, "n_ctx", false, 1024, &n_ctx);
  if (!st) st = get_int(r, "n_positions", false, n_ctx, &c->max_positions);
  if (!st) st = get_int(r, "n_inner", false, 4 * c->hidden_size, &inner);
  if (!st) st = get_float(r, "layer_norm_epsilon", 1e-5, &c->norm_eps);
  if (!st) st = get_bool(r, "tie_word_embeddings", true, &c->tie_embeddings);
  if (!st) st = get_string(r, "activation_function", &act);
  if (st) return st;
  if (act && strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh"))
    return ag_error_set(AG_ERR_UNSUPPORTED,
                        "%s: activation_function \"%s\" is not supported (gelu_new, "
                        "gelu_pytorch_tanh)",
                        r->path, act);
  if (!c->tie_embeddings)
    return ag_error_set(AG_ERR_UNSUPPORTED,
                        "%s: gpt2 with tie_word_embeddings false is not "
                        "supported",
                        r->path);
  if (heads <= 0) return field_error(r, "n_head", "must be positive");
  c->arch = AG_ARCH_GPT2;
  c->num_heads = c->num_kv_heads = heads;
  c->head_dim = c->hidden_size / heads;
  c->intermediate_size = inner;
  return AG_OK;
}

/* One id, a list of ids, or null. */
static ag_status read_ids(const config_reader *r, const char *key, int32_t *ids, int *count,
                          int max) {
  json_t *v = json_object_get(r->root, key);
  if (!v || json_is_null(v)) return AG_OK;
  *count = 0;
  if (json_is_integer(v)) {
    ids[(*count)++] = (int32_t)json_integer_value(v);
    return AG_OK;
  }
  if (!json_is_array(v)) return field_error(r, key, "must be an integer, a list or null");
  size_t i;
  json_t *item;
  json_array_foreach(v, i, item) {
    if (!json_is_integer(item)) return field_error(r, key, "must hold integers");
    if (*count < max) ids[(*count)++] = (int32_t)json_integer_value(item);
  }
  return AG_OK;
}

static ag_status read_token_ids(const config_reader *r, ag_hf_info *info) {
  int n = info->bos_token_id >= 0;
  ag_status st = read_ids(r, "bos_token_id", &info->bos_token_id, &n, 1);
  n = info->pad_token_id >= 0;
  if (!st) st = read_ids(r, "pad_token_id", &info->pad_token_id, &n, 1);
  if (!st) st = read_ids(r, "eos_token_id", info->eos_token_ids, &info->eos_count, AG_HF_MAX_EOS);
  return st;
}

ag_status ag_hf_read_config(const char *dir, ag_transformer_config *config, ag_hf_info *info) {
  if (!dir || !config) return ag_error_set(AG_ERR_INVALID, "hf: NULL argument");
  char path[PATH_BYTES];
  ag_status st = join_path(path, dir, "config.json");
  if (st) return st;
  if (!ag_file_exists(path))
    return ag_error_set(AG_ERR_NOT_FOUND, "%s: no config.json: not a Hugging Face model folder",
                        dir);
  config_reader r = {path, NULL};
  st = ag_json_load(path, &r.root);
  if (st) return st;
  ag_hf_info local;
  if (!info) info = &local;
  memset(info, 0, sizeof *info);
  info->bos_token_id = info->pad_token_id = -1;
  memset(config, 0, sizeof *config);
  const family *f = NULL;
  const char *dtype = NULL;
  if (!json_is_object(r.root)) {
    st = ag_error_set(AG_ERR_FORMAT, "%s: not a JSON object", path);
  } else {
    st = read_family(&r, &f);
    if (!st) st = f->arch == AG_ARCH_GPT2 ? read_gpt2(&r, config) : read_llama(&r, f, config);
    if (!st) st = read_token_ids(&r, info);
    if (!st) st = get_string(&r, "torch_dtype", &dtype);
    if (!st && !dtype) st = get_string(&r, "dtype", &dtype); /* transformers >= 4.56 */
  }
  if (!st) {
    copy_text(info->model_type, sizeof info->model_type, f->model_type);
    copy_text(info->architecture, sizeof info->architecture, f->architecture);
    copy_text(info->torch_dtype, sizeof info->torch_dtype, dtype);
  }
  json_decref(r.root);
  if (st) return st;
  /* generation_config.json, when present, has the ids generation uses. */
  if (join_path(path, dir, "generation_config.json") == AG_OK && ag_file_exists(path)) {
    config_reader g = {path, NULL};
    st = ag_json_load(path, &g.root);
    if (!st && json_is_object(g.root)) st = read_token_ids(&g, info);
    json_decref(g.root);
    if (st) return st;
  }
  st = ag_transformer_config_check(config);
  if (st) return ag_error_wrap(st, "%s/config.json", dir);
  return AG_OK;
}

/* ---- the weight files ------------------------------------------------------------------ */

typedef struct weight_files {
  ag_safetensors **files;
  int count;
  float *converted; /* mapped mode: tensors that could not be used in place */
} weight_files;

static void weight_files_release(void *owner) {
  weight_files *w = owner;
  if (!w) return;
  for (int i = 0; i < w->count; i++) ag_safetensors_close(w->files[i]);
  free(w->files);
  free(w->converted);
  free(w);
}

static ag_status open_file(weight_files *w, const char *dir, const char *name) {
  char path[PATH_BYTES];
  ag_status st = join_path(path, dir, name);
  if (st) return st;
  ag_safetensors **grown = realloc(w->files, (size_t)(w->count + 1) * sizeof *grown);
  if (!grown) return ag_error_set(AG_ERR_NOMEM, "hf: out of memory");
  w->files = grown;
  st = ag_safetensors_open(path, &w->files[w->count]);
  if (st) return st;
  w->count++;
  return AG_OK;
}

/* Opens model.safetensors, or every shard model.safetensors.index.json
 * names (each once). */
static ag_status open_weights(const char *dir, weight_files *w) {
  char path[PATH_BYTES];
  ag_status st = join_path(path, dir, "model.safetensors");
  if (st) return st;
  if (ag_file_exists(path)) return open_file(w, dir, "model.safetensors");
  st = join_path(path, dir, "model.safetensors.index.json");
  if (st) return st;
  if (!ag_file_exists(path)) {
    char bin[PATH_BYTES];
    bool has_bin = join_path(bin, dir, "pytorch_model.bin") == AG_OK && ag_file_exists(bin);
    return ag_error_set(
        AG_ERR_NOT_FOUND, "%s: no model.safetensors or model.safetensors.index.json%s", dir,
        has_bin ? " (pytorch_model.bin is not read: convert it to safetensors)" : "");
  }
  json_t *root = NULL;
  st = ag_json_load(path, &root);
  if (st) return st;
  json_t *map = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
  if (!json_is_object(map)) {
    json_decref(root);
    return ag_error_set(AG_ERR_FORMAT, "%s: no \"weight_map\" object", path);
  }
  const char *name;
  json_t *file;
  json_object_foreach(map, name, file) {
    const char *shard = json_is_string(file) ? json_string_value(file) : NULL;
    if (!shard || !shard[0] || strchr(shard, '/') || shard[0] == '.') {
      st = ag_error_set(AG_ERR_FORMAT, "%s: tensor \"%s\" maps to a bad file name", path, name);
      break;
    }
    bool seen = false;
    for (int i = 0; i < w->count && !seen; i++) {
      const char *open_path = w->files[i]->path, *slash = strrchr(open_path, '/');
      seen = !strcmp(slash ? slash + 1 : open_path, shard);
    }
    if (!seen && (st = open_file(w, dir, shard)) != AG_OK) break;
  }
  json_decref(root);
  if (!st && w->count == 0) st = ag_error_set(AG_ERR_FORMAT, "%s: the weight map is empty", path);
  return st;
}

/* GPT-2's Conv1D weights: every 2-D weight inside a block, stored (in, out). */
static bool is_conv1d(const ag_transformer_config *c, const ag_tensor *t) {
  return c->arch == AG_ARCH_GPT2 && t->ndim == 2 && !strncmp(t->name, "transformer.h.", 14);
}

/* The file entry of a parameter; GPT-2 files often drop "transformer.". */
static const ag_st_entry *find_entry(const weight_files *w, const ag_transformer_config *c,
                                     const char *name, const ag_safetensors **file) {
  for (int pass = 0; pass < 2; pass++) {
    const char *key = name;
    if (pass == 1) {
      if (c->arch != AG_ARCH_GPT2 || strncmp(name, "transformer.", 12)) break;
      key = name + 12;
    }
    for (int i = 0; i < w->count; i++) {
      const ag_st_entry *e = ag_safetensors_find(w->files[i], key);
      if (e) {
        *file = w->files[i];
        return e;
      }
    }
  }
  return NULL;
}

static void shape_text(const int64_t *shape, int ndim, char *buf, size_t size) {
  size_t used = (size_t)snprintf(buf, size, "(");
  for (int d = 0; d < ndim && used < size; d++)
    used += (size_t)snprintf(buf + used, size - used, d ? ", %lld" : "%lld", (long long)shape[d]);
  if (used < size) snprintf(buf + used, size - used, ")");
}

/* Finds each parameter's entry and checks its shape (transposed for Conv1D). */
static ag_status match_entries(const weight_files *w, const ag_transformer_config *c,
                               const ag_params *p, const ag_st_entry **entries) {
  for (int i = 0; i < p->count; i++) {
    const ag_tensor *t = p->tensors[i];
    const ag_safetensors *file = NULL;
    const ag_st_entry *e = find_entry(w, c, t->name, &file);
    if (!e)
      return ag_error_set(AG_ERR_NOT_FOUND, "%s: tensor \"%s\" is missing%s",
                          w->count == 1 ? w->files[0]->path : "model.safetensors.index.json",
                          t->name, w->count > 1 ? " from every shard" : "");
    int64_t want[2] = {t->shape[0], t->ndim == 2 ? t->shape[1] : 0};
    if (is_conv1d(c, t)) want[0] = t->shape[1], want[1] = t->shape[0];
    bool same = e->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = e->shape[d] == want[d];
    if (!same) {
      char have_text[128], want_text[128];
      shape_text(e->shape, e->ndim, have_text, sizeof have_text);
      shape_text(want, t->ndim, want_text, sizeof want_text);
      return ag_error_set(AG_ERR_SHAPE, "%s: tensor \"%s\" has shape %s but config.json implies %s",
                          file->path, e->name, have_text, want_text);
    }
    entries[i] = e;
  }
  return AG_OK;
}

/* dst (rows, cols) = transpose of the entry's (cols, rows) values. */
static ag_status read_transposed(const ag_st_entry *e, float *dst, int64_t rows, int64_t cols) {
  float *src = malloc((size_t)(rows * cols) * sizeof(float));
  if (!src) return ag_error_set(AG_ERR_NOMEM, "hf: out of memory transposing '%s'", e->name);
  ag_status st = ag_safetensors_read_f32(e, src);
  if (!st) {
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t k = 0; k < cols; k++) dst[r * cols + k] = src[k * rows + r];
  }
  free(src);
  return st;
}

static ag_status read_parameter(const ag_transformer_config *c, const ag_tensor *t,
                                const ag_st_entry *e, float *dst) {
  if (is_conv1d(c, t)) return read_transposed(e, dst, t->shape[0], t->shape[1]);
  return ag_safetensors_read_f32(e, dst);
}

/* Used in place only when the file's bytes are already floats as this
 * machine stores them, suitably aligned. */
static bool usable_in_place(const ag_transformer_config *c, const ag_tensor *t,
                            const ag_st_entry *e) {
  const uint16_t probe = 1;
  bool little_endian = *(const unsigned char *)&probe == 1;
  return little_endian && e->dtype == AG_DTYPE_F32 && !is_conv1d(c, t) &&
         (uintptr_t)e->data % sizeof(float) == 0;
}

static ag_status load_mapped(const ag_transformer_config *c, weight_files *w,
                             ag_transformer **out) {
  ag_transformer *m = NULL;
  ag_status st = ag_transformer_create_external(c, w, weight_files_release, &m);
  if (st) {
    weight_files_release(w);
    return st;
  }
  ag_params *p = ag_transformer_params(m);
  const ag_st_entry **entries = calloc((size_t)(p->count ? p->count : 1), sizeof *entries);
  if (!entries) st = ag_error_set(AG_ERR_NOMEM, "hf: out of memory");
  if (!st) st = match_entries(w, c, p, entries);
  int64_t floats = 0;
  for (int i = 0; !st && i < p->count; i++)
    if (!usable_in_place(c, p->tensors[i], entries[i]))
      floats += (p->tensors[i]->numel + 15) / 16 * 16; /* each tensor 64-byte aligned */
  if (!st && floats > 0) {
    w->converted = ag_alloc_large((size_t)floats * sizeof(float));
    if (!w->converted)
      st = ag_error_set(AG_ERR_NOMEM, "hf: cannot allocate %lld MiB for converted weights",
                        (long long)(floats * 4 >> 20));
  }
  int64_t offset = 0;
  for (int i = 0; !st && i < p->count; i++) {
    ag_tensor *t = p->tensors[i];
    if (usable_in_place(c, t, entries[i])) {
      t->data = (float *)(uintptr_t)entries[i]->data; /* read-only mapping */
      continue;
    }
    t->data = w->converted + offset;
    offset += (t->numel + 15) / 16 * 16;
    st = read_parameter(c, t, entries[i], t->data);
  }
  free(entries);
  if (st) {
    ag_transformer_destroy(m); /* releases w */
    return st;
  }
  *out = m;
  return AG_OK;
}

static ag_status load_copied(const ag_transformer_config *c, weight_files *w,
                             ag_transformer **out) {
  ag_transformer *m = NULL;
  ag_status st = ag_transformer_create(c, &m);
  ag_params *p = m ? ag_transformer_params(m) : NULL;
  const ag_st_entry **entries =
      p ? calloc((size_t)(p->count ? p->count : 1), sizeof *entries) : NULL;
  if (!st && !entries) st = ag_error_set(AG_ERR_NOMEM, "hf: out of memory");
  if (!st) st = match_entries(w, c, p, entries);
  for (int i = 0; !st && p && i < p->count; i++)
    st = read_parameter(c, p->tensors[i], entries[i], p->tensors[i]->data);
  free(entries);
  weight_files_release(w); /* everything is copied */
  if (st) {
    ag_transformer_destroy(m);
    return st;
  }
  *out = m;
  return AG_OK;
}

ag_status ag_hf_load(const char *dir, ag_hf_load_mode mode, ag_transformer **model,
                     ag_hf_info *info) {
  if (!model) return ag_error_set(AG_ERR_INVALID, "hf: NULL model");
  *model = NULL;
  ag_transformer_config config;
  ag_status st = ag_hf_read_config(dir, &config, info);
  if (st) return st;
  weight_files *w = calloc(1, sizeof *w);
  if (!w) return ag_error_set(AG_ERR_NOMEM, "hf: out of memory");
  st = open_weights(dir, w);
  if (st) {
    weight_files_release(w);
    return st;
  }
  return mode == AG_HF_LOAD_MAPPED ? load_mapped(&config, w, model)
                                   : load_copied(&config, w, model);
}

/* ---- writing ------------------------------------------------------------------------ */

/* The float as the shortest decimal that reads back to it. */
static json_t *json_float(float f) {
  char text[32];
  for (int digits = 1; digits <= FLOAT_DIGITS_MAX; digits++) {
    snprintf(text, sizeof text, "%.*g", digits, (double)f);
    if ((float)strtod(text, NULL) == f) break;
  }
  return json_real(strtod(text, NULL));
}

static ag_status save_json(const char *dir, const char *name, json_t *root) {
  char path[PATH_BYTES];
  ag_status st = join_path(path, dir, name);
  char *text = st || !root ? NULL : json_dumps(root, JSON_FLAGS);
  json_decref(root);
  if (st) return st;
  if (!text) return ag_error_set(AG_ERR_NOMEM, "%s: cannot encode JSON", path);
  size_t len = strlen(text);
  char *with_newline = realloc(text, len + 2);
  if (!with_newline) {
    free(text);
    return ag_error_set(AG_ERR_NOMEM, "%s: out of memory", path);
  }
  with_newline[len] = '\n';
  with_newline[len + 1] = '\0';
  st = ag_atomic_write(path, with_newline, len + 1);
  free(with_newline);
  return st;
}

static json_t *ids_value(const int32_t *ids, int count) {
  if (count == 1) return json_integer(ids[0]);
  json_t *list = json_array();
  for (int i = 0; list && i < count; i++) json_array_append_new(list, json_integer(ids[i]));
  return list;
}

static void set_token_ids(json_t *root, const ag_hf_info *info) {
  if (info->bos_token_id >= 0)
    json_object_set_new(root, "bos_token_id", json_integer(info->bos_token_id));
  if (info->eos_count > 0)
    json_object_set_new(root, "eos_token_id", ids_value(info->eos_token_ids, info->eos_count));
  if (info->pad_token_id >= 0)
    json_object_set_new(root, "pad_token_id", json_integer(info->pad_token_id));
}

static json_t *rope_scaling_value(const ag_rope_config *r) {
  if (r->scaling == AG_ROPE_DEFAULT) return json_null();
  static const char *const names[] = {"default", "linear", "dynamic", "llama3"};
  json_t *s = json_object();
  json_object_set_new(s, "rope_type", json_string(names[r->scaling]));
  json_object_set_new(s, "factor", json_float(r->factor));
  if (r->scaling == AG_ROPE_LLAMA3) {
    json_object_set_new(s, "low_freq_factor", json_float(r->low_freq_factor));
    json_object_set_new(s, "high_freq_factor", json_float(r->high_freq_factor));
    json_object_set_new(s, "original_max_position_embeddings",
                        json_integer(r->original_max_positions));
  }
  return s;
}

/* The family a config can be written as: info's if it fits, else derived. */
static ag_status choose_family(const ag_transformer_config *c, const ag_hf_info *info,
                               const family **out) {
  const family *f = info && info->model_type[0] ? family_by_type(info->model_type) : NULL;
  if (info && info->model_type[0] && !f)
    return ag_error_set(AG_ERR_UNSUPPORTED,
                        "hf save: model_type \"%s\" is not supported (" SUPPORTED_TEXT ")",
                        info->model_type);
  bool qwen2_biases = c->qkv_bias && !c->o_bias && !c->mlp_bias;
  if (!f) {
    if (c->arch == AG_ARCH_GPT2)
      f = family_by_type("gpt2");
    else
      f = family_by_type(qwen2_biases ? "qwen2" : "llama");
  }
  bool fits;
  if (f->arch != c->arch)
    fits = false;
  else if (!strcmp(f->model_type, "qwen2"))
    fits = qwen2_biases;
  else if (!strcmp(f->model_type, "mistral"))
    fits = !c->qkv_bias && !c->o_bias && !c->mlp_bias;
  else if (!strcmp(f->model_type, "llama"))
    fits = c->qkv_bias == c->o_bias;
  else
    fits = true;
  if (!fits)
    return ag_error_set(AG_ERR_UNSUPPORTED,
                        "hf save: a %s config.json cannot express this model (q/k/v bias %d, "
                        "o bias %d, mlp bias %d)",
                        f->model_type, c->qkv_bias, c->o_bias, c->mlp_bias);
  *out = f;
  return AG_OK;
}

static json_t *config_value(const ag_transformer_config *c, const family *f, const ag_hf_info *info,
                            ag_dtype dtype) {
  json_t *root = json_object();
  json_t *archs = json_array();
  json_array_append_new(archs, json_string(f->architecture));
  json_object_set_new(root, "architectures", archs);
  json_object_set_new(root, "model_type", json_string(f->model_type));
  json_object_set_new(root, "vocab_size", json_integer(c->vocab_size));
  if (c->arch == AG_ARCH_GPT2) {
    json_object_set_new(root, "n_embd", json_integer(c->hidden_size));
    json_object_set_new(root, "n_layer", json_integer(c->num_layers));
    json_object_set_new(root, "n_head", json_integer(c->num_heads));
    json_object_set_new(root, "n_positions", json_integer(c->max_positions));
    json_object_set_new(root, "n_ctx", json_integer(c->max_positions));
    json_object_set_new(root, "n_inner", json_integer(c->intermediate_size));
    json_object_set_new(root, "layer_norm_epsilon", json_float(c->norm_eps));
    json_object_set_new(root, "activation_function", json_string("gelu_new"));
  } else {
    json_object_set_new(root, "hidden_size", json_integer(c->hidden_size));
    json_object_set_new(root, "intermediate_size", json_integer(c->intermediate_size));
    json_object_set_new(root, "num_hidden_layers", json_integer(c->num_layers));
    json_object_set_new(root, "num_attention_heads", json_integer(c->num_heads));
    json_object_set_new(root, "num_key_value_heads", json_integer(c->num_kv_heads));
    json_object_set_new(root, "head_dim", json_integer(c->head_dim));
    json_object_set_new(root, "max_position_embeddings", json_integer(c->max_positions));
    json_object_set_new(root, "rms_norm_eps", json_float(c->norm_eps));
    json_object_set_new(root, "rope_theta", json_float(c->rope.theta));
    json_object_set_new(root, "rope_scaling", rope_scaling_value(&c->rope));
    json_object_set_new(root, "hidden_act", json_string("silu"));
    if (!strcmp(f->model_type, "llama")) {
      json_object_set_new(root, "attention_bias", json_boolean(c->qkv_bias));
      json_object_set_new(root, "mlp_bias", json_boolean(c->mlp_bias));
    }
    if (!strcmp(f->model_type, "mistral")) json_object_set_new(root, "sliding_window", json_null());
  }
  json_object_set_new(root, "tie_word_embeddings", json_boolean(c->tie_embeddings));
  if (info) set_token_ids(root, info);
  json_object_set_new(root, "torch_dtype",
                      json_string(dtype == AG_DTYPE_BF16 ? "bfloat16" : "float32"));
  return root;
}

static ag_status save_weights(const char *dir, const ag_transformer *model, ag_dtype dtype) {
  ag_params *p = ag_transformer_params((ag_transformer *)model);
  const ag_transformer_config *c = ag_transformer_config_of(model);
  ag_status st = ag_transformer_check_weights(model);
  if (st) return st;
  ag_st_write_item *items = calloc((size_t)(p->count ? p->count : 1), sizeof *items);
  ag_tensor *views = calloc((size_t)(p->count ? p->count : 1), sizeof *views);
  if (!items || !views) {
    free(items);
    free(views);
    return ag_error_set(AG_ERR_NOMEM, "hf save: out of memory");
  }
  for (int i = 0; i < p->count; i++) {
    const ag_tensor *t = p->tensors[i];
    items[i] = (ag_st_write_item){t->name, t};
    if (is_conv1d(c, t)) { /* written (in, out): a transposed view, copied by the writer */
      views[i] = *t;
      views[i].shape[0] = t->shape[1];
      views[i].shape[1] = t->shape[0];
      views[i].stride[0] = 1;
      views[i].stride[1] = t->shape[1];
      items[i].tensor = &views[i];
    }
  }
  char path[PATH_BYTES];
  st = join_path(path, dir, "model.safetensors");
  const char *metadata[] = {"format", SAFETENSORS_FORMAT, NULL};
  if (!st) st = ag_safetensors_write(path, items, p->count, dtype, metadata);
  free(items);
  free(views);
  return st;
}

ag_status ag_hf_save(const char *dir, const ag_transformer *model, const ag_hf_info *info,
                     ag_dtype dtype) {
  if (!dir || !model) return ag_error_set(AG_ERR_INVALID, "hf save: NULL argument");
  if (dtype != AG_DTYPE_F32 && dtype != AG_DTYPE_BF16)
    return ag_error_set(AG_ERR_UNSUPPORTED, "hf save: weights are written as F32 or BF16");
  const ag_transformer_config *c = ag_transformer_config_of(model);
  const family *f = NULL;
  ag_status st = choose_family(c, info, &f);
  if (!st) st = ag_mkdir_p(dir);
  if (!st) st = save_weights(dir, model, dtype);
  if (!st) st = save_json(dir, "config.json", config_value(c, f, info, dtype));
  if (!st) {
    json_t *gen = json_object();
    json_object_set_new(gen, "_from_model_config", json_true());
    if (info) set_token_ids(gen, info);
    st = save_json(dir, "generation_config.json", gen);
  }
  return st;
}
