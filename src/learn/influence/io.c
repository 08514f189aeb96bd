/* Factors and preconditioned queries on disk (safetensors, F32), with
 * metadata naming every layer's shape and the parameters' fingerprint, so
 * that files of another model or checkpoint are refused on load. */
#include "agora/safetensors.h"
#include "learn/influence/influence_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FACTORS_FORMAT "agora-influence-factors"
#define QUERIES_FORMAT "agora-influence-queries"
#define FORMAT_VERSION "1"

uint64_t ag_influence_fingerprint(const ag_params *p) {
  uint64_t h = INFL_HASH_START;
  for (int i = 0; i < p->count; i++) {
    const ag_tensor *t = p->tensors[i];
    const char *name = t->name ? t->name : "";
    h = infl_hash(h, name, strlen(name) + 1);
    int64_t nd = t->ndim;
    h = infl_hash(h, &nd, sizeof nd);
    h = infl_hash(h, t->shape, (size_t)t->ndim * sizeof(int64_t));
    if (p->finalized && t->data) h = infl_hash(h, t->data, (size_t)t->numel * sizeof(float));
  }
  return h;
}

static const char *loss_name(ag_influence_loss l) {
  return l == AG_INFLUENCE_SQUARED ? "squared" : "cross_entropy";
}

/* ---- writing ------------------------------------------------------------------------ */

/* A tensor header over float data for the safetensors writer. */
static ag_tensor wrap(float *data, int ndim, int64_t d0, int64_t d1, int64_t d2) {
  ag_tensor t;
  memset(&t, 0, sizeof t);
  int64_t shape[3] = {d0, d1, d2};
  ag_tensor_set_shape(&t, ndim, shape);
  t.data = data;
  return t;
}

static float *to_float(const double *x, int64_t n) {
  float *f = malloc((size_t)(n ? n : 1) * sizeof(float));
  if (f)
    for (int64_t i = 0; i < n; i++) f[i] = (float)x[i];
  return f;
}

static json_t *layer_json(const char *name, ag_layer_kind kind, int64_t in, int64_t out,
                          bool has_bias) {
  return json_pack("{s:s, s:s, s:I, s:I, s:b}", "name", name, "kind",
                   kind == AG_LAYER_CONV2D ? "conv2d" : "linear", "in", (json_int_t)in, "out",
                   (json_int_t)out, "bias", has_bias);
}

/* Writes items with the common metadata plus `layers` (consumed). */
static ag_status write_file(const char *path, const char *format, uint64_t fingerprint,
                            ag_influence_loss loss, int64_t outputs, json_t *layers,
                            const char *extra_key, const char *extra_value,
                            const ag_st_write_item *items, int count) {
  char fp[17], out_s[32];
  snprintf(fp, sizeof fp, "%016llx", (unsigned long long)fingerprint);
  snprintf(out_s, sizeof out_s, "%lld", (long long)outputs);
  char *layers_s = json_dumps(layers, JSON_COMPACT);
  json_decref(layers);
  if (!layers_s) return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
  const char *meta[] = {"format", format,   "version",       FORMAT_VERSION, "fingerprint",
                        fp,       "loss",   loss_name(loss), "outputs",      out_s,
                        "layers", layers_s, extra_key,       extra_value,    NULL};
  ag_status st = ag_safetensors_write(path, items, count, AG_DTYPE_F32, meta);
  free(layers_s);
  return st;
}

ag_status ag_influence_factors_save(const ag_influence_factors *f, const char *path) {
  if (!f || f->stage != INFL_STAGE_DONE)
    return ag_error_set(AG_ERR_INVALID, "influence: only finished factors can be saved");
  int n = f->count;
  ag_st_write_item *items = calloc((size_t)(5 * n), sizeof *items);
  ag_tensor *tensors = calloc((size_t)(5 * n), sizeof *tensors);
  char **names = calloc((size_t)(5 * n), sizeof *names);
  float **bufs = calloc((size_t)(3 * n), sizeof *bufs);
  json_t *layers = json_array();
  ag_status st = AG_OK;
  if (!items || !tensors || !names || !bufs || !layers) {
    st = ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
    goto done;
  }
  static const char *const suffix[5] = {"qa", "qs", "lambda", "eig_a", "eig_s"};
  for (int i = 0; i < n; i++) {
    const infl_layer *l = &f->layers[i];
    json_t *lj = layer_json(l->name, l->kind, l->in, l->out, l->has_bias);
    json_object_set_new(lj, "damping", json_real(l->damping));
    json_object_set_new(lj, "mean_eigenvalue", json_real(l->mean_eig));
    json_array_append_new(layers, lj);
    bufs[3 * i] = to_float(l->lambda, l->out * l->cols);
    bufs[3 * i + 1] = to_float(l->eig_a, l->cols);
    bufs[3 * i + 2] = to_float(l->eig_s, l->out);
    if (!bufs[3 * i] || !bufs[3 * i + 1] || !bufs[3 * i + 2]) {
      st = ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
      goto done;
    }
    tensors[5 * i] = wrap(l->qa_f, 2, l->cols, l->cols, 0);
    tensors[5 * i + 1] = wrap(l->qs_f, 2, l->out, l->out, 0);
    tensors[5 * i + 2] = wrap(bufs[3 * i], 2, l->out, l->cols, 0);
    tensors[5 * i + 3] = wrap(bufs[3 * i + 1], 1, l->cols, 0, 0);
    tensors[5 * i + 4] = wrap(bufs[3 * i + 2], 1, l->out, 0, 0);
    for (int k = 0; k < 5; k++) {
      size_t len = strlen(l->name) + strlen(suffix[k]) + 2;
      names[5 * i + k] = malloc(len);
      if (!names[5 * i + k]) {
        st = ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
        goto done;
      }
      snprintf(names[5 * i + k], len, "%s.%s", l->name, suffix[k]);
      items[5 * i + k].name = names[5 * i + k];
      items[5 * i + k].tensor = &tensors[5 * i + k];
    }
  }
  char labels[160];
  snprintf(labels, sizeof labels, "{\"labels\":\"%s\",\"seed\":%llu,\"examples\":%lld}",
           f->labels == AG_INFLUENCE_EXPECTED ? "expected" : "sampled", (unsigned long long)f->seed,
           (long long)f->correction_examples);
  st = write_file(path, FACTORS_FORMAT, f->fingerprint, f->loss, f->outputs, layers, "fit", labels,
                  items, 5 * n);
  layers = NULL;
done:
  json_decref(layers);
  for (int i = 0; names && i < 5 * n; i++) free(names[i]);
  for (int i = 0; bufs && i < 3 * n; i++) free(bufs[i]);
  free(names);
  free(bufs);
  free(tensors);
  free(items);
  return st;
}

ag_status ag_influence_queries_save(const ag_influence_queries *q, const char *path) {
  if (!q) return ag_error_set(AG_ERR_INVALID, "influence: no queries");
  int n = q->layer_count;
  ag_st_write_item *items = calloc((size_t)(n ? n : 1), sizeof *items);
  ag_tensor *tensors = calloc((size_t)(n ? n : 1), sizeof *tensors);
  char **names = calloc((size_t)(n ? n : 1), sizeof *names);
  json_t *layers = json_array();
  ag_status st = AG_OK;
  if (!items || !tensors || !names || !layers) {
    st = ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
    goto done;
  }
  for (int i = 0; i < n; i++) {
    const infl_qlayer *l = &q->layers[i];
    json_array_append_new(layers, layer_json(l->name, l->kind, l->in, l->out, l->has_bias));
    tensors[i] = wrap(l->v, 3, q->count, l->out, l->cols);
    size_t len = strlen(l->name) + 3;
    names[i] = malloc(len);
    if (!names[i]) {
      st = ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
      goto done;
    }
    snprintf(names[i], len, "%s.v", l->name);
    items[i].name = names[i];
    items[i].tensor = &tensors[i];
  }
  char count[32];
  snprintf(count, sizeof count, "%lld", (long long)q->count);
  st = write_file(path, QUERIES_FORMAT, q->fingerprint, q->loss, q->outputs, layers, "queries",
                  count, items, n);
  layers = NULL;
done:
  json_decref(layers);
  for (int i = 0; names && i < n; i++) free(names[i]);
  free(names);
  free(tensors);
  free(items);
  return st;
}

/* ---- reading ------------------------------------------------------------------------ */

typedef struct file_layer {
  const char *name;
  ag_layer_kind kind;
  int64_t in, out;
  bool has_bias;
  double damping, mean_eig;
} file_layer;

/* Opens path, checks format, loss/outputs against m, every layer against m
 * and the fingerprint; *meta and *layers (in *meta's memory) on success. */
static ag_status open_checked(const char *path, const char *format, const char *what,
                              const ag_influence_model *m, ag_safetensors **file, json_t **meta,
                              file_layer **layers, int *count, uint64_t *fingerprint) {
  *file = NULL;
  *meta = NULL;
  *layers = NULL;
  ag_status st = infl_check_model(m);
  if (st) return st;
  st = ag_safetensors_open(path, file);
  if (st) return st;
  json_error_t jerr;
  *meta = (*file)->metadata_json ? json_loads((*file)->metadata_json, 0, &jerr) : NULL;
  const char *fmt = json_string_value(json_object_get(*meta, "format"));
  if (!fmt || strcmp(fmt, format) != 0)
    return ag_error_set(AG_ERR_FORMAT, "influence: %s is not a file of %s (format '%s')", path,
                        what, fmt ? fmt : "none");
  const char *fp = json_string_value(json_object_get(*meta, "fingerprint"));
  const char *loss = json_string_value(json_object_get(*meta, "loss"));
  const char *outputs = json_string_value(json_object_get(*meta, "outputs"));
  const char *layers_s = json_string_value(json_object_get(*meta, "layers"));
  if (!fp || !loss || !outputs || !layers_s)
    return ag_error_set(AG_ERR_FORMAT, "influence: %s: metadata incomplete", path);
  *fingerprint = strtoull(fp, NULL, 16);
  if (strcmp(loss, loss_name(m->loss)) != 0 || atoll(outputs) != m->outputs)
    return ag_error_set(AG_ERR_INVALID,
                        "influence: %s: the %s are for a model with %s outputs (%s loss); this "
                        "model has %lld (%s)",
                        path, what, outputs, loss, (long long)m->outputs, loss_name(m->loss));
  json_t *lj = json_loads(layers_s, 0, &jerr);
  if (!json_is_array(lj) || json_array_size(lj) == 0) {
    json_decref(lj);
    return ag_error_set(AG_ERR_FORMAT, "influence: %s: bad layer list", path);
  }
  json_object_set_new(*meta, "layers_parsed", lj); /* keeps the names alive */
  int n = (int)json_array_size(lj);
  *layers = calloc((size_t)n, sizeof **layers);
  if (!*layers) return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
  *count = n;
  for (int i = 0; i < n; i++) {
    json_t *e = json_array_get(lj, (size_t)i);
    file_layer *l = &(*layers)[i];
    l->name = json_string_value(json_object_get(e, "name"));
    const char *kind = json_string_value(json_object_get(e, "kind"));
    l->in = json_integer_value(json_object_get(e, "in"));
    l->out = json_integer_value(json_object_get(e, "out"));
    l->has_bias = json_is_true(json_object_get(e, "bias"));
    l->damping = json_number_value(json_object_get(e, "damping"));
    l->mean_eig = json_number_value(json_object_get(e, "mean_eigenvalue"));
    if (!l->name || !kind || l->in <= 0 || l->out <= 0)
      return ag_error_set(AG_ERR_FORMAT, "influence: %s: bad layer %d in the metadata", path, i);
    l->kind = !strcmp(kind, "conv2d") ? AG_LAYER_CONV2D : AG_LAYER_LINEAR;
    const ag_tensor *w, *b;
    st = infl_resolve(m->params, what, l->name, l->kind, l->in, l->out, l->has_bias, &w, &b);
    if (st) return ag_error_wrap(st, "%s", path);
  }
  st = infl_check_fingerprint(m, what, *fingerprint);
  if (st) return ag_error_wrap(st, "%s", path);
  return AG_OK;
}

/* Reads tensor name.suffix of the given shape into dst (floats). */
static ag_status read_tensor(const ag_safetensors *file, const char *name, const char *suffix,
                             int64_t d0, int64_t d1, int64_t d2, float *dst) {
  char full[600];
  snprintf(full, sizeof full, "%s.%s", name, suffix);
  const ag_st_entry *e = ag_safetensors_find(file, full);
  int64_t numel = d0 * (d1 ? d1 : 1) * (d2 ? d2 : 1);
  if (!e || e->numel != numel)
    return ag_error_set(AG_ERR_FORMAT, "influence: %s: tensor '%s' missing or of the wrong size",
                        file->path, full);
  return ag_safetensors_read_f32(e, dst);
}

static double *to_double(const float *x, int64_t n) {
  double *d = malloc((size_t)(n ? n : 1) * sizeof(double));
  if (d)
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}

ag_status ag_influence_factors_load(const char *path, const ag_influence_model *m,
                                    ag_influence_factors **out) {
  *out = NULL;
  ag_safetensors *file;
  json_t *meta;
  file_layer *fl;
  int n = 0;
  uint64_t fp = 0;
  ag_influence_factors *f = NULL;
  float *tmp = NULL;
  ag_status st = open_checked(path, FACTORS_FORMAT, "factors", m, &file, &meta, &fl, &n, &fp);
  if (st) goto done;
  f = calloc(1, sizeof *f);
  if (f) f->layers = calloc((size_t)n, sizeof *f->layers);
  if (!f || !f->layers) {
    st = ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
    goto done;
  }
  f->stage = INFL_STAGE_DONE;
  f->fingerprint = fp;
  f->loss = m->loss;
  f->outputs = m->outputs;
  f->rows_per_example = m->rows_per_example;
  f->batch_size = 64;
  f->damping_cfg = AG_INFLUENCE_DAMPING_DEFAULT;
  const char *fit_s = json_string_value(json_object_get(meta, "fit"));
  json_t *fit = json_loads(fit_s ? fit_s : "{}", 0, NULL);
  const char *labels = json_string_value(json_object_get(fit, "labels"));
  f->labels = labels && !strcmp(labels, "expected") ? AG_INFLUENCE_EXPECTED : AG_INFLUENCE_SAMPLED;
  f->seed = (uint64_t)json_integer_value(json_object_get(fit, "seed"));
  f->correction_examples = json_integer_value(json_object_get(fit, "examples"));
  json_decref(fit);
  for (int i = 0; i < n; i++) {
    infl_layer *l = &f->layers[i];
    f->count = i + 1;
    l->name = malloc(strlen(fl[i].name) + 1);
    if (!l->name) {
      st = ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
      goto done;
    }
    strcpy(l->name, fl[i].name);
    l->kind = fl[i].kind;
    l->in = fl[i].in;
    l->out = fl[i].out;
    l->has_bias = fl[i].has_bias;
    l->cols = l->in + l->has_bias;
    l->damping = fl[i].damping;
    l->mean_eig = fl[i].mean_eig;
    st = infl_resolve(m->params, "factors", l->name, l->kind, l->in, l->out, l->has_bias,
                      &l->weight, &l->bias);
    if (st) goto done;
    int64_t cols = l->cols, o = l->out;
    l->qa_f = malloc((size_t)(cols * cols) * sizeof(float));
    l->qs_f = malloc((size_t)(o * o) * sizeof(float));
    tmp = malloc((size_t)(o * cols > cols ? o * cols : cols) * sizeof(float));
    if (!l->qa_f || !l->qs_f || !tmp) {
      st = ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
      goto done;
    }
    st = read_tensor(file, l->name, "qa", cols, cols, 0, l->qa_f);
    if (!st) st = read_tensor(file, l->name, "qs", o, o, 0, l->qs_f);
    if (st) goto done;
    l->qa = to_double(l->qa_f, cols * cols);
    l->qs = to_double(l->qs_f, o * o);
    st = read_tensor(file, l->name, "lambda", o, cols, 0, tmp);
    if (!st) l->lambda = to_double(tmp, o * cols);
    if (!st) st = read_tensor(file, l->name, "eig_a", cols, 0, 0, tmp);
    if (!st) l->eig_a = to_double(tmp, cols);
    if (!st) st = read_tensor(file, l->name, "eig_s", o, 0, 0, tmp);
    if (!st) l->eig_s = to_double(tmp, o);
    free(tmp);
    tmp = NULL;
    if (st) goto done;
    if (!l->qa || !l->qs || !l->lambda || !l->eig_a || !l->eig_s) {
      st = ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
      goto done;
    }
  }
done:
  free(tmp);
  free(fl);
  json_decref(meta);
  ag_safetensors_close(file);
  if (st) {
    ag_influence_factors_destroy(f);
    return st;
  }
  *out = f;
  return AG_OK;
}

ag_status ag_influence_queries_load(const char *path, const ag_influence_model *m,
                                    ag_influence_queries **out) {
  *out = NULL;
  ag_safetensors *file;
  json_t *meta;
  file_layer *fl;
  int n = 0;
  uint64_t fp = 0;
  ag_influence_queries *q = NULL;
  ag_status st = open_checked(path, QUERIES_FORMAT, "queries", m, &file, &meta, &fl, &n, &fp);
  if (st) goto done;
  const char *count_s = json_string_value(json_object_get(meta, "queries"));
  int64_t count = count_s ? atoll(count_s) : 0;
  if (count <= 0) {
    st = ag_error_set(AG_ERR_FORMAT, "influence: %s: no query count in the metadata", path);
    goto done;
  }
  q = calloc(1, sizeof *q);
  if (q) q->layers = calloc((size_t)n, sizeof *q->layers);
  if (!q || !q->layers) {
    st = ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
    goto done;
  }
  q->count = count;
  q->fingerprint = fp;
  q->loss = m->loss;
  q->outputs = m->outputs;
  for (int i = 0; i < n; i++) {
    infl_qlayer *l = &q->layers[i];
    q->layer_count = i + 1;
    l->name = malloc(strlen(fl[i].name) + 1);
    l->kind = fl[i].kind;
    l->in = fl[i].in;
    l->out = fl[i].out;
    l->has_bias = fl[i].has_bias;
    l->cols = l->in + l->has_bias;
    l->v = malloc((size_t)(count * l->out * l->cols) * sizeof(float));
    if (!l->name || !l->v) {
      st = ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
      goto done;
    }
    strcpy(l->name, fl[i].name);
    st = read_tensor(file, l->name, "v", count, l->out, l->cols, l->v);
    if (st) goto done;
  }
done:
  free(fl);
  json_decref(meta);
  ag_safetensors_close(file);
  if (st) {
    ag_influence_queries_destroy(q);
    return st;
  }
  *out = q;
  return AG_OK;
}
