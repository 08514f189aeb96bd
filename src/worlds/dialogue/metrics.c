/* Metrics of teacher-student dialogues (agora/dialogue.h): acc@k, turns to
 * solve, and the rates that say how a student used the dialogue: questions,
 * premature answers on sharded tasks, and uptake of corrective feedback. */
#include "agora/dialogue.h"

#include <stdlib.h>
#include <string.h>

void ag_teach_metrics_clear(ag_teach_metrics *m) {
  if (!m) return;
  free(m->acc_at);
  memset(m, 0, sizeof *m);
}

static double ratio(int64_t num, int64_t den) { return den > 0 ? (double)num / (double)den : 0.0; }

ag_status ag_teach_metrics_compute(const ag_dialogue *dialogues, int64_t n, int turns,
                                   ag_teach_metrics *out) {
  if (!out) return ag_error_set(AG_ERR_INVALID, "teach metrics: out is NULL");
  memset(out, 0, sizeof *out);
  if (turns < 1)
    return ag_error_set(AG_ERR_INVALID, "teach metrics: turns must be >= 1 (got %d)", turns);
  if (n < 0 || (n > 0 && !dialogues))
    return ag_error_set(AG_ERR_INVALID, "teach metrics: no dialogues given for n = %lld",
                        (long long)n);
  int64_t *solved_by = calloc((size_t)turns, sizeof *solved_by); /* solved at exactly k+1 */
  out->acc_at = calloc((size_t)turns, sizeof *out->acc_at);
  if (!solved_by || !out->acc_at) {
    free(solved_by);
    ag_teach_metrics_clear(out);
    return ag_error_set(AG_ERR_NOMEM, "teach metrics: out of memory");
  }
  out->n = n;
  out->turns = turns;
  int64_t solved = 0, solve_turns = 0, premature = 0, sharded_attempts = 0, questions = 0,
          uptake_correct = 0;
  for (int64_t i = 0; i < n; i++) {
    const ag_dialogue *d = &dialogues[i];
    if (d->solved && d->solved_at >= 1) {
      solved++;
      solve_turns += d->solved_at;
      if (d->solved_at <= turns) solved_by[d->solved_at - 1]++;
    }
    /* Feedback uptake pairs consecutive attempts of one dialogue, whatever
     * questions lie between them: did the attempt after a wrong one verify? */
    bool have_previous = false, previous_correct = false;
    for (int t = 0; t < d->turn_count; t++) {
      const ag_turn_record *r = &d->turns[t];
      out->student_turns++;
      if (!r->attempt) {
        questions++;
        continue;
      }
      out->attempts++;
      if (d->sharded) {
        sharded_attempts++;
        if (r->premature) premature++;
      }
      if (have_previous && !previous_correct) {
        out->uptake_pairs++;
        if (r->correct) uptake_correct++;
      }
      have_previous = true;
      previous_correct = r->correct;
    }
  }
  int64_t cumulative = 0;
  for (int k = 0; k < turns; k++) {
    cumulative += solved_by[k];
    out->acc_at[k] = ratio(cumulative, n);
  }
  free(solved_by);
  out->mean_turns_to_solve = ratio(solve_turns, solved);
  out->premature_answer_rate = ratio(premature, sharded_attempts);
  out->question_rate = ratio(questions, out->student_turns);
  out->feedback_uptake = ratio(uptake_correct, out->uptake_pairs);
  return AG_OK;
}

json_t *ag_teach_metrics_to_json(const ag_teach_metrics *m) {
  if (!m) return NULL;
  json_t *acc = json_array();
  if (!acc) return NULL;
  for (int k = 0; k < m->turns && m->acc_at; k++)
    json_array_append_new(acc, json_real(m->acc_at[k]));
  return json_pack("{s:I, s:i, s:o, s:f, s:f, s:f, s:f, s:I, s:I, s:I}", "n", (json_int_t)m->n,
                   "turns", m->turns, "acc_at", acc, "mean_turns_to_solve", m->mean_turns_to_solve,
                   "premature_answer_rate", m->premature_answer_rate, "question_rate",
                   m->question_rate, "feedback_uptake", m->feedback_uptake, "attempts",
                   (json_int_t)m->attempts, "student_turns", (json_int_t)m->student_turns,
                   "uptake_pairs", (json_int_t)m->uptake_pairs);
}
