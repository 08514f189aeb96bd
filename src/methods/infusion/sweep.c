/* `agora infusion sweep`: many probe × target pairs under several variants
 * (Infusion and its baselines), sharing factors, one scoring pass and the
 * clean retrain; resumable through results.jsonl; a summary table and a
 * gnuplot plot, as the seed paper reports. */
#include "methods/infusion/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESULTS_FILE "results.jsonl"
#define MAX_VARIANTS 16

/* ---- variants and pairs ---------------------------------------------------------- */

static ag_status parse_variant(const char *name, size_t len, int64_t k, ag_infusion_variant *v) {
  memset(v, 0, sizeof *v);
  char word[32];
  if (len == 0 || len >= sizeof word)
    return ag_error_set(AG_ERR_INVALID, "bad variant name '%.*s'", (int)len, name);
  memcpy(word, name, len);
  word[len] = '\0';
  v->copies = 1;
  static const struct {
    const char *name;
    ag_infusion_method method;
    ag_infusion_selection select;
  } fixed[] = {
      {"infusion", AG_INFUSION_METHOD_INFUSION, AG_INFUSION_SELECT_TOP},
      {"infusion-bottom", AG_INFUSION_METHOD_INFUSION, AG_INFUSION_SELECT_BOTTOM},
      {"infusion-random", AG_INFUSION_METHOD_INFUSION, AG_INFUSION_SELECT_RANDOM},
      {"noise", AG_INFUSION_METHOD_NOISE, AG_INFUSION_SELECT_TOP},
      {"noise-random", AG_INFUSION_METHOD_NOISE, AG_INFUSION_SELECT_RANDOM},
  };
  for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
    if (!strcmp(word, fixed[i].name)) {
      snprintf(v->name, sizeof v->name, "%s", word);
      v->method = fixed[i].method;
      v->select = fixed[i].select;
      return AG_OK;
    }
  if (!strncmp(word, "probe-", 6)) {
    const char *n = word + 6;
    char *end = NULL;
    long long copies = !strcmp(n, "k") ? (long long)k : strtoll(n, &end, 10);
    if ((end && (*end || end == n)) || copies < 1 || copies > k)
      return ag_error_set(AG_ERR_INVALID, "variant %s: copies must be 1 to k = %lld", word,
                          (long long)k);
    snprintf(v->name, sizeof v->name, "probe-%lld", copies);
    v->method = AG_INFUSION_METHOD_PROBE_COPIES;
    v->select = AG_INFUSION_SELECT_TOP; /* over the most helpful images, as the seed's code */
    v->copies = copies;
    return AG_OK;
  }
  return ag_error_set(AG_ERR_INVALID,
                      "unknown variant '%s' (infusion, infusion-bottom, infusion-random, noise, "
                      "noise-random, probe-1, probe-k, probe-N)",
                      word);
}

ag_status ag_infusion_variants_parse(const char *list, int64_t k, ag_infusion_variant *out, int max,
                                     int *count) {
  *count = 0;
  if (!list || !*list) return ag_error_set(AG_ERR_INVALID, "no variants given");
  const char *p = list;
  for (;;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (*count == max) return ag_error_set(AG_ERR_INVALID, "more than %d variants", max);
    ag_status st = parse_variant(p, len, k, &out[*count]);
    if (st) return st;
    for (int i = 0; i < *count; i++)
      if (!strcmp(out[i].name, out[*count].name))
        return ag_error_set(AG_ERR_INVALID, "variant %s given twice", out[i].name);
    (*count)++;
    if (!end) return AG_OK;
    p = end + 1;
  }
}

ag_status ag_infusion_pairs(const ag_image_dataset *test, int64_t count, uint64_t seed,
                            ag_infusion_target *out) {
  if (count < 1 || count > test->count)
    return ag_error_set(AG_ERR_INVALID, "pairs = %lld: choose 1 to %lld (test images)",
                        (long long)count, (long long)test->count);
  if (test->num_classes < 2) return ag_error_set(AG_ERR_INVALID, "pairs need two classes");
  int64_t *order = malloc((size_t)test->count * sizeof *order);
  if (!order) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  for (int64_t i = 0; i < test->count; i++) order[i] = i;
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  ag_rng_shuffle_i64(&rng, order, test->count);
  for (int64_t i = 0; i < count; i++) {
    out[i].probe = order[i];
    /* uniform over the other classes: draw among C − 1 and skip the label */
    int t = (int)ag_rng_below(&rng, (uint64_t)test->num_classes - 1);
    out[i].target = t >= test->labels[order[i]] ? t + 1 : t;
  }
  free(order);
  return AG_OK;
}

/* ---- results.jsonl ------------------------------------------------------------------ */

static ag_status path_in(char *buf, size_t size, const char *dir, const char *name) {
  int n = snprintf(buf, size, "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= size) return ag_error_set(AG_ERR_INVALID, "path too long: %s", dir);
  return AG_OK;
}

/* Every line of path as a JSON array (empty when the file is missing). */
static ag_status load_lines(const char *path, json_t **out) {
  *out = json_array();
  if (!*out) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  if (!ag_file_exists(path)) return AG_OK;
  ag_jsonl_reader *r;
  ag_status st = ag_jsonl_open(path, &r);
  json_t *v = NULL;
  while (!st && (st = ag_jsonl_next(r, &v)) == AG_OK && v) {
    if (!json_is_object(v)) st = ag_error_set(AG_ERR_FORMAT, "%s: a line is not an object", path);
    if (!st)
      json_array_append_new(*out, v);
    else
      json_decref(v);
    v = NULL;
  }
  if (r) ag_jsonl_close(r);
  if (st) {
    json_decref(*out);
    *out = NULL;
  }
  return st;
}

static ag_status save_lines(const char *path, const json_t *lines) {
  ag_atomic_file *f;
  ag_status st = ag_atomic_open(path, &f);
  if (st) return st;
  size_t i;
  json_t *v;
  json_array_foreach(lines, i, v) {
    st = ag_jsonl_write(ag_atomic_stream(f), v);
    if (st) break;
  }
  if (st) {
    ag_atomic_abort(f);
    return st;
  }
  return ag_atomic_commit(f);
}

static const json_t *find_line(const json_t *lines, int64_t pair, const char *variant) {
  size_t i;
  json_t *v;
  json_array_foreach(lines, i, v) {
    json_t *p = json_object_get(v, "pair"), *name = json_object_get(v, "variant");
    if (json_is_integer(p) && json_integer_value(p) == pair && json_is_string(name) &&
        !strcmp(json_string_value(name), variant))
      return v;
  }
  return NULL;
}

/* Lines written for other pairs (another seed or test set) are refused. */
static ag_status check_lines(const json_t *lines, const ag_infusion_target *pairs, int64_t count,
                             const char *path) {
  size_t i;
  json_t *v;
  json_array_foreach(lines, i, v) {
    json_t *p = json_object_get(v, "pair");
    if (!json_is_integer(p)) return ag_error_set(AG_ERR_FORMAT, "%s: a line has no \"pair\"", path);
    int64_t k = (int64_t)json_integer_value(p);
    if (k < 0 || k >= count) continue;
    if (json_integer_value(json_object_get(v, "probe")) != pairs[k].probe ||
        json_integer_value(json_object_get(v, "target")) != pairs[k].target)
      return ag_error_set(AG_ERR_INVALID,
                          "%s: pair %lld there is probe %lld / target %lld, this sweep's is "
                          "%lld / %d (another --seed?): use another --out",
                          path, (long long)k,
                          (long long)json_integer_value(json_object_get(v, "probe")),
                          (long long)json_integer_value(json_object_get(v, "target")),
                          (long long)pairs[k].probe, pairs[k].target);
  }
  return AG_OK;
}

/* ---- summary -------------------------------------------------------------------------- */

static double number(const json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  if (json_is_boolean(v)) return json_is_true(v) ? 1.0 : 0.0;
  return json_is_number(v) ? json_number_value(v) : NAN;
}

typedef struct accumulator {
  double n, sum, sum_sq;
} accumulator;

static void add(accumulator *a, double x) {
  a->n += 1;
  a->sum += x;
  a->sum_sq += x * x;
}

static double mean_of(const accumulator *a) { return a->n > 0 ? a->sum / a->n : NAN; }

/* Sample standard deviation over √n; 0 for a single run. */
static double se_of(const accumulator *a) {
  if (a->n < 2) return 0;
  double m = a->sum / a->n;
  double var = (a->sum_sq - a->n * m * m) / (a->n - 1);
  return var > 0 ? sqrt(var / a->n) : 0;
}

static ag_status summarize_lines(const json_t *lines, ag_infusion_summary_row *rows, int max_rows,
                                 int *row_count) {
  *row_count = 0;
  enum { DP, DLO, POS, T1B, T1A, ACCB, ACCA, FIELDS };
  accumulator acc[MAX_VARIANTS][FIELDS];
  memset(acc, 0, sizeof acc);
  char names[MAX_VARIANTS][32];
  int n = 0;
  size_t i;
  json_t *v;
  json_array_foreach(lines, i, v) {
    const char *name = json_string_value(json_object_get(v, "variant"));
    if (!name) name = json_string_value(json_object_get(v, "method"));
    if (!name) continue;
    int r = 0;
    while (r < n && strcmp(names[r], name)) r++;
    if (r == n) {
      if (n == MAX_VARIANTS || n == max_rows) continue;
      snprintf(names[n++], sizeof names[0], "%s", name);
    }
    double dp = number(v, "delta_p");
    add(&acc[r][DP], dp);
    add(&acc[r][DLO], number(v, "delta_log_odds"));
    add(&acc[r][POS], dp > 0 ? 1.0 : 0.0);
    add(&acc[r][T1B], number(v, "top1_before"));
    add(&acc[r][T1A], number(v, "top1_after"));
    add(&acc[r][ACCB], number(v, "clean_acc_before"));
    add(&acc[r][ACCA], number(v, "clean_acc_after"));
  }
  for (int r = 0; r < n; r++) {
    ag_infusion_summary_row *row = &rows[r];
    memset(row, 0, sizeof *row);
    memcpy(row->variant, names[r], sizeof row->variant);
    row->runs = (int64_t)acc[r][DP].n;
    row->delta_p_mean = mean_of(&acc[r][DP]);
    row->delta_p_se = se_of(&acc[r][DP]);
    row->delta_log_odds_mean = mean_of(&acc[r][DLO]);
    row->delta_log_odds_se = se_of(&acc[r][DLO]);
    row->positive_share = mean_of(&acc[r][POS]);
    row->top1_before = mean_of(&acc[r][T1B]);
    row->top1_after = mean_of(&acc[r][T1A]);
    row->clean_acc_before = mean_of(&acc[r][ACCB]);
    row->clean_acc_after = mean_of(&acc[r][ACCA]);
  }
  *row_count = n;
  return AG_OK;
}

ag_status ag_infusion_summarize(const char *results_path, ag_infusion_summary_row *rows,
                                int max_rows, int *row_count) {
  json_t *lines;
  ag_status st = load_lines(results_path, &lines);
  if (st) return st;
  st = summarize_lines(lines, rows, max_rows, row_count);
  json_decref(lines);
  return st;
}

/* ---- report files ----------------------------------------------------------------------- */

static ag_status write_summary_json(const char *path, const ag_infusion_summary_row *rows, int n,
                                    const ag_infusion_plan *p, int64_t pairs) {
  json_t *arr = json_array();
  for (int r = 0; r < n && arr; r++) {
    const ag_infusion_summary_row *w = &rows[r];
    json_array_append_new(
        arr,
        json_pack("{s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "variant", w->variant,
                  "runs", (json_int_t)w->runs, "delta_p_mean", w->delta_p_mean, "delta_p_se",
                  w->delta_p_se, "delta_log_odds_mean", w->delta_log_odds_mean, "delta_log_odds_se",
                  w->delta_log_odds_se, "positive_share", w->positive_share, "top1_before",
                  w->top1_before, "top1_after", w->top1_after, "clean_acc_before",
                  w->clean_acc_before, "clean_acc_after", w->clean_acc_after));
  }
  const ag_infusion_base *r = p->retrain ? p->retrain : p->craft;
  json_t *doc = json_pack("{s:s, s:s, s:I, s:o}", "craft_run", p->craft->dir, "retrain_run", r->dir,
                          "pairs", (json_int_t)pairs, "variants", arr);
  ag_status st = doc ? ag_json_save(path, doc) : ag_error_set(AG_ERR_NOMEM, "out of memory");
  json_decref(doc);
  return st;
}

/* Writes text through an atomic file; `emit` prints into the stream. */
typedef struct report {
  const ag_infusion_summary_row *rows;
  int n;
  const json_t *lines;
  const ag_infusion_plan *plan;
} report;

static void emit_markdown(FILE *f, const report *r) {
  const ag_infusion_base *rt = r->plan->retrain ? r->plan->retrain : r->plan->craft;
  fprintf(f, "# Infusion sweep\n\ncrafted on `%s`, retrained `%s` (epoch %d from %d)\n\n",
          r->plan->craft->dir, rt->dir, rt->epoch, rt->epoch - 1);
  fprintf(f, "| variant | runs | Δp mean ± s.e. | Δ log-odds mean ± s.e. | Δp > 0 | target top-1 "
             "before → after | clean accuracy before → after |\n"
             "|---|---:|---:|---:|---:|---:|---:|\n");
  for (int i = 0; i < r->n; i++) {
    const ag_infusion_summary_row *w = &r->rows[i];
    fprintf(
        f, "| %s | %lld | %+.4f ± %.4f | %+.3f ± %.3f | %.0f%% | %.0f%% → %.0f%% | %.4f → %.4f |\n",
        w->variant, (long long)w->runs, w->delta_p_mean, w->delta_p_se, w->delta_log_odds_mean,
        w->delta_log_odds_se, 100 * w->positive_share, 100 * w->top1_before, 100 * w->top1_after,
        w->clean_acc_before, w->clean_acc_after);
  }
}

static int variant_index(const report *r, const char *name) {
  for (int i = 0; i < r->n; i++)
    if (!strcmp(r->rows[i].variant, name)) return i;
  return -1;
}

static void emit_results_csv(FILE *f, const report *r) {
  fprintf(f, "pair,variant_index,variant,probe,probe_label,target,p_before,p_after,delta_p,"
             "delta_log_odds,top1_before,top1_after,clean_acc_before,clean_acc_after\n");
  size_t i;
  json_t *v;
  json_array_foreach(r->lines, i, v) {
    const char *name = json_string_value(json_object_get(v, "variant"));
    if (!name) continue;
    fprintf(f, "%lld,%d,%s,%lld,%lld,%lld,%.6g,%.6g,%.6g,%.6g,%d,%d,%.6g,%.6g\n",
            (long long)json_integer_value(json_object_get(v, "pair")), variant_index(r, name), name,
            (long long)json_integer_value(json_object_get(v, "probe")),
            (long long)json_integer_value(json_object_get(v, "probe_label")),
            (long long)json_integer_value(json_object_get(v, "target")), number(v, "p_before"),
            number(v, "p_after"), number(v, "delta_p"), number(v, "delta_log_odds"),
            (int)number(v, "top1_before"), (int)number(v, "top1_after"),
            number(v, "clean_acc_before"), number(v, "clean_acc_after"));
  }
}

static void emit_summary_csv(FILE *f, const report *r) {
  fprintf(f, "variant_index,variant,runs,delta_p_mean,delta_p_se,delta_log_odds_mean,"
             "delta_log_odds_se,positive_share,top1_before,top1_after\n");
  for (int i = 0; i < r->n; i++) {
    const ag_infusion_summary_row *w = &r->rows[i];
    fprintf(f, "%d,%s,%lld,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g\n", i, w->variant, (long long)w->runs,
            w->delta_p_mean, w->delta_p_se, w->delta_log_odds_mean, w->delta_log_odds_se,
            w->positive_share, w->top1_before, w->top1_after);
  }
}

/* Two panels, Δp and Δ log-odds: every run a dot (spread sideways by
 * pair), the mean with a standard-error bar per variant. */
static void emit_plot(FILE *f, const report *r) {
  fprintf(f,
          "# Renders plot.svg from results.csv and summary.csv: gnuplot plot.gp\n"
          "set terminal svg size 1200,480 dynamic background rgb 'white'\n"
          "set output 'plot.svg'\n"
          "set datafile separator ','\n"
          "set multiplot layout 1,2 title 'Infusion: the probe after retraining the last "
          "epoch on the edited set, minus the clean retrain'\n"
          "set xrange [-0.6:%d.6]\n"
          "set grid ytics\n"
          "set key top left\n"
          "set offsets 0, 0, graph 0.15, 0\n" /* headroom: the key covers no run */
          "set xzeroaxis lt -1\n"
          "set xtics rotate by -30 (",
          r->n - 1);
  for (int i = 0; i < r->n; i++) fprintf(f, "%s'%s' %d", i ? ", " : "", r->rows[i].variant, i);
  const char *panel = "plot 'results.csv' every ::1 using ($2 + 0.3 * ((int($1) %% 11) / 10.0 - "
                      "0.5)):%d with points pt 7 ps 0.5 lc rgb '#6f8fbf' title 'one probe x "
                      "target', \\\n"
                      "     'summary.csv' every ::1 using 1:%d:%d with yerrorbars pt 5 ps 1.2 lw 2 "
                      "lc rgb '#c0392b' title 'mean +- s.e.'\n";
  fprintf(f, ")\nset title 'delta p(target | probe)'\n");
  fprintf(f, panel, 9, 4, 5);
  fprintf(f, "set title 'delta log-odds of the target'\n");
  fprintf(f, panel, 10, 6, 7);
  fprintf(f, "unset multiplot\n");
}

static ag_status write_text(const char *dir, const char *name, void (*emit)(FILE *, const report *),
                            const report *r) {
  char path[AG_INFUSION_PATH_MAX];
  ag_status st = path_in(path, sizeof path, dir, name);
  ag_atomic_file *f = NULL;
  if (!st) st = ag_atomic_open(path, &f);
  if (st) return st;
  emit(ag_atomic_stream(f), r);
  return ag_atomic_commit(f);
}

static ag_status write_reports(const char *dir, const json_t *lines, const ag_infusion_plan *p,
                               int64_t pairs, ag_infusion_summary_row *rows, int *n) {
  ag_status st = summarize_lines(lines, rows, MAX_VARIANTS, n);
  report r = {rows, *n, lines, p};
  char path[AG_INFUSION_PATH_MAX];
  if (!st) st = path_in(path, sizeof path, dir, "summary.json");
  if (!st) st = write_summary_json(path, rows, *n, p, pairs);
  if (!st) st = write_text(dir, "summary.md", emit_markdown, &r);
  if (!st) st = write_text(dir, "results.csv", emit_results_csv, &r);
  if (!st) st = write_text(dir, "summary.csv", emit_summary_csv, &r);
  if (!st) st = write_text(dir, "plot.gp", emit_plot, &r);
  if (!st && *n > 0) ag_plot_render(dir, "plot.gp");
  return st;
}

/* ---- the sweep ------------------------------------------------------------------------- */

static ag_infusion_config variant_config(const ag_infusion_config *base,
                                         const ag_infusion_variant *v) {
  ag_infusion_config c = *base;
  c.method = v->method;
  c.select = v->select;
  c.copies = v->copies;
  return c;
}

/* Runs every (pair, variant) not yet in `lines`, appending each result. */
static ag_status run_missing(const ag_infusion_plan *p, const ag_infusion_sweep_config *s,
                             const ag_infusion_config *cfg, const ag_infusion_target *pairs,
                             json_t *lines, const char *results_path) {
  bool any = false, influence = false;
  for (int64_t i = s->first_pair; i < s->pairs; i++)
    for (int j = 0; j < s->variant_count; j++) {
      if (find_line(lines, i, s->variants[j].name)) continue;
      any = true;
      ag_infusion_config c = variant_config(cfg, &s->variants[j]);
      influence = influence || infusion_needs_influence(&c);
    }
  if (!any) return AG_OK;
  const ag_infusion_base *r = p->retrain ? p->retrain : p->craft;
  char scores_dir[AG_INFUSION_PATH_MAX], work_dir[AG_INFUSION_PATH_MAX],
      clean_dir[AG_INFUSION_PATH_MAX];
  ag_status st = path_in(scores_dir, sizeof scores_dir, s->out_dir, "scores");
  if (!st) st = path_in(work_dir, sizeof work_dir, s->out_dir, "retrain");
  if (!st) st = infusion_clean_retrain_path(r, clean_dir, sizeof clean_dir);
  if (st) return st;
  /* One set of queries and one scoring pass for every pair of the sweep
   * (not only this call's range), so split sweeps share the cache. The
   * cache is keyed by the queries: a sweep grown with a larger --pairs
   * scores again in a new folder instead of meeting the old scores. */
  ag_influence_queries *q = NULL;
  float *scores = NULL;
  if (influence) {
    ag_infusion_config c = *cfg;
    c.method = AG_INFUSION_METHOD_INFUSION;
    c.select = AG_INFUSION_SELECT_TOP;
    st = infusion_prepare_influence(p, pairs, s->pairs, &c, scores_dir, true, &q, &scores);
  }
  ag_vision_model *clean = NULL;
  double clean_acc = 0;
  if (!st) st = ag_infusion_retrain(r, NULL, clean_dir, true, &clean, &clean_acc);
  int64_t examples = p->craft->examples;
  for (int64_t i = s->first_pair; i < s->pairs && !st; i++)
    for (int j = 0; j < s->variant_count && !st; j++) {
      const ag_infusion_variant *v = &s->variants[j];
      if (find_line(lines, i, v->name)) continue;
      ag_infusion_config c = variant_config(cfg, v);
      ag_infusion_result res;
      st = infusion_run_crafted(p, q, i, scores ? scores + i * examples : NULL, pairs[i], &c, clean,
                                clean_acc, work_dir, &res);
      if (st) break;
      json_t *line = ag_infusion_result_json(&res);
      if (!line) {
        st = ag_error_set(AG_ERR_NOMEM, "out of memory");
        break;
      }
      json_object_set_new(line, "pair", json_integer((json_int_t)i));
      json_object_set_new(line, "variant", json_string(v->name));
      json_object_set_new(line, "craft_run", json_string(p->craft->dir));
      json_object_set_new(line, "retrain_run", json_string(r->dir));
      json_array_append_new(lines, line);
      st = save_lines(results_path, lines);
      ag_info("infusion: pair %lld/%lld (probe %lld, target %d) %s: p %.4f -> %.4f (dp %+.4f), "
              "top-1 %d -> %d, accuracy %.4f -> %.4f",
              (long long)i + 1, (long long)s->pairs, (long long)pairs[i].probe, pairs[i].target,
              v->name, res.before.p, res.after.p, res.delta_p, res.before.top1, res.after.top1,
              res.clean_acc_before, res.clean_acc_after);
    }
  ag_vision_model_destroy(clean);
  ag_influence_queries_destroy(q);
  free(scores);
  return st;
}

ag_status ag_infusion_sweep(const ag_infusion_plan *p, const ag_infusion_sweep_config *s,
                            const ag_infusion_config *cfg, ag_infusion_summary_row *rows,
                            int max_rows, int *row_count) {
  if (row_count) *row_count = 0;
  if (!s->out_dir) return ag_error_set(AG_ERR_INVALID, "sweep: no output folder");
  if (s->variant_count < 1 || s->variant_count > MAX_VARIANTS)
    return ag_error_set(AG_ERR_INVALID, "sweep: 1 to %d variants", MAX_VARIANTS);
  if (s->first_pair < 0 || s->first_pair >= s->pairs)
    return ag_error_set(AG_ERR_INVALID, "sweep: first pair %lld is outside 0 to %lld",
                        (long long)s->first_pair, (long long)s->pairs - 1);
  const ag_infusion_base *r = p->retrain ? p->retrain : p->craft;
  ag_status st = infusion_check_transfer(p->craft, r);
  if (st) return st;
  ag_infusion_target *pairs = malloc((size_t)s->pairs * sizeof *pairs);
  if (!pairs) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  st = ag_infusion_pairs(p->craft->test, s->pairs, cfg->seed, pairs);
  char results_path[AG_INFUSION_PATH_MAX];
  if (!st) st = ag_mkdir_p(s->out_dir);
  if (!st) st = path_in(results_path, sizeof results_path, s->out_dir, RESULTS_FILE);
  json_t *lines = NULL;
  if (!st) st = load_lines(results_path, &lines);
  if (!st) st = check_lines(lines, pairs, s->pairs, results_path);
  if (!st) st = run_missing(p, s, cfg, pairs, lines, results_path);
  ag_infusion_summary_row all[MAX_VARIANTS];
  int n = 0;
  /* The reports cover what has finished, also after an error midway. */
  if (lines && json_array_size(lines) > 0) {
    ag_status rs = write_reports(s->out_dir, lines, p, s->pairs, all, &n);
    if (!st) st = rs;
  }
  if (rows && row_count) {
    *row_count = n < max_rows ? n : max_rows;
    memcpy(rows, all, (size_t)*row_count * sizeof *rows);
  }
  json_decref(lines);
  free(pairs);
  return st;
}
