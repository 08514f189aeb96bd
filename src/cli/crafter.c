/* `agora crafter replay`: the Crafter game (issue 6). Flag parsing and
 * output only; the work is in libagora (agora/crafter.h). */
#include "agora/crafter.h"

#include "cli/args.h"
#include "cli/cli.h"

#include <stdio.h>

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
                 "every recorded field except the pixel-observation hashes. Exits 0 when all "
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
  printf("ok: %s: %lld records in %lld episodes match\n", files[0], (long long)rep.records,
         (long long)rep.episodes);
  return 0;
}

int ag_cli_crafter(int argc, char **argv) {
  static const ag_cli_verb verbs[] = {
      {"replay", "replay a golden file from the original and compare every recorded field",
       cmd_replay},
  };
  static const ag_cli_area_help area = {
      "crafter", "The Crafter game, a C port faithful to the original (see docs/crafter.md).",
      verbs, (int)(sizeof verbs / sizeof *verbs)};
  return ag_cli_dispatch(&area, argc, argv);
}
