/* What the SML experiment files share (src/methods/sml/experiment*.c; not
 * public): report-folder helpers, the stages every experiment runs (the base
 * student, an SML run, an evaluation of one student under one condition),
 * and the first lines of every plot. */
#ifndef AGORA_METHODS_SML_EXPERIMENT_INTERNAL_H
#define AGORA_METHODS_SML_EXPERIMENT_INTERNAL_H

#include "agora/json.h"
#include "agora/sml_exp.h"

#include <stdio.h>

#define AG_SML_EXP_PATH_BYTES 4096
/* An LLM teacher samples, so that a reply its leak guard rejects is
 * regenerated differently (agora teach eval's default). */
#define AG_SML_EXP_TEACHER_TEMPERATURE 0.7f

/* The lines every experiment's plot.gp starts with. */
#define AG_SML_EXP_PLOT_PREAMBLE                                                                   \
  "set terminal svg size 900,420 dynamic noenhanced font 'Helvetica,12'\n"                         \
  "set output 'acc_at.svg'\n"                                                                      \
  "set datafile separator ','\n"                                                                   \
  "set grid\n"

/* out = dir/name (AG_SML_EXP_PATH_BYTES); too long is an error. */
ag_status ag_sml_exp_join(char *out, const char *dir, const char *name);
/* dir/name opened for an atomic write; *f is its stream. */
ag_status ag_sml_exp_open_in(const char *dir, const char *name, ag_atomic_file **af, FILE **f);
/* Saves v (consumed; NULL: out of memory) as dir/name. */
ag_status ag_sml_exp_save_json_in(const char *dir, const char *name, json_t *v);
/* {"acc_at": [acc@1..K, null where undefined], "tasks": n} */
json_t *ag_sml_exp_acc_json(const ag_sml_acc *a, int turns);
/* "0.123", or "-" when undefined. */
void ag_sml_exp_fmt_acc(char *buf, size_t size, double v);
/* The experiment's settings, as experiment.json and results.json hold them. */
json_t *ag_sml_exp_settings_json(const ag_sml_e1_options *o, const char *base_dir);
/* Checks shared by the experiments, the folder marker (experiment.json,
 * whose "experiment" is name), and the base student (pretrained when
 * needed) into base_dir. */
ag_status ag_sml_exp_prepare(const ag_sml_e1_options *o, const char *name, char *base_dir,
                             bool *pretrained);

/* An SML run from base_dir into dir with the options t (the student, the
 * folder, resume and progress are set here), without its own evaluation. */
ag_status ag_sml_exp_train(const ag_sml_e1_options *o, const char *base_dir, ag_sml_train_options t,
                           const char *dir);

/* How a student is evaluated. */
typedef struct ag_sml_exp_condition {
  bool sharded;              /* underspecified tasks, revealed a piece a turn */
  bool self_teach;           /* the student writes the teacher turns itself */
  ag_feedback_level level;   /* the programmatic teacher's feedback */
  const char *teacher_model; /* an LLM teacher (model folder, GGUF, endpoint) or NULL */
} ag_sml_exp_condition;

/* The student in model_dir on o->train.eval_tasks held-out tasks of each
 * family (level and turns from o->train), dialogues in OUT/sub/<family>/
 * (resumed when there), summed into *s (zeroed by the caller). */
ag_status ag_sml_exp_evaluate(const ag_sml_e1_options *o, const char *model_dir, const char *sub,
                              const ag_sml_exp_condition *c, const char (*families)[16],
                              int family_count, ag_sml_eval_stats *s);

#endif
