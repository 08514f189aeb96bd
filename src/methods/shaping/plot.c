/* gnuplot scripts for a run's learning curves (shaping.h), rendered by
 * ag_plot_render when gnuplot is installed. */
#include "internal.h"

#include <stdio.h>

ag_status shaping_path(char *buf, size_t size, const char *dir, const char *name) {
  int len = snprintf(buf, size, "%s/%s", dir, name);
  if (len < 0 || (size_t)len >= size) return ag_error_set(AG_ERR_INVALID, "path too long: %s", dir);
  return AG_OK;
}

ag_status ag_shaping_plot_run(const char *dir, const ag_game *game,
                              const ag_shaping_learner *seats) {
  if (!dir || !game || !seats)
    return ag_error_set(AG_ERR_INVALID, "ag_shaping_plot_run: NULL argument");
  const int n = game->players;
  char path[4096];
  ag_status st = shaping_path(path, sizeof path, dir, "plot.gp");
  ag_atomic_file *af = NULL;
  if (!st) st = ag_atomic_open(path, &af);
  if (st) return st;
  FILE *f = ag_atomic_stream(af);
  /* curve.csv columns: 1 step, 2.. values, n+2.. rewards per step,
   * 2n+2.. cooperation, 3n+2 welfare, 3n+3 cooperation rate. */
  fprintf(f,
          "# Renders plot.svg from curve.csv: gnuplot plot.gp\n"
          "set terminal svg size 1000,760 dynamic background rgb 'white'\n"
          "set output 'plot.svg'\n"
          "set datafile separator ','\n"
          "set grid\n"
          "set key outside right\n"
          "set xlabel 'update (inner episode)'\n"
          "set multiplot layout 2,1 title '%s, %d players:",
          game->name, n);
  for (int i = 0; i < n; i++) fprintf(f, "%s%s", i ? "," : " ", ag_shaping_learner_name(seats[i]));
  fprintf(f, "'\nset ylabel 'reward per step'\nplot ");
  for (int i = 0; i < n; i++)
    fprintf(f, "%s'curve.csv' skip 1 using 1:%d with lines lw 2 title 'player %d (%s)'",
            i ? ", \\\n     " : "", n + 2 + i, i, ag_shaping_learner_name(seats[i]));
  fprintf(f,
          ", \\\n     'curve.csv' skip 1 using 1:%d with lines lw 3 dt 2 lc rgb 'black' "
          "title 'welfare'\n",
          3 * n + 2);
  fprintf(f, "set ylabel 'discounted cooperation'\nset yrange [-0.02:1.02]\nplot ");
  for (int i = 0; i < n; i++)
    fprintf(f, "%s'curve.csv' skip 1 using 1:%d with lines lw 2 title 'player %d (%s)'",
            i ? ", \\\n     " : "", 2 * n + 2 + i, i, ag_shaping_learner_name(seats[i]));
  fprintf(f, "\nunset multiplot\n");
  st = ag_atomic_commit(af);
  if (st) return st;
  ag_plot_render(dir, "plot.gp");
  return AG_OK;
}
