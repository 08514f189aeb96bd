/* acc@1 of a student on held-out tasks (agora/sml.h): single-turn
 * dialogues through the dialogue runner, one folder of transcripts per
 * family. */
#include "agora/sml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_BATCH 32 /* dialogues decoded together */
#define PATH_BYTES 4096

ag_status ag_sml_eval_acc1(ag_chat_model *student, const ag_task_family *const *families,
                           int family_count, int level, int64_t tasks_per_family,
                           int64_t max_tokens, const char *out_dir, bool resume, double *acc) {
  if (!student || !families || family_count < 1 || tasks_per_family < 1 || max_tokens < 1 ||
      level < 0 || !out_dir)
    return ag_error_set(AG_ERR_INVALID, "sml eval: bad arguments");
  ag_status st = AG_OK;
  for (int i = 0; i < family_count && !st; i++) {
    char dir[PATH_BYTES];
    int w = snprintf(dir, sizeof dir, "%s/%s", out_dir, families[i]->name);
    if (w < 0 || (size_t)w >= sizeof dir) return ag_error_set(AG_ERR_INVALID, "path too long");
    ag_task *tasks = NULL;
    st = ag_sml_eval_tasks_at(families[i], level, tasks_per_family, &tasks);
    if (st) return st;
    ag_teach_options o = ag_teach_defaults();
    o.student = student;
    o.teacher.phrasing = AG_PHRASING_HELDOUT;
    o.student_params.sampling.temperature = 0.0f; /* greedy: acc@1 of the model's best guess */
    o.student_params.max_tokens = max_tokens;
    o.system_prompt = ag_sml_system_prompt();
    o.turns = 1;
    o.out_dir = dir;
    o.resume = resume;
    o.batch = EVAL_BATCH;
    ag_teach_metrics m;
    memset(&m, 0, sizeof m);
    st = ag_teach_eval(&o, tasks, tasks_per_family, &m, NULL);
    if (!st) acc[i] = m.acc_at[0];
    ag_teach_metrics_clear(&m);
    for (int64_t k = 0; k < tasks_per_family; k++) ag_task_clear(&tasks[k]);
    free(tasks);
    if (st) st = ag_error_wrap(st, "sml eval: %s", families[i]->name);
  }
  return st;
}
