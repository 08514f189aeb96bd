/* The opponent-shaping sweep's reports (shaping.h, sweep.c): means and
 * standard errors over seeds of every cell in results.jsonl, with the
 * advantage over all-naive on the same seeds, as summary.json, summary.md
 * and summary.csv, and plot.gp / plot.dat / plot.svg. */
#include "agora/json.h"
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_BYTES 4096

/* ---- summary ----------------------------------------------------------------------------- */

typedef struct stat {
  double n, sum, sum_sq;
} stat;

static void stat_add(stat *s, double x) {
  if (!isfinite(x)) return;
  s->n++;
  s->sum += x;
  s->sum_sq += x * x;
}
static double stat_mean(const stat *s) { return s->n ? s->sum / s->n : NAN; }
static double stat_se(const stat *s) {
  if (s->n < 2) return NAN;
  double m = s->sum / s->n, var = (s->sum_sq - s->n * m * m) / (s->n - 1);
  return sqrt(var > 0 ? var : 0) / sqrt(s->n);
}

typedef struct row {
  char game[32];
  int game_rank, players, kind_rank, shapers;
  char shaper[16];
  stat welfare, welfare_run, advantage, shaper_reward, naive_reward, cooperation;
} row;

static double number(const json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  return json_is_number(v) ? json_number_value(v) : NAN;
}

static int kind_rank(const char *s) {
  return !strcmp(s, "none") ? 0 : !strcmp(s, "lola") ? 1 : !strcmp(s, "es") ? 2 : 3;
}

static int compare_rows(const void *a, const void *b) {
  const row *x = a, *y = b;
  if (x->game_rank != y->game_rank) return x->game_rank - y->game_rank;
  int c = strcmp(x->game, y->game);
  if (c) return c;
  if (x->players != y->players) return x->players - y->players;
  if (x->kind_rank != y->kind_rank) return x->kind_rank - y->kind_rank;
  return x->shapers - y->shapers;
}

/* The all-naive welfare of the same game, n and seed, or NAN. */
static double naive_welfare(const json_t *lines, const char *game, int players, json_int_t seed) {
  size_t i;
  json_t *v;
  json_array_foreach(lines, i, v) {
    if (!strcmp(json_string_value(json_object_get(v, "game")), game) &&
        json_integer_value(json_object_get(v, "players")) == players &&
        json_integer_value(json_object_get(v, "seed")) == seed &&
        json_integer_value(json_object_get(v, "shapers")) == 0)
      return number(v, "welfare");
  }
  return NAN;
}

static ag_status summarize(const ag_shaping_sweep_config *cfg, const json_t *lines, row **out,
                           int *count) {
  size_t total = json_array_size(lines);
  row *rows = calloc(total ? total : 1, sizeof *rows);
  if (!rows) return ag_error_set(AG_ERR_NOMEM, "sweep: out of memory");
  int nr = 0;
  size_t i;
  json_t *v;
  json_array_foreach(lines, i, v) {
    const char *game = json_string_value(json_object_get(v, "game"));
    const char *shaper = json_string_value(json_object_get(v, "shaper"));
    if (!game || !shaper) continue;
    int players = (int)json_integer_value(json_object_get(v, "players"));
    int shapers = (int)json_integer_value(json_object_get(v, "shapers"));
    row *r = NULL;
    for (int k = 0; k < nr && !r; k++)
      if (!strcmp(rows[k].game, game) && rows[k].players == players &&
          !strcmp(rows[k].shaper, shaper) && rows[k].shapers == shapers)
        r = &rows[k];
    if (!r) {
      r = &rows[nr++];
      snprintf(r->game, sizeof r->game, "%s", game);
      snprintf(r->shaper, sizeof r->shaper, "%s", shaper);
      r->players = players;
      r->shapers = shapers;
      r->kind_rank = kind_rank(shaper);
      r->game_rank = 1000;
      for (int g = 0; g < cfg->game_count; g++)
        if (!strcmp(cfg->games[g], game)) r->game_rank = g;
    }
    double w = number(v, "welfare");
    stat_add(&r->welfare, w);
    stat_add(&r->welfare_run, number(v, "welfare_run"));
    stat_add(&r->shaper_reward, number(v, "shaper_reward"));
    stat_add(&r->naive_reward, number(v, "naive_reward"));
    stat_add(&r->cooperation, number(v, "cooperation_rate"));
    if (shapers > 0)
      stat_add(&r->advantage, w - naive_welfare(lines, game, players,
                                                json_integer_value(json_object_get(v, "seed"))));
  }
  qsort(rows, (size_t)nr, sizeof *rows, compare_rows);
  *out = rows;
  *count = nr;
  return AG_OK;
}

static json_t *stat_json(const stat *s) {
  json_t *o = json_object();
  double m = stat_mean(s), se = stat_se(s);
  json_object_set_new(o, "mean", isfinite(m) ? json_real(m) : json_null());
  json_object_set_new(o, "se", isfinite(se) ? json_real(se) : json_null());
  json_object_set_new(o, "n", json_integer((json_int_t)s->n));
  return o;
}

static ag_status write_summary_json(const char *dir, const ag_shaping_sweep_config *cfg,
                                    const row *rows, int nr) {
  char path[PATH_MAX_BYTES];
  ag_status st = shaping_path(path, sizeof path, dir, "summary.json");
  if (st) return st;
  json_t *root = json_object(), *cells = json_array();
  json_object_set_new(root, "settings", shaping_sweep_settings(cfg));
  for (int k = 0; k < nr; k++) {
    const row *r = &rows[k];
    json_t *c = json_object();
    json_object_set_new(c, "game", json_string(r->game));
    json_object_set_new(c, "players", json_integer(r->players));
    json_object_set_new(c, "shaper", json_string(r->shaper));
    json_object_set_new(c, "shapers", json_integer(r->shapers));
    json_object_set_new(c, "seeds", json_integer((json_int_t)r->welfare.n));
    json_object_set_new(c, "welfare", stat_json(&r->welfare));
    json_object_set_new(c, "welfare_run", stat_json(&r->welfare_run));
    json_object_set_new(c, "advantage_over_naive", stat_json(&r->advantage));
    json_object_set_new(c, "shaper_reward", stat_json(&r->shaper_reward));
    json_object_set_new(c, "naive_reward", stat_json(&r->naive_reward));
    json_object_set_new(c, "cooperation_rate", stat_json(&r->cooperation));
    json_array_append_new(cells, c);
  }
  json_object_set_new(root, "cells", cells);
  st = ag_json_save(path, root);
  json_decref(root);
  return st;
}

/* "1.234 ± 0.056", or "1.234" with one seed, or "–". */
static void fmt_stat(char *buf, size_t size, const stat *s) {
  double m = stat_mean(s), se = stat_se(s);
  if (!isfinite(m))
    snprintf(buf, size, "–");
  else if (!isfinite(se))
    snprintf(buf, size, "%.3f", m);
  else
    snprintf(buf, size, "%.3f ± %.3f", m, se);
}

static void emit_markdown(FILE *f, const ag_shaping_sweep_config *cfg, const row *rows, int nr) {
  fprintf(f,
          "# Opponent-shaping sweep\n\n"
          "Final reward per step after %d exact updates (gamma %g, lr %g, LOLA correction %g, "
          "learners' logits ~ N(0, %g^2)), averaged over %d starts per seed; mean ± standard "
          "error over seeds. ES shapers: OpenES, %d generations x population %d x %d "
          "meta-episode(s), sigma %g, Adam lr %g, GRU hidden %d. Shapers sit in seats 0..k-1, "
          "naive learners in the rest. `advantage` is the cell's welfare minus all-naive "
          "welfare on the same seeds.\n\n"
          "| game | n | shaper | k | seeds | welfare | advantage | shaper reward | naive reward "
          "| cooperation | welfare over the run |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|\n",
          cfg->run.steps, cfg->run.gamma, cfg->run.lr, cfg->run.correction, cfg->run.init_std,
          cfg->evaluations, cfg->es_config.generations, cfg->es_config.population,
          cfg->es_config.episodes, cfg->es_config.sigma, cfg->es_config.lr,
          cfg->es_config.hidden > 0 ? cfg->es_config.hidden : AG_SHAPER_DEFAULT_HIDDEN);
  for (int k = 0; k < nr; k++) {
    const row *r = &rows[k];
    char w[48], a[48], s[48], nv[48], c[48], wr[48];
    fmt_stat(w, sizeof w, &r->welfare);
    fmt_stat(a, sizeof a, &r->advantage);
    fmt_stat(s, sizeof s, &r->shaper_reward);
    fmt_stat(nv, sizeof nv, &r->naive_reward);
    fmt_stat(c, sizeof c, &r->cooperation);
    fmt_stat(wr, sizeof wr, &r->welfare_run);
    fprintf(f, "| %s | %d | %s | %d | %.0f | %s | %s | %s | %s | %s | %s |\n", r->game, r->players,
            r->shaper, r->shapers, r->welfare.n, w, a, s, nv, c, wr);
  }
}

static ag_status write_markdown(const char *dir, const ag_shaping_sweep_config *cfg,
                                const row *rows, int nr) {
  char path[PATH_MAX_BYTES];
  ag_status st = shaping_path(path, sizeof path, dir, "summary.md");
  ag_atomic_file *f = NULL;
  if (!st) st = ag_atomic_open(path, &f);
  if (st) return st;
  emit_markdown(ag_atomic_stream(f), cfg, rows, nr);
  return ag_atomic_commit(f);
}

static void csv_stat(FILE *f, const stat *s) {
  double m = stat_mean(s), se = stat_se(s);
  fprintf(f, ",%.10g,%.10g", isfinite(m) ? m : NAN, isfinite(se) ? se : 0.0);
}

/* Series s of a game's panels: 0..2 all-naive / one LOLA / one ES against
 * n; 3, 4: k LOLA / k ES at the largest n (k = 0 is all-naive). */
static bool take_row(const row *r, const char *game, const char *const *kinds, int s, int nmax,
                     double *x) {
  if (strcmp(r->game, game) || !isfinite(stat_mean(&r->welfare))) return false;
  if (s < 3) {
    *x = r->players;
    return !strcmp(r->shaper, kinds[s]) && r->shapers == (s ? 1 : 0);
  }
  *x = r->shapers;
  return r->players == nmax && (r->shapers == 0 || !strcmp(r->shaper, kinds[s - 2]));
}

/* summary.csv, and plot.dat: blocks (two blank lines apart) that plot.gp
 * draws: per game, welfare against n for all-naive, one LOLA and one ES;
 * then welfare against the number of shapers at the game's largest n. */
static ag_status write_csv_and_plot(const char *dir, const row *rows, int nr) {
  char path[PATH_MAX_BYTES];
  ag_atomic_file *af = NULL;
  ag_status st = shaping_path(path, sizeof path, dir, "summary.csv");
  if (!st) st = ag_atomic_open(path, &af);
  if (st) return st;
  FILE *f = ag_atomic_stream(af);
  fputs("game,players,shaper,shapers,seeds,welfare,welfare_se,advantage,advantage_se,"
        "shaper_reward,shaper_reward_se,naive_reward,naive_reward_se,cooperation,"
        "cooperation_se,welfare_run,welfare_run_se\n",
        f);
  for (int k = 0; k < nr; k++) {
    const row *r = &rows[k];
    fprintf(f, "%s,%d,%s,%d,%.0f", r->game, r->players, r->shaper, r->shapers, r->welfare.n);
    csv_stat(f, &r->welfare);
    csv_stat(f, &r->advantage);
    csv_stat(f, &r->shaper_reward);
    csv_stat(f, &r->naive_reward);
    csv_stat(f, &r->cooperation);
    csv_stat(f, &r->welfare_run);
    fputc('\n', f);
  }
  if ((st = ag_atomic_commit(af))) return st;

  /* The games, in row order. */
  const char *games[64];
  int G = 0;
  for (int k = 0; k < nr && G < 64; k++)
    if (!G || strcmp(games[G - 1], rows[k].game)) games[G++] = rows[k].game;
  if ((st = shaping_path(path, sizeof path, dir, "plot.dat")) || (st = ag_atomic_open(path, &af)))
    return st;
  f = ag_atomic_stream(af);
  typedef struct series {
    int game;
    const char *title, *color;
    int panel; /* 0: against n, 1: against k */
    int block;
  } series;
  series plots[64 * 5];
  int np = 0, block = 0;
  for (int g = 0; g < G; g++) {
    int nmax = 0;
    for (int k = 0; k < nr; k++)
      if (!strcmp(rows[k].game, games[g]) && rows[k].players > nmax) nmax = rows[k].players;
    static const char *const kinds[3] = {"none", "lola", "es"};
    static const char *titles[5] = {"all naive", "1 LOLA + naive", "1 ES shaper + naive", "k LOLA",
                                    "k ES shapers"};
    static const char *colors[5] = {"#555555", "#c0392b", "#2e86c1", "#c0392b", "#2e86c1"};
    for (int s = 0; s < 5; s++) {
      /* A series is drawn when it has a point of its own (the k panels
       * start from the all-naive point, k = 0); gnuplot counts only
       * blocks with data, so empty ones are not written at all. */
      int points = 0, own = 0;
      for (int k = 0; k < nr; k++) {
        double x;
        if (take_row(&rows[k], games[g], kinds, s, nmax, &x)) {
          points++;
          own += s < 3 || rows[k].shapers > 0;
        }
      }
      if (!points || !own) continue;
      fprintf(f, "# %s: %s\n", games[g], titles[s]);
      for (int k = 0; k < nr; k++) {
        double x;
        if (!take_row(&rows[k], games[g], kinds, s, nmax, &x)) continue;
        double se = stat_se(&rows[k].welfare);
        fprintf(f, "%g %.10g %.10g\n", x, stat_mean(&rows[k].welfare), isfinite(se) ? se : 0.0);
      }
      fprintf(f, "\n\n");
      plots[np++] = (series){g, titles[s], colors[s], s < 3 ? 0 : 1, block++};
    }
  }
  if ((st = ag_atomic_commit(af))) return st;

  if ((st = shaping_path(path, sizeof path, dir, "plot.gp")) || (st = ag_atomic_open(path, &af)))
    return st;
  f = ag_atomic_stream(af);
  fprintf(f,
          "# Renders plot.svg from plot.dat (written with summary.csv): gnuplot plot.gp\n"
          "set terminal svg size %d,720 dynamic background rgb 'white'\n"
          "set output 'plot.svg'\n"
          "set grid\n"
          "set key below font ',9'\n"
          "set multiplot layout 2,%d title 'Final welfare (reward per step), mean ± s.e. over "
          "seeds'\n",
          G > 0 ? 360 * G : 360, G > 0 ? G : 1);
  for (int panel = 0; panel < 2; panel++)
    for (int g = 0; g < G; g++) {
      fprintf(f, "set title '%s%s'\nset xlabel '%s'\nset xtics 1\n", games[g],
              panel ? ": k shapers at the largest n" : ": against n", panel ? "k" : "players n");
      const char *sep = "plot ";
      int drawn = 0;
      for (int p = 0; p < np; p++) {
        if (plots[p].game != g || plots[p].panel != panel) continue;
        fprintf(f,
                "%s'plot.dat' index %d using 1:2:3 with yerrorlines lw 2 pt 7 lc rgb '%s' "
                "title '%s'",
                sep, plots[p].block, plots[p].color, plots[p].title);
        sep = ", \\\n     ";
        drawn++;
      }
      if (drawn)
        fputc('\n', f);
      else
        fprintf(f, "set multiplot next\n");
    }
  fprintf(f, "unset multiplot\n");
  if ((st = ag_atomic_commit(af))) return st;
  if (nr > 0) ag_plot_render(dir, "plot.gp");
  return AG_OK;
}

ag_status shaping_sweep_write_reports(const char *dir, const ag_shaping_sweep_config *cfg,
                                      const json_t *lines) {
  row *rows = NULL;
  int nr = 0;
  ag_status st = summarize(cfg, lines, &rows, &nr);
  if (!st) st = write_summary_json(dir, cfg, rows, nr);
  if (!st) st = write_markdown(dir, cfg, rows, nr);
  if (!st) st = write_csv_and_plot(dir, rows, nr);
  free(rows);
  return st;
}
