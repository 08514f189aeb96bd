/* `agora crafter replay|render|eval|play|bench`: the Crafter game (issue 6). Flag parsing and
 * output only; the work is in libagora (agora/crafter.h). */
#include "agora/crafter.h"

#include "cli/args.h"
#include "cli/cli.h"
#include "worlds/crafter/crafter_internal.h" /* env->length for eval --length; bench */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int ag_cli_crafter_play(int argc, char **argv); /* crafter_play.c */

static int cmd_replay(int argc, char **argv) {
  bool impose = false;
  ag_flag flags[] = {
      {.name = "logged-despawns",
       .type = AG_FLAG_BOOL,
       .value = &impose,
       .help = "impose the despawn orders the file logged (for the golden orig/ files)"},
  };
  ag_command cmd = {
      .name = "crafter replay",
      .summary = "Replays a golden file recorded from the original Crafter (a traj_S_*.jsonl.gz "
                 "or a world_S.json, the format of ../shared/data/crafter/golden) and compares "
                 "every recorded field, the pixel-observation hashes included. Exits 0 when all "
                 "match, else prints the first mismatch (step, field, expected, got) and exits 1.",
      .flags = flags,
      .flag_count = (int)(sizeof flags / sizeof *flags),
      .positional_metavar = "FILE",
  };
  const char *files[1];
  int n_files = 0;
  ag_args_result res = ag_args_parse(&cmd, argc, argv, files, 1, &n_files);
  if (res == AG_ARGS_HELP) return 0;
  if (res != AG_ARGS_OK) return 2;
  if (n_files != 1) return ag_args_usage_error(&cmd, "expected one FILE");
  ag_crafter_replay_report rep;
  if (ag_crafter_replay(files[0], impose, &rep)) return ag_cli_error("%s", ag_error_message());
  if (!rep.match) {
    printf("mismatch: %s\n", rep.mismatch);
    return 1;
  }
  printf("ok: %s: %lld records in %lld episodes match (%lld frame hashes)\n", files[0],
         (long long)rep.records, (long long)rep.episodes, (long long)rep.frames);
  return 0;
}

/* Makes DIR (and missing parents); an error when it exists as something else. */
static ag_status make_dir(const char *dir) {
  struct stat sb;
  if (stat(dir, &sb) == 0) {
    if (S_ISDIR(sb.st_mode)) return AG_OK;
    return ag_error_set(AG_ERR_IO, "crafter render: %s exists and is not a directory", dir);
  }
  char path[4096];
  if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
    return ag_error_set(AG_ERR_INVALID, "crafter render: directory name too long");
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(path, 0777) && errno != EEXIST)
      return ag_error_set(AG_ERR_IO, "crafter render: cannot create %s: %s", path, strerror(errno));
    *p = '/';
  }
  if (mkdir(path, 0777) && errno != EEXIST)
    return ag_error_set(AG_ERR_IO, "crafter render: cannot create %s: %s", path, strerror(errno));
  return AG_OK;
}

static int cmd_render(int argc, char **argv) {
  int64_t seed = 0, steps = 0;
  int size = AG_CRAFTER_OBS_SIZE;
  const char *out = NULL, *video = NULL, *assets = NULL, *agent_name = "random";
  ag_flag flags[] = {
      {.name = "seed",
       .type = AG_FLAG_INT64,
       .value = &seed,
       .metavar = "S",
       .help = "the env's seed, as crafter.Env(seed=S)"},
      {.name = "out",
       .type = AG_FLAG_STRING,
       .value = &out,
       .metavar = "PNG",
       .help = "write the frame after the steps here (PNG, written atomically)"},
      {.name = "video",
       .type = AG_FLAG_STRING,
       .value = &video,
       .metavar = "DIR",
       .help = "instead write every frame, DIR/frame-000000.png (after reset) to "
               "frame-NNNNNN.png (after step N), each atomically; DIR is created"},
      {.name = "steps",
       .type = AG_FLAG_INT64,
       .value = &steps,
       .metavar = "N",
       .min = 0,
       .max = 1e7,
       .help = "actions of the agent first; stops early when the episode ends"},
      {.name = "agent",
       .type = AG_FLAG_CHOICE,
       .value = &agent_name,
       .choices = "random|scripted",
       .help = "who acts: random = RandomState(S + 12345).randint(0, 17), as the golden random "
               "files draw them; scripted = the hand-written policy (eval --agent scripted)"},
      {.name = "size",
       .type = AG_FLAG_INT,
       .value = &size,
       .metavar = "PX",
       .min = 9,
       .max = 4096,
       .help = "frame size; 64 is the observation, others are env.render((PX, PX)), which at "
               "night draws from the world RNG as the original does"},
      {.name = "assets",
       .type = AG_FLAG_STRING,
       .value = &assets,
       .metavar = "DIR",
       .help = "the textures (default: $AG_CRAFTER_ASSETS or ../shared/data/crafter/assets)"},
  };
  ag_command cmd = {
      .name = "crafter render",
      .summary = "Writes the pixel frame of a Crafter game after reset (or after --steps actions "
                 "of an agent), bit for bit the original's observation; --video writes every "
                 "frame of the way.",
      .flags = flags,
      .flag_count = (int)(sizeof flags / sizeof *flags),
  };
  ag_args_result res = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (res == AG_ARGS_HELP) return 0;
  if (res != AG_ARGS_OK) return 2;
  if (!out == !video) return ag_args_usage_error(&cmd, "give one of --out PNG or --video DIR");
  ag_crafter_agent_kind kind;
  if (ag_crafter_agent_kind_parse(agent_name, &kind)) return ag_cli_error("%s", ag_error_message());
  ag_crafter_textures *tex = NULL;
  ag_crafter_env *env = NULL;
  ag_crafter_agent *agent = NULL;
  uint8_t *rgb = malloc((size_t)size * size * 3);
  int rc = 1;
  int64_t frames = 0;
  char path[4200];
  if (!rgb) {
    ag_cli_error("out of memory");
    goto done;
  }
  ag_status st = ag_crafter_textures_load(assets, &tex);
  if (!st) st = ag_crafter_create(seed, &env);
  if (!st) st = ag_crafter_reset(env);
  if (!st) st = ag_crafter_agent_create(kind, seed, &agent);
  if (!st && video) st = make_dir(video);
  bool over = false;
  for (int64_t k = 0; !st; k++) {
    if (video || k == steps || over) {
      st = size == AG_CRAFTER_OBS_SIZE ? ag_crafter_observe_pixels(env, tex, rgb)
                                       : ag_crafter_render(env, tex, size, size, rgb);
      if (st) break;
      if (video) {
        snprintf(path, sizeof path, "%s/frame-%06lld.png", video, (long long)k);
        st = ag_crafter_write_png(path, rgb, size, size);
      } else {
        st = ag_crafter_write_png(out, rgb, size, size);
      }
      if (st) break;
      frames++;
    }
    if (k == steps || over) break;
    int action = ag_crafter_agent_act(agent, env);
    st = action < 0 ? AG_ERR_INVALID : ag_crafter_step(env, action, NULL, &over, NULL);
  }
  if (st) {
    ag_cli_error("%s", ag_error_message());
    goto done;
  }
  if (video)
    printf("wrote %lld frames to %s (frame-000000.png .. frame-%06lld.png, %dx%d, seed %lld, %s "
           "agent)%s\n",
           (long long)frames, video, (long long)frames - 1, size, size, (long long)seed, agent_name,
           over ? "; the episode ended" : "");
  else
    printf("wrote %s (%dx%d, seed %lld, step %lld)\n", out, size, size, (long long)seed,
           (long long)env->step);
  rc = 0;
done:
  free(rgb);
  ag_crafter_agent_destroy(agent);
  ag_crafter_destroy(env);
  ag_crafter_textures_free(tex);
  return rc;
}

static int cmd_eval(int argc, char **argv) {
  const char *agent = "random";
  int64_t episodes = 10, seed = 0, length = AG_CRAFTER_DEFAULT_LENGTH;
  bool json = false;
  ag_flag flags[] = {
      {.name = "agent",
       .type = AG_FLAG_CHOICE,
       .value = &agent,
       .choices = "random|scripted",
       .help = "the agent: random = uniform actions from numpy's RandomState(S + 12345), one "
               "stream across episodes (episode 1 is then the golden random trajectory); "
               "scripted = a hand-written policy from the semantic view and the inventory "
               "(docs/crafter.md)"},
      {.name = "episodes",
       .type = AG_FLAG_INT64,
       .value = &episodes,
       .metavar = "N",
       .min = 1,
       .max = 1e7,
       .help = "episodes to play (each to death or --length steps)"},
      {.name = "length",
       .type = AG_FLAG_INT64,
       .value = &length,
       .metavar = "N",
       .min = 1,
       .max = 1e9,
       .help = "steps until an episode ends, as crafter.Env(length=N) (BALROG uses 2000)"},
      {.name = "seed",
       .type = AG_FLAG_INT64,
       .value = &seed,
       .metavar = "S",
       .help = "the env's seed, as crafter.Env(seed=S); episode e has the original's world seed"},
      {.name = "json",
       .type = AG_FLAG_BOOL,
       .value = &json,
       .help = "print one JSON object (success_rates, score, mean_length, mean_return) instead "
               "of the table"},
  };
  ag_command cmd = {
      .name = "crafter eval",
      .summary = "Plays N episodes of Crafter with an agent and prints the success rate of each "
                 "achievement (percent of episodes that unlocked it) and the Crafter score, "
                 "exp(mean ln(1 + s_i)) - 1 in percent.",
      .flags = flags,
      .flag_count = (int)(sizeof flags / sizeof *flags),
  };
  ag_args_result res = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (res == AG_ARGS_HELP) return 0;
  if (res != AG_ARGS_OK) return 2;
  ag_crafter_agent_kind kind;
  if (ag_crafter_agent_kind_parse(agent, &kind)) return ag_cli_error("%s", ag_error_message());
  ag_crafter_env *env = NULL;
  ag_crafter_agent *player = NULL;
  if (ag_crafter_create(seed, &env) || ag_crafter_agent_create(kind, seed, &player)) {
    ag_crafter_destroy(env);
    return ag_cli_error("%s", ag_error_message());
  }
  env->length = length; // crafter.Env(length=...)
  ag_crafter_tally tally = {0};
  ag_status st = AG_OK;
  for (int64_t e = 0; e < episodes && !st; e++) {
    st = ag_crafter_reset(env);
    bool done = false;
    double ret = 0, reward = 0;
    ag_crafter_info info;
    ag_crafter_get_info(env, &info);
    while (!st && !done) {
      int action = ag_crafter_agent_act(player, env);
      st = action < 0 ? AG_ERR_INVALID : ag_crafter_step(env, action, &reward, &done, &info);
      ret += reward;
    }
    if (!st) ag_crafter_tally_add(&tally, info.achievements, info.step, ret);
  }
  ag_crafter_agent_destroy(player);
  if (st) {
    ag_crafter_destroy(env);
    return ag_cli_error("%s", ag_error_message());
  }
  ag_crafter_destroy(env);
  double rates[AG_CRAFTER_ACHIEVEMENT_COUNT];
  ag_crafter_success_rates(&tally, rates);
  double score = ag_crafter_score(rates);
  double mean_length = (double)tally.steps / (double)tally.episodes;
  double mean_return = tally.total_return / (double)tally.episodes;
  if (json) {
    printf("{\"agent\": \"%s\", \"episodes\": %lld, \"seed\": %lld, \"length\": %lld, "
           "\"success_rates\": {",
           agent, (long long)episodes, (long long)seed, (long long)length);
    for (int a = 0; a < AG_CRAFTER_ACHIEVEMENT_COUNT; a++)
      printf("%s\"%s\": %.17g", a ? ", " : "", ag_crafter_achievement_name(a), rates[a]);
    printf("}, \"score\": %.17g, \"mean_length\": %.17g, \"mean_return\": %.17g}\n", score,
           mean_length, mean_return);
    return 0;
  }
  printf("crafter eval: %s agent, %lld episodes, seed %lld\n", agent, (long long)episodes,
         (long long)seed);
  for (int a = 0; a < AG_CRAFTER_ACHIEVEMENT_COUNT; a++)
    printf("  %-22s %6.2f %%\n", ag_crafter_achievement_name(a), rates[a]);
  printf("score        %.2f %%\nmean length  %.1f\nmean return  %.3f\n", score, mean_length,
         mean_return);
  return 0;
}

/* `crafter bench`: ag_crafter_bench's figures (see agora/crafter.h). */
static int cmd_bench(int argc, char **argv) {
  double seconds = 4;
  int envs = 64;
  bool json = false, cpu_time = false;
  const char *assets = NULL;
  ag_flag flags[] = {
      {.name = "seconds",
       .type = AG_FLAG_FLOAT,
       .value = &seconds,
       .metavar = "T",
       .min = 0.01,
       .max = 3600,
       .help = "time per measurement (five: exact pixels, fast semantic, exact semantic, the "
               "vectorised envs on all threads and on one)"},
      {.name = "envs",
       .type = AG_FLAG_INT,
       .value = &envs,
       .metavar = "N",
       .min = 0,
       .max = 65536,
       .help = "envs in the vectorised measurement (0 skips it)"},
      {.name = "cpu-time",
       .type = AG_FLAG_BOOL,
       .value = &cpu_time,
       .help = "time the single-thread figures by the thread's CPU clock, not the wall clock "
               "(on a machine busy with other jobs; the vectorised figures stay wall-clock)"},
      {.name = "json", .type = AG_FLAG_BOOL, .value = &json, .help = "print one JSON object"},
      {.name = "assets",
       .type = AG_FLAG_STRING,
       .value = &assets,
       .metavar = "DIR",
       .help = "the textures (default: $AG_CRAFTER_ASSETS or ../shared/data/crafter/assets)"},
  };
  ag_command cmd = {
      .name = "crafter bench",
      .summary = "Steps per second of Crafter with random actions, averaged over whole day/night "
                 "cycles: one thread in exact mode observing pixels every step, one thread in "
                 "fast mode observing the semantic view (and exact mode too); resets timed "
                 "apart; then N envs stepped by ag_crafter_vec (fast, semantic, auto-resets "
                 "included) on all threads and on one.",
      .flags = flags,
      .flag_count = (int)(sizeof flags / sizeof *flags),
  };
  ag_args_result res = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (res == AG_ARGS_HELP) return 0;
  if (res != AG_ARGS_OK) return 2;
  ag_crafter_textures *tex = NULL;
  if (ag_crafter_textures_load(assets, &tex)) return ag_cli_error("%s", ag_error_message());
  ag_crafter_bench_result r;
  ag_crafter_bench_options opt = {.seconds = seconds, .vec_envs = envs, .cpu_time = cpu_time};
  ag_status st = ag_crafter_bench(tex, &opt, &r);
  ag_crafter_textures_free(tex);
  if (st) return ag_cli_error("%s", ag_error_message());
  const ag_crafter_bench_figure *f[3] = {&r.pixels, &r.semantic, &r.exact_semantic};
  if (json) {
    printf("{\"pixel_steps_per_s\": %.1f, \"semantic_steps_per_s\": %.1f, \"semantic_mode\": "
           "\"fast\", \"exact_semantic_steps_per_s\": %.1f, \"reset_ms\": %.4f, \"threads\": 1, "
           "\"clock\": \"%s\"",
           r.pixels.steps_per_s, r.semantic.steps_per_s, r.exact_semantic.steps_per_s, r.reset_ms,
           cpu_time ? "thread_cpu" : "wall");
    static const char *const names[3] = {"pixel", "semantic", "exact_semantic"};
    for (int i = 0; i < 3; i++)
      printf(", \"%s_day_steps_per_s\": %.1f, \"%s_night_steps_per_s\": %.1f, \"%s_steps\": %lld",
             names[i], f[i]->day_steps_per_s, names[i], f[i]->night_steps_per_s, names[i],
             (long long)f[i]->steps);
    printf(", \"resets\": %lld, \"vec_steps_per_s\": %.1f, \"vec_one_thread_steps_per_s\": %.1f, "
           "\"vec_envs\": %d, \"vec_threads\": %d}\n",
           (long long)r.resets, r.vec_steps_per_s, r.vec_one_thread_steps_per_s, r.vec_envs,
           r.vec_threads);
    return 0;
  }
  static const char *const labels[3] = {"exact mode, pixels", "fast mode, semantic",
                                        "exact mode, semantic"};
  printf("%-22s %14s %14s %14s %10s\n", "one thread", "steps/s cycle", "day", "night", "steps");
  for (int i = 0; i < 3; i++)
    printf("%-22s %14.0f %14.0f %14.0f %10lld\n", labels[i], f[i]->steps_per_s,
           f[i]->day_steps_per_s, f[i]->night_steps_per_s, (long long)f[i]->steps);
  printf("reset                  %11.3f ms (%lld resets)\n", r.reset_ms, (long long)r.resets);
  if (r.vec_envs)
    printf("vec, %d envs, fast, semantic, auto-reset: %.0f steps/s on %d threads, %.0f on one\n",
           r.vec_envs, r.vec_steps_per_s, r.vec_threads, r.vec_one_thread_steps_per_s);
  for (int i = 0; i < 3; i++)
    if (f[i]->empty_tenths)
      printf("note: %s: %d of 30 tenths of the cycle never reached (averaged over the rest)\n",
             labels[i], f[i]->empty_tenths);
  return 0;
}

int ag_cli_crafter(int argc, char **argv) {
  static const ag_cli_verb verbs[] = {
      {"replay", "replay a golden file from the original and compare every recorded field",
       cmd_replay},
      {"render", "write the pixel frame of a game (after reset or N agent steps), or --video",
       cmd_render},
      {"eval", "play N episodes with an agent; success rate per achievement and the score",
       cmd_eval},
      {"play", "play it in the terminal (or --actions LIST without one)", ag_cli_crafter_play},
      {"bench", "steps per second (pixels, semantic, vectorised) and reset time", cmd_bench},
  };
  static const ag_cli_area_help area = {
      "crafter", "The Crafter game, a C port faithful to the original (see docs/crafter.md).",
      verbs, (int)(sizeof verbs / sizeof *verbs)};
  return ag_cli_dispatch(&area, argc, argv);
}
