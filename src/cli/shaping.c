/* `agora shape run|sweep`: n-player games with exact values; naive and LOLA
 * learners, the ES shaper and fixed strategies in any mix (issue 7). Flag
 * parsing and output only; the work is in libagora (agora/games.h,
 * agora/shaping.h). */
#include "agora/shaping.h"

#include "agora/games.h"
#include "agora/json.h"
#include "cli/args.h"
#include "cli/cli.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The learning curves of a run (curve.csv, curve.jsonl, written
 * atomically) and the last row, for the final lines. */
typedef struct run_output {
  ag_atomic_file *csv_file, *jsonl_file;
  FILE *csv, *jsonl;
  char csv_path[4096], jsonl_path[4096];
  int players;
  double final_values[AG_GAME_MAX_PLAYERS];
  double final_reward[AG_GAME_MAX_PLAYERS];
  double final_coop[AG_GAME_MAX_PLAYERS];
  double welfare, cooperation_rate;
} run_output;

static void write_array(FILE *f, const double *v, int count) {
  fputc('[', f);
  for (int i = 0; i < count; i++) fprintf(f, "%s%.10g", i ? "," : "", v[i]);
  fputc(']', f);
}

/* Opens OUT/curve.csv and OUT/curve.jsonl and writes the CSV header. */
static ag_status curves_open(run_output *o, const char *out_dir, int players) {
  memset(o, 0, sizeof *o);
  o->players = players;
  snprintf(o->csv_path, sizeof o->csv_path, "%s/curve.csv", out_dir);
  snprintf(o->jsonl_path, sizeof o->jsonl_path, "%s/curve.jsonl", out_dir);
  ag_status st = ag_atomic_open(o->csv_path, &o->csv_file);
  if (st) return st;
  if ((st = ag_atomic_open(o->jsonl_path, &o->jsonl_file))) {
    ag_atomic_abort(o->csv_file);
    return st;
  }
  o->csv = ag_atomic_stream(o->csv_file);
  o->jsonl = ag_atomic_stream(o->jsonl_file);
  fputs("step", o->csv);
  for (int i = 0; i < players; i++) fprintf(o->csv, ",value_%d", i);
  for (int i = 0; i < players; i++) fprintf(o->csv, ",reward_per_step_%d", i);
  for (int i = 0; i < players; i++) fprintf(o->csv, ",cooperation_%d", i);
  fputs(",welfare,cooperation_rate\n", o->csv);
  return AG_OK;
}

/* Commits both files after a run that ended with st, or drops both. */
static ag_status curves_close(run_output *o, ag_status st) {
  if (st) {
    ag_atomic_abort(o->csv_file);
    ag_atomic_abort(o->jsonl_file);
    return st;
  }
  st = ag_atomic_commit(o->csv_file);
  ag_status st2 = ag_atomic_commit(o->jsonl_file);
  return st ? st : st2;
}

/* One row: the CSV line, and the JSONL object up to its cooperation rate
 * (the caller adds its own fields and closes it); kept as the last row. */
static void curve_row(run_output *o, int step, const double *values, const double *reward,
                      const double *coop, double welfare, double rate) {
  int n = o->players;
  fprintf(o->csv, "%d", step);
  for (int i = 0; i < n; i++) fprintf(o->csv, ",%.10g", values[i]);
  for (int i = 0; i < n; i++) fprintf(o->csv, ",%.10g", reward[i]);
  for (int i = 0; i < n; i++) fprintf(o->csv, ",%.10g", coop[i]);
  fprintf(o->csv, ",%.10g,%.10g\n", welfare, rate);
  fprintf(o->jsonl, "{\"step\":%d,\"values\":", step);
  write_array(o->jsonl, values, n);
  fputs(",\"reward_per_step\":", o->jsonl);
  write_array(o->jsonl, reward, n);
  fputs(",\"cooperation\":", o->jsonl);
  write_array(o->jsonl, coop, n);
  fprintf(o->jsonl, ",\"welfare\":%.10g,\"cooperation_rate\":%.10g", welfare, rate);
  memcpy(o->final_values, values, sizeof(double) * (size_t)n);
  memcpy(o->final_reward, reward, sizeof(double) * (size_t)n);
  memcpy(o->final_coop, coop, sizeof(double) * (size_t)n);
  o->welfare = welfare;
  o->cooperation_rate = rate;
}

static ag_status curves_checked(const run_output *o) {
  return ferror(o->csv) || ferror(o->jsonl)
             ? ag_error_set(AG_ERR_IO, "shaping: writing the learning curves failed")
             : AG_OK;
}

static ag_status record_step(const ag_shaping_record *r, void *ctx) {
  run_output *o = ctx;
  int n = r->players;
  curve_row(o, r->step, r->values, r->reward_per_step, r->cooperation, r->welfare,
            r->cooperation_rate);
  fputs(",\"visitation\":", o->jsonl);
  write_array(o->jsonl, r->occupancy, 1 << n);
  /* Each player's cooperation probability in each of its own states. */
  fputs(",\"policies\":[", o->jsonl);
  for (int i = 0; i < n; i++) {
    double p[(1 << AG_GAME_MAX_PLAYERS) + 1];
    for (int s = 0; s < r->states; s++) p[s] = 1 / (1 + exp(-r->theta[i * r->states + s]));
    if (i) fputc(',', o->jsonl);
    write_array(o->jsonl, p, r->states);
  }
  fputs("]}\n", o->jsonl);
  return curves_checked(o);
}

/* The sampled mode's rows: each value is the batch's mean discounted return
 * and each cooperation the share of cooperative actions. */
static ag_status record_sampled(const ag_shaping_sampled_record *r, void *ctx) {
  run_output *o = ctx;
  curve_row(o, r->iteration, r->values, r->reward_per_step, r->cooperation, r->welfare,
            r->cooperation_rate);
  fputs(",\"visitation\":", o->jsonl);
  write_array(o->jsonl, r->visitation, 1 << r->players);
  fputs(",\"ppo_loss\":", o->jsonl);
  write_array(o->jsonl, r->loss, r->players);
  fputs("}\n", o->jsonl);
  return curves_checked(o);
}

/* The --json line's common part: game, players, seats, steps, welfare,
 * returns (the last values), reward_per_step, cooperation, cooperation_rate,
 * and es_training_fitness when es seats were trained. */
static json_t *final_json(const run_output *o, const char *game, const ag_shaping_learner *seats,
                          int steps, const double *fitness, int es_seats) {
  int n = o->players;
  json_t *obj = json_object(), *returns = json_array(), *coop = json_array();
  json_t *reward = json_array(), *seat_names = json_array();
  for (int i = 0; i < n; i++) {
    json_array_append_new(returns, json_real(o->final_values[i]));
    json_array_append_new(reward, json_real(o->final_reward[i]));
    json_array_append_new(coop, json_real(o->final_coop[i]));
    json_array_append_new(seat_names, json_string(ag_shaping_learner_name(seats[i])));
  }
  json_object_set_new(obj, "game", json_string(game));
  json_object_set_new(obj, "players", json_integer(n));
  json_object_set_new(obj, "seats", seat_names);
  json_object_set_new(obj, "steps", json_integer(steps));
  json_object_set_new(obj, "welfare", json_real(o->welfare));
  json_object_set_new(obj, "returns", returns);
  json_object_set_new(obj, "reward_per_step", reward);
  json_object_set_new(obj, "cooperation", coop);
  json_object_set_new(obj, "cooperation_rate", json_real(o->cooperation_rate));
  if (es_seats) {
    json_t *fit = json_array();
    for (int k = 0; k < es_seats; k++) json_array_append_new(fit, json_real(fitness[k]));
    json_object_set_new(obj, "es_training_fitness", fit);
  }
  return obj;
}

/* ---- ES training output ---------------------------------------------------------- */

typedef struct es_output {
  FILE *csv;
  ag_progress *progress;
  double last_mean[AG_GAME_MAX_PLAYERS];
} es_output;

static ag_status record_generation(const ag_shaping_es_report *r, void *ctx) {
  es_output *o = ctx;
  fprintf(o->csv, "%d", r->generation);
  for (int k = 0; k < r->es_seats; k++)
    fprintf(o->csv, ",%.10g,%.10g", r->mean_fitness[k], r->best_fitness[k]);
  fputc('\n', o->csv);
  memcpy(o->last_mean, r->mean_fitness, sizeof(double) * (size_t)r->es_seats);
  ag_progress_set_note(o->progress, "shaper fitness %.4f", r->mean_fitness[0]);
  ag_progress_update(o->progress, r->generation);
  return ferror(o->csv) ? ag_error_set(AG_ERR_IO, "shaping: writing es_training.csv failed")
                        : AG_OK;
}

static ag_status save_shaper(const char *path, int players, int hidden, int es_seats,
                             const double *params, int count) {
  json_t *obj = json_object(), *rows = json_array();
  for (int k = 0; k < es_seats; k++) {
    json_t *row = json_array();
    for (int q = 0; q < count; q++) json_array_append_new(row, json_real(params[k * count + q]));
    json_array_append_new(rows, row);
  }
  json_object_set_new(obj, "players", json_integer(players));
  json_object_set_new(obj, "hidden", json_integer(hidden));
  json_object_set_new(obj, "params", rows);
  ag_status st = ag_json_save(path, obj);
  json_decref(obj);
  return st;
}

/* Trains the ES seats (of the exact run cfg, or of the sampled run when
 * sampled is not NULL); writes es_training.csv and shaper.json into
 * out_dir. */
static ag_status train_shapers(const ag_shaping_run_config *cfg,
                               const ag_shaping_sampled_config *sampled,
                               const ag_shaping_es_config *es, const char *out_dir, double *params,
                               int es_seats, double *final_fitness) {
  char path[4096];
  snprintf(path, sizeof path, "%s/es_training.csv", out_dir);
  ag_atomic_file *af = NULL;
  ag_status st = ag_atomic_open(path, &af);
  if (st) return st;
  es_output o = {.csv = ag_atomic_stream(af)};
  fputs("generation", o.csv);
  for (int k = 0; k < es_seats; k++) fprintf(o.csv, ",mean_fitness_%d,best_fitness_%d", k, k);
  fputc('\n', o.csv);
  o.progress = ag_progress_begin("es shaper", es->generations, "generations");
  st = sampled ? ag_shaping_sampled_es_train(sampled, es, params, record_generation, &o)
               : ag_shaping_es_train(cfg, es, params, record_generation, &o);
  ag_progress_end(o.progress);
  if (st) {
    ag_atomic_abort(af);
    return st;
  }
  if ((st = ag_atomic_commit(af))) return st;
  memcpy(final_fitness, o.last_mean, sizeof(double) * (size_t)es_seats);
  int hidden = es->hidden > 0 ? es->hidden : AG_SHAPER_DEFAULT_HIDDEN;
  snprintf(path, sizeof path, "%s/shaper.json", out_dir);
  int players = sampled ? sampled->game->players : cfg->game->players;
  return save_shaper(path, players, hidden, es_seats, params,
                     sampled ? ag_shaping_sampled_shaper_param_count(players, hidden)
                             : ag_shaper_param_count(players, hidden));
}

/* The ES flags shared by run and sweep. */
#define ES_FLAGS(es)                                                                               \
  {.name = "es-generations",                                                                       \
   .type = AG_FLAG_INT,                                                                            \
   .value = &(es).generations,                                                                     \
   .help = "ES shaper: OpenES generations",                                                        \
   .min = 0,                                                                                       \
   .max = 1000000},                                                                                \
      {.name = "es-population",                                                                    \
       .type = AG_FLAG_INT,                                                                        \
       .value = &(es).population,                                                                  \
       .help = "ES shaper: candidates per generation (even; antithetic pairs)",                    \
       .min = 2,                                                                                   \
       .max = 100000},                                                                             \
      {.name = "es-episodes",                                                                      \
       .type = AG_FLAG_INT,                                                                        \
       .value = &(es).episodes,                                                                    \
       .help = "ES shaper: meta-episodes per candidate per generation",                            \
       .min = 1,                                                                                   \
       .max = 100000},                                                                             \
      {.name = "es-sigma",                                                                         \
       .type = AG_FLAG_FLOAT,                                                                      \
       .value = &(es).sigma,                                                                       \
       .help = "ES shaper: perturbation scale",                                                    \
       .min = 1e-9,                                                                                \
       .max = 100},                                                                                \
      {.name = "es-lr",                                                                            \
       .type = AG_FLAG_FLOAT,                                                                      \
       .value = &(es).lr,                                                                          \
       .help = "ES shaper: Adam step size",                                                        \
       .min = 1e-9,                                                                                \
       .max = 100},                                                                                \
  {                                                                                                \
    .name = "hidden", .type = AG_FLAG_INT, .value = &(es).hidden,                                  \
    .help = "ES shaper: GRU hidden size", .min = 1, .max = 4096                                    \
  }

#define LEARNING_FLAGS(steps, gamma, lr, correction, init_std)                                     \
  {.name = "steps",                                                                                \
   .type = AG_FLAG_INT,                                                                            \
   .value = &(steps),                                                                              \
   .help = "simultaneous learning updates (inner episodes of a meta-episode)",                     \
   .min = 0,                                                                                       \
   .max = 100000000},                                                                              \
      {.name = "gamma",                                                                            \
       .type = AG_FLAG_FLOAT,                                                                      \
       .value = &(gamma),                                                                          \
       .help = "discount",                                                                         \
       .min = 0,                                                                                   \
       .max = 0.999999},                                                                           \
      {.name = "lr",                                                                               \
       .type = AG_FLAG_FLOAT,                                                                      \
       .value = &(lr),                                                                             \
       .help = "learning rate (delta)",                                                            \
       .min = 0,                                                                                   \
       .max = 1e6},                                                                                \
      {.name = "correction",                                                                       \
       .type = AG_FLAG_FLOAT,                                                                      \
       .value = &(correction),                                                                     \
       .help = "LOLA look-ahead rate (eta)",                                                       \
       .min = 0,                                                                                   \
       .max = 1e6},                                                                                \
  {                                                                                                \
    .name = "init-std", .type = AG_FLAG_FLOAT, .value = &(init_std),                               \
    .help = "learners' initial logits ~ N(0, init-std^2)", .min = 0, .max = 1e3                    \
  }

/* `shape run --mode sampled`: trains the es seats when there are any, runs,
 * and writes the curves, the plot, the final lines and --json. */
static int run_sampled(const ag_game *game, const ag_shaping_learner *seats, int iterations,
                       const ag_ppo_config *ppo, ag_shaping_es_config es, uint64_t seed, bool json,
                       const char *out_dir) {
  int n = game->players, es_seats = 0;
  for (int i = 0; i < n; i++) es_seats += seats[i] == AG_LEARNER_ES;
  int hidden = es.hidden > 0 ? es.hidden : AG_SHAPER_DEFAULT_HIDDEN;
  double *params = NULL, fitness[AG_GAME_MAX_PLAYERS] = {0};
  if (es_seats) {
    params =
        calloc((size_t)es_seats * ag_shaping_sampled_shaper_param_count(n, hidden), sizeof(double));
    if (!params) return ag_cli_error("out of memory");
  }
  ag_shaping_sampled_config cfg = {.game = game,
                                   .seats = seats,
                                   .iterations = iterations,
                                   .seed = seed,
                                   .ppo = *ppo,
                                   .shaper_params = params,
                                   .shaper_hidden = hidden};
  es.seed = seed;
  run_output o;
  ag_status st = ag_shaping_sampled_check(&cfg);
  if (!st) st = ag_mkdir_p(out_dir);
  if (!st && es_seats) st = train_shapers(NULL, &cfg, &es, out_dir, params, es_seats, fitness);
  if (!st && !(st = curves_open(&o, out_dir, n)))
    st = curves_close(&o, ag_shaping_sampled_run(&cfg, record_sampled, &o));
  if (!st) st = ag_shaping_plot_run(out_dir, game, seats);
  free(params);
  if (st) return ag_cli_error("%s", ag_error_message());
  printf("%s, %d players, sampled, %d batches of %d x %d steps, seed %llu: welfare %.4f per step, "
         "cooperation %.3f\n",
         game->name, n, iterations, ppo->episodes, ppo->steps, (unsigned long long)seed, o.welfare,
         o.cooperation_rate);
  for (int i = 0; i < n; i++)
    printf("  player %d (%s): discounted return %.4f, reward per step %.4f, cooperation %.3f\n", i,
           ag_shaping_learner_name(seats[i]), o.final_values[i], o.final_reward[i],
           o.final_coop[i]);
  printf("curves: %s, %s; plot: %s/plot.svg\n", o.csv_path, o.jsonl_path, out_dir);
  if (json) {
    json_t *obj = final_json(&o, game->name, seats, iterations, fitness, es_seats);
    json_object_set_new(obj, "mode", json_string("sampled"));
    return ag_cli_print_json(obj, JSON_REAL_PRECISION(10));
  }
  return 0;
}

static int cmd_run(int argc, char **argv) {
  const char *game_spec = "ipd", *seats_list = NULL, *learners = NULL, *out_dir = NULL;
  int players = 3, steps = 200;
  double gamma = 0.96, lr = 1.0, correction = 1.0, init_std = 1.0;
  ag_shaping_es_config es = ag_shaping_es_defaults();
  ag_ppo_config ppo = ag_ppo_defaults();
  const char *mode = "exact";
  ag_common_flags common = {.seed = 0};
  const ag_flag table[] = {
      {.name = "mode",
       .type = AG_FLAG_CHOICE,
       .value = &mode,
       .choices = "exact|sampled",
       .help = "exact: memory-one policies in closed form; sampled: batches of sampled episodes "
               "between ppo seats (GRU policies trained by PPO), es seats (a per-step shaper "
               "trained first by OpenES) and fixed strategies, --steps batches"},
      {.name = "ppo-episodes",
       .type = AG_FLAG_INT,
       .value = &ppo.episodes,
       .help = "sampled: episodes per batch",
       .min = 1,
       .max = 1 << 20},
      {.name = "ppo-steps",
       .type = AG_FLAG_INT,
       .value = &ppo.steps,
       .help = "sampled: steps per inner episode",
       .min = 1,
       .max = 1 << 20},
      {.name = "ppo-hidden",
       .type = AG_FLAG_INT,
       .value = &ppo.hidden,
       .help = "sampled: GRU width of the ppo seats",
       .min = 1,
       .max = 64},
      {.name = "ppo-lr",
       .type = AG_FLAG_FLOAT,
       .value = &ppo.lr,
       .help = "sampled: Adam learning rate of the ppo seats",
       .min = 1e-9,
       .max = 10},
      {.name = "ppo-epochs",
       .type = AG_FLAG_INT,
       .value = &ppo.epochs,
       .help = "sampled: PPO updates per batch",
       .min = 1,
       .max = 1000},
      {.name = "game",
       .type = AG_FLAG_STRING,
       .value = &game_spec,
       .metavar = "GAME",
       .help = "ipd, sd, sh, tc, or a payoff table JSON file"},
      {.name = "players",
       .type = AG_FLAG_INT,
       .value = &players,
       .help = "number of players (2..5 for the built-in games, 2..8 for files)",
       .min = AG_GAME_MIN_PLAYERS,
       .max = AG_GAME_MAX_PLAYERS},
      {.name = "seats",
       .type = AG_FLAG_STRING,
       .value = &seats_list,
       .metavar = "LIST",
       .help = "one entry per seat, comma-separated: naive, lola, es (the ES-trained "
               "shaper), allc, alld, tft, tft-maj; ppo (--mode sampled)"},
      {.name = "learners",
       .type = AG_FLAG_STRING,
       .value = &learners,
       .metavar = "LIST",
       .help = "the same as --seats (older name)"},
      LEARNING_FLAGS(steps, gamma, lr, correction, init_std),
      ES_FLAGS(es),
      {.name = "out",
       .type = AG_FLAG_STRING,
       .value = &out_dir,
       .metavar = "DIR",
       .help = "where curve.csv, curve.jsonl and plot.svg go",
       .required = true},
  };
  enum { N_TABLE = sizeof table / sizeof *table };
  ag_flag flags[N_TABLE + AG_COMMON_FLAG_COUNT];
  int n_flags = ag_args_with_common(flags, table, N_TABLE, &common, true);
  ag_command cmd = {
      .name = "shape run",
      .summary =
          "Learns memory-one policies in an iterated n-player game with exact values and "
          "exact\ngradients: naive learners, LOLA, the ES-trained meta-learning shaper and "
          "fixed\nstrategies in any mix across the seats. With 'es' seats, first trains the "
          "shaper(s)\nby OpenES over meta-episodes (es_training.csv, shaper.json), then runs "
          "one\nmeta-episode from --seed. Writes the learning curves (values, reward per step,\n"
          "cooperation, welfare, visitation, policies), plot.gp / plot.svg, and prints each\n"
          "player's final value.",
      .flags = flags,
      .flag_count = n_flags,
  };
  ag_args_result res = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (res == AG_ARGS_HELP) return 0;
  if (res != AG_ARGS_OK) return 2;
  if (seats_list && learners)
    return ag_args_usage_error(&cmd, "--seats and --learners are the same flag: give one");
  if (!seats_list) seats_list = learners;
  if (!seats_list) return ag_args_usage_error(&cmd, "--seats is required");
  ag_args_apply_common(&common);

  /* Every input is checked before any work starts. */
  ag_game game;
  if (ag_game_open(game_spec, players, &game)) return ag_cli_error("%s", ag_error_message());
  ag_shaping_learner seats[AG_GAME_MAX_PLAYERS];
  if (ag_shaping_parse_seats(seats_list, players, seats))
    return ag_cli_error("%s", ag_error_message());
  if (!strcmp(mode, "sampled")) {
    ppo.gamma = gamma;
    return run_sampled(&game, seats, steps, &ppo, es, common.seed, common.json, out_dir);
  }
  int es_seats = 0;
  for (int i = 0; i < players; i++) es_seats += seats[i] == AG_LEARNER_ES;
  ag_shaping_run_config cfg = {.game = &game,
                               .seats = seats,
                               .steps = steps,
                               .gamma = gamma,
                               .lr = lr,
                               .correction = correction,
                               .init_std = init_std,
                               .seed = common.seed,
                               .shaper_hidden = es.hidden};
  int param_count = ag_shaper_param_count(players, es.hidden);
  double *params = NULL;
  if (es_seats) {
    params = calloc((size_t)es_seats * param_count, sizeof(double));
    if (!params) return ag_cli_error("out of memory");
  }
  cfg.shaper_params = params ? params : NULL;
  es.seed = common.seed;
  ag_status st = ag_shaping_run_check(&cfg);
  if (st) {
    free(params);
    return ag_cli_error("%s", ag_error_message());
  }
  if (ag_mkdir_p(out_dir)) {
    free(params);
    return ag_cli_error("%s", ag_error_message());
  }

  double fitness[AG_GAME_MAX_PLAYERS] = {0};
  if (es_seats && (st = train_shapers(&cfg, NULL, &es, out_dir, params, es_seats, fitness))) {
    free(params);
    return ag_cli_error("%s", ag_error_message());
  }

  run_output o;
  double mean_reward[AG_GAME_MAX_PLAYERS];
  if (!(st = curves_open(&o, out_dir, players)))
    st = curves_close(&o, ag_shaping_exact_run_mean(&cfg, record_step, &o, mean_reward));
  free(params);
  if (!st) st = ag_shaping_plot_run(out_dir, &game, seats);
  if (st) return ag_cli_error("%s", ag_error_message());

  printf("%s, %d players, %d steps, seed %llu: welfare %.4f per step, cooperation %.3f\n",
         game.name, players, steps, (unsigned long long)common.seed, o.welfare, o.cooperation_rate);
  for (int i = 0; i < players; i++)
    printf("  player %d (%s): value %.4f, reward per step %.4f (run mean %.4f), cooperation "
           "%.3f\n",
           i, ag_shaping_learner_name(seats[i]), o.final_values[i], o.final_reward[i],
           mean_reward[i], o.final_coop[i]);
  printf("curves: %s, %s; plot: %s/plot.svg\n", o.csv_path, o.jsonl_path, out_dir);
  if (common.json) {
    json_t *obj = final_json(&o, game.name, seats, steps, fitness, es_seats);
    json_t *mean = json_array();
    for (int i = 0; i < players; i++) json_array_append_new(mean, json_real(mean_reward[i]));
    json_object_set_new(obj, "mean_reward_per_step", mean);
    return ag_cli_print_json(obj, JSON_REAL_PRECISION(10));
  }
  return 0;
}

/* "3,4,5", "3-5" or "3..5" into players[]; false on a malformed list. */
static bool parse_players(const char *text, int *players, int *count) {
  *count = 0;
  int lo, hi;
  char tail;
  if (sscanf(text, "%d-%d%c", &lo, &hi, &tail) == 2 ||
      sscanf(text, "%d..%d%c", &lo, &hi, &tail) == 2) {
    if (lo > hi || lo < AG_GAME_MIN_PLAYERS || hi > AG_GAME_MAX_PLAYERS) return false;
    for (int n = lo; n <= hi; n++) players[(*count)++] = n;
    return true;
  }
  const char *p = text;
  for (;;) {
    char *end;
    long n = strtol(p, &end, 10);
    if (end == p || n < AG_GAME_MIN_PLAYERS || n > AG_GAME_MAX_PLAYERS ||
        *count >= AG_GAME_MAX_PLAYERS)
      return false;
    players[(*count)++] = (int)n;
    if (!*end) return true;
    if (*end != ',') return false;
    p = end + 1;
  }
}

static int cmd_sweep(int argc, char **argv) {
  const char *games_list = "ipd,sd,sh,tc", *players_list = "3,4,5", *shapers = "lola,es";
  const char *out_dir = NULL;
  int seeds = AG_SHAPING_SWEEP_DEFAULT_SEEDS, evaluations = AG_SHAPING_SWEEP_DEFAULT_EVALUATIONS;
  int steps = AG_SHAPING_SWEEP_DEFAULT_STEPS, max_shapers = 0;
  double gamma = 0.96, lr = 1.0, correction = 1.0, init_std = 1.0;
  ag_shaping_es_config es = ag_shaping_es_defaults();
  ag_common_flags common = {.seed = 1};
  const ag_flag table[] = {
      {.name = "games",
       .type = AG_FLAG_STRING,
       .value = &games_list,
       .metavar = "LIST",
       .help = "comma-separated: ipd, sd, sh, tc, or payoff table files"},
      {.name = "players",
       .type = AG_FLAG_STRING,
       .value = &players_list,
       .metavar = "LIST",
       .help = "player counts: 3,4,5 or 3-5"},
      {.name = "shapers",
       .type = AG_FLAG_STRING,
       .value = &shapers,
       .metavar = "LIST",
       .help = "shaper kinds in the grid: lola, es, or lola,es"},
      {.name = "max-shapers",
       .type = AG_FLAG_INT,
       .value = &max_shapers,
       .help = "at most this many shapers per cell (0: up to n - 1)",
       .min = 0,
       .max = AG_GAME_MAX_PLAYERS},
      {.name = "seeds",
       .type = AG_FLAG_INT,
       .value = &seeds,
       .help = "seeds per cell: --seed, --seed + 1, ...",
       .min = 1,
       .max = 100000},
      {.name = "evaluations",
       .type = AG_FLAG_INT,
       .value = &evaluations,
       .help = "learner starts per cell and seed, averaged",
       .min = 1,
       .max = 100000},
      LEARNING_FLAGS(steps, gamma, lr, correction, init_std),
      ES_FLAGS(es),
      {.name = "out",
       .type = AG_FLAG_STRING,
       .value = &out_dir,
       .metavar = "DIR",
       .help = "results.jsonl (resumable), summary.{json,md,csv}, plot.svg",
       .required = true},
  };
  enum { N_TABLE = sizeof table / sizeof *table };
  ag_flag flags[N_TABLE + AG_COMMON_FLAG_COUNT];
  int n_flags = ag_args_with_common(flags, table, N_TABLE, &common, true);
  ag_command cmd = {
      .name = "shape sweep",
      .summary =
          "Runs the seed paper's grid: for every game and player count n, all-naive "
          "learners,\nand k = 1..n-1 shapers (LOLA, the ES shaper) in seats 0..k-1 with naive "
          "learners in\nthe rest, over several seeds. One line per cell and seed goes to "
          "DIR/results.jsonl\nas it finishes; running the same command again skips what is "
          "there. Then writes\nsummary.json / summary.md / summary.csv (means and standard "
          "errors over seeds)\nand plot.svg. Cells run in parallel over --threads.",
      .flags = flags,
      .flag_count = n_flags,
  };
  ag_args_result res = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (res == AG_ARGS_HELP) return 0;
  if (res != AG_ARGS_OK) return 2;
  ag_args_apply_common(&common);

  ag_shaping_sweep_config cfg = {.out_dir = out_dir,
                                 .seeds = seeds,
                                 .first_seed = common.seed,
                                 .evaluations = evaluations,
                                 .max_shapers = max_shapers,
                                 .run = {.steps = steps,
                                         .gamma = gamma,
                                         .lr = lr,
                                         .correction = correction,
                                         .init_std = init_std},
                                 .es_config = es,
                                 .threads = common.threads};
  /* --games: split a copy of the list. */
  static char games_copy[4096];
  snprintf(games_copy, sizeof games_copy, "%s", games_list);
  for (char *save = NULL, *g = strtok_r(games_copy, ",", &save); g;
       g = strtok_r(NULL, ",", &save)) {
    if (cfg.game_count == AG_SHAPING_SWEEP_MAX_GAMES)
      return ag_args_usage_error(&cmd, "--games: at most %d games", AG_SHAPING_SWEEP_MAX_GAMES);
    cfg.games[cfg.game_count++] = g;
  }
  if (cfg.game_count == 0) return ag_args_usage_error(&cmd, "--games: no game given");
  if (!parse_players(players_list, cfg.players, &cfg.player_count))
    return ag_args_usage_error(&cmd, "--players '%s': expected counts %d..%d like 3,4,5 or 3-5",
                               players_list, AG_GAME_MIN_PLAYERS, AG_GAME_MAX_PLAYERS);
  static char shapers_copy[256];
  snprintf(shapers_copy, sizeof shapers_copy, "%s", shapers);
  for (char *save = NULL, *k = strtok_r(shapers_copy, ",", &save); k;
       k = strtok_r(NULL, ",", &save)) {
    if (!strcmp(k, "lola"))
      cfg.lola = true;
    else if (!strcmp(k, "es"))
      cfg.es = true;
    else
      return ag_args_usage_error(&cmd, "--shapers: '%s' is not a shaper kind (lola, es)", k);
  }

  ag_shaping_sweep_result result;
  if (ag_shaping_sweep(&cfg, &result)) return ag_cli_error("%s", ag_error_message());
  char path[4200];
  snprintf(path, sizeof path, "%s/summary.md", out_dir);
  char *text = NULL;
  size_t bytes = 0;
  if (!ag_read_file(path, &text, &bytes)) fputs(text, stdout);
  free(text);
  printf("\n%d cells x %d seeds: %d runs done now, %d already there, %.1f s; results in %s\n",
         result.cells, seeds, result.jobs_run, result.jobs_skipped, result.seconds, out_dir);
  if (common.json) {
    json_t *obj = json_object();
    json_object_set_new(obj, "cells", json_integer(result.cells));
    json_object_set_new(obj, "jobs", json_integer(result.jobs));
    json_object_set_new(obj, "jobs_run", json_integer(result.jobs_run));
    json_object_set_new(obj, "jobs_skipped", json_integer(result.jobs_skipped));
    json_object_set_new(obj, "seconds", json_real(result.seconds));
    snprintf(path, sizeof path, "%s/summary.json", out_dir);
    json_object_set_new(obj, "summary", json_string(path));
    char *line = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(10));
    if (line) printf("%s\n", line);
    free(line);
    json_decref(obj);
  }
  return 0;
}

int ag_cli_shaping(int argc, char **argv) {
  static const ag_cli_verb verbs[] = {
      {"run", "learn in an n-player game with exact values: learners, shapers, fixed seats",
       cmd_run},
      {"sweep", "the seed paper's grid of games, player counts and shapers over seeds", cmd_sweep},
  };
  static const ag_cli_area_help area = {
      "shape",
      "N-player opponent shaping (PAPERS.md §10): iterated binary-action games for 2..5 "
      "players\n(ipd, sd, sh, tc, or a payoff file), memory-one policies with exact values; "
      "naive learners,\nLOLA, the ES-trained meta-learning shaper and fixed strategies.",
      verbs, (int)(sizeof verbs / sizeof *verbs)};
  return ag_cli_dispatch(&area, argc, argv);
}
