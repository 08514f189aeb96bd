/* The SML experiments (methods layer): each writes a report folder with
 * report.md, results.json, CSV tables and a gnuplot plot (docs/sml.md
 * "Experiments"; the claims are PAPERS.md §1-2).
 *
 *   E1 multi-turn learning: acc@1..K of the base student and of the SML
 *   student on held-out tasks of the training families, over all tasks and
 *   over the tasks the base student fails in one turn.
 *   E2 transfer across domains: the same comparison for SML trained on the
 *   math families (arith, algebra) and evaluated on code, maze and puzzle,
 *   and trained on code and evaluated on the math families.
 *   E3 underspecified tasks: the base student, the SML student and the SML
 *   student with question priming on sharded held-out tasks (the problem
 *   revealed a piece a turn): premature-answer rate, question rate, acc@k.
 *   E4 self-correction: SML students trained with and without feedback
 *   prediction, each with the teacher and self-teaching (no teacher).
 *   E5 feedback quality: the base and SML students with binary,
 *   directional, localised and LLM-teacher feedback.
 *
 *   ag_sml_e1_options o = ag_sml_e1_defaults();
 *   o.out_dir = "runs/e1";
 *   ag_sml_e1_result r;
 *   if (ag_sml_e1(&o, &r) == AG_OK) printf("%.3f -> %.3f\n", r.base.acc_at[9], r.sml.acc_at[9]);
 */
#ifndef AGORA_SML_EXP_H
#define AGORA_SML_EXP_H

#include "agora/sml.h"
#include "agora/sml_train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ag_sml_e1_options {
  const char *out_dir; /* required: the report folder */
  /* The base student. NULL: out_dir/base, pretrained there (size, minutes,
   * the SML run's families and level) unless it holds a finished one. */
  const char *base;
  const char *size;        /* pretraining preset (default "small") */
  double pretrain_minutes; /* 0: the preset's steps */
  /* The SML run, into out_dir/sml (student and out_dir are set by E1).
   * Defaults: offline, level AG_SML_BASE_LEVEL, 4 rounds of 64 dialogues,
   * 20 evaluation tasks per family, acc@1..10. */
  ag_sml_train_options train;
  bool resume; /* continue a killed experiment (each stage resumes) */
  bool progress;
  /* E5's LLM teacher: a model folder, GGUF file or endpoint. NULL: the base
   * student, prompted as the teacher (with the answer and worked solution). */
  const char *teacher_model;
} ag_sml_e1_options;

ag_sml_e1_options ag_sml_e1_defaults(void);

/* acc@1..K of one student over a set of tasks. */
typedef struct ag_sml_acc {
  int64_t tasks;
  double acc_at[AG_SML_TRAIN_MAX_TURNS];
} ag_sml_acc;

typedef struct ag_sml_e1_result {
  int turns; /* K */
  int family_count;
  char families[AG_SML_MAX_FAMILIES][16];
  ag_sml_acc base, sml;           /* every held-out task */
  ag_sml_acc base_hard, sml_hard; /* the tasks the base student fails at turn 1 */
  ag_sml_acc base_family[AG_SML_MAX_FAMILIES], sml_family[AG_SML_MAX_FAMILIES];
  double base_question_rate, sml_question_rate;
  bool pretrained; /* E1 pretrained the base student (this call or before) */
  double seconds;
} ag_sml_e1_result;

/* Pretrains the base student if needed, runs `sml train` from it, reads
 * both evaluations back and writes out_dir/report.md, results.json
 * (base.acc_at, sml.acc_at, tasks, ...), acc_at.csv, families.csv and
 * plot.gp (rendered to acc_at.svg when gnuplot is installed). A folder that
 * holds an experiment needs resume. */
ag_status ag_sml_e1(const ag_sml_e1_options *o, ag_sml_e1_result *r);

/* E2: two directions, each an SML run from the same base student. */
#define AG_SML_E2_DIRECTIONS 2
typedef struct ag_sml_e2_result {
  const char *names[AG_SML_E2_DIRECTIONS];          /* "math-to-others", "code-to-math" */
  const char *train[AG_SML_E2_DIRECTIONS];          /* training families */
  ag_sml_e1_result direction[AG_SML_E2_DIRECTIONS]; /* over the evaluated (other) families */
  bool pretrained;
  double seconds;
} ag_sml_e2_result;

/* E2 with E1's options (train.families and train.eval_families are set per
 * direction; every other training option applies to both runs): the base
 * student as in E1, then OUT/math-to-others and OUT/code-to-math, and
 * OUT/report.md, results.json (directions[]: name, train, eval, base and
 * sml acc@k and per family), transfer.csv, acc_at.csv and plot.gp. */
ag_status ag_sml_e2(const ag_sml_e1_options *o, ag_sml_e2_result *r);

/* One student under one evaluation condition (E3-E5). */
typedef struct ag_sml_eval_stats {
  const char *name;      /* the student: "base", "sml", "sml-qp", "sml-fp" */
  ag_sml_acc acc;        /* acc@1..K over every family's tasks */
  double premature_rate; /* premature attempts / attempts (sharded tasks) */
  double question_rate;  /* student turns that are not attempts / student turns */
  int64_t attempts, premature, student_turns, questions;
  /* Teacher turns after the opening; an LLM teacher's replies rejected by
   * the leak guard, and those replaced by programmatic feedback. */
  int64_t teacher_messages, teacher_rejected, teacher_fallbacks;
} ag_sml_eval_stats;

/* E3: three students on the sharded tasks. */
#define AG_SML_E3_STUDENTS 3
typedef struct ag_sml_e3_result {
  int turns;
  int family_count;
  char families[AG_SML_MAX_FAMILIES][16];
  ag_sml_eval_stats students[AG_SML_E3_STUDENTS];
  bool pretrained;
  double seconds;
} ag_sml_e3_result;

/* E3 with E1's options: the base student as in E1; two SML runs from it on
 * fully specified tasks, OUT/sml (plain) and OUT/sml-qp (question priming
 * first), without their own evaluation; then each of the three students on
 * the same sharded held-out tasks (OUT/eval/<student>/<family>/), and
 * OUT/report.md, results.json (students: acc_at, premature_answer_rate,
 * question_rate, counts), e3.csv, acc_at.csv and plot.gp. LoRA runs are
 * refused (E3 evaluates the fine-tuned model folders). */
ag_status ag_sml_e3(const ag_sml_e1_options *o, ag_sml_e3_result *r);

/* E4 and E5: every student under every condition. */
#define AG_SML_GRID_MAX 4
typedef struct ag_sml_grid_result {
  int turns;
  int family_count;
  char families[AG_SML_MAX_FAMILIES][16];
  int student_count, condition_count;
  const char *conditions[AG_SML_GRID_MAX];
  ag_sml_eval_stats cells[AG_SML_GRID_MAX][AG_SML_GRID_MAX]; /* [student][condition] */
  const char *teacher_model;                                 /* E5: the LLM teacher used */
  bool pretrained;
  double seconds;
} ag_sml_grid_result;

/* E4 self-correction with E1's options: the base student as in E1; two SML
 * runs from it, OUT/sml (student turns in the loss) and OUT/sml-fp
 * (feedback prediction: teacher turns too, train_names "student,teacher");
 * then the three students with the programmatic teacher and self-teaching
 * (condition "teacher" and "self-teach"; OUT/eval/<student>/<condition>/),
 * and OUT/report.md, results.json (cells: student, condition, acc_at,
 * tasks), e4.csv, acc_at.csv and plot.gp. LoRA runs are refused. */
ag_status ag_sml_e4(const ag_sml_e1_options *o, ag_sml_grid_result *r);

/* E5 feedback quality with E1's options: the base student as in E1 and one
 * SML run from it (OUT/sml); each student with binary, directional and
 * localised programmatic feedback and with an LLM teacher (o->teacher_model,
 * default the base student), OUT/eval/<student>/<condition>/; OUT/report.md,
 * results.json, e5.csv, acc_at.csv, plot.gp. LoRA runs are refused. */
ag_status ag_sml_e5(const ag_sml_e1_options *o, ag_sml_grid_result *r);

/* acc@1..K over rollouts (a task solved at student turn t counts for every
 * k >= t); select (NULL: all) picks which. */
void ag_sml_acc_of(const ag_sml_rollout *v, int64_t n, const bool *select, int turns,
                   ag_sml_acc *out);

#ifdef __cplusplus
}
#endif
#endif
