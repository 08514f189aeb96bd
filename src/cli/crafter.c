/* `agora crafter replay|render`: the Crafter game (issue 6). Flag parsing and
 * output only; the work is in libagora (agora/crafter.h). */
#include "agora/crafter.h"

#include "cli/args.h"
#include "cli/cli.h"
#include "worlds/crafter/crafter_internal.h" /* numpy's RandomState, for --steps */

#include <stdio.h>
#include <stdlib.h>

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

static int cmd_render(int argc, char **argv) {
  int64_t seed = 0, steps = 0;
  int size = AG_CRAFTER_OBS_SIZE;
  const char *out = NULL, *assets = NULL;
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
       .help = "the frame to write (PNG, written atomically)",
       .required = true},
      {.name = "steps",
       .type = AG_FLAG_INT64,
       .value = &steps,
       .metavar = "N",
       .min = 0,
       .max = 1e7,
       .help = "random actions first (RandomState(S + 12345).randint(0, 17), as the golden "
               "random files); stops early when the episode ends"},
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
      .summary = "Writes the pixel frame of a Crafter game after reset (or after --steps random "
                 "actions), bit for bit the original's observation.",
      .flags = flags,
      .flag_count = (int)(sizeof flags / sizeof *flags),
  };
  ag_args_result res = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (res == AG_ARGS_HELP) return 0;
  if (res != AG_ARGS_OK) return 2;
  ag_crafter_textures *tex = NULL;
  ag_crafter_env *env = NULL;
  uint8_t *rgb = malloc((size_t)size * size * 3);
  int rc = 1;
  if (!rgb) {
    ag_cli_error("out of memory");
    goto done;
  }
  if (ag_crafter_textures_load(assets, &tex) || ag_crafter_create(seed, &env) ||
      ag_crafter_reset(env)) {
    ag_cli_error("%s", ag_error_message());
    goto done;
  }
  // The golden files' random actions: numpy's RandomState(S + 12345).
  ag_crafter_rng r;
  ag_crafter_rng_seed(&r, (uint32_t)((uint64_t)seed + 12345u));
  bool over = false;
  for (int64_t k = 0; k < steps && !over; k++)
    if (ag_crafter_step(env, (int)ag_crafter_rng_randint(&r, 0, AG_CRAFTER_ACTION_COUNT), NULL,
                        &over, NULL)) {
      ag_cli_error("%s", ag_error_message());
      goto done;
    }
  ag_status st = size == AG_CRAFTER_OBS_SIZE ? ag_crafter_observe_pixels(env, tex, rgb)
                                             : ag_crafter_render(env, tex, size, size, rgb);
  if (!st) st = ag_crafter_write_png(out, rgb, size, size);
  if (st) {
    ag_cli_error("%s", ag_error_message());
    goto done;
  }
  printf("wrote %s (%dx%d, seed %lld, step %lld)\n", out, size, size, (long long)seed,
         (long long)env->step);
  rc = 0;
done:
  free(rgb);
  ag_crafter_destroy(env);
  ag_crafter_textures_free(tex);
  return rc;
}

int ag_cli_crafter(int argc, char **argv) {
  static const ag_cli_verb verbs[] = {
      {"replay", "replay a golden file from the original and compare every recorded field",
       cmd_replay},
      {"render", "write the pixel frame of a game (after reset or N random steps) as PNG",
       cmd_render},
  };
  static const ag_cli_area_help area = {
      "crafter", "The Crafter game, a C port faithful to the original (see docs/crafter.md).",
      verbs, (int)(sizeof verbs / sizeof *verbs)};
  return ag_cli_dispatch(&area, argc, argv);
}
