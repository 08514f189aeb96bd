/* The SML experiments (agora/sml_exp.h) E1 (multi-turn learning), E2
 * (transfer) and E3 (underspecified tasks), and the stages every experiment
 * shares (experiment_internal.h; E4 and E5 are in experiment_feedback.c).
 * The work is done by ag_sml_pretrain, ag_sml_train and ag_teach_eval; this
 * file runs them in a report folder, reads their evaluation transcripts back
 * and writes the report.
 *
 *   OUT/experiment.json   the settings (a second fresh run refuses the folder)
 *   OUT/base/             the base student, when E1 pretrains it
 *   OUT/sml/              the SML run (eval/base and eval/final hold the dialogues)
 *   OUT/report.md, results.json, acc_at.csv, families.csv, plot.gp, acc_at.svg */
#include "agora/chat_model.h"
#include "agora/dialogue.h"
#include "agora/json.h"
#include "agora/sml_exp.h"
#include "agora/task.h"
#include "methods/sml/experiment_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_BYTES AG_SML_EXP_PATH_BYTES

ag_sml_e1_options ag_sml_e1_defaults(void) {
  ag_sml_e1_options o;
  memset(&o, 0, sizeof o);
  o.size = "small";
  o.train = ag_sml_train_defaults();
  o.train.level = AG_SML_BASE_LEVEL;
  o.train.rounds = 4;
  o.train.tasks_per_round = 64;
  o.train.eval_tasks = 20;
  o.train.eval_turns = 10;
  return o;
}

void ag_sml_acc_of(const ag_sml_rollout *v, int64_t n, const bool *select, int turns,
                   ag_sml_acc *out) {
  memset(out, 0, sizeof *out);
  int64_t solved[AG_SML_TRAIN_MAX_TURNS] = {0};
  if (turns > AG_SML_TRAIN_MAX_TURNS) turns = AG_SML_TRAIN_MAX_TURNS;
  for (int64_t i = 0; i < n; i++) {
    if (select && !select[i]) continue;
    out->tasks++;
    if (!v[i].solved || v[i].solved_at < 1) continue;
    for (int k = v[i].solved_at - 1; k < turns; k++) solved[k]++;
  }
  for (int k = 0; k < turns; k++)
    out->acc_at[k] = out->tasks ? (double)solved[k] / (double)out->tasks : NAN;
}

ag_status ag_sml_exp_join(char *out, const char *dir, const char *name) {
  int len = snprintf(out, PATH_BYTES, "%s/%s", dir, name);
  if (len < 0 || len >= PATH_BYTES) return ag_error_set(AG_ERR_INVALID, "path too long: %s", dir);
  return AG_OK;
}

/* ---- stages ------------------------------------------------------------------------------- */

json_t *ag_sml_exp_settings_json(const ag_sml_e1_options *o, const char *base_dir) {
  const ag_sml_train_options *t = &o->train;
  return json_pack("{s:s, s:s, s:s, s:f, s:s, s:i, s:s, s:i, s:I, s:i, s:i, s:I, s:I}",
                   "experiment", "e1", "base", base_dir, "size", o->size ? o->size : "small",
                   "pretrain_minutes", o->pretrain_minutes, "families",
                   t->families ? t->families : ag_sml_default_families(), "level", t->level, "mode",
                   t->mode == AG_SML_GRPO ? "grpo" : "offline", "rounds", t->rounds,
                   "tasks_per_round", (json_int_t)t->tasks_per_round, "train_turns", t->train_turns,
                   "eval_turns", t->eval_turns, "eval_tasks", (json_int_t)t->eval_tasks, "seed",
                   (json_int_t)t->seed);
}

/* The base student: o->base as it is, or OUT/base, pretrained (or its
 * pretraining resumed) unless pretrain.json holds results. */
static ag_status base_student(const ag_sml_e1_options *o, char *dir, bool *pretrained) {
  *pretrained = false;
  if (o->base) {
    if (strlen(o->base) >= PATH_BYTES) return ag_error_set(AG_ERR_INVALID, "path too long");
    strcpy(dir, o->base);
    return AG_OK;
  }
  ag_status st = ag_sml_exp_join(dir, o->out_dir, "base");
  char path[PATH_BYTES];
  if (!st) st = ag_sml_exp_join(path, dir, "pretrain.json");
  if (st) return st;
  *pretrained = true;
  bool started = ag_file_exists(path);
  if (started) {
    json_t *saved = NULL;
    st = ag_json_load(path, &saved);
    bool done = !st && json_object_get(saved, "results") != NULL;
    json_decref(saved);
    if (st) return ag_error_wrap(st, "sml e1: the base student");
    if (done) return AG_OK;
  }
  ag_sml_pretrain_options p = ag_sml_pretrain_defaults();
  p.out_dir = dir;
  p.size = o->size;
  p.minutes = o->pretrain_minutes;
  p.families = o->train.families;
  p.level = o->train.level;
  p.seed = o->train.seed;
  p.resume = started;
  p.skip_eval = true; /* the SML run evaluates it, at acc@1..K */
  p.progress = o->progress;
  ag_info("sml e1: %s the base student in %s", started ? "resuming" : "pretraining", dir);
  ag_sml_pretrain_result pr;
  st = ag_sml_pretrain(&p, &pr);
  return st ? ag_error_wrap(st, "sml e1: pretraining the base student") : AG_OK;
}

/* The evaluation dialogues of one family (sml/eval/<which>/<family>), in
 * the order of `ids` when given (so that base and SML rows line up). */
static ag_status load_eval(const char *sml_dir, const char *which, const char *family,
                           ag_sml_rollout **out, int64_t *n) {
  char dir[PATH_BYTES], path[PATH_BYTES];
  snprintf(dir, sizeof dir, "eval/%s/%s/transcripts.jsonl", which, family);
  ag_status st = ag_sml_exp_join(path, sml_dir, dir);
  return st ? st : ag_sml_rollouts_load(path, out, n);
}

/* Reorders v (n rollouts) to follow ref's task ids; a task missing from
 * either side is an error (both evaluations ran the same tasks). */
static ag_status align(const ag_sml_rollout *ref, int64_t n, ag_sml_rollout *v, int64_t m,
                       const char *family) {
  if (m != n)
    return ag_error_set(AG_ERR_FORMAT, "sml e1: %s: %lld base and %lld SML evaluation dialogues",
                        family, (long long)n, (long long)m);
  for (int64_t i = 0; i < n; i++) {
    int64_t j = i;
    while (j < m && strcmp(v[j].task_id, ref[i].task_id)) j++;
    if (j == m)
      return ag_error_set(AG_ERR_FORMAT, "sml e1: %s: task %s has no SML evaluation", family,
                          ref[i].task_id);
    ag_sml_rollout t = v[i];
    v[i] = v[j];
    v[j] = t;
  }
  return AG_OK;
}

static void free_rollouts(ag_sml_rollout *v, int64_t n) {
  for (int64_t i = 0; v && i < n; i++) ag_sml_rollout_clear(&v[i]);
  free(v);
}

/* Every family's base and SML evaluations into r. */
static ag_status analyse(const char *sml_dir, int turns, ag_sml_e1_result *r) {
  ag_sml_rollout *all_base = NULL, *all_sml = NULL;
  int64_t total = 0;
  ag_status st = AG_OK;
  for (int f = 0; f < r->family_count && !st; f++) {
    ag_sml_rollout *b = NULL, *s = NULL;
    int64_t nb = 0, ns = 0;
    st = load_eval(sml_dir, "base", r->families[f], &b, &nb);
    if (!st) st = load_eval(sml_dir, "final", r->families[f], &s, &ns);
    if (!st) st = align(b, nb, s, ns, r->families[f]);
    if (!st) {
      ag_sml_acc_of(b, nb, NULL, turns, &r->base_family[f]);
      ag_sml_acc_of(s, ns, NULL, turns, &r->sml_family[f]);
      ag_sml_rollout *gb = realloc(all_base, (size_t)(total + nb) * sizeof *gb);
      if (gb) all_base = gb;
      ag_sml_rollout *gs = gb ? realloc(all_sml, (size_t)(total + nb) * sizeof *gs) : NULL;
      if (gs) all_sml = gs;
      if (!gb || !gs) {
        st = ag_error_set(AG_ERR_NOMEM, "out of memory");
      } else { /* the rows move into the pooled arrays */
        memcpy(all_base + total, b, (size_t)nb * sizeof *b);
        memcpy(all_sml + total, s, (size_t)nb * sizeof *s);
        total += nb;
        free(b);
        free(s);
        b = s = NULL;
        nb = ns = 0;
      }
    }
    free_rollouts(b, nb);
    free_rollouts(s, ns);
  }
  bool *hard = st ? NULL : malloc((size_t)(total > 0 ? total : 1));
  if (!st && !hard) st = ag_error_set(AG_ERR_NOMEM, "out of memory");
  if (!st) {
    for (int64_t i = 0; i < total; i++)
      hard[i] = !(all_base[i].solved && all_base[i].solved_at == 1);
    ag_sml_acc_of(all_base, total, NULL, turns, &r->base);
    ag_sml_acc_of(all_sml, total, NULL, turns, &r->sml);
    ag_sml_acc_of(all_base, total, hard, turns, &r->base_hard);
    ag_sml_acc_of(all_sml, total, hard, turns, &r->sml_hard);
  }
  free(hard);
  free_rollouts(all_base, total);
  free_rollouts(all_sml, total);
  return st;
}

/* ---- report ------------------------------------------------------------------------------- */

json_t *ag_sml_exp_acc_json(const ag_sml_acc *a, int turns) {
  json_t *v = json_array();
  for (int k = 0; k < turns; k++)
    json_array_append_new(v, isfinite(a->acc_at[k]) ? json_real(a->acc_at[k]) : json_null());
  return json_pack("{s:o, s:I}", "acc_at", v, "tasks", (json_int_t)a->tasks);
}

/* base and sml (acc@k, tasks), base_fails_at_1 and families of one comparison. */
static json_t *comparison_json(const ag_sml_e1_result *d) {
  json_t *families = json_object();
  for (int f = 0; f < d->family_count; f++)
    json_object_set_new(families, d->families[f],
                        json_pack("{s:o, s:o}", "base",
                                  ag_sml_exp_acc_json(&d->base_family[f], d->turns), "sml",
                                  ag_sml_exp_acc_json(&d->sml_family[f], d->turns)));
  return json_pack("{s:o, s:o, s:{s:o, s:o}, s:o}", "base", ag_sml_exp_acc_json(&d->base, d->turns),
                   "sml", ag_sml_exp_acc_json(&d->sml, d->turns), "base_fails_at_1", "base",
                   ag_sml_exp_acc_json(&d->base_hard, d->turns), "sml",
                   ag_sml_exp_acc_json(&d->sml_hard, d->turns), "families", families);
}

/* dir/name opened for an atomic write; *f is its stream. */
ag_status ag_sml_exp_open_in(const char *dir, const char *name, ag_atomic_file **af, FILE **f) {
  char path[PATH_BYTES];
  ag_status st = ag_sml_exp_join(path, dir, name);
  if (!st) st = ag_atomic_open(path, af);
  if (!st) *f = ag_atomic_stream(*af);
  return st;
}

/* Saves v (consumed; NULL: out of memory) as dir/name. */
ag_status ag_sml_exp_save_json_in(const char *dir, const char *name, json_t *v) {
  char path[PATH_BYTES];
  ag_status st = v ? ag_sml_exp_join(path, dir, name) : ag_error_set(AG_ERR_NOMEM, "out of memory");
  if (!st) st = ag_json_save(path, v);
  json_decref(v);
  return st;
}

static ag_status write_results(const char *dir, const ag_sml_e1_options *o, const char *base_dir,
                               const ag_sml_e1_result *r) {
  json_t *v = comparison_json(r);
  json_object_set_new(json_object_get(v, "base"), "question_rate",
                      json_real(r->base_question_rate));
  json_object_set_new(json_object_get(v, "sml"), "question_rate", json_real(r->sml_question_rate));
  json_object_set_new(v, "experiment", json_string("e1"));
  json_object_set_new(v, "turns", json_integer(r->turns));
  json_object_set_new(v, "tasks", json_integer(r->base.tasks));
  json_object_set_new(v, "settings", ag_sml_exp_settings_json(o, base_dir));
  json_object_set_new(v, "seconds", json_real(r->seconds));
  return ag_sml_exp_save_json_in(dir, "results.json", v);
}

void ag_sml_exp_fmt_acc(char *buf, size_t size, double v) {
  if (isfinite(v))
    snprintf(buf, size, "%.3f", v);
  else
    snprintf(buf, size, "-");
}

static ag_status write_acc_csv(const char *dir, const ag_sml_e1_result *r) {
  ag_atomic_file *af = NULL;
  FILE *f = NULL;
  ag_status st = ag_sml_exp_open_in(dir, "acc_at.csv", &af, &f);
  if (st) return st;
  fprintf(f, "k,base,sml,base_fails_at_1_base,base_fails_at_1_sml\n");
  for (int k = 0; k < r->turns; k++)
    fprintf(f, "%d,%.6f,%.6f,%.6f,%.6f\n", k + 1, r->base.acc_at[k], r->sml.acc_at[k],
            r->base_hard.acc_at[k], r->sml_hard.acc_at[k]);
  return ag_atomic_commit(af);
}

static ag_status write_families_csv(const char *dir, const ag_sml_e1_result *r) {
  ag_atomic_file *af = NULL;
  FILE *f = NULL;
  ag_status st = ag_sml_exp_open_in(dir, "families.csv", &af, &f);
  if (st) return st;
  int K = r->turns;
  fprintf(f, "family,tasks,base_acc_at_1,base_acc_at_%d,sml_acc_at_1,sml_acc_at_%d\n", K, K);
  for (int i = 0; i < r->family_count; i++)
    fprintf(f, "%s,%lld,%.6f,%.6f,%.6f,%.6f\n", r->families[i], (long long)r->base_family[i].tasks,
            r->base_family[i].acc_at[0], r->base_family[i].acc_at[K - 1],
            r->sml_family[i].acc_at[0], r->sml_family[i].acc_at[K - 1]);
  return ag_atomic_commit(af);
}

static ag_status write_plot(const char *dir, const ag_sml_e1_result *r) {
  ag_atomic_file *af = NULL;
  FILE *f = NULL;
  ag_status st = ag_sml_exp_open_in(dir, "plot.gp", &af, &f);
  if (st) return st;
  fprintf(f,
          "# Renders acc_at.svg from acc_at.csv: gnuplot plot.gp\n" AG_SML_EXP_PLOT_PREAMBLE
          "set key top left\n"
          "set xlabel 'k (student turns)'\n"
          "set ylabel 'acc@k'\n"
          "set xrange [0.5:%d.5]\n"
          "set yrange [0:*]\n"
          "set multiplot layout 1,2 title 'E1: acc@k, base vs SML student (held-out tasks)'\n"
          "set title 'all %lld tasks'\n"
          "plot 'acc_at.csv' skip 1 using 1:2 with linespoints lw 2 title 'base', \\\n"
          "     '' skip 1 using 1:3 with linespoints lw 2 title 'SML'\n"
          "set title '%lld tasks the base student fails at turn 1'\n"
          "plot 'acc_at.csv' skip 1 using 1:4 with linespoints lw 2 title 'base', \\\n"
          "     '' skip 1 using 1:5 with linespoints lw 2 title 'SML'\n"
          "unset multiplot\n",
          r->turns, (long long)r->base.tasks, (long long)r->base_hard.tasks);
  return ag_atomic_commit(af);
}

static ag_status write_report(const char *dir, const ag_sml_e1_options *o, const char *base_dir,
                              const ag_sml_e1_result *r) {
  ag_atomic_file *af = NULL;
  FILE *f = NULL;
  ag_status st = ag_sml_exp_open_in(dir, "report.md", &af, &f);
  if (st) return st;
  const ag_sml_train_options *t = &o->train;
  int K = r->turns;
  fprintf(f,
          "# E1: multi-turn learning\n\n"
          "Claim (PAPERS.md §1): students trained with social meta-learning solve, through\n"
          "conversation with a teacher, problems they cannot solve in one turn.\n\n"
          "Setup: base student `%s`; SML %s, %d round(s) of %lld dialogues (up to %d student\n"
          "turns, training phrasings); evaluation on %lld held-out tasks (%lld per family of\n"
          "%s, level %d), held-out teacher phrasings, greedy replies, up to %d student turns.\n\n",
          base_dir, t->mode == AG_SML_GRPO ? "GRPO" : "offline", t->rounds,
          (long long)t->tasks_per_round, t->train_turns, (long long)r->base.tasks,
          (long long)t->eval_tasks, t->families ? t->families : ag_sml_default_families(), t->level,
          K);
  fprintf(f, "| k | base | SML | base, hard tasks | SML, hard tasks |\n|---|---|---|---|---|\n");
  char a[16], b[16], c[16], d[16];
  for (int k = 0; k < K; k++) {
    ag_sml_exp_fmt_acc(a, sizeof a, r->base.acc_at[k]);
    ag_sml_exp_fmt_acc(b, sizeof b, r->sml.acc_at[k]);
    ag_sml_exp_fmt_acc(c, sizeof c, r->base_hard.acc_at[k]);
    ag_sml_exp_fmt_acc(d, sizeof d, r->sml_hard.acc_at[k]);
    fprintf(f, "| %d | %s | %s | %s | %s |\n", k + 1, a, b, c, d);
  }
  fprintf(f,
          "\n\"Hard tasks\": the %lld tasks the base student does not solve at turn 1. Question\n"
          "rate (student turns that are not answer attempts): base %.3f, SML %.3f.\n\n",
          (long long)r->base_hard.tasks, r->base_question_rate, r->sml_question_rate);
  fprintf(f,
          "| family | tasks | base acc@1 | base acc@%d | SML acc@1 | SML acc@%d |\n"
          "|---|---|---|---|---|---|\n",
          K, K);
  for (int i = 0; i < r->family_count; i++) {
    ag_sml_exp_fmt_acc(a, sizeof a, r->base_family[i].acc_at[0]);
    ag_sml_exp_fmt_acc(b, sizeof b, r->base_family[i].acc_at[K - 1]);
    ag_sml_exp_fmt_acc(c, sizeof c, r->sml_family[i].acc_at[0]);
    ag_sml_exp_fmt_acc(d, sizeof d, r->sml_family[i].acc_at[K - 1]);
    fprintf(f, "| %s | %lld | %s | %s | %s | %s |\n", r->families[i],
            (long long)r->base_family[i].tasks, a, b, c, d);
  }
  double gain = r->sml.acc_at[K - 1] - r->base.acc_at[K - 1];
  double hard_gain = r->sml_hard.acc_at[K - 1] - r->base_hard.acc_at[K - 1];
  fprintf(f,
          "\nMeasured: acc@%d %.3f -> %.3f (%+.3f); on the hard tasks %.3f -> %.3f (%+.3f).\n"
          "With %lld tasks, one task is %.3f of the accuracy.\n\n",
          K, r->base.acc_at[K - 1], r->sml.acc_at[K - 1], gain, r->base_hard.acc_at[K - 1],
          r->sml_hard.acc_at[K - 1], hard_gain, (long long)r->base.tasks,
          r->base.tasks ? 1.0 / (double)r->base.tasks : NAN);
  int64_t hard_base = (int64_t)llround(r->base_hard.acc_at[K - 1] * (double)r->base_hard.tasks);
  int64_t hard_sml = (int64_t)llround(r->sml_hard.acc_at[K - 1] * (double)r->sml_hard.tasks);
  fprintf(f,
          "Verdict at this scale: of the %lld tasks the base student fails at turn 1, the SML\n"
          "student solves %lld within %d turns and the base student %lld: %s.\n\n",
          (long long)r->base_hard.tasks, (long long)hard_sml, K, (long long)hard_base,
          hard_sml > hard_base   ? "SML solves more of them through conversation"
          : hard_sml < hard_base ? "SML solves fewer of them (the claim does not reproduce here)"
                                 : "no difference (the claim does not reproduce here)");
  fprintf(f, "Files: results.json, acc_at.csv, families.csv, plot.gp -> acc_at.svg; the dialogues\n"
             "in sml/eval/base and sml/eval/final; the SML run's rounds in sml/rounds.jsonl.\n");
  return ag_atomic_commit(af);
}

/* ---- E1 ----------------------------------------------------------------------------------- */

/* Checks shared by the experiments, the folder marker, and the base
 * student (pretrained when needed) into base_dir. */
ag_status ag_sml_exp_prepare(const ag_sml_e1_options *o, const char *name, char *base_dir,
                             bool *pretrained) {
  if (!o || !o->out_dir) return ag_error_set(AG_ERR_INVALID, "sml %s: no report folder", name);
  if (o->train.eval_tasks < 1)
    return ag_error_set(AG_ERR_INVALID, "sml %s: needs evaluation tasks (at least 1 per family)",
                        name);
  const ag_task_family *families[AG_SML_MAX_FAMILIES];
  int count = 0;
  ag_status st = ag_sml_parse_families(o->train.families, families, AG_SML_MAX_FAMILIES, &count);
  if (!st && o->train.eval_families)
    st = ag_sml_parse_families(o->train.eval_families, families, AG_SML_MAX_FAMILIES, &count);
  if (!st && o->size) {
    ag_sml_size size;
    st = ag_sml_size_get(o->size, &size);
  }
  if (st) return ag_error_wrap(st, "sml %s", name);
  char marker[PATH_BYTES];
  st = ag_sml_exp_join(marker, o->out_dir, "experiment.json");
  if (!st && ag_file_exists(marker) && !o->resume)
    st = ag_error_set(AG_ERR_INVALID,
                      "sml %s: %s already holds an experiment: continue it with --resume, or "
                      "choose another folder",
                      name, o->out_dir);
  if (!st) st = ag_mkdir_p(o->out_dir);
  if (!st) st = base_student(o, base_dir, pretrained);
  if (!st && !ag_file_exists(marker)) {
    json_t *s = ag_sml_exp_settings_json(o, base_dir);
    if (s) json_object_set_new(s, "experiment", json_string(name));
    st = s ? ag_json_save(marker, s) : ag_error_set(AG_ERR_NOMEM, "out of memory");
    json_decref(s);
  }
  return st;
}

/* One SML run from base_dir into out_dir/sub, trained on `families` and
 * evaluated on `eval_families` (NULL: the same), compared task by task. */
static ag_status compare(const ag_sml_e1_options *o, const char *base_dir, const char *sub,
                         const char *families, const char *eval_families, ag_sml_e1_result *r) {
  const ag_task_family *parsed[AG_SML_MAX_FAMILIES];
  ag_status st = ag_sml_parse_families(eval_families ? eval_families : families, parsed,
                                       AG_SML_MAX_FAMILIES, &r->family_count);
  if (st) return st;
  for (int f = 0; f < r->family_count; f++)
    snprintf(r->families[f], sizeof r->families[f], "%s", parsed[f]->name);
  r->turns = o->train.eval_turns;
  char sml_dir[PATH_BYTES], state[PATH_BYTES];
  st = ag_sml_exp_join(sml_dir, o->out_dir, sub);
  if (!st) st = ag_sml_exp_join(state, sml_dir, "state.json");
  if (st) return st;
  ag_sml_train_options t = o->train;
  t.student = base_dir;
  t.out_dir = sml_dir;
  t.families = families;
  t.eval_families = eval_families;
  t.resume = ag_file_exists(state);
  t.progress = o->progress;
  ag_sml_train_result tr;
  st = ag_sml_train(&t, &tr);
  if (st) return ag_error_wrap(st, "the SML run in %s", sml_dir);
  r->base_question_rate = tr.base_question_rate;
  r->sml_question_rate = tr.trained_question_rate;
  return analyse(sml_dir, r->turns, r);
}

ag_status ag_sml_e1(const ag_sml_e1_options *o, ag_sml_e1_result *r) {
  memset(r, 0, sizeof *r);
  double started = ag_time_seconds();
  char base_dir[PATH_BYTES];
  ag_status st = ag_sml_exp_prepare(o, "e1", base_dir, &r->pretrained);
  if (!st) st = compare(o, base_dir, "sml", o->train.families, o->train.eval_families, r);
  if (st) return ag_error_wrap(st, "sml e1");
  r->seconds = ag_time_seconds() - started;
  st = write_results(o->out_dir, o, base_dir, r);
  if (!st) st = write_acc_csv(o->out_dir, r);
  if (!st) st = write_families_csv(o->out_dir, r);
  if (!st) st = write_plot(o->out_dir, r);
  if (!st) st = write_report(o->out_dir, o, base_dir, r);
  if (!st) ag_plot_render(o->out_dir, "plot.gp");
  return st;
}

/* ---- E2 ----------------------------------------------------------------------------------- */

static const struct {
  const char *name, *train, *eval;
} E2_DIRECTIONS[AG_SML_E2_DIRECTIONS] = {
    {"math-to-others", "arith,algebra", "code,maze,puzzle"},
    {"code-to-math", "code", "arith,algebra"},
};

static ag_status e2_write(const ag_sml_e1_options *o, const char *base_dir,
                          const ag_sml_e2_result *r) {
  int K = o->train.eval_turns;
  json_t *dirs = json_array();
  for (int i = 0; i < AG_SML_E2_DIRECTIONS; i++) {
    json_t *d = comparison_json(&r->direction[i]);
    json_object_set_new(d, "name", json_string(E2_DIRECTIONS[i].name));
    json_object_set_new(d, "train", json_string(E2_DIRECTIONS[i].train));
    json_object_set_new(d, "eval", json_string(E2_DIRECTIONS[i].eval));
    json_array_append_new(dirs, d);
  }
  json_t *v =
      json_pack("{s:s, s:o, s:i, s:o, s:f}", "experiment", "e2", "directions", dirs, "turns", K,
                "settings", ag_sml_exp_settings_json(o, base_dir), "seconds", r->seconds);
  ag_status st = ag_sml_exp_save_json_in(o->out_dir, "results.json", v);
  ag_atomic_file *af = NULL;
  FILE *f = NULL;
  if (!st) st = ag_sml_exp_open_in(o->out_dir, "transfer.csv", &af, &f);
  if (!st) {
    fprintf(f, "direction,family,tasks,base_acc_at_1,base_acc_at_%d,sml_acc_at_1,sml_acc_at_%d\n",
            K, K);
    for (int i = 0; i < AG_SML_E2_DIRECTIONS; i++) {
      const ag_sml_e1_result *d = &r->direction[i];
      for (int k = 0; k < d->family_count; k++)
        fprintf(f, "%s,%s,%lld,%.6f,%.6f,%.6f,%.6f\n", E2_DIRECTIONS[i].name, d->families[k],
                (long long)d->base_family[k].tasks, d->base_family[k].acc_at[0],
                d->base_family[k].acc_at[K - 1], d->sml_family[k].acc_at[0],
                d->sml_family[k].acc_at[K - 1]);
    }
    st = ag_atomic_commit(af);
  }
  if (!st) st = ag_sml_exp_open_in(o->out_dir, "acc_at.csv", &af, &f);
  if (!st) {
    fprintf(f, "k,%s_base,%s_sml,%s_base,%s_sml\n", E2_DIRECTIONS[0].name, E2_DIRECTIONS[0].name,
            E2_DIRECTIONS[1].name, E2_DIRECTIONS[1].name);
    for (int k = 0; k < K; k++)
      fprintf(f, "%d,%.6f,%.6f,%.6f,%.6f\n", k + 1, r->direction[0].base.acc_at[k],
              r->direction[0].sml.acc_at[k], r->direction[1].base.acc_at[k],
              r->direction[1].sml.acc_at[k]);
    st = ag_atomic_commit(af);
  }
  if (!st) st = ag_sml_exp_open_in(o->out_dir, "plot.gp", &af, &f);
  if (!st) {
    fprintf(f,
            "# Renders acc_at.svg from acc_at.csv: gnuplot plot.gp\n" AG_SML_EXP_PLOT_PREAMBLE
            "set key top left\n"
            "set xlabel 'k (student turns)'\n"
            "set ylabel 'acc@k on the other domain'\n"
            "set xrange [0.5:%d.5]\n"
            "set yrange [0:*]\n"
            "set multiplot layout 1,2 title 'E2: transfer of SML across domains'\n"
            "set title 'trained on %s, evaluated on %s'\n"
            "plot 'acc_at.csv' skip 1 using 1:2 with linespoints lw 2 title 'base', \\\n"
            "     '' skip 1 using 1:3 with linespoints lw 2 title 'SML'\n"
            "set title 'trained on %s, evaluated on %s'\n"
            "plot 'acc_at.csv' skip 1 using 1:4 with linespoints lw 2 title 'base', \\\n"
            "     '' skip 1 using 1:5 with linespoints lw 2 title 'SML'\n"
            "unset multiplot\n",
            K, E2_DIRECTIONS[0].train, E2_DIRECTIONS[0].eval, E2_DIRECTIONS[1].train,
            E2_DIRECTIONS[1].eval);
    st = ag_atomic_commit(af);
  }
  if (!st) st = ag_sml_exp_open_in(o->out_dir, "report.md", &af, &f);
  if (st) return st;
  const ag_sml_train_options *t = &o->train;
  fprintf(f,
          "# E2: transfer across domains\n\n"
          "Claim (PAPERS.md §1-2): the skill of learning from feedback that SML trains transfers\n"
          "across domains (math <-> code; math to coding, puzzles and maze navigation).\n\n"
          "Setup: base student `%s`; two SML runs from it (%s, %d round(s) of %lld dialogues,\n"
          "up to %d student turns, training phrasings), each evaluated only on families it was\n"
          "not trained on: %lld held-out tasks per family, level %d, held-out teacher phrasings,\n"
          "greedy replies, up to %d student turns.\n\n",
          base_dir, t->mode == AG_SML_GRPO ? "GRPO" : "offline", t->rounds,
          (long long)t->tasks_per_round, t->train_turns, (long long)t->eval_tasks, t->level, K);
  fprintf(f,
          "| direction | family | tasks | base acc@1 | base acc@%d | SML acc@1 | SML acc@%d |\n"
          "|---|---|---|---|---|---|---|\n",
          K, K);
  char a[16], b[16], c[16], d[16];
  for (int i = 0; i < AG_SML_E2_DIRECTIONS; i++) {
    const ag_sml_e1_result *x = &r->direction[i];
    for (int k = 0; k <= x->family_count; k++) {
      const ag_sml_acc *ba = k < x->family_count ? &x->base_family[k] : &x->base;
      const ag_sml_acc *sa = k < x->family_count ? &x->sml_family[k] : &x->sml;
      ag_sml_exp_fmt_acc(a, sizeof a, ba->acc_at[0]);
      ag_sml_exp_fmt_acc(b, sizeof b, ba->acc_at[K - 1]);
      ag_sml_exp_fmt_acc(c, sizeof c, sa->acc_at[0]);
      ag_sml_exp_fmt_acc(d, sizeof d, sa->acc_at[K - 1]);
      fprintf(f, "| %s | %s | %lld | %s | %s | %s | %s |\n", E2_DIRECTIONS[i].name,
              k < x->family_count ? x->families[k] : "**all**", (long long)ba->tasks, a, b, c, d);
    }
  }
  fprintf(f, "\nVerdict at this scale (acc@%d on the families not trained on):\n\n", K);
  for (int i = 0; i < AG_SML_E2_DIRECTIONS; i++) {
    const ag_sml_e1_result *x = &r->direction[i];
    int64_t nb = (int64_t)llround(x->base.acc_at[K - 1] * (double)x->base.tasks);
    int64_t ns = (int64_t)llround(x->sml.acc_at[K - 1] * (double)x->sml.tasks);
    fprintf(f, "- %s: the SML student solves %lld of %lld tasks, the base student %lld: %s.\n",
            E2_DIRECTIONS[i].name, (long long)ns, (long long)x->base.tasks, (long long)nb,
            ns > nb   ? "transfer in this direction"
            : ns < nb ? "worse than the base student (no transfer here)"
                      : "no difference (no transfer here)");
  }
  fprintf(f, "\nFiles: results.json, transfer.csv, acc_at.csv, plot.gp -> acc_at.svg; each run's\n"
             "dialogues in <direction>/eval/base and <direction>/eval/final.\n");
  return ag_atomic_commit(af);
}

ag_status ag_sml_e2(const ag_sml_e1_options *o, ag_sml_e2_result *r) {
  memset(r, 0, sizeof *r);
  double started = ag_time_seconds();
  char base_dir[PATH_BYTES];
  ag_status st = ag_sml_exp_prepare(o, "e2", base_dir, &r->pretrained);
  for (int i = 0; i < AG_SML_E2_DIRECTIONS && !st; i++) {
    r->names[i] = E2_DIRECTIONS[i].name;
    r->train[i] = E2_DIRECTIONS[i].train;
    ag_info("sml e2: %s (SML on %s, evaluated on %s)", E2_DIRECTIONS[i].name,
            E2_DIRECTIONS[i].train, E2_DIRECTIONS[i].eval);
    st = compare(o, base_dir, E2_DIRECTIONS[i].name, E2_DIRECTIONS[i].train, E2_DIRECTIONS[i].eval,
                 &r->direction[i]);
  }
  if (st) return ag_error_wrap(st, "sml e2");
  r->seconds = ag_time_seconds() - started;
  st = e2_write(o, base_dir, r);
  if (!st) ag_plot_render(o->out_dir, "plot.gp");
  return st;
}

/* ---- E3 ----------------------------------------------------------------------------------- */

#define EVAL_BATCH 32 /* dialogues decoded together */

/* A chat model for an experiment's evaluation: batched, truncating long
 * dialogues to their latest turns as sml train does. */
static ag_status open_chat(const char *spec, ag_chat_model **out) {
  ag_chat_model_options co = ag_chat_model_defaults();
  co.max_batch = EVAL_BATCH;
  co.concurrency = EVAL_BATCH;
  co.truncate = true;
  ag_status st = ag_chat_model_open(spec, &co, out);
  return st ? ag_error_wrap(st, "opening %s", spec) : AG_OK;
}

ag_status ag_sml_exp_evaluate(const ag_sml_e1_options *o, const char *model_dir, const char *sub,
                              const ag_sml_exp_condition *c, const char (*families)[16],
                              int family_count, ag_sml_eval_stats *s) {
  ag_chat_model *chat = NULL, *teacher = NULL;
  ag_status st = open_chat(model_dir, &chat);
  if (!st && c->teacher_model) st = open_chat(c->teacher_model, &teacher);
  int K = o->train.eval_turns;
  int64_t n = o->train.eval_tasks, solved[AG_SML_TRAIN_MAX_TURNS] = {0};
  for (int f = 0; f < family_count && !st; f++) {
    const ag_task_family *fam = NULL;
    st = ag_task_family_get(families[f], &fam);
    int level = st ? 0
                : o->train.level > 0
                    ? (o->train.level < fam->max_level ? o->train.level : fam->max_level)
                    : fam->default_level;
    ag_task *tasks = st ? NULL : calloc((size_t)n, sizeof *tasks);
    if (!st && !tasks) st = ag_error_set(AG_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n && !st; i++)
      st = ag_task_generate(fam->name, level, AG_SML_EVAL_SEED, i, c->sharded, &tasks[i]);
    char dir[PATH_BYTES], rel[PATH_BYTES];
    if (!st && snprintf(rel, sizeof rel, "%s/%s", sub, fam->name) >= (int)sizeof rel)
      st = ag_error_set(AG_ERR_INVALID, "path too long: %s", sub);
    if (!st) st = ag_sml_exp_join(dir, o->out_dir, rel);
    ag_teach_metrics m;
    ag_teacher_stats ts;
    memset(&m, 0, sizeof m);
    memset(&ts, 0, sizeof ts);
    if (!st) {
      ag_teach_options t = ag_teach_defaults();
      t.student = chat;
      t.teacher.phrasing = AG_PHRASING_HELDOUT;
      t.teacher.level = c->level;
      t.teacher.model = teacher;
      t.teacher.params.sampling.temperature = AG_SML_EXP_TEACHER_TEMPERATURE;
      t.teacher.params.max_tokens = o->train.max_tokens;
      t.teacher.params.seed = AG_SML_EVAL_SEED;
      t.student_params.sampling.temperature = o->train.eval_temperature;
      t.student_params.seed = AG_SML_EVAL_SEED;
      t.student_params.max_tokens = o->train.max_tokens;
      t.system_prompt = o->train.system_prompt ? o->train.system_prompt : ag_sml_system_prompt();
      t.turns = K;
      t.sharded = c->sharded;
      t.self_teach = c->self_teach;
      t.out_dir = dir;
      t.resume = true; /* a killed experiment continues its dialogues */
      t.batch = EVAL_BATCH;
      t.seed = AG_SML_EVAL_SEED;
      st = ag_teach_eval(&t, tasks, n, &m, &ts);
    }
    if (!st) {
      for (int k = 0; k < K; k++) solved[k] += (int64_t)llround(m.acc_at[k] * (double)m.n);
      s->acc.tasks += m.n;
      s->attempts += m.attempts;
      s->premature += (int64_t)llround(m.premature_answer_rate * (double)m.attempts);
      s->student_turns += m.student_turns;
      s->questions += (int64_t)llround(m.question_rate * (double)m.student_turns);
      s->teacher_messages += ts.messages;
      s->teacher_rejected += ts.rejected;
      s->teacher_fallbacks += ts.fallbacks;
    }
    ag_teach_metrics_clear(&m);
    for (int64_t i = 0; tasks && i < n; i++) ag_task_clear(&tasks[i]);
    free(tasks);
  }
  if (teacher) ag_chat_model_close(teacher);
  if (chat) ag_chat_model_close(chat);
  if (st) return ag_error_wrap(st, "evaluating %s", model_dir);
  for (int k = 0; k < K; k++)
    s->acc.acc_at[k] = s->acc.tasks ? (double)solved[k] / (double)s->acc.tasks : NAN;
  s->premature_rate = s->attempts ? (double)s->premature / (double)s->attempts : 0;
  s->question_rate = s->student_turns ? (double)s->questions / (double)s->student_turns : 0;
  return AG_OK;
}

ag_status ag_sml_exp_train(const ag_sml_e1_options *o, const char *base_dir, ag_sml_train_options t,
                           const char *dir) {
  char state[PATH_BYTES];
  ag_status st = ag_sml_exp_join(state, dir, "state.json");
  if (st) return st;
  t.student = base_dir;
  t.out_dir = dir;
  t.eval_tasks = 0; /* the experiment evaluates */
  t.resume = ag_file_exists(state);
  t.progress = o->progress;
  ag_sml_train_result tr;
  st = ag_sml_train(&t, &tr);
  return st ? ag_error_wrap(st, "the SML run in %s", dir) : AG_OK;
}

static ag_status e3_write(const ag_sml_e1_options *o, const char *base_dir,
                          const ag_sml_e3_result *r) {
  int K = r->turns;
  json_t *students = json_object();
  for (int i = 0; i < AG_SML_E3_STUDENTS; i++) {
    const ag_sml_eval_stats *s = &r->students[i];
    json_t *v = ag_sml_exp_acc_json(&s->acc, K);
    json_object_set_new(v, "premature_answer_rate", json_real(s->premature_rate));
    json_object_set_new(v, "question_rate", json_real(s->question_rate));
    json_object_set_new(v, "attempts", json_integer(s->attempts));
    json_object_set_new(v, "premature", json_integer(s->premature));
    json_object_set_new(v, "student_turns", json_integer(s->student_turns));
    json_object_set_new(v, "questions", json_integer(s->questions));
    json_object_set_new(students, s->name, v);
  }
  json_t *fams = json_array();
  for (int f = 0; f < r->family_count; f++)
    json_array_append_new(fams, json_string(r->families[f]));
  json_t *v =
      json_pack("{s:s, s:o, s:o, s:i, s:I, s:o, s:f}", "experiment", "e3", "students", students,
                "families", fams, "turns", K, "tasks", (json_int_t)r->students[0].acc.tasks,
                "settings", ag_sml_exp_settings_json(o, base_dir), "seconds", r->seconds);
  ag_status st = ag_sml_exp_save_json_in(o->out_dir, "results.json", v);
  ag_atomic_file *af = NULL;
  FILE *f = NULL;
  if (!st) st = ag_sml_exp_open_in(o->out_dir, "e3.csv", &af, &f);
  if (!st) {
    fprintf(f,
            "student,tasks,acc_at_1,acc_at_%d,premature_answer_rate,question_rate,attempts,"
            "student_turns\n",
            K);
    for (int i = 0; i < AG_SML_E3_STUDENTS; i++) {
      const ag_sml_eval_stats *s = &r->students[i];
      fprintf(f, "%s,%lld,%.6f,%.6f,%.6f,%.6f,%lld,%lld\n", s->name, (long long)s->acc.tasks,
              s->acc.acc_at[0], s->acc.acc_at[K - 1], s->premature_rate, s->question_rate,
              (long long)s->attempts, (long long)s->student_turns);
    }
    st = ag_atomic_commit(af);
  }
  if (!st) st = ag_sml_exp_open_in(o->out_dir, "acc_at.csv", &af, &f);
  if (!st) {
    fprintf(f, "k,base,sml,sml_qp\n");
    for (int k = 0; k < K; k++)
      fprintf(f, "%d,%.6f,%.6f,%.6f\n", k + 1, r->students[0].acc.acc_at[k],
              r->students[1].acc.acc_at[k], r->students[2].acc.acc_at[k]);
    st = ag_atomic_commit(af);
  }
  if (!st) st = ag_sml_exp_open_in(o->out_dir, "plot.gp", &af, &f);
  if (!st) {
    fprintf(f,
            "# Renders acc_at.svg from acc_at.csv and e3.csv: gnuplot "
            "plot.gp\n" AG_SML_EXP_PLOT_PREAMBLE
            "set multiplot layout 1,2 title 'E3: underspecified (sharded) held-out tasks'\n"
            "set key top left\n"
            "set xlabel 'k (student turns)'\n"
            "set ylabel 'acc@k'\n"
            "set xrange [0.5:%d.5]\n"
            "set yrange [0:*]\n"
            "plot 'acc_at.csv' skip 1 using 1:2 with linespoints lw 2 title 'base', \\\n"
            "     '' skip 1 using 1:3 with linespoints lw 2 title 'SML', \\\n"
            "     '' skip 1 using 1:4 with linespoints lw 2 title 'SML + Q-priming'\n"
            "set style data histograms\n"
            "set style fill solid 0.6\n"
            "set xrange [*:*]\n"
            "set yrange [0:1]\n"
            "set xlabel ''\n"
            "set ylabel 'rate'\n"
            "set key top right\n"
            "plot 'e3.csv' skip 1 using 5:xtic(1) title 'premature answers', \\\n"
            "     '' skip 1 using 6 title 'questions'\n"
            "unset multiplot\n",
            K);
    st = ag_atomic_commit(af);
  }
  if (!st) st = ag_sml_exp_open_in(o->out_dir, "report.md", &af, &f);
  if (st) return st;
  const ag_sml_train_options *t = &o->train;
  fprintf(f,
          "# E3: underspecified tasks\n\n"
          "Claim (PAPERS.md §1): although trained on fully specified problems, SML students do\n"
          "better on underspecified problems whose information is revealed over turns: fewer\n"
          "premature answer attempts, more questions (with question priming, asking is a move\n"
          "the student has been shown).\n\n"
          "Setup: base student `%s`; SML %s, %d round(s) of %lld fully specified dialogues\n"
          "(OUT/sml), and the same after a question-priming stage (OUT/sml-qp, decay %.2f).\n"
          "Evaluation: %lld held-out tasks per family of %s (level %d), sharded: the teacher\n"
          "states the goal and reveals one more piece of the problem a turn; held-out\n"
          "phrasings, %s replies, up to %d student turns. An attempt made while a required\n"
          "piece is still hidden is premature.\n\n",
          base_dir, t->mode == AG_SML_GRPO ? "GRPO" : "offline", t->rounds,
          (long long)t->tasks_per_round, t->priming_decay, (long long)t->eval_tasks,
          t->families ? t->families : ag_sml_default_families(), t->level,
          t->eval_temperature > 0 ? "sampled" : "greedy", K);
  fprintf(f,
          "| student | tasks | acc@1 | acc@%d | premature answers | questions |\n"
          "|---|---|---|---|---|---|\n",
          K);
  char a[16], b[16];
  for (int i = 0; i < AG_SML_E3_STUDENTS; i++) {
    const ag_sml_eval_stats *s = &r->students[i];
    ag_sml_exp_fmt_acc(a, sizeof a, s->acc.acc_at[0]);
    ag_sml_exp_fmt_acc(b, sizeof b, s->acc.acc_at[K - 1]);
    fprintf(f,
            "| %s | %lld | %s | %s | %.3f (%lld of %lld attempts) | %.3f (%lld of %lld turns) |\n",
            s->name, (long long)s->acc.tasks, a, b, s->premature_rate, (long long)s->premature,
            (long long)s->attempts, s->question_rate, (long long)s->questions,
            (long long)s->student_turns);
  }
  const ag_sml_eval_stats *base = &r->students[0];
  fprintf(f, "\nVerdict at this scale, against the base student:\n\n");
  for (int i = 1; i < AG_SML_E3_STUDENTS; i++) {
    const ag_sml_eval_stats *s = &r->students[i];
    fprintf(f,
            "- %s: premature answers %s (%.3f vs %.3f), questions %s (%.3f vs %.3f), acc@%d "
            "%s (%.3f vs %.3f).\n",
            s->name, s->premature_rate < base->premature_rate ? "fewer" : "not fewer",
            s->premature_rate, base->premature_rate,
            s->question_rate > base->question_rate ? "more" : "not more", s->question_rate,
            base->question_rate, K,
            s->acc.acc_at[K - 1] > base->acc.acc_at[K - 1] ? "higher" : "not higher",
            s->acc.acc_at[K - 1], base->acc.acc_at[K - 1]);
  }
  fprintf(f, "\nFiles: results.json, e3.csv, acc_at.csv, plot.gp -> acc_at.svg; the dialogues in\n"
             "eval/<student>/<family>/transcripts.jsonl.\n");
  return ag_atomic_commit(af);
}

ag_status ag_sml_e3(const ag_sml_e1_options *o, ag_sml_e3_result *r) {
  memset(r, 0, sizeof *r);
  double started = ag_time_seconds();
  if (o && o->train.lora.rank > 0)
    return ag_error_set(AG_ERR_INVALID,
                        "sml e3: evaluates fine-tuned model folders; LoRA runs are not supported");
  char base_dir[PATH_BYTES], dirs[AG_SML_E3_STUDENTS][PATH_BYTES];
  ag_status st = ag_sml_exp_prepare(o, "e3", base_dir, &r->pretrained);
  if (st) return ag_error_wrap(st, "sml e3");
  const ag_task_family *parsed[AG_SML_MAX_FAMILIES];
  st = ag_sml_parse_families(o->train.eval_families ? o->train.eval_families : o->train.families,
                             parsed, AG_SML_MAX_FAMILIES, &r->family_count);
  for (int f = 0; f < r->family_count; f++)
    snprintf(r->families[f], sizeof r->families[f], "%s", parsed[f]->name);
  r->turns = o->train.eval_turns;
  static const char *const names[AG_SML_E3_STUDENTS] = {"base", "sml", "sml-qp"};
  snprintf(dirs[0], PATH_BYTES, "%s", base_dir);
  for (int i = 1; i < AG_SML_E3_STUDENTS && !st; i++) {
    st = ag_sml_exp_join(dirs[i], o->out_dir, names[i]);
    if (st) break;
    ag_sml_train_options t = o->train;
    t.q_priming = i == 2;
    ag_info("sml e3: SML%s into %s", t.q_priming ? " with question priming" : "", dirs[i]);
    st = ag_sml_exp_train(o, base_dir, t, dirs[i]);
  }
  const ag_sml_exp_condition sharded = {.sharded = true, .level = AG_FEEDBACK_DIRECTIONAL};
  for (int i = 0; i < AG_SML_E3_STUDENTS && !st; i++) {
    char sub[64];
    snprintf(sub, sizeof sub, "eval/%s", names[i]);
    r->students[i].name = names[i];
    st = ag_sml_exp_evaluate(o, dirs[i], sub, &sharded, (const char(*)[16])r->families,
                             r->family_count, &r->students[i]);
  }
  if (st) return ag_error_wrap(st, "sml e3");
  r->seconds = ag_time_seconds() - started;
  st = e3_write(o, base_dir, r);
  if (!st) ag_plot_render(o->out_dir, "plot.gp");
  return st;
}
