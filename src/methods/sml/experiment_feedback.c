/* The SML experiments about the feedback itself (agora/sml_exp.h): E4,
 * self-correction — whether a student trained to predict its teacher's
 * critiques can correct itself with no teacher — and E5, feedback quality —
 * how much the content of the feedback matters. Both are grids: every
 * student under every evaluation condition, on the same held-out tasks.
 *
 *   OUT/experiment.json   the settings (a second fresh run refuses the folder)
 *   OUT/base/             the base student, when the experiment pretrains it
 *   OUT/sml/, OUT/sml-fp/ the SML runs (E4: both; E5: sml)
 *   OUT/eval/<student>/<condition>/<family>/transcripts.jsonl
 *   OUT/report.md, results.json, e4.csv|e5.csv, acc_at.csv, plot.gp, acc_at.svg */
#include "agora/sml_exp.h"
#include "methods/sml/experiment_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_BYTES AG_SML_EXP_PATH_BYTES

/* One grid: its students (index 0 is the base student) and conditions. */
typedef struct grid_spec {
  const char *experiment; /* "e4", "e5" */
  const char *title;      /* the plot's: "E4 self-correction" */
  int student_count, condition_count;
  const char *students[AG_SML_GRID_MAX];
  const char *train_names[AG_SML_GRID_MAX]; /* per SML student; NULL: the options' */
  const char *conditions[AG_SML_GRID_MAX];
  ag_sml_exp_condition how[AG_SML_GRID_MAX];
} grid_spec;

/* Zeroes *r, refuses LoRA runs, and prepares the folder and the base
 * student (ag_sml_exp_prepare). */
static ag_status start(const ag_sml_e1_options *o, const char *experiment, char *base_dir,
                       ag_sml_grid_result *r) {
  memset(r, 0, sizeof *r);
  if (!o) return ag_error_set(AG_ERR_INVALID, "sml %s: no options", experiment);
  if (o->train.lora.rank > 0)
    return ag_error_set(AG_ERR_INVALID,
                        "sml %s: evaluates fine-tuned model folders; LoRA runs are not supported",
                        experiment);
  return ag_sml_exp_prepare(o, experiment, base_dir, &r->pretrained);
}

/* The SML runs and every evaluation of the grid, from the base student. */
static ag_status run_grid(const ag_sml_e1_options *o, const grid_spec *g, const char *base_dir,
                          ag_sml_grid_result *r) {
  ag_status st = AG_OK;
  const ag_task_family *parsed[AG_SML_MAX_FAMILIES];
  st = ag_sml_parse_families(o->train.eval_families ? o->train.eval_families : o->train.families,
                             parsed, AG_SML_MAX_FAMILIES, &r->family_count);
  if (st) return st;
  for (int f = 0; f < r->family_count; f++)
    snprintf(r->families[f], sizeof r->families[f], "%s", parsed[f]->name);
  r->turns = o->train.eval_turns;
  r->student_count = g->student_count;
  r->condition_count = g->condition_count;
  char dirs[AG_SML_GRID_MAX][PATH_BYTES];
  snprintf(dirs[0], PATH_BYTES, "%s", base_dir);
  for (int i = 1; i < g->student_count && !st; i++) {
    st = ag_sml_exp_join(dirs[i], o->out_dir, g->students[i]);
    if (st) break;
    ag_sml_train_options t = o->train;
    if (g->train_names[i]) t.train_names = g->train_names[i];
    ag_info("sml %s: SML (training on the turns of %s) into %s", g->experiment,
            t.train_names ? t.train_names : "student", dirs[i]);
    st = ag_sml_exp_train(o, base_dir, t, dirs[i]);
  }
  for (int i = 0; i < g->student_count && !st; i++)
    for (int c = 0; c < g->condition_count && !st; c++) {
      char sub[PATH_BYTES];
      snprintf(sub, sizeof sub, "eval/%s/%s", g->students[i], g->conditions[c]);
      ag_info("sml %s: the %s student, %s", g->experiment, g->students[i], g->conditions[c]);
      r->conditions[c] = g->conditions[c];
      r->cells[i][c].name = g->students[i];
      st = ag_sml_exp_evaluate(o, dirs[i], sub, &g->how[c], (const char(*)[16])r->families,
                               r->family_count, &r->cells[i][c]);
    }
  return st;
}

/* results.json, <experiment>.csv, acc_at.csv and plot.gp of a grid. */
static ag_status write_tables(const ag_sml_e1_options *o, const char *base_dir, const grid_spec *g,
                              const ag_sml_grid_result *r) {
  int K = r->turns;
  json_t *cells = json_array(), *students = json_array(), *conditions = json_array(),
         *fams = json_array();
  for (int i = 0; i < r->student_count; i++)
    json_array_append_new(students, json_string(g->students[i]));
  for (int c = 0; c < r->condition_count; c++)
    json_array_append_new(conditions, json_string(g->conditions[c]));
  for (int f = 0; f < r->family_count; f++)
    json_array_append_new(fams, json_string(r->families[f]));
  for (int i = 0; i < r->student_count; i++)
    for (int c = 0; c < r->condition_count; c++) {
      const ag_sml_eval_stats *s = &r->cells[i][c];
      json_t *v = ag_sml_exp_acc_json(&s->acc, K);
      json_object_set_new(v, "student", json_string(g->students[i]));
      json_object_set_new(v, "condition", json_string(g->conditions[c]));
      json_object_set_new(v, "question_rate", json_real(s->question_rate));
      json_object_set_new(v, "student_turns", json_integer(s->student_turns));
      json_object_set_new(v, "teacher_messages", json_integer(s->teacher_messages));
      json_object_set_new(v, "teacher_rejected", json_integer(s->teacher_rejected));
      json_object_set_new(v, "teacher_fallbacks", json_integer(s->teacher_fallbacks));
      json_array_append_new(cells, v);
    }
  json_t *v =
      json_pack("{s:s, s:o, s:o, s:o, s:o, s:i, s:I, s:o, s:f}", "experiment", g->experiment,
                "students", students, "conditions", conditions, "cells", cells, "families", fams,
                "turns", K, "tasks", (json_int_t)r->cells[0][0].acc.tasks, "settings",
                ag_sml_exp_settings_json(o, base_dir), "seconds", r->seconds);
  if (v && r->teacher_model) json_object_set_new(v, "teacher_model", json_string(r->teacher_model));
  ag_status st = ag_sml_exp_save_json_in(o->out_dir, "results.json", v);
  char name[16];
  snprintf(name, sizeof name, "%s.csv", g->experiment);
  ag_atomic_file *af = NULL;
  FILE *f = NULL;
  if (!st) st = ag_sml_exp_open_in(o->out_dir, name, &af, &f);
  if (!st) {
    fprintf(f,
            "student,condition,tasks,acc_at_1,acc_at_%d,question_rate,teacher_messages,"
            "teacher_rejected,teacher_fallbacks\n",
            K);
    for (int i = 0; i < r->student_count; i++)
      for (int c = 0; c < r->condition_count; c++) {
        const ag_sml_eval_stats *s = &r->cells[i][c];
        fprintf(f, "%s,%s,%lld,%.6f,%.6f,%.6f,%lld,%lld,%lld\n", g->students[i], g->conditions[c],
                (long long)s->acc.tasks, s->acc.acc_at[0], s->acc.acc_at[K - 1], s->question_rate,
                (long long)s->teacher_messages, (long long)s->teacher_rejected,
                (long long)s->teacher_fallbacks);
      }
    st = ag_atomic_commit(af);
  }
  if (!st) st = ag_sml_exp_open_in(o->out_dir, "acc_at.csv", &af, &f);
  if (!st) {
    fprintf(f, "k");
    for (int i = 0; i < r->student_count; i++)
      for (int c = 0; c < r->condition_count; c++)
        fprintf(f, ",%s/%s", g->students[i], g->conditions[c]);
    fprintf(f, "\n");
    for (int k = 0; k < K; k++) {
      fprintf(f, "%d", k + 1);
      for (int i = 0; i < r->student_count; i++)
        for (int c = 0; c < r->condition_count; c++)
          fprintf(f, ",%.6f", r->cells[i][c].acc.acc_at[k]);
      fprintf(f, "\n");
    }
    st = ag_atomic_commit(af);
  }
  if (!st) st = ag_sml_exp_open_in(o->out_dir, "plot.gp", &af, &f);
  if (st) return st;
  /* One panel per student, a line per condition. */
  fprintf(f,
          "# Renders acc_at.svg from acc_at.csv: gnuplot plot.gp\n" AG_SML_EXP_PLOT_PREAMBLE
          "set key top left\n"
          "set xlabel 'k (student turns)'\n"
          "set ylabel 'acc@k'\n"
          "set xrange [0.5:%d.5]\n"
          "set yrange [0:*]\n"
          "set multiplot layout 1,%d title '%s: acc@k on %lld held-out tasks'\n",
          K, r->student_count, g->title, (long long)r->cells[0][0].acc.tasks);
  for (int i = 0; i < r->student_count; i++) {
    fprintf(f, "set title '%s student'\nplot ", g->students[i]);
    for (int c = 0; c < r->condition_count; c++)
      fprintf(f, "%s'acc_at.csv' skip 1 using 1:%d with linespoints lw 2 title '%s'",
              c ? ", \\\n     " : "", 2 + i * r->condition_count + c, g->conditions[c]);
    fprintf(f, "\n");
  }
  fprintf(f, "unset multiplot\n");
  return ag_atomic_commit(af);
}

/* The report's common part: setup lines are the caller's; this writes the
 * acc@1 / acc@K table, a cell per student and condition. */
static void write_grid_table(FILE *f, const grid_spec *g, const ag_sml_grid_result *r) {
  int K = r->turns;
  fprintf(f, "| student |");
  for (int c = 0; c < r->condition_count; c++)
    fprintf(f, " %s acc@1 | %s acc@%d |", g->conditions[c], g->conditions[c], K);
  fprintf(f, "\n|---|");
  for (int c = 0; c < r->condition_count; c++) fprintf(f, "---|---|");
  fprintf(f, "\n");
  char a[16], b[16];
  for (int i = 0; i < r->student_count; i++) {
    fprintf(f, "| %s |", g->students[i]);
    for (int c = 0; c < r->condition_count; c++) {
      ag_sml_exp_fmt_acc(a, sizeof a, r->cells[i][c].acc.acc_at[0]);
      ag_sml_exp_fmt_acc(b, sizeof b, r->cells[i][c].acc.acc_at[K - 1]);
      fprintf(f, " %s | %s |", a, b);
    }
    fprintf(f, "\n");
  }
  fprintf(f, "\nWith %lld tasks per cell, one task is %.3f of the accuracy.\n\n",
          (long long)r->cells[0][0].acc.tasks,
          r->cells[0][0].acc.tasks ? 1.0 / (double)r->cells[0][0].acc.tasks : NAN);
}

/* Tasks solved within K turns by one cell. */
static int64_t solved(const ag_sml_grid_result *r, int student, int condition) {
  const ag_sml_acc *a = &r->cells[student][condition].acc;
  return (int64_t)llround(a->acc_at[r->turns - 1] * (double)a->tasks);
}

static const char *more_fewer(int64_t a, int64_t b) {
  return a > b ? "more than" : a < b ? "fewer than" : "as many as";
}

typedef ag_status (*grid_report)(const ag_sml_e1_options *o, const char *base_dir,
                                 const grid_spec *g, const ag_sml_grid_result *r);

/* After the grid ran: its time, the tables, the report and the plot. */
static ag_status finish(const ag_sml_e1_options *o, const char *base_dir, const grid_spec *g,
                        ag_sml_grid_result *r, double started, grid_report report) {
  r->seconds = ag_time_seconds() - started;
  ag_status st = write_tables(o, base_dir, g, r);
  if (!st) st = report(o, base_dir, g, r);
  if (!st) ag_plot_render(o->out_dir, "plot.gp");
  return st;
}

/* ---- E4 ----------------------------------------------------------------------------------- */

enum { E4_BASE, E4_SML, E4_FP };
enum { E4_TEACHER, E4_SELF };

static const grid_spec E4_GRID = {
    .experiment = "e4",
    .title = "E4 self-correction",
    .student_count = 3,
    .condition_count = 2,
    .students = {"base", "sml", "sml-fp"},
    .train_names = {NULL, "student", "student,teacher"},
    .conditions = {"teacher", "self-teach"},
    .how = {{.level = AG_FEEDBACK_DIRECTIONAL}, {.self_teach = true}},
};

static ag_status e4_report(const ag_sml_e1_options *o, const char *base_dir, const grid_spec *g,
                           const ag_sml_grid_result *r) {
  ag_atomic_file *af = NULL;
  FILE *f = NULL;
  ag_status st = ag_sml_exp_open_in(o->out_dir, "report.md", &af, &f);
  if (st) return st;
  const ag_sml_train_options *t = &o->train;
  int K = r->turns;
  fprintf(f,
          "# E4: self-correction\n\n"
          "Claim (PAPERS.md §2): a student trained also to predict the teacher's critiques\n"
          "(teacher turns in the loss, without the teacher's private solution in context) can,\n"
          "at test time, write its own critique and revise, with no teacher.\n\n"
          "Setup: base student `%s`; two SML runs from it (%s, %d round(s) of %lld dialogues,\n"
          "up to %d student turns, training phrasings): `sml` trains on the student's turns,\n"
          "`sml-fp` on the student's and the teacher's (feedback prediction). Each student is\n"
          "evaluated with the programmatic teacher (directional feedback, held-out phrasings)\n"
          "and self-teaching (after the problem, every teacher turn is written by the student\n"
          "itself), on %lld held-out tasks per family of %s (level %d), %s replies, up to %d\n"
          "student turns; the verifier ends a dialogue at its first correct answer.\n\n",
          base_dir, t->mode == AG_SML_GRPO ? "GRPO" : "offline", t->rounds,
          (long long)t->tasks_per_round, t->train_turns, (long long)t->eval_tasks,
          t->families ? t->families : ag_sml_default_families(), t->level,
          t->eval_temperature > 0 ? "sampled" : "greedy", K);
  write_grid_table(f, g, r);
  int64_t fp_self = solved(r, E4_FP, E4_SELF), sml_self = solved(r, E4_SML, E4_SELF);
  int64_t fp_teacher = solved(r, E4_FP, E4_TEACHER);
  int64_t fp_first = (int64_t)llround(r->cells[E4_FP][E4_SELF].acc.acc_at[0] *
                                      (double)r->cells[E4_FP][E4_SELF].acc.tasks);
  char share[48];
  if (fp_teacher > 0)
    snprintf(share, sizeof share, "%.0f%%", 100.0 * (double)fp_self / (double)fp_teacher);
  else
    snprintf(share, sizeof share, "- (it solves none with the teacher)");
  fprintf(f,
          "Verdict at this scale (tasks solved within %d turns):\n\n"
          "- self-teaching after feedback prediction solves %lld, %s without it (%lld): %s;\n"
          "- of these, %lld after a revision (solved at turn 1: %lld);\n"
          "- with the teacher the same student solves %lld: self-teaching reaches %s of that.\n\n",
          K, (long long)fp_self, more_fewer(fp_self, sml_self), (long long)sml_self,
          fp_self > sml_self ? "feedback prediction helps self-correction here"
                             : "the claim does not reproduce here",
          (long long)(fp_self - fp_first), (long long)fp_first, (long long)fp_teacher, share);
  fprintf(f, "Files: results.json, e4.csv, acc_at.csv, plot.gp -> acc_at.svg; the dialogues in\n"
             "eval/<student>/<condition>/<family>/transcripts.jsonl (teacher \"self\" when the\n"
             "student wrote the critiques).\n");
  return ag_atomic_commit(af);
}

ag_status ag_sml_e4(const ag_sml_e1_options *o, ag_sml_grid_result *r) {
  double started = ag_time_seconds();
  char base_dir[PATH_BYTES];
  ag_status st = start(o, "e4", base_dir, r);
  if (!st) st = run_grid(o, &E4_GRID, base_dir, r);
  if (st) return ag_error_wrap(st, "sml e4");
  return finish(o, base_dir, &E4_GRID, r, started, e4_report);
}

/* ---- E5 ----------------------------------------------------------------------------------- */

enum { E5_BINARY, E5_DIRECTIONAL, E5_LOCALISED, E5_LLM };

static ag_status e5_report(const ag_sml_e1_options *o, const char *base_dir, const grid_spec *g,
                           const ag_sml_grid_result *r) {
  ag_atomic_file *af = NULL;
  FILE *f = NULL;
  ag_status st = ag_sml_exp_open_in(o->out_dir, "report.md", &af, &f);
  if (st) return st;
  const ag_sml_train_options *t = &o->train;
  int K = r->turns;
  fprintf(f,
          "# E5: feedback quality\n\n"
          "Question (PAPERS.md §1-2 rest on it): how much does what the teacher says matter?\n"
          "The same students with binary feedback (\"not correct\"), directional feedback\n"
          "(which way to go), localised feedback (where it goes wrong) and an LLM teacher\n"
          "(`%s`, prompted with the answer and the worked solution behind a leak guard).\n\n"
          "Setup: base student `%s` and one SML run from it (%s, %d round(s) of %lld\n"
          "dialogues, directional feedback in training); %lld held-out tasks per family of %s\n"
          "(level %d), held-out phrasings, %s replies, up to %d student turns.\n\n",
          r->teacher_model, base_dir, t->mode == AG_SML_GRPO ? "GRPO" : "offline", t->rounds,
          (long long)t->tasks_per_round, (long long)t->eval_tasks,
          t->families ? t->families : ag_sml_default_families(), t->level,
          t->eval_temperature > 0 ? "sampled" : "greedy", K);
  write_grid_table(f, g, r);
  fprintf(f, "Verdict at this scale (tasks solved within %d turns):\n\n", K);
  for (int i = 0; i < r->student_count; i++) {
    int64_t b = solved(r, i, E5_BINARY), d = solved(r, i, E5_DIRECTIONAL);
    int64_t l = solved(r, i, E5_LOCALISED), m = solved(r, i, E5_LLM);
    fprintf(f,
            "- %s student: binary %lld, directional %lld, localised %lld, LLM teacher %lld: "
            "informative feedback %s.\n",
            g->students[i], (long long)b, (long long)d, (long long)l, (long long)m,
            d > b && l > b   ? "beats binary feedback"
            : d > b || l > b ? "beats binary feedback at one level only"
                             : "does not beat binary feedback here");
  }
  const ag_sml_eval_stats *llm = &r->cells[0][E5_LLM];
  fprintf(f,
          "\nLLM teacher (base student's run): %lld messages, %lld replies rejected by the leak\n"
          "guard, %lld replaced by programmatic directional feedback.\n\n",
          (long long)llm->teacher_messages, (long long)llm->teacher_rejected,
          (long long)llm->teacher_fallbacks);
  fprintf(f, "Files: results.json, e5.csv, acc_at.csv, plot.gp -> acc_at.svg; the dialogues in\n"
             "eval/<student>/<condition>/<family>/transcripts.jsonl.\n");
  return ag_atomic_commit(af);
}

ag_status ag_sml_e5(const ag_sml_e1_options *o, ag_sml_grid_result *r) {
  double started = ag_time_seconds();
  char base_dir[PATH_BYTES];
  grid_spec g = {
      .experiment = "e5",
      .title = "E5 feedback quality",
      .student_count = 2,
      .condition_count = 4,
      .students = {"base", "sml"},
      .conditions = {"binary", "directional", "localised", "llm"},
      .how = {{.level = AG_FEEDBACK_BINARY},
              {.level = AG_FEEDBACK_DIRECTIONAL},
              {.level = AG_FEEDBACK_LOCALISED},
              /* the LLM teacher falls back to directional feedback */
              {.level = AG_FEEDBACK_DIRECTIONAL}},
  };
  /* The default LLM teacher is the base student, known once it is ready. */
  ag_status st = start(o, "e5", base_dir, r);
  if (st) return ag_error_wrap(st, "sml e5");
  g.how[E5_LLM].teacher_model = o->teacher_model ? o->teacher_model : base_dir;
  r->teacher_model = o->teacher_model ? o->teacher_model : "the base student";
  st = run_grid(o, &g, base_dir, r);
  if (st) return ag_error_wrap(st, "sml e5");
  return finish(o, base_dir, &g, r, started, e5_report);
}
