/* `agora sml e1|e2|e3|e4|e5`: the SML experiments. Flag parsing and output only; the
 * work is in libagora (agora/sml_exp.h). */
#include "agora/sml_exp.h"

#include "agora/json.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/sml_cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FLAGS 48

static const char E1_EPILOG[] =
    "E1, multi-turn learning: pretrains the base student into OUT/base unless --base names\n"
    "one (or OUT/base holds a finished one), runs `sml train` from it into OUT/sml, and\n"
    "compares acc@1..K of the base and the SML student on held-out tasks of the training\n"
    "families (held-out teacher phrasings, greedy), over all tasks and over the tasks the\n"
    "base student fails at turn 1. The training flags are those of `agora sml train`; here\n"
    "--level defaults to 1 (the base student's level), --tasks-per-round to 64 and\n"
    "--eval-tasks to 20 per family.\n\n"
    "Writes OUT/report.md, OUT/results.json (base.acc_at, sml.acc_at, tasks, families,\n"
    "base_fails_at_1), OUT/acc_at.csv, OUT/families.csv and OUT/plot.gp (rendered to\n"
    "OUT/acc_at.svg when gnuplot is installed). --resume continues a killed experiment;\n"
    "each stage resumes where it stopped. See docs/sml.md.\n";

static void print_text(const ag_sml_e1_result *r, const char *out) {
  printf("sml e1: %s, %lld held-out tasks (%lld the base student fails at turn 1), %.1f s\n", out,
         (long long)r->base.tasks, (long long)r->base_hard.tasks, r->seconds);
  printf("%-6s %8s %8s %10s %10s\n", "k", "base", "sml", "base-hard", "sml-hard");
  for (int k = 0; k < r->turns; k++)
    printf("acc@%-2d %8.3f %8.3f %10.3f %10.3f\n", k + 1, r->base.acc_at[k], r->sml.acc_at[k],
           r->base_hard.acc_at[k], r->sml_hard.acc_at[k]);
  printf("report: %s/report.md\n", out);
}

static json_t *acc_array(const ag_sml_acc *a, int turns) {
  json_t *v = json_array();
  for (int k = 0; k < turns; k++)
    json_array_append_new(v, isfinite(a->acc_at[k]) ? json_real(a->acc_at[k]) : json_null());
  return v;
}

static int print_json(const ag_sml_e1_result *r, const char *out) {
  json_t *o = json_pack("{s:o, s:o, s:o, s:o, s:I, s:I, s:i, s:f, s:s}", "base_acc_at",
                        acc_array(&r->base, r->turns), "sml_acc_at", acc_array(&r->sml, r->turns),
                        "base_hard_acc_at", acc_array(&r->base_hard, r->turns), "sml_hard_acc_at",
                        acc_array(&r->sml_hard, r->turns), "tasks", (json_int_t)r->base.tasks,
                        "hard_tasks", (json_int_t)r->base_hard.tasks, "turns", r->turns, "seconds",
                        r->seconds, "out", out);
  return ag_cli_print_json(o, 0);
}

static const char E2_EPILOG[] =
    "E2, transfer across domains: the base student as in E1 (pretrained on every family\n"
    "into OUT/base unless --base names one), then two SML runs from it: on the math\n"
    "families (arith, algebra) evaluated on code, maze and puzzle (OUT/math-to-others), and\n"
    "on code evaluated on arith and algebra (OUT/code-to-math). Each compares acc@1..K of\n"
    "the base and the SML student on the families it was not trained on. The training\n"
    "flags are those of `agora sml e1` (--families and --eval-families are fixed here).\n\n"
    "Writes OUT/report.md, OUT/results.json (directions[]: name, train, eval, base.acc_at,\n"
    "sml.acc_at, families), OUT/transfer.csv, OUT/acc_at.csv and OUT/plot.gp (rendered to\n"
    "OUT/acc_at.svg when gnuplot is installed). --resume continues a killed experiment.\n"
    "See docs/sml.md.\n";

static void print_e2(const ag_sml_e2_result *r, const char *out) {
  printf("sml e2: %s, %.1f s\n", out, r->seconds);
  for (int i = 0; i < AG_SML_E2_DIRECTIONS; i++) {
    const ag_sml_e1_result *d = &r->direction[i];
    int K = d->turns;
    printf("%-16s (trained on %s) %lld tasks: acc@1 %.3f -> %.3f, acc@%d %.3f -> %.3f\n",
           r->names[i], r->train[i], (long long)d->base.tasks, d->base.acc_at[0], d->sml.acc_at[0],
           K, d->base.acc_at[K - 1], d->sml.acc_at[K - 1]);
  }
  printf("report: %s/report.md\n", out);
}

static int print_e2_json(const ag_sml_e2_result *r, const char *out) {
  json_t *dirs = json_array();
  for (int i = 0; i < AG_SML_E2_DIRECTIONS; i++) {
    const ag_sml_e1_result *d = &r->direction[i];
    json_array_append_new(dirs, json_pack("{s:s, s:s, s:o, s:o, s:I}", "name", r->names[i], "train",
                                          r->train[i], "base_acc_at", acc_array(&d->base, d->turns),
                                          "sml_acc_at", acc_array(&d->sml, d->turns), "tasks",
                                          (json_int_t)d->base.tasks));
  }
  json_t *o = json_pack("{s:o, s:f, s:s}", "directions", dirs, "seconds", r->seconds, "out", out);
  return ag_cli_print_json(o, 0);
}

static const char E3_EPILOG[] =
    "E3, underspecified tasks: the base student as in E1, then two SML runs from it on fully\n"
    "specified tasks (OUT/sml, and OUT/sml-qp with a question-priming stage first; see\n"
    "--priming-decay, --priming-tasks), then all three students on the same sharded\n"
    "held-out tasks, where the teacher states the goal and reveals one more piece of the\n"
    "problem a turn: premature-answer rate, question rate and acc@1..K. The training flags\n"
    "are those of `agora sml e1` (--q-priming is implied for the second run).\n\n"
    "Writes OUT/report.md, OUT/results.json (students: base, sml, sml-qp, each with acc_at,\n"
    "premature_answer_rate, question_rate and counts), OUT/e3.csv, OUT/acc_at.csv and\n"
    "OUT/plot.gp (rendered to OUT/acc_at.svg). --resume continues a killed experiment.\n"
    "See docs/sml.md.\n";

static void print_e3(const ag_sml_e3_result *r, const char *out) {
  printf("sml e3: %s, %lld sharded held-out tasks, %.1f s\n", out,
         (long long)r->students[0].acc.tasks, r->seconds);
  printf("%-8s %8s %8s %10s %10s\n", "student", "acc@1", "acc@K", "premature", "questions");
  for (int i = 0; i < AG_SML_E3_STUDENTS; i++) {
    const ag_sml_eval_stats *s = &r->students[i];
    printf("%-8s %8.3f %8.3f %10.3f %10.3f\n", s->name, s->acc.acc_at[0],
           s->acc.acc_at[r->turns - 1], s->premature_rate, s->question_rate);
  }
  printf("report: %s/report.md\n", out);
}

static int print_e3_json(const ag_sml_e3_result *r, const char *out) {
  json_t *students = json_object();
  for (int i = 0; i < AG_SML_E3_STUDENTS; i++) {
    const ag_sml_eval_stats *s = &r->students[i];
    json_object_set_new(students, s->name,
                        json_pack("{s:o, s:f, s:f, s:I}", "acc_at", acc_array(&s->acc, r->turns),
                                  "premature_answer_rate", s->premature_rate, "question_rate",
                                  s->question_rate, "tasks", (json_int_t)s->acc.tasks));
  }
  json_t *o = json_pack("{s:o, s:f, s:s}", "students", students, "seconds", r->seconds, "out", out);
  return ag_cli_print_json(o, 0);
}

static const char E4_EPILOG[] =
    "E4, self-correction: the base student as in E1, then two SML runs from it: OUT/sml\n"
    "trained on the student's turns and OUT/sml-fp trained also on the teacher's turns\n"
    "(feedback prediction; the teacher's private solution is never in the context). The\n"
    "three students are evaluated on the same held-out tasks with the programmatic teacher\n"
    "and with self-teaching (the student writes every critique itself, then revises; see\n"
    "`agora teach eval --self-teach`). The training flags are those of `agora sml e1`\n"
    "(--train-names is fixed per run here).\n\n"
    "Writes OUT/report.md, OUT/results.json (cells[]: student, condition, acc_at, tasks),\n"
    "OUT/e4.csv, OUT/acc_at.csv and OUT/plot.gp (rendered to OUT/acc_at.svg). --resume\n"
    "continues a killed experiment. See docs/sml.md.\n";

static const char E5_EPILOG[] =
    "E5, feedback quality: the base student as in E1 and one SML run from it (OUT/sml),\n"
    "each evaluated on the same held-out tasks with binary, directional and localised\n"
    "programmatic feedback and with an LLM teacher (--teacher-model; by default the base\n"
    "student itself, prompted with the answer and the worked solution behind the leak\n"
    "guard). The training flags are those of `agora sml e1`.\n\n"
    "Writes OUT/report.md, OUT/results.json (cells[]: student, condition, acc_at, tasks,\n"
    "teacher_rejected, teacher_fallbacks), OUT/e5.csv, OUT/acc_at.csv and OUT/plot.gp\n"
    "(rendered to OUT/acc_at.svg). --resume continues a killed experiment. See docs/sml.md.\n";

static void print_grid(const ag_sml_grid_result *r, const char *name, const char *out) {
  printf("sml %s: %s, %lld held-out tasks per cell, %.1f s\n", name, out,
         (long long)r->cells[0][0].acc.tasks, r->seconds);
  printf("%-8s %-12s %8s %8s\n", "student", "condition", "acc@1", "acc@K");
  for (int i = 0; i < r->student_count; i++)
    for (int c = 0; c < r->condition_count; c++)
      printf("%-8s %-12s %8.3f %8.3f\n", r->cells[i][c].name, r->conditions[c],
             r->cells[i][c].acc.acc_at[0], r->cells[i][c].acc.acc_at[r->turns - 1]);
  printf("report: %s/report.md\n", out);
}

static int print_grid_json(const ag_sml_grid_result *r, const char *out) {
  json_t *cells = json_array();
  for (int i = 0; i < r->student_count; i++)
    for (int c = 0; c < r->condition_count; c++)
      json_array_append_new(cells, json_pack("{s:s, s:s, s:o, s:I}", "student", r->cells[i][c].name,
                                             "condition", r->conditions[c], "acc_at",
                                             acc_array(&r->cells[i][c].acc, r->turns), "tasks",
                                             (json_int_t)r->cells[i][c].acc.tasks));
  json_t *o = json_pack("{s:o, s:f, s:s}", "cells", cells, "seconds", r->seconds, "out", out);
  return ag_cli_print_json(o, 0);
}

/* which: 1 to 5 (E2 fixes its families, E4 its training names). */
static int run_experiment(int argc, char **argv, int which) {
  bool e2 = which == 2;
  ag_sml_e1_options e = ag_sml_e1_defaults();
  ag_sml_train_cli t;
  ag_common_flags common = {0};
  ag_flag table[MAX_FLAGS];
  int c = 0;
  table[c++] = (ag_flag){.name = "out",
                         .type = AG_FLAG_STRING,
                         .value = &e.out_dir,
                         .metavar = "DIR",
                         .help = "the report folder",
                         .required = true};
  table[c++] = (ag_flag){.name = "base",
                         .type = AG_FLAG_STRING,
                         .value = &e.base,
                         .metavar = "DIR",
                         .default_text = "pretrain one into OUT/base",
                         .help = "the base student (a model folder with a chat template)"};
  table[c++] = (ag_flag){.name = "size",
                         .type = AG_FLAG_STRING,
                         .value = &e.size,
                         .metavar = "NAME",
                         .help = "the size of the base student E1 pretrains (tiny, small, base)"};
  table[c++] = (ag_flag){.name = "pretrain-minutes",
                         .type = AG_FLAG_FLOAT,
                         .value = &e.pretrain_minutes,
                         .metavar = "M",
                         .min = 0,
                         .max = 1e6,
                         .default_text = "the size's steps",
                         .help = "train the base student for about M minutes"};
  c += ag_cli_sml_train_flags(table + c, &t);
  t.o = e.train; /* E1's defaults for the training flags */
  for (int i = 0; i < c; i++)
    if (!strcmp(table[i].name, "level")) table[i].default_text = "1, the base student's";
  if (which == 5)
    table[c++] = (ag_flag){.name = "teacher-model",
                           .type = AG_FLAG_STRING,
                           .value = &e.teacher_model,
                           .metavar = "MODEL",
                           .default_text = "the base student",
                           .help = "the LLM teacher: a model folder, a .gguf file or an endpoint "
                                   "http://HOST:PORT/v1#MODEL_NAME"};
  table[c++] = (ag_flag){.name = "resume",
                         .type = AG_FLAG_BOOL,
                         .value = &e.resume,
                         .help = "continue the experiment in --out"};
  ag_flag flags[MAX_FLAGS + AG_COMMON_FLAG_COUNT];
  int n = ag_args_with_common(flags, table, c, &common, true);
  static const char *const names[] = {"", "sml e1", "sml e2", "sml e3", "sml e4", "sml e5"};
  static const char *const summaries[] = {
      "",
      "E1, multi-turn learning: acc@k of the base student vs the SML student on held-out tasks.",
      "E2, transfer across domains: SML on math evaluated on the other families, and on code\n"
      "evaluated on math.",
      "E3, underspecified tasks: premature answers, questions and acc@k of the base, SML and\n"
      "SML + question-priming students on sharded held-out tasks.",
      "E4, self-correction: SML students trained with and without feedback prediction, each\n"
      "with the teacher and self-teaching (writing its own critiques).",
      "E5, feedback quality: the base and SML students with binary, directional, localised\n"
      "and LLM-teacher feedback."};
  const char *epilogs[] = {"", E1_EPILOG, E2_EPILOG, E3_EPILOG, E4_EPILOG, E5_EPILOG};
  ag_command cmd = {.name = names[which],
                    .summary = summaries[which],
                    .flags = flags,
                    .flag_count = n,
                    .epilog = epilogs[which]};
  ag_args_result ar = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (ar == AG_ARGS_HELP) return 0;
  if (ar) return 2;
  if (e2 && (ag_args_find(&cmd, "families")->seen || ag_args_find(&cmd, "eval-families")->seen))
    return ag_args_usage_error(&cmd, "E2 fixes the families of its two runs (see --help)");
  if (ag_cli_sml_train_finish(&cmd, &common, &t)) return 2;
  if (e.base && ag_args_find(&cmd, "size")->seen)
    return ag_args_usage_error(&cmd, "--size is for the base student E1 pretrains, not --base");
  if (t.o.eval_tasks < 1) return ag_args_usage_error(&cmd, "--eval-tasks must be at least 1");
  ag_args_apply_common(&common);
  e.train = t.o;
  e.progress = !common.quiet;
  if (which == 4 && ag_args_find(&cmd, "train-names")->seen)
    return ag_args_usage_error(&cmd, "E4 fixes --train-names of its two runs (see --help)");
  if (which >= 3 && t.o.lora.rank > 0)
    return ag_args_usage_error(&cmd, "this experiment evaluates fine-tuned model folders: no "
                                     "--lora-rank");
  if (which >= 4) {
    ag_sml_grid_result g;
    ag_status gs = which == 4 ? ag_sml_e4(&e, &g) : ag_sml_e5(&e, &g);
    if (gs) return ag_cli_error("%s", ag_error_message());
    print_grid(&g, which == 4 ? "e4" : "e5", e.out_dir);
    return common.json ? print_grid_json(&g, e.out_dir) : 0;
  }
  if (which == 3) {
    ag_sml_e3_result r3;
    if (ag_sml_e3(&e, &r3)) return ag_cli_error("%s", ag_error_message());
    print_e3(&r3, e.out_dir);
    return common.json ? print_e3_json(&r3, e.out_dir) : 0;
  }
  if (e2) {
    ag_sml_e2_result r2;
    if (ag_sml_e2(&e, &r2)) return ag_cli_error("%s", ag_error_message());
    print_e2(&r2, e.out_dir);
    return common.json ? print_e2_json(&r2, e.out_dir) : 0;
  }
  ag_sml_e1_result r;
  if (ag_sml_e1(&e, &r)) return ag_cli_error("%s", ag_error_message());
  print_text(&r, e.out_dir);
  return common.json ? print_json(&r, e.out_dir) : 0;
}

int ag_cli_sml_e1(int argc, char **argv) { return run_experiment(argc, argv, 1); }
int ag_cli_sml_e2(int argc, char **argv) { return run_experiment(argc, argv, 2); }
int ag_cli_sml_e3(int argc, char **argv) { return run_experiment(argc, argv, 3); }
int ag_cli_sml_e4(int argc, char **argv) { return run_experiment(argc, argv, 4); }
int ag_cli_sml_e5(int argc, char **argv) { return run_experiment(argc, argv, 5); }
