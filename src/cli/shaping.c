/* `agora shape run`: n-player games with exact values, naive and LOLA
 * learners (issue 7). Flag parsing and output only; the work is in libagora
 * (agora/games.h, agora/shaping.h). */
#include "agora/shaping.h"

#include "agora/games.h"
#include "cli/args.h"
#include "cli/cli.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct run_output {
  FILE *csv, *jsonl;
  int players;
  double final_values[AG_GAME_MAX_PLAYERS];
  double final_coop[AG_GAME_MAX_PLAYERS];
  double welfare, cooperation_rate;
} run_output;

static void write_array(FILE *f, const double *v, int count) {
  fputc('[', f);
  for (int i = 0; i < count; i++) fprintf(f, "%s%.10g", i ? "," : "", v[i]);
  fputc(']', f);
}

static ag_status record_step(const ag_shaping_record *r, void *ctx) {
  run_output *o = ctx;
  int n = r->players;
  fprintf(o->csv, "%d", r->step);
  for (int i = 0; i < n; i++) fprintf(o->csv, ",%.10g", r->values[i]);
  for (int i = 0; i < n; i++) fprintf(o->csv, ",%.10g", r->reward_per_step[i]);
  for (int i = 0; i < n; i++) fprintf(o->csv, ",%.10g", r->cooperation[i]);
  fprintf(o->csv, ",%.10g,%.10g\n", r->welfare, r->cooperation_rate);

  fprintf(o->jsonl, "{\"step\":%d,\"values\":", r->step);
  write_array(o->jsonl, r->values, n);
  fputs(",\"reward_per_step\":", o->jsonl);
  write_array(o->jsonl, r->reward_per_step, n);
  fputs(",\"cooperation\":", o->jsonl);
  write_array(o->jsonl, r->cooperation, n);
  fprintf(o->jsonl, ",\"welfare\":%.10g,\"cooperation_rate\":%.10g,\"visitation\":", r->welfare,
          r->cooperation_rate);
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
  if (ferror(o->csv) || ferror(o->jsonl))
    return ag_error_set(AG_ERR_IO, "shaping: writing the learning curves failed");
  memcpy(o->final_values, r->values, sizeof(double) * n);
  memcpy(o->final_coop, r->cooperation, sizeof(double) * n);
  o->welfare = r->welfare;
  o->cooperation_rate = r->cooperation_rate;
  return AG_OK;
}

static int cmd_run(int argc, char **argv) {
  const char *game_spec = "ipd", *learners = NULL, *out_dir = NULL;
  int players = 3, steps = 200;
  double gamma = 0.96, lr = 1.0, correction = 1.0, init_std = 1.0;
  ag_common_flags common = {.seed = 0};
  const ag_flag table[] = {
      {.name = "game",
       .type = AG_FLAG_STRING,
       .value = &game_spec,
       .metavar = "GAME",
       .help = "ipd, sd, sh, tc, or a payoff table JSON file"},
      {.name = "players",
       .type = AG_FLAG_INT,
       .value = &players,
       .help = "number of players (2..5 for the built-in games, 2..8 for files)",
       .min = 2,
       .max = AG_GAME_MAX_PLAYERS},
      {.name = "learners",
       .type = AG_FLAG_STRING,
       .value = &learners,
       .metavar = "LIST",
       .help = "one learner per seat, comma-separated: naive or lola",
       .required = true},
      {.name = "steps",
       .type = AG_FLAG_INT,
       .value = &steps,
       .help = "simultaneous learning updates",
       .min = 0,
       .max = 100000000},
      {.name = "gamma",
       .type = AG_FLAG_FLOAT,
       .value = &gamma,
       .help = "discount",
       .min = 0,
       .max = 0.999999},
      {.name = "lr",
       .type = AG_FLAG_FLOAT,
       .value = &lr,
       .help = "learning rate (delta)",
       .min = 0,
       .max = 1e6},
      {.name = "correction",
       .type = AG_FLAG_FLOAT,
       .value = &correction,
       .help = "LOLA look-ahead rate (eta)",
       .min = 0,
       .max = 1e6},
      {.name = "init-std",
       .type = AG_FLAG_FLOAT,
       .value = &init_std,
       .help = "initial logits ~ N(0, init-std^2)",
       .min = 0,
       .max = 1e3},
      {.name = "out",
       .type = AG_FLAG_STRING,
       .value = &out_dir,
       .metavar = "DIR",
       .help = "where curve.csv and curve.jsonl go",
       .required = true},
  };
  enum { N_TABLE = sizeof table / sizeof *table };
  ag_flag flags[N_TABLE + AG_COMMON_FLAG_COUNT];
  int n_flags = ag_args_with_common(flags, table, N_TABLE, &common, true);
  ag_command cmd = {
      .name = "shape run",
      .summary = "Learns memory-one policies in an iterated n-player game with exact values "
                 "and exact\ngradients (naive learners and LOLA, any mix across the seats). "
                 "Writes the learning\ncurves (values, reward per step, cooperation, welfare, "
                 "visitation, policies) and\nprints each player's final value.",
      .flags = flags,
      .flag_count = n_flags,
  };
  ag_args_result res = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (res == AG_ARGS_HELP) return 0;
  if (res != AG_ARGS_OK) return 2;
  ag_args_apply_common(&common);

  /* Every input is checked before any work starts. */
  ag_game game;
  if (ag_game_open(game_spec, players, &game)) return ag_cli_error("%s", ag_error_message());
  ag_shaping_learner seats[AG_GAME_MAX_PLAYERS];
  if (ag_shaping_parse_seats(learners, players, seats))
    return ag_cli_error("%s", ag_error_message());
  if (ag_mkdir_p(out_dir)) return ag_cli_error("%s", ag_error_message());

  char csv_path[4096], jsonl_path[4096];
  snprintf(csv_path, sizeof csv_path, "%s/curve.csv", out_dir);
  snprintf(jsonl_path, sizeof jsonl_path, "%s/curve.jsonl", out_dir);
  ag_atomic_file *csv = NULL, *jsonl = NULL;
  if (ag_atomic_open(csv_path, &csv)) return ag_cli_error("%s", ag_error_message());
  if (ag_atomic_open(jsonl_path, &jsonl)) {
    ag_atomic_abort(csv);
    return ag_cli_error("%s", ag_error_message());
  }
  run_output o = {
      .csv = ag_atomic_stream(csv), .jsonl = ag_atomic_stream(jsonl), .players = players};
  fputs("step", o.csv);
  for (int i = 0; i < players; i++) fprintf(o.csv, ",value_%d", i);
  for (int i = 0; i < players; i++) fprintf(o.csv, ",reward_per_step_%d", i);
  for (int i = 0; i < players; i++) fprintf(o.csv, ",cooperation_%d", i);
  fputs(",welfare,cooperation_rate\n", o.csv);

  ag_shaping_run_config cfg = {.game = &game,
                               .seats = seats,
                               .steps = steps,
                               .gamma = gamma,
                               .lr = lr,
                               .correction = correction,
                               .init_std = init_std,
                               .seed = common.seed};
  ag_status st = ag_shaping_exact_run(&cfg, record_step, &o);
  if (st) {
    ag_atomic_abort(csv);
    ag_atomic_abort(jsonl);
    return ag_cli_error("%s", ag_error_message());
  }
  st = ag_atomic_commit(csv);
  ag_status st2 = ag_atomic_commit(jsonl);
  if (st || st2) return ag_cli_error("%s", ag_error_message());

  printf("%s, %d players, %d steps, seed %llu: welfare %.4f per step, cooperation %.3f\n",
         game.name, players, steps, (unsigned long long)common.seed, o.welfare, o.cooperation_rate);
  for (int i = 0; i < players; i++)
    printf("  player %d (%s): value %.4f, reward per step %.4f, cooperation %.3f\n", i,
           ag_shaping_learner_name(seats[i]), o.final_values[i], (1 - gamma) * o.final_values[i],
           o.final_coop[i]);
  printf("curves: %s, %s\n", csv_path, jsonl_path);
  if (common.json) {
    json_t *obj = json_object(), *returns = json_array(), *coop = json_array();
    for (int i = 0; i < players; i++) {
      json_array_append_new(returns, json_real(o.final_values[i]));
      json_array_append_new(coop, json_real(o.final_coop[i]));
    }
    json_object_set_new(obj, "game", json_string(game.name));
    json_object_set_new(obj, "players", json_integer(players));
    json_object_set_new(obj, "steps", json_integer(steps));
    json_object_set_new(obj, "welfare", json_real(o.welfare));
    json_object_set_new(obj, "returns", returns);
    json_object_set_new(obj, "cooperation", coop);
    json_object_set_new(obj, "cooperation_rate", json_real(o.cooperation_rate));
    char *text = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(10));
    if (text) printf("%s\n", text);
    free(text);
    json_decref(obj);
  }
  return 0;
}

int ag_cli_shaping(int argc, char **argv) {
  static const ag_cli_verb verbs[] = {
      {"run", "learn in an n-player game with exact values: naive learners and LOLA", cmd_run},
  };
  static const ag_cli_area_help area = {
      "shape",
      "N-player opponent shaping (PAPERS.md §10): iterated binary-action games for 2..5 "
      "players\n(ipd, sd, sh, tc, or a payoff file), memory-one policies with exact values, "
      "naive learners\nand LOLA.",
      verbs, (int)(sizeof verbs / sizeof *verbs)};
  return ag_cli_dispatch(&area, argc, argv);
}
