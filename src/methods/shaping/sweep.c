/* `agora shape sweep`: the seed paper's grid (PAPERS.md §10) over games,
 * player counts, shaper kinds and counts, and seeds (shaping.h). One line
 * of results.jsonl per cell x seed, written as each finishes, so a killed
 * sweep resumes where it stopped; then the summary (sweep_report.c). */
#include "agora/json.h"
#include "internal.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESULTS_FILE   "results.jsonl"
#define CONFIG_FILE    "config.json"
#define PATH_MAX_BYTES 4096

/* One configuration of the grid: `shapers` seats of `kind` (seats 0..k-1),
 * naive learners in the rest; kind NAIVE with shapers 0 is all-naive. */
typedef struct cell {
  int game;
  int players;
  ag_shaping_learner kind;
  int shapers;
  char key[96];
} cell;

typedef struct job {
  int cell;
  uint64_t seed;
  double cost; /* rough relative seconds, to start the slow ones first */
} job;

static const char *kind_name(ag_shaping_learner kind) {
  return kind == AG_LEARNER_NAIVE ? "none" : ag_shaping_learner_name(kind);
}

static uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b) {
  uint64_t z = seed ^ (a * 0x9E3779B97F4A7C15ull) ^ (b * 0xC2B2AE3D27D4EB4Full);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static uint64_t hash_text(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

#define STREAM_EVAL  0xe7a1
#define STREAM_TRAIN 0x7a19

/* ---- one cell x seed ------------------------------------------------------------- */

typedef struct final_record {
  int n;
  double reward[AG_GAME_MAX_PLAYERS], coop[AG_GAME_MAX_PLAYERS];
  double welfare, cooperation_rate;
} final_record;

static ag_status keep_last(const ag_shaping_record *r, void *ctx) {
  final_record *f = ctx;
  f->n = r->players;
  memcpy(f->reward, r->reward_per_step, sizeof(double) * (size_t)r->players);
  memcpy(f->coop, r->cooperation, sizeof(double) * (size_t)r->players);
  f->welfare = r->welfare;
  f->cooperation_rate = r->cooperation_rate;
  return AG_OK;
}

typedef struct es_last {
  double fitness;
} es_last;

static ag_status keep_fitness(const ag_shaping_es_report *r, void *ctx) {
  es_last *l = ctx;
  l->fitness = 0;
  for (int k = 0; k < r->es_seats; k++) l->fitness += r->mean_fitness[k] / r->es_seats;
  return AG_OK;
}

static json_t *real_array(const double *v, int count) {
  json_t *a = json_array();
  for (int i = 0; i < count; i++) json_array_append_new(a, json_real(v[i]));
  return a;
}

/* Trains the ES seats (if any) and averages `evaluations` runs from starts
 * that depend on the seed alone, so every cell of a game and n meets the
 * same starts (the comparisons with all-naive are paired). */
static ag_status run_job(const ag_shaping_sweep_config *cfg, const ag_game *game, const cell *c,
                         uint64_t seed, json_t **out) {
  *out = NULL;
  const int n = c->players;
  double t0 = ag_time_seconds();
  ag_shaping_learner seats[AG_GAME_MAX_PLAYERS];
  for (int i = 0; i < n; i++) seats[i] = i < c->shapers ? c->kind : AG_LEARNER_NAIVE;
  ag_shaping_run_config rc = cfg->run;
  rc.game = game;
  rc.seats = seats;
  rc.shaper_hidden = cfg->es_config.hidden > 0 ? cfg->es_config.hidden : AG_SHAPER_DEFAULT_HIDDEN;
  rc.shaper_params = NULL;
  double *params = NULL;
  es_last fit = {NAN};
  ag_status st = AG_OK;
  if (c->kind == AG_LEARNER_ES) {
    int count = ag_shaper_param_count(n, rc.shaper_hidden);
    params = calloc((size_t)c->shapers * count, sizeof(double));
    if (!params) return ag_error_set(AG_ERR_NOMEM, "sweep: out of memory");
    ag_shaping_es_config es = cfg->es_config;
    es.seed = mix_seed(seed, STREAM_TRAIN, hash_text(c->key));
    es.threads = 1; /* the sweep runs cells in parallel */
    st = ag_shaping_es_train(&rc, &es, params, keep_fitness, &fit);
    rc.shaper_params = params;
  }
  double reward[AG_GAME_MAX_PLAYERS] = {0}, coop[AG_GAME_MAX_PLAYERS] = {0};
  double welfare = 0, cooperation = 0, welfare_run = 0;
  const int E = cfg->evaluations;
  for (int e = 0; e < E && !st; e++) {
    final_record last = {0};
    double mean[AG_GAME_MAX_PLAYERS];
    rc.seed = mix_seed(seed, STREAM_EVAL, (uint64_t)e);
    st = ag_shaping_exact_run_mean(&rc, keep_last, &last, mean);
    if (st) break;
    for (int i = 0; i < n; i++) {
      reward[i] += last.reward[i] / E;
      coop[i] += last.coop[i] / E;
      welfare_run += mean[i] / n / E;
    }
    welfare += last.welfare / E;
    cooperation += last.cooperation_rate / E;
  }
  free(params);
  if (st) return st;
  double shaper = 0, naive = 0;
  for (int i = 0; i < n; i++) {
    if (i < c->shapers)
      shaper += reward[i] / c->shapers;
    else
      naive += reward[i] / (n - c->shapers);
  }
  json_t *line = json_object();
  json_object_set_new(line, "cell", json_string(c->key));
  json_object_set_new(line, "game", json_string(game->name));
  json_object_set_new(line, "players", json_integer(n));
  json_object_set_new(line, "shaper", json_string(kind_name(c->kind)));
  json_object_set_new(line, "shapers", json_integer(c->shapers));
  json_object_set_new(line, "seed", json_integer((json_int_t)seed));
  json_object_set_new(line, "welfare", json_real(welfare));
  json_object_set_new(line, "welfare_run", json_real(welfare_run));
  json_object_set_new(line, "cooperation_rate", json_real(cooperation));
  json_object_set_new(line, "shaper_reward", c->shapers ? json_real(shaper) : json_null());
  json_object_set_new(line, "naive_reward", c->shapers < n ? json_real(naive) : json_null());
  json_object_set_new(line, "reward_per_step", real_array(reward, n));
  json_object_set_new(line, "cooperation", real_array(coop, n));
  if (c->kind == AG_LEARNER_ES) json_object_set_new(line, "es_fitness", json_real(fit.fitness));
  json_object_set_new(line, "seconds", json_real(ag_time_seconds() - t0));
  *out = line;
  return AG_OK;
}

/* ---- results.jsonl and config.json --------------------------------------------------- */

/* Every complete line of path as a JSON array (empty when the file is
 * missing). A malformed last line is what a killed sweep leaves: dropped,
 * with a warning; a malformed line before it is an error. *dropped says
 * whether the file needs rewriting. */
static ag_status load_results(const char *path, json_t **out, bool *dropped) {
  *out = json_array();
  *dropped = false;
  if (!*out) return ag_error_set(AG_ERR_NOMEM, "sweep: out of memory");
  if (!ag_file_exists(path)) return AG_OK;
  char *text = NULL;
  size_t bytes = 0;
  ag_status st = ag_read_file(path, &text, &bytes);
  if (st) return st;
  int line_no = 0;
  char *p = text;
  while (!st && *p) {
    char *end = strchr(p, '\n');
    bool last = !end || !end[1];
    if (end) *end = 0;
    line_no++;
    if (strspn(p, " \t\r") != strlen(p)) {
      json_error_t err;
      json_t *v = json_loads(p, 0, &err);
      if (!json_is_object(v) || !json_is_string(json_object_get(v, "cell")) ||
          !json_is_integer(json_object_get(v, "seed"))) {
        json_decref(v);
        if (last) {
          ag_warn("sweep: %s: dropping the incomplete last line %d", path, line_no);
          *dropped = true;
        } else {
          st = ag_error_set(AG_ERR_FORMAT, "%s: line %d is not a result object", path, line_no);
        }
      } else {
        json_array_append_new(*out, v);
      }
    }
    if (!end) break;
    p = end + 1;
  }
  free(text);
  if (st) {
    json_decref(*out);
    *out = NULL;
  }
  return st;
}

static ag_status save_results(const char *path, const json_t *lines) {
  ag_atomic_file *f;
  ag_status st = ag_atomic_open(path, &f);
  if (st) return st;
  size_t i;
  json_t *v;
  json_array_foreach(lines, i, v) {
    st = ag_jsonl_write(ag_atomic_stream(f), v);
    if (st) break;
  }
  if (st) {
    ag_atomic_abort(f);
    return st;
  }
  return ag_atomic_commit(f);
}

static bool has_result(const json_t *lines, const char *key, uint64_t seed) {
  size_t i;
  json_t *v;
  json_array_foreach(lines, i, v) {
    if (!strcmp(json_string_value(json_object_get(v, "cell")), key) &&
        (uint64_t)json_integer_value(json_object_get(v, "seed")) == seed)
      return true;
  }
  return false;
}

/* The settings a cell's result depends on (the grid itself may change
 * between resumptions). */
json_t *shaping_sweep_settings(const ag_shaping_sweep_config *cfg) {
  json_t *o = json_object();
  json_object_set_new(o, "steps", json_integer(cfg->run.steps));
  json_object_set_new(o, "gamma", json_real(cfg->run.gamma));
  json_object_set_new(o, "lr", json_real(cfg->run.lr));
  json_object_set_new(o, "correction", json_real(cfg->run.correction));
  json_object_set_new(o, "init_std", json_real(cfg->run.init_std));
  json_object_set_new(o, "evaluations", json_integer(cfg->evaluations));
  json_object_set_new(o, "es_generations", json_integer(cfg->es_config.generations));
  json_object_set_new(o, "es_population", json_integer(cfg->es_config.population));
  json_object_set_new(o, "es_episodes", json_integer(cfg->es_config.episodes));
  json_object_set_new(o, "es_sigma", json_real(cfg->es_config.sigma));
  json_object_set_new(o, "es_lr", json_real(cfg->es_config.lr));
  json_object_set_new(
      o, "hidden",
      json_integer(cfg->es_config.hidden > 0 ? cfg->es_config.hidden : AG_SHAPER_DEFAULT_HIDDEN));
  return o;
}

static ag_status check_settings(const char *path, const json_t *want) {
  if (!ag_file_exists(path)) return ag_json_save(path, want);
  json_t *have = NULL;
  ag_status st = ag_json_load(path, &have);
  if (st) return st;
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)want, key, v) {
    json_t *h = json_object_get(have, key);
    if (!json_is_number(h) || json_number_value(h) != json_number_value(v)) {
      st = ag_error_set(AG_ERR_INVALID,
                        "%s: this folder holds a sweep with %s = %g, this one has %g: use "
                        "another --out, or the same settings to resume",
                        path, key, json_is_number(h) ? json_number_value(h) : NAN,
                        json_number_value(v));
      break;
    }
  }
  json_decref(have);
  return st;
}

/* ---- the sweep ----------------------------------------------------------------------------- */

static ag_status check_sweep(const ag_shaping_sweep_config *cfg, ag_game *games) {
  if (!cfg->out_dir) return ag_error_set(AG_ERR_INVALID, "sweep: no output folder");
  if (cfg->game_count < 1 || cfg->game_count > AG_SHAPING_SWEEP_MAX_GAMES)
    return ag_error_set(AG_ERR_INVALID, "sweep: 1..%d games, got %d", AG_SHAPING_SWEEP_MAX_GAMES,
                        cfg->game_count);
  if (cfg->player_count < 1 || cfg->player_count > AG_GAME_MAX_PLAYERS)
    return ag_error_set(AG_ERR_INVALID, "sweep: 1..%d player counts, got %d", AG_GAME_MAX_PLAYERS,
                        cfg->player_count);
  if (cfg->seeds < 1) return ag_error_set(AG_ERR_INVALID, "sweep: seeds must be >= 1");
  if (cfg->evaluations < 1) return ag_error_set(AG_ERR_INVALID, "sweep: evaluations must be >= 1");
  if (cfg->threads < 0) return ag_error_set(AG_ERR_INVALID, "sweep: threads must be >= 0");
  if (cfg->max_shapers < 0) return ag_error_set(AG_ERR_INVALID, "sweep: max shapers must be >= 0");
  for (int p = 0; p < cfg->player_count; p++)
    if (cfg->players[p] < AG_GAME_MIN_PLAYERS || cfg->players[p] > AG_GAME_MAX_PLAYERS)
      return ag_error_set(AG_ERR_INVALID, "sweep: players must be %d..%d, got %d",
                          AG_GAME_MIN_PLAYERS, AG_GAME_MAX_PLAYERS, cfg->players[p]);
  /* Every game at every n must exist before any work. */
  for (int g = 0; g < cfg->game_count; g++)
    for (int p = 0; p < cfg->player_count; p++) {
      ag_status st =
          ag_game_open(cfg->games[g], cfg->players[p], &games[g * AG_GAME_MAX_PLAYERS + p]);
      if (st) return st;
    }
  ag_shaping_learner seats[AG_GAME_MAX_PLAYERS] = {0};
  ag_shaping_run_config rc = cfg->run;
  rc.game = &games[0];
  rc.seats = seats;
  rc.shaper_params = NULL;
  ag_status st = ag_shaping_run_check(&rc);
  if (st) return st;
  if (cfg->es) {
    ag_shaping_es_config es = cfg->es_config;
    if (es.population < 2 || es.population % 2 || es.episodes < 1 || es.generations < 0 ||
        !(es.sigma > 0) || !(es.lr > 0) || !isfinite(es.sigma) || !isfinite(es.lr) || es.hidden < 0)
      return ag_error_set(AG_ERR_INVALID,
                          "sweep: ES settings: population even >= 2, episodes >= 1, "
                          "generations >= 0, sigma and lr > 0");
  }
  return AG_OK;
}

ag_status ag_shaping_sweep(const ag_shaping_sweep_config *cfg, ag_shaping_sweep_result *result) {
  if (!cfg) return ag_error_set(AG_ERR_INVALID, "ag_shaping_sweep: NULL argument");
  ag_shaping_sweep_result res = {0};
  double t0 = ag_time_seconds();
  ag_game *games = calloc(AG_SHAPING_SWEEP_MAX_GAMES * AG_GAME_MAX_PLAYERS, sizeof *games);
  if (!games) return ag_error_set(AG_ERR_NOMEM, "sweep: out of memory");
  ag_status st = check_sweep(cfg, games);
  if (!st) st = ag_mkdir_p(cfg->out_dir);
  if (st) {
    free(games);
    return st;
  }
  char results_path[PATH_MAX_BYTES], config_path[PATH_MAX_BYTES];
  int max_cells = cfg->game_count * cfg->player_count * (1 + 2 * AG_GAME_MAX_PLAYERS);
  cell *cells = calloc((size_t)max_cells, sizeof *cells);
  job *jobs = calloc((size_t)max_cells * cfg->seeds, sizeof *jobs);
  json_t *lines = NULL;
  bool dropped = false;
  if ((st = shaping_path(results_path, sizeof results_path, cfg->out_dir, RESULTS_FILE)) ||
      (st = shaping_path(config_path, sizeof config_path, cfg->out_dir, CONFIG_FILE)))
    goto done;
  json_t *settings = shaping_sweep_settings(cfg);
  st = check_settings(config_path, settings);
  json_decref(settings);
  if (st) goto done;

  /* The grid. */
  if (!cells || !jobs) {
    st = ag_error_set(AG_ERR_NOMEM, "sweep: out of memory");
    goto done;
  }
  int nc = 0;
  for (int g = 0; g < cfg->game_count; g++)
    for (int p = 0; p < cfg->player_count; p++) {
      const ag_game *game = &games[g * AG_GAME_MAX_PLAYERS + p];
      int n = cfg->players[p];
      for (int kind = 0; kind < 3; kind++) {
        ag_shaping_learner l = kind == 0   ? AG_LEARNER_NAIVE
                               : kind == 1 ? AG_LEARNER_LOLA
                                           : AG_LEARNER_ES;
        if ((l == AG_LEARNER_LOLA && !cfg->lola) || (l == AG_LEARNER_ES && !cfg->es)) continue;
        int kmax = cfg->max_shapers > 0 && cfg->max_shapers < n - 1 ? cfg->max_shapers : n - 1;
        for (int k = kind == 0 ? 0 : 1; k <= (kind == 0 ? 0 : kmax); k++) {
          cell *c = &cells[nc++];
          c->game = g * AG_GAME_MAX_PLAYERS + p;
          c->players = n;
          c->kind = l;
          c->shapers = k;
          snprintf(c->key, sizeof c->key, "%s/%d/%s/%d", game->name, n, kind_name(l), k);
        }
      }
    }
  res.cells = nc;
  if ((st = load_results(results_path, &lines, &dropped))) goto done;
  if (dropped && (st = save_results(results_path, lines))) goto done;
  int nj = 0;
  for (int c = 0; c < nc; c++)
    for (int s = 0; s < cfg->seeds; s++) {
      uint64_t seed = cfg->first_seed + (uint64_t)s;
      res.jobs++;
      if (has_result(lines, cells[c].key, seed)) {
        res.jobs_skipped++;
        continue;
      }
      double states = (double)(1 << cells[c].players);
      double cost = cells[c].kind == AG_LEARNER_ES
                        ? states * states * cfg->es_config.generations * cfg->es_config.population
                        : states * states * (1 + cells[c].shapers);
      jobs[nj++] = (job){c, seed, cost};
    }
  /* Slowest first, so the last minutes are not one long job on one core. */
  for (int i = 1; i < nj; i++) {
    job cur = jobs[i];
    int j = i - 1;
    while (j >= 0 && jobs[j].cost < cur.cost) {
      jobs[j + 1] = jobs[j];
      j--;
    }
    jobs[j + 1] = cur;
  }

  FILE *append = NULL;
  if (nj > 0 && !(append = fopen(results_path, "a"))) {
    st = ag_error_set(AG_ERR_IO, "sweep: cannot append to %s", results_path);
    goto done;
  }
  int threads = cfg->threads > 0 ? cfg->threads : ag_threads_get();
  if (threads < 1) threads = 1;
  ag_progress *progress = ag_progress_begin("shape sweep", nj, "runs");
  int finished = 0;
  int failed = AG_OK;
  char first_error[1024] = "";
  int blas = threads == 1 ? shaping_blas_serial_begin() : 0;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
  for (int j = 0; j < nj; j++) {
    int stop;
#pragma omp atomic read
    stop = failed;
    if (stop) continue;
    ag_status js;
    const cell *c = &cells[jobs[j].cell];
    json_t *line = NULL;
    js = run_job(cfg, &games[c->game], c, jobs[j].seed, &line);
    char *text = js ? NULL : json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(10));
    if (!js && !text) js = ag_error_set(AG_ERR_NOMEM, "sweep: out of memory");
#pragma omp critical(shaping_sweep_write)
    {
      if (!js) {
        /* One write per line, flushed, so a kill leaves at most a partial
         * last line, which the next run drops. */
        if (fprintf(append, "%s\n", text) < 0 || fflush(append) != 0)
          js = ag_error_set(AG_ERR_IO, "sweep: writing %s failed", results_path);
        else
          json_array_append(lines, line);
      }
      if (js && !failed) {
#pragma omp atomic write
        failed = (int)js;
        snprintf(first_error, sizeof first_error, "%s (%s)", ag_error_message(), c->key);
      }
      finished++;
      ag_progress_set_note(progress, "%s seed %llu", c->key, (unsigned long long)jobs[j].seed);
      ag_progress_update(progress, finished);
    }
    free(text);
    json_decref(line);
  }
  shaping_blas_serial_end(blas);
  ag_progress_end(progress);
  if (append && fclose(append) != 0 && !failed) {
    failed = (int)AG_ERR_IO;
    snprintf(first_error, sizeof first_error, "sweep: closing %.900s failed", results_path);
  }
  if (failed) {
    st = ag_error_set((ag_status)failed, "%s", first_error);
    goto done;
  }
  res.jobs_run = nj;
  st = shaping_sweep_write_reports(cfg->out_dir, cfg, lines);
done:
  res.seconds = ag_time_seconds() - t0;
  if (result) *result = res;
  json_decref(lines);
  free(cells);
  free(jobs);
  free(games);
  return st;
}
