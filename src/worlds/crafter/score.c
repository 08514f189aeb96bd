/* The Crafter score (Hafner 2021, crafter's analysis code): per-achievement
 * success rates over episodes and their offset geometric mean. */
#include "agora/crafter.h"

#include <math.h>
#include <string.h>

void ag_crafter_tally_add(ag_crafter_tally *tally,
                          const int32_t achievements[AG_CRAFTER_ACHIEVEMENT_COUNT], int64_t length,
                          double episode_return) {
  tally->episodes++;
  for (int a = 0; a < AG_CRAFTER_ACHIEVEMENT_COUNT; a++)
    if (achievements[a] >= 1) tally->unlocked[a]++;
  tally->steps += length;
  tally->total_return += episode_return;
}

void ag_crafter_success_rates(const ag_crafter_tally *tally,
                              double percent[AG_CRAFTER_ACHIEVEMENT_COUNT]) {
  for (int a = 0; a < AG_CRAFTER_ACHIEVEMENT_COUNT; a++)
    percent[a] =
        tally->episodes > 0 ? 100.0 * (double)tally->unlocked[a] / (double)tally->episodes : 0.0;
}

double ag_crafter_score(const double percent[AG_CRAFTER_ACHIEVEMENT_COUNT]) {
  // np.exp(np.nanmean(np.log(1 + percents), -1)) - 1 (summed left to right,
  // not numpy's pairwise order: may differ in the last bit).
  double sum = 0;
  for (int a = 0; a < AG_CRAFTER_ACHIEVEMENT_COUNT; a++) sum += log(1.0 + percent[a]);
  return exp(sum / AG_CRAFTER_ACHIEVEMENT_COUNT) - 1.0;
}
