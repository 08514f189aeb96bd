/* The SML experiments (agora/sml_exp.h): acc@k over rollouts on hand cases.
 * E1 end to end is tests/cli/test_sml_e1.sh. */
#include "agora/sml_exp.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ag_sml_rollout rollout(bool solved, int solved_at, int turns) {
  ag_sml_rollout r;
  memset(&r, 0, sizeof r);
  r.solved = solved;
  r.solved_at = solved_at;
  r.turns = turns;
  return r;
}

/* A task solved at turn t counts at every k >= t; unsolved ones never. */
TEST(acc_at_k_counts_a_success_from_its_turn_on) {
  ag_sml_rollout v[5] = {rollout(true, 1, 1), rollout(true, 3, 3), rollout(false, 0, 4),
                         rollout(true, 2, 2), rollout(false, 0, 4)};
  ag_sml_acc a;
  ag_sml_acc_of(v, 5, NULL, 4, &a);
  CHECK(a.tasks == 5);
  CHECK(fabs(a.acc_at[0] - 0.2) < 1e-12 && fabs(a.acc_at[1] - 0.4) < 1e-12);
  CHECK(fabs(a.acc_at[2] - 0.6) < 1e-12 && fabs(a.acc_at[3] - 0.6) < 1e-12);
  /* a success after turn K does not count within K */
  ag_sml_acc_of(v, 5, NULL, 2, &a);
  CHECK(fabs(a.acc_at[1] - 0.4) < 1e-12);
}

/* The selection (E1's tasks the base student fails at turn 1) restricts
 * both the count and the successes; an empty selection gives NaN, not 0. */
TEST(acc_at_k_over_a_selection) {
  ag_sml_rollout v[4] = {rollout(true, 1, 1), rollout(true, 3, 3), rollout(false, 0, 4),
                         rollout(true, 2, 2)};
  bool hard[4] = {false, true, true, true};
  ag_sml_acc a;
  ag_sml_acc_of(v, 4, hard, 3, &a);
  CHECK(a.tasks == 3);
  CHECK(a.acc_at[0] == 0 && fabs(a.acc_at[1] - 1.0 / 3) < 1e-12);
  CHECK(fabs(a.acc_at[2] - 2.0 / 3) < 1e-12);
  bool none[4] = {false, false, false, false};
  ag_sml_acc_of(v, 4, none, 3, &a);
  CHECK(a.tasks == 0 && isnan(a.acc_at[0]));
}

/* Bad options fail before any folder is made. */
TEST(e1_refuses_bad_options_before_any_work) {
  ag_sml_e1_options o = ag_sml_e1_defaults();
  ag_sml_e1_result r;
  CHECK(ag_sml_e1(&o, &r) != AG_OK); /* no folder */
  char dir[] = "/tmp/agora-e1-bad-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char out[256];
  snprintf(out, sizeof out, "%s/e1", dir);
  o.out_dir = out;
  o.train.families = "arith,bogus";
  CHECK(ag_sml_e1(&o, &r) != AG_OK && strstr(ag_error_message(), "bogus"));
  o.train.families = "arith";
  o.size = "huge";
  CHECK(ag_sml_e1(&o, &r) != AG_OK && strstr(ag_error_message(), "huge"));
  o.size = "tiny";
  o.train.eval_tasks = 0;
  CHECK(ag_sml_e1(&o, &r) != AG_OK);
  CHECK(!ag_file_exists(out));
  rmdir(dir);
  ag_error_clear();
}

int main(void) {
  RUN(acc_at_k_counts_a_success_from_its_turn_on);
  RUN(acc_at_k_over_a_selection);
  RUN(e1_refuses_bad_options_before_any_work);
  TEST_MAIN_END();
}
