/* LoRA adapters: low-rank updates of the transformer's projections through
 * the model's adapter callback, their PEFT files, and merging. */
#include "agora/lora.h"

#include "agora/json.h"
#include "agora/safetensors.h"
#include "nn/transformer_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_FILE      "adapter_config.json"
#define WEIGHTS_FILE     "adapter_model.safetensors"
#define PEFT_PREFIX      "base_model.model."
#define NAME_BYTES       192
#define PATH_BYTES       4096
#define ALL_LINEAR       "all-linear"
#define MAX_TARGETS      32
#define TARGET_MAX_BYTES 64

typedef struct lora_module {
  char name[NAME_BYTES]; /* the module: its weight's name without ".weight" */
  ag_tensor *weight;     /* the model's (out, in) */
  ag_tensor *A;          /* (r, in) */
  ag_tensor *B;          /* (out, r) */
} lora_module;

struct ag_lora {
  ag_lora_config config;
  ag_transformer *model;
  ag_params *params;
  lora_module *modules;
  int count;
  bool attached;
  bool *base_requires_grad; /* the model's flags before attaching, per parameter */
};

ag_lora_config ag_lora_defaults(void) {
  ag_lora_config c = {.rank = 8, .alpha = 16.0f, .dropout = 0.05f};
  snprintf(c.target_modules, sizeof c.target_modules, "q_proj,v_proj");
  return c;
}

/* Splits "q_proj, v_proj" into trimmed names; the count, or -1 when one is
 * too long or there are too many. */
static int parse_targets(const char *list, char names[][TARGET_MAX_BYTES], int max) {
  int n = 0;
  const char *p = list;
  while (*p) {
    while (*p == ' ' || *p == ',') p++;
    if (!*p) break;
    const char *end = p;
    while (*end && *end != ',') end++;
    const char *last = end;
    while (last > p && last[-1] == ' ') last--;
    size_t len = (size_t)(last - p);
    if (n >= max || len >= TARGET_MAX_BYTES) return -1;
    memcpy(names[n], p, len);
    names[n][len] = '\0';
    n++;
    p = end;
  }
  return n;
}

ag_status ag_lora_config_check(const ag_lora_config *c) {
  if (!c) return ag_error_set(AG_ERR_INVALID, "lora: NULL config");
  if (c->rank < 1) return ag_error_set(AG_ERR_INVALID, "lora: rank %d must be >= 1", c->rank);
  if (!(c->alpha > 0) || !isfinite(c->alpha))
    return ag_error_set(AG_ERR_INVALID, "lora: alpha %g must be positive", (double)c->alpha);
  if (!(c->dropout >= 0 && c->dropout < 1))
    return ag_error_set(AG_ERR_INVALID, "lora: dropout %g must be in [0, 1)", (double)c->dropout);
  char names[MAX_TARGETS][TARGET_MAX_BYTES];
  int n = parse_targets(c->target_modules, names, MAX_TARGETS);
  if (n <= 0)
    return ag_error_set(AG_ERR_INVALID,
                        "lora: target modules \"%s\" is not a comma-separated list of module "
                        "names such as q_proj,v_proj (at most %d, each under %d bytes)",
                        c->target_modules, MAX_TARGETS, TARGET_MAX_BYTES);
  return AG_OK;
}

/* PEFT's rule: a target matches the module of that name or any module
 * whose name ends in "." + target. */
static bool name_matches(const char *module, const char *target) {
  size_t m = strlen(module), t = strlen(target);
  if (m == t) return strcmp(module, target) == 0;
  return m > t && module[m - t - 1] == '.' && strcmp(module + m - t, target) == 0;
}

/* The projections an adapter can attach to, in model order. */
static int projections(ag_transformer *m, ag_tensor **out, int max) {
  int n = 0;
  for (int64_t i = 0; i < m->config.num_layers; i++) {
    transformer_layer *L = &m->layers[i];
    ag_tensor *all[] = {L->q_weight, L->k_weight,    L->v_weight,  L->qkv_weight,
                        L->o_weight, L->gate_weight, L->up_weight, L->down_weight};
    for (size_t j = 0; j < sizeof all / sizeof *all; j++)
      if (all[j] && n < max) out[n++] = all[j];
  }
  return n;
}

static void module_name(const ag_tensor *weight, char *out, size_t size) {
  snprintf(out, size, "%s", weight->name ? weight->name : "");
  size_t len = strlen(out);
  if (len > 7 && !strcmp(out + len - 7, ".weight")) out[len - 7] = '\0';
}

static void peft_name(const char *module, char which, char *out, size_t size) {
  snprintf(out, size, PEFT_PREFIX "%s.lora_%c.weight", module, which);
}

/* ---- the forward hook ---------------------------------------------------------------- */

static const lora_module *find_module(const ag_lora *l, const ag_tensor *weight) {
  for (int i = 0; i < l->count; i++)
    if (l->modules[i].weight == weight) return &l->modules[i];
  return NULL;
}

/* y (..., out) + (alpha / r) dropout(x) A^T B[rows]^T */
static ag_tensor *lora_forward(ag_tape *t, void *ctx, const ag_tensor *weight, int64_t row_begin,
                               int64_t row_end, ag_tensor *x, ag_tensor *y) {
  const ag_lora *l = ctx;
  const lora_module *mod = find_module(l, weight);
  if (!mod) return y;
  ag_tensor *h = ag_dropout(t, x, l->config.dropout);
  h = ag_scale(t, ag_linear(t, h, mod->A, NULL), ag_lora_scale(l)); /* (..., r) */
  ag_tensor *B = mod->B;
  if (row_begin != 0 || row_end != B->shape[0]) B = ag_slice(t, B, 0, row_begin, row_end);
  return ag_add(t, y, ag_linear(t, h, B, NULL)); /* (..., rows) */
}

void ag_lora_attach(ag_lora *l) {
  if (!l || l->attached) return;
  ag_params *p = l->model->params;
  for (int i = 0; i < p->count; i++) {
    l->base_requires_grad[i] = p->tensors[i]->requires_grad;
    p->tensors[i]->requires_grad = false;
  }
  ag_transformer_set_adapter(l->model, lora_forward, l);
  l->attached = true;
}

void ag_lora_detach(ag_lora *l) {
  if (!l || !l->attached) return;
  ag_params *p = l->model->params;
  for (int i = 0; i < p->count; i++) p->tensors[i]->requires_grad = l->base_requires_grad[i];
  if (ag_transformer_adapter_ctx(l->model) == l) ag_transformer_set_adapter(l->model, NULL, NULL);
  l->attached = false;
}

bool ag_lora_attached(const ag_lora *l) { return l && l->attached; }

/* ---- construction ----------------------------------------------------------------------- */

/* Which projections get an adapter. */
typedef bool (*select_fn)(void *ctx, const char *module);

typedef struct target_set {
  char names[MAX_TARGETS][TARGET_MAX_BYTES];
  int count;
} target_set;

static bool select_by_target(void *ctx, const char *module) {
  const target_set *s = ctx;
  for (int i = 0; i < s->count; i++)
    if (!strcmp(s->names[i], ALL_LINEAR) || name_matches(module, s->names[i])) return true;
  return false;
}

static bool select_by_file(void *ctx, const char *module) {
  char name[NAME_BYTES + 32];
  peft_name(module, 'A', name, sizeof name);
  return ag_safetensors_find(ctx, name) != NULL;
}

/* Declares A and B for every selected projection; the store is finalized,
 * A and B zero. */
static ag_status build(ag_transformer *m, const ag_lora_config *c, select_fn select, void *ctx,
                       ag_lora **out) {
  *out = NULL;
  ag_lora *l = calloc(1, sizeof *l);
  int max = (int)(m->config.num_layers * 8);
  ag_tensor **weights = calloc((size_t)max, sizeof *weights);
  if (l) {
    l->config = *c;
    l->model = m;
    l->params = ag_params_create();
    l->modules = calloc((size_t)max, sizeof *l->modules);
    l->base_requires_grad = calloc((size_t)m->params->count + 1, sizeof(bool));
  }
  if (!l || !weights || !l->params || !l->modules || !l->base_requires_grad) {
    free(weights);
    ag_lora_destroy(l);
    return ag_error_set(AG_ERR_NOMEM, "lora: out of memory");
  }
  int n = projections(m, weights, max);
  ag_status st = AG_OK;
  for (int i = 0; i < n && !st; i++) {
    lora_module *mod = &l->modules[l->count];
    module_name(weights[i], mod->name, sizeof mod->name);
    if (!select(ctx, mod->name)) continue;
    char name[NAME_BYTES + 32];
    int64_t out_features = weights[i]->shape[0], in_features = weights[i]->shape[1];
    mod->weight = weights[i];
    peft_name(mod->name, 'A', name, sizeof name);
    mod->A = ag_params_add(l->params, name, 2, (int64_t[]){c->rank, in_features});
    peft_name(mod->name, 'B', name, sizeof name);
    mod->B = ag_params_add(l->params, name, 2, (int64_t[]){out_features, c->rank});
    if (!mod->A || !mod->B) st = ag_error_wrap(AG_ERR_NOMEM, "lora");
    l->count++;
  }
  if (!st && l->count == 0) {
    char example[NAME_BYTES] = "";
    if (n > 0) module_name(weights[0], example, sizeof example);
    st = ag_error_set(AG_ERR_INVALID,
                      "lora: no projection of the model matches target modules \"%s\" "
                      "(module names look like \"%s\"; use suffixes such as q_proj,v_proj or "
                      "all-linear)",
                      c->target_modules, example);
  }
  if (!st) st = ag_params_finalize(l->params);
  free(weights);
  if (st) {
    ag_lora_destroy(l);
    return st;
  }
  *out = l;
  return AG_OK;
}

ag_status ag_lora_create(ag_transformer *m, const ag_lora_config *c, uint64_t seed, ag_lora **out) {
  *out = NULL;
  if (!m) return ag_error_set(AG_ERR_INVALID, "lora: NULL model");
  ag_status st = ag_lora_config_check(c);
  if (st) return st;
  target_set targets;
  targets.count = parse_targets(c->target_modules, targets.names, MAX_TARGETS);
  ag_lora *l;
  st = build(m, c, select_by_target, &targets, &l);
  if (st) return st;
  /* PEFT: A ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)); B = 0. */
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  for (int i = 0; i < l->count; i++) {
    ag_tensor *A = l->modules[i].A;
    float bound = 1.0f / sqrtf((float)A->shape[1]);
    for (int64_t j = 0; j < A->numel; j++)
      A->data[j] = bound * (2.0f * ag_rng_uniform(&rng) - 1.0f);
  }
  ag_lora_attach(l);
  *out = l;
  return AG_OK;
}

void ag_lora_destroy(ag_lora *l) {
  if (!l) return;
  if (l->model && l->base_requires_grad) ag_lora_detach(l);
  ag_params_destroy(l->params);
  free(l->modules);
  free(l->base_requires_grad);
  free(l);
}

const ag_lora_config *ag_lora_config_of(const ag_lora *l) { return &l->config; }
ag_params *ag_lora_params(ag_lora *l) { return l->params; }
int ag_lora_module_count(const ag_lora *l) { return l->count; }
const char *ag_lora_module_name(const ag_lora *l, int i) {
  return i >= 0 && i < l->count ? l->modules[i].name : NULL;
}
float ag_lora_scale(const ag_lora *l) { return l->config.alpha / (float)l->config.rank; }

/* ---- PEFT files ----------------------------------------------------------------------------- */

static void join(char *out, size_t size, const char *dir, const char *file) {
  snprintf(out, size, "%s/%s", dir, file);
}

/* GPT-2's Conv1D weights are stored (in, out) in its files: PEFT records
 * fan_in_fan_out for adapters on them. */
static bool conv1d_targets(const ag_lora *l) { return l->model->config.arch == AG_ARCH_GPT2; }

static json_t *targets_json(const ag_lora_config *c) {
  char names[MAX_TARGETS][TARGET_MAX_BYTES];
  int n = parse_targets(c->target_modules, names, MAX_TARGETS);
  if (n == 1 && !strcmp(names[0], ALL_LINEAR)) return json_string(ALL_LINEAR);
  json_t *list = json_array();
  for (int i = 0; i < n && list; i++) json_array_append_new(list, json_string(names[i]));
  return list;
}

ag_status ag_lora_save(const ag_lora *l, const char *dir) {
  ag_status st = ag_mkdir_p(dir);
  if (st) return st;
  char path[PATH_BYTES];
  const ag_lora_config *c = &l->config;
  json_t *config = json_pack(
      "{s:s, s:s, s:i, s:f, s:f, s:o, s:s, s:s, s:b, s:b, s:b, s:b, s:b, s:n, s:n, s:n}",
      "peft_type", "LORA", "task_type", "CAUSAL_LM", "r", c->rank, "lora_alpha", (double)c->alpha,
      "lora_dropout", (double)c->dropout, "target_modules", targets_json(c),
      "base_model_name_or_path", c->base_model_name_or_path, "bias", "none", "fan_in_fan_out",
      conv1d_targets(l), "inference_mode", 1, "init_lora_weights", 1, "use_rslora", 0, "use_dora",
      0, "modules_to_save", "layers_to_transform", "revision");
  if (!config) return ag_error_set(AG_ERR_NOMEM, "lora: out of memory");
  join(path, sizeof path, dir, CONFIG_FILE);
  st = ag_json_save(path, config);
  json_decref(config);
  if (st) return st;
  join(path, sizeof path, dir, WEIGHTS_FILE);
  const char *metadata[] = {"format", "pt", NULL};
  return ag_safetensors_save_params(path, l->params, AG_DTYPE_F32, metadata);
}

/* Reads adapter_config.json into c. */
static ag_status read_config(const char *path, ag_lora_config *c) {
  json_t *root;
  ag_status st = ag_json_load(path, &root);
  if (st) return st;
  memset(c, 0, sizeof *c);
  const char *type = json_string_value(json_object_get(root, "peft_type"));
  json_t *r = json_object_get(root, "r"), *alpha = json_object_get(root, "lora_alpha");
  json_t *dropout = json_object_get(root, "lora_dropout");
  json_t *targets = json_object_get(root, "target_modules");
  json_t *base = json_object_get(root, "base_model_name_or_path");
  if (!type || strcmp(type, "LORA"))
    st = ag_error_set(AG_ERR_UNSUPPORTED, "%s: peft_type is \"%s\"; only LORA adapters load", path,
                      type ? type : "(missing)");
  else if (!json_is_integer(r) || !json_is_number(alpha))
    st = ag_error_set(AG_ERR_FORMAT, "%s: missing or mistyped \"r\" or \"lora_alpha\"", path);
  else if (json_is_true(json_object_get(root, "use_rslora")) ||
           json_is_true(json_object_get(root, "use_dora")))
    st = ag_error_set(AG_ERR_UNSUPPORTED, "%s: rsLoRA and DoRA adapters are not supported", path);
  if (!st) {
    c->rank = (int)json_integer_value(r);
    c->alpha = (float)json_number_value(alpha);
    c->dropout = json_is_number(dropout) ? (float)json_number_value(dropout) : 0.0f;
    if (json_is_string(base))
      snprintf(c->base_model_name_or_path, sizeof c->base_model_name_or_path, "%s",
               json_string_value(base));
    size_t used = 0;
    if (json_is_string(targets)) {
      snprintf(c->target_modules, sizeof c->target_modules, "%s", json_string_value(targets));
    } else if (json_is_array(targets)) {
      size_t i;
      json_t *v;
      json_array_foreach(targets, i, v) {
        if (!json_is_string(v)) continue;
        int w = snprintf(c->target_modules + used, sizeof c->target_modules - used, "%s%s",
                         used ? "," : "", json_string_value(v));
        if (w < 0 || (size_t)w >= sizeof c->target_modules - used) break;
        used += (size_t)w;
      }
    }
    if (!c->target_modules[0]) snprintf(c->target_modules, sizeof c->target_modules, "(file)");
    if (c->rank < 1 || !(c->alpha > 0) || !(c->dropout >= 0 && c->dropout < 1))
      st = ag_error_set(AG_ERR_FORMAT, "%s: r %d, lora_alpha %g, lora_dropout %g are out of range",
                        path, c->rank, (double)c->alpha, (double)c->dropout);
  }
  json_decref(root);
  return st;
}

static bool is_lora_entry(const char *name) {
  return !strncmp(name, PEFT_PREFIX, strlen(PEFT_PREFIX)) && strstr(name, ".lora_");
}

ag_status ag_lora_load(const char *dir, ag_transformer *m, ag_lora **out) {
  *out = NULL;
  char path[PATH_BYTES];
  ag_lora_config c;
  join(path, sizeof path, dir, CONFIG_FILE);
  ag_status st = read_config(path, &c);
  if (st) return st;
  join(path, sizeof path, dir, WEIGHTS_FILE);
  ag_safetensors *f;
  st = ag_safetensors_open(path, &f);
  if (st) return st;
  ag_lora *l = NULL;
  st = build(m, &c, select_by_file, f, &l);
  int used = 0;
  for (int i = 0; !st && i < l->count; i++) {
    lora_module *mod = &l->modules[i];
    ag_tensor *pair[2] = {mod->A, mod->B};
    for (int k = 0; k < 2 && !st; k++) {
      const ag_st_entry *e = ag_safetensors_find(f, pair[k]->name);
      if (!e) {
        st = ag_error_set(AG_ERR_FORMAT, "%s: \"%s\" has no partner \"%s\"", path, mod->name,
                          pair[k]->name);
      } else if (e->ndim != 2 || e->shape[0] != pair[k]->shape[0] ||
                 e->shape[1] != pair[k]->shape[1]) {
        char want[64];
        st = ag_error_set(AG_ERR_SHAPE, "%s: \"%s\" is %lld x %lld, the model needs %s", path,
                          e->name, (long long)e->shape[0],
                          (long long)(e->ndim > 1 ? e->shape[1] : 1),
                          ag_shape_string(pair[k], want, sizeof want));
      } else {
        st = ag_safetensors_read_f32(e, pair[k]->data);
        used++;
      }
    }
  }
  for (int i = 0; !st && i < f->count; i++) {
    if (!is_lora_entry(f->entries[i].name)) continue;
    if (!ag_params_find(l->params, f->entries[i].name))
      st = ag_error_set(AG_ERR_FORMAT, "%s: \"%s\" adapts no projection of this model", path,
                        f->entries[i].name);
  }
  ag_safetensors_close(f);
  if (st) {
    ag_lora_destroy(l);
    return st;
  }
  ag_lora_attach(l);
  *out = l;
  return AG_OK;
}

/* ---- merging ----------------------------------------------------------------------------------
 */

ag_status ag_lora_merge(ag_lora *l, ag_transformer *target) {
  if (!l || !target) return ag_error_set(AG_ERR_INVALID, "lora merge: NULL argument");
  if (!ag_transformer_trainable(target))
    return ag_error_set(AG_ERR_INVALID,
                        "lora merge: the model's weights are read-only (memory-mapped): load "
                        "it trainable (AG_HF_LOAD_TRAINABLE) to merge into it");
  /* Check every weight first, so a failure changes nothing. */
  ag_tensor **weights = calloc((size_t)l->count + 1, sizeof *weights);
  if (!weights) return ag_error_set(AG_ERR_NOMEM, "lora merge: out of memory");
  for (int i = 0; i < l->count; i++) {
    const lora_module *mod = &l->modules[i];
    char name[NAME_BYTES + 8];
    snprintf(name, sizeof name, "%s.weight", mod->name);
    weights[i] = ag_params_find(target->params, name);
    if (!weights[i] || !ag_shapes_equal(weights[i], mod->weight)) {
      free(weights);
      return ag_error_set(AG_ERR_SHAPE,
                          "lora merge: the model has no weight \"%s\" of shape "
                          "(%lld, %lld)",
                          name, (long long)mod->weight->shape[0], (long long)mod->weight->shape[1]);
    }
  }
  if (target == l->model) ag_lora_detach(l);
  float scale = ag_lora_scale(l);
  for (int i = 0; i < l->count; i++) {
    const lora_module *mod = &l->modules[i];
    int64_t out = mod->B->shape[0], in = mod->A->shape[1], r = mod->A->shape[0];
    /* W (out, in) += scale * B (out, r) @ A (r, in) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)in, (int)r, scale,
                mod->B->data, (int)r, mod->A->data, (int)in, 1.0f, weights[i]->data, (int)in);
  }
  free(weights);
  return AG_OK;
}
